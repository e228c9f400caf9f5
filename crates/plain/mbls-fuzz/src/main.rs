//! `mbls-fuzz`: runs the structure-aware fuzz harness (see the library's documentation).
//!
//! ```text
//! mbls-fuzz [--seed N] [--seconds S] [--cases N] [--formats npy,pth,...] [--mbls PATH]
//!           [--binary-every N] [--timeout S] [--failures DIR]
//! ```
//! Exit code 0 when every case passed, 1 when one failed (the inputs are kept), 2 for bad
//! arguments.

use mbls_fuzz::{Options, alloc::PeakAlloc, inputs::Format};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc::new();

fn usage() -> &'static str {
    "usage: mbls-fuzz [--seed N] [--seconds S] [--cases N] [--formats LIST] [--mbls PATH] \
     [--binary-every N] [--timeout S] [--failures DIR]\n\
     formats: npy, npz, pth, pth-legacy, safetensors, cifar-bin, cifar-pickle, idx, config, jpeg (default: all)"
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        seed: 1,
        formats: Format::ALL.to_vec(),
        cases: None,
        time: None,
        mbls: None,
        binary_every: 8,
        timeout: Duration::from_secs(30),
        failures: Some(mbls_fuzz::default_failures_dir()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let num = |s: String| {
            s.parse::<u64>()
                .map_err(|_| format!("{a}: not a number: {s}"))
        };
        match a.as_str() {
            "--seed" => o.seed = num(val()?)?,
            "--seconds" => o.time = Some(Duration::from_secs(num(val()?)?)),
            "--cases" => o.cases = Some(num(val()?)? as usize),
            "--binary-every" => o.binary_every = num(val()?)?.max(1) as usize,
            "--timeout" => o.timeout = Duration::from_secs(num(val()?)?.max(1)),
            "--mbls" => o.mbls = Some(PathBuf::from(val()?)),
            "--failures" => o.failures = Some(PathBuf::from(val()?)),
            "--formats" => {
                o.formats = val()?
                    .split(',')
                    .map(|n| {
                        Format::from_name(n.trim()).ok_or_else(|| format!("unknown format {n}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.cases.is_none() && o.time.is_none() {
        o.cases = Some(200);
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    let start = std::time::Instant::now();
    let report = match mbls_fuzz::run(&opts, Some(&PEAK)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", mbls_fuzz::summary(&report));
    println!(
        "seed {}, {:.1} s{}",
        opts.seed,
        start.elapsed().as_secs_f64(),
        match (&opts.failures, report.failures.is_empty()) {
            (Some(d), false) => format!(", failing inputs in {}", d.display()),
            _ => String::new(),
        }
    );
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
