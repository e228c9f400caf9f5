//! Hostile configuration overrides through the real binary (issue 13, defects 2, 3 and 9):
//! each one used to crash or take gigabytes; now each is a one-line error (exit 2) that names
//! the key, from the limits shared by every command that composes a configuration
//! (`mbls_config::limits`). `mbls train OVERRIDES --cfg` composes and prints the
//! configuration, so it shows what `mbls loss`, `mbls model` and `mbls train` read.

mod common;

/// `mbls train` arguments: `overrides`, then `--cfg`.
fn cfg_args(overrides: Vec<String>) -> Vec<String> {
    let mut args = overrides;
    args.push("--cfg".into());
    args
}

/// `+loss.k0=${loss.k1}`, `+loss.k1=${loss.k2}`, ..., `+loss.k{n}=0`: `n` references in a
/// chain.
fn chain(n: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..n)
        .map(|i| format!("+loss.k{i}=${{loss.k{}}}", i + 1))
        .collect();
    out.push(format!("+loss.k{n}=0"));
    out
}

#[test]
fn defect_2_a_chain_of_10000_interpolations_is_an_error_not_a_crash() {
    // It overflowed the stack (SIGABRT).
    let err = common::fails(
        "train",
        &cfg_args(chain(10_000)),
        "interpolation of `loss.k64` is too deep: more than 64 `${...}` references in a chain",
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // 64 references are fine
    let out = common::ok("train", &cfg_args(chain(64)));
    assert!(out.contains("k0: 0"), "{out}");
    assert!(out.contains("k64: 0"), "{out}");
}

#[test]
fn defect_3a_a_yaml_alias_bomb_in_an_override_is_refused() {
    // 9 levels of 9 aliases: about 250 bytes that expanded to 6.3 GB.
    let names = ["x", "y", "z", "u", "v", "w", "p", "q", "r"];
    let mut levels = vec!["&x [1,1,1,1,1,1,1,1,1]".to_string()];
    for w in names.windows(2) {
        let aliases = vec![format!("*{}", w[0]); 9].join(",");
        levels.push(format!("&{} [{aliases}]", w[1]));
    }
    let bomb = format!("+a=[{}]", levels.join(", "));
    let err = common::fails(
        "train",
        &cfg_args(vec![bomb]),
        "YAML aliases (`*name`) are not accepted in an override value",
    );
    assert!(err.contains("cannot parse the value `[&x [1,1,1"), "{err}");
    assert!(err.contains("of `a`"), "{err}");
    // a key that exists, the same
    common::fails(
        "train",
        &cfg_args(vec!["scheduler.milestones=[&m 40, *m]".into()]),
        "of `scheduler.milestones`: YAML aliases",
    );
}

#[test]
fn defect_3b_a_dotted_key_of_10000_parts_is_refused() {
    // 20 kB that took 4 GB (quadratic).
    let key = vec!["a"; 10_000].join(".");
    let err = common::fails(
        "train",
        &cfg_args(vec![format!("+{key}=1")]),
        "the key is 19999 bytes long; a key is at most 1000 bytes",
    );
    assert!(err.len() < 400, "the key is not echoed whole: {err}");
    // parts, under the length limit
    let key = vec!["a"; 33].join(".");
    common::fails(
        "train",
        &cfg_args(vec![format!("+{key}=1")]),
        "the key has 33 dot-separated parts; a key has at most 32",
    );
    // 32 parts are fine
    let key = vec!["a"; 32].join(".");
    common::ok("train", &cfg_args(vec![format!("+{key}=1")]));
}

#[test]
fn defect_3c_strings_doubled_by_interpolation_are_bounded() {
    // `+k0=x`, `+k1=${k0}${k0}`, ...: 30 overrides that built over 3 GB.
    let mut overrides = vec!["+k0=x".to_string()];
    for i in 1..30 {
        overrides.push(format!("+k{i}=${{k{0}}}${{k{0}}}", i - 1));
    }
    common::fails_in_one_line(
        "train",
        &cfg_args(overrides),
        "resolving `k21` makes its string larger than the limit of 1048576 bytes",
    );
    // and lists of copies of lists (10 kB, 100 kB, ..., 10 GB)
    let item = "x".repeat(1_000);
    let mut overrides = vec![format!("+l0=[{}]", [item.as_str(); 10].join(", "))];
    for i in 1..7 {
        let copies = vec![format!("'${{l{}}}'", i - 1); 10].join(", ");
        overrides.push(format!("+l{i}=[{copies}]"));
    }
    common::fails_in_one_line(
        "train",
        &cfg_args(overrides),
        "makes the configuration larger than the limit of 16777216 bytes",
    );
}

#[test]
fn defect_9_a_float_out_of_range_is_refused_naming_key_and_value() {
    // It said "invalid margin = null".
    let args = |v: &str| cfg_args(vec!["loss=logit_margin".into(), format!("loss.margin={v}")]);
    common::fails_in_one_line(
        "train",
        &args("1e400"),
        "cannot parse the value `1e400` of `loss.margin`: `1e400` is out of range for a float",
    );
    for v in [".inf", "-.inf", ".nan"] {
        common::fails_in_one_line(
            "train",
            &args(v),
            &format!("cannot parse the value `{v}` of `loss.margin`: `{v}` is not a finite float"),
        );
    }
    let out = common::ok("train", &args("1e300"));
    assert!(out.contains("margin: 1.0e+300"), "{out}");
}
