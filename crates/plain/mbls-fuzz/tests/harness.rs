//! The harness itself: valid seeds are accepted (so mutations start from real inputs), the
//! hostile inputs of the campaign are refused within the memory allowance, and a short fixed
//! run of mutated cases passes in process.

use mbls_fuzz::alloc::PeakAlloc;
use mbls_fuzz::inputs::{Format, seed_case};
use mbls_fuzz::rng::Rng;
use mbls_fuzz::{Options, allowance, hostile, target};
use std::time::Duration;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc::new();

#[test]
fn valid_seeds_are_accepted_by_the_readers() {
    for format in Format::ALL {
        for s in 0..20 {
            let case = seed_case(format, &mut Rng::fork(7, s));
            let dir = tempfile::tempdir().unwrap();
            case.write_to(dir.path()).unwrap();
            let r = target::read_in_process(format, &case, dir.path());
            assert!(r.is_ok(), "{} seed {s}: {r:?}", format.name());
        }
    }
}

/// Runs `f`, returning its result and the peak of heap bytes it added.
fn measured<T>(f: impl FnOnce() -> T) -> (T, u64) {
    PEAK.reset_peak();
    let before = PEAK.live();
    let r = f();
    (r, PEAK.peak().saturating_sub(before) as u64)
}

#[test]
fn hostile_checkpoints_are_refused_within_the_allowance() {
    for (name, bytes) in [
        ("stride 0", hostile::pth_stride_zero()),
        ("many views", hostile::pth_many_views()),
        ("memo bomb", hostile::pth_memo_bomb()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pth");
        std::fs::write(&p, &bytes).unwrap();
        let (r, used) = measured(|| mbls_pth::load(&p));
        let err = r.expect_err(name);
        assert!(err.to_string().starts_with("refused:"), "{name}: {err}");
        assert!(
            used <= allowance(bytes.len()),
            "{name}: {used} bytes for {} input bytes",
            bytes.len()
        );
    }
}

#[test]
fn hostile_overrides_are_refused_within_the_allowance() {
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("alias bomb", vec![hostile::config_alias_bomb()]),
        ("doubling", hostile::config_doubling()),
        ("deep key", vec![hostile::config_deep_key()]),
        ("chain", hostile::config_chain()),
    ];
    for (name, overrides) in cases {
        let bytes: usize = overrides.iter().map(String::len).sum();
        let (r, used) = measured(|| mbls_config::Config::compose_args(&overrides));
        assert!(r.is_err(), "{name} was accepted");
        assert!(
            used <= allowance(bytes),
            "{name}: {used} bytes for {bytes} input bytes"
        );
    }
}

#[test]
fn a_short_fixed_run_passes_in_process() {
    let opts = Options {
        seed: 1,
        formats: Format::ALL.to_vec(),
        cases: Some(60),
        time: None,
        mbls: None,
        binary_every: 1,
        timeout: Duration::from_secs(30),
        failures: None,
    };
    let report = mbls_fuzz::run(&opts, Some(&PEAK)).unwrap();
    assert!(
        report.failures.is_empty(),
        "{}",
        mbls_fuzz::summary(&report)
    );
    // the mutations reach both outcomes for every format but safetensors (binary only)
    for (f, t) in &report.tallies {
        assert_eq!(t.cases, 60, "{}", f.name());
        if *f != Format::Safetensors {
            assert!(
                t.accepted > 0 && t.accepted < t.cases,
                "{}: {t:?}",
                f.name()
            );
        }
    }
}
