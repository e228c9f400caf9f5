//! The limits of composition (`mbls_config::limits`), through `Config::compose_args` as the
//! commands call it: each hostile override of the bad-input campaign (issue 13) is refused
//! with an error naming the key, quickly and without the memory or stack it used to take.

use mbls_config::limits::{
    MAX_INTERPOLATION_DEPTH, MAX_KEY_LEN, MAX_KEY_SEGMENTS, MAX_RESOLVED_SIZE, MAX_STRING_LEN,
};
use mbls_config::{Config, ConfigError, Value};

fn compose(overrides: &[String]) -> Result<Config, ConfigError> {
    Config::compose_args(overrides)
}

/// `+loss.k0=${loss.k1}`, ..., `+loss.k{n}=0` (`forward`), or `+loss.k0=0`,
/// `+loss.k1=${loss.k0}`, ..., `+loss.k{n}=${loss.k{n-1}}`: a chain of `n` references.
fn chain(n: usize, forward: bool) -> Vec<String> {
    (0..=n)
        .map(|i| match (forward, i) {
            (true, i) if i == n => format!("+loss.k{i}=0"),
            (true, i) => format!("+loss.k{i}=${{loss.k{}}}", i + 1),
            (false, 0) => "+loss.k0=0".to_string(),
            (false, i) => format!("+loss.k{i}=${{loss.k{}}}", i - 1),
        })
        .collect()
}

#[test]
fn interpolation_chains_are_bounded() {
    // 64 references resolve
    let cfg = compose(&chain(MAX_INTERPOLATION_DEPTH, true)).unwrap();
    assert_eq!(cfg.get_i64("loss.k0").unwrap(), 0);
    // 10,000 overflowed the stack (SIGABRT): now an error naming the key and the limit
    for (n, forward, key) in [(10_000, true, "loss.k64"), (1_000, false, "loss.k65")] {
        let e = compose(&chain(n, forward)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::InterpolationTooDeep {
                key: key.into(),
                limit: MAX_INTERPOLATION_DEPTH,
                what: "`${...}` references in a chain".into(),
            }
        );
        assert_eq!(
            e.to_string(),
            format!(
                "interpolation of `{key}` is too deep: more than 64 `${{...}}` references in a \
                 chain"
            )
        );
    }
}

#[test]
fn alias_bombs_are_refused() {
    // 243 bytes that expanded to 6.3 GB
    let names = ["x", "y", "z", "u", "v", "w", "p", "q", "r"];
    let mut levels = vec!["&x [1,1,1,1,1,1,1,1,1]".to_string()];
    for w in names.windows(2) {
        levels.push(format!(
            "&{} [{}]",
            w[1],
            vec![format!("*{}", w[0]); 9].join(",")
        ));
    }
    let bomb = format!("[{}]", levels.join(", "));
    let e = compose(&[format!("+a={bomb}")]).unwrap_err();
    let ConfigError::BadValue { key, reason, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(key, "a");
    assert!(reason.contains("aliases (`*name`) are not accepted"), "{e}");
    assert!(
        e.to_string()
            .starts_with("cannot parse the value `[&x [1,1,1"),
        "{e}"
    );
    // the same for a key that exists, and nested too deep
    let e = compose(&["scheduler.milestones=[&m 40, *m]".to_string()]).unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { key, .. } if key == "scheduler.milestones"));
    let deep = format!("+a={}1{}", "[".repeat(100), "]".repeat(100));
    let e = compose(&[deep]).unwrap_err();
    assert!(
        e.to_string().contains("nested more than 64 levels deep"),
        "{e}"
    );
}

#[test]
fn long_and_deep_keys_are_refused() {
    // 10,000 parts: 20 kB that took 4 GB
    let key = vec!["a"; 10_000].join(".");
    let e = compose(&[format!("+{key}=1")]).unwrap_err();
    let ConfigError::BadOverride { arg, reason } = &e else {
        panic!("{e}");
    };
    assert!(
        reason.contains(&format!("a key is at most {MAX_KEY_LEN} bytes")),
        "{e}"
    );
    assert!(arg.len() < 200 && arg.ends_with("..."), "{arg}");
    let key = vec!["a"; MAX_KEY_SEGMENTS + 1].join(".");
    let e = compose(&[format!("+{key}=1")]).unwrap_err();
    assert!(
        e.to_string()
            .contains("the key has 33 dot-separated parts; a key has at most 32"),
        "{e}"
    );
    // at the limit, the key is added
    let key = vec!["a"; MAX_KEY_SEGMENTS].join(".");
    let cfg = compose(&[format!("+{key}=1")]).unwrap();
    assert_eq!(cfg.get_i64(&key).unwrap(), 1);
    // references are held to the same limits
    let e = compose(&[format!("+x=${{{}}}", vec!["a"; 10_000].join("."))]).unwrap_err();
    assert!(matches!(e, ConfigError::InterpolationInvalid { .. }), "{e}");
    assert!(e.to_string().len() < 400, "{e}");
}

#[test]
fn strings_doubled_by_interpolation_are_bounded() {
    // 30 overrides that built over 3 GB
    let mut overrides = vec!["+k0=x".to_string()];
    for i in 1..30 {
        overrides.push(format!("+k{i}=${{k{0}}}${{k{0}}}", i - 1));
    }
    let e = compose(&overrides).unwrap_err();
    assert_eq!(
        e,
        ConfigError::ResolvedTooLarge {
            key: "k21".into(),
            what: "its string".into(),
            limit: MAX_STRING_LEN as u64,
        }
    );
}

#[test]
fn lists_of_copies_are_bounded() {
    // each list ten copies of the one before: 10 kB, 100 kB, ... 10 GB
    let item = "x".repeat(1_000);
    let mut overrides = vec![format!("+l0=[{}]", [item.as_str(); 10].join(", "))];
    for i in 1..7 {
        // quoted: `{` and `}` end a plain scalar in a flow list
        let copies = vec![format!("'${{l{}}}'", i - 1); 10].join(", ");
        overrides.push(format!("+l{i}=[{copies}]"));
    }
    let e = compose(&overrides).unwrap_err();
    let ConfigError::ResolvedTooLarge { what, limit, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(
        (what.as_str(), *limit),
        ("the configuration", MAX_RESOLVED_SIZE)
    );
    // a few copies are fine
    let cfg = compose(&overrides[..3]).unwrap();
    assert_eq!(
        cfg.get("l2.9.9.9"),
        Some(&Value::Str(item.clone())),
        "a copy of a copy"
    );
}

#[test]
fn non_finite_floats_are_refused() {
    let args = |v: &str| vec!["loss=logit_margin".to_string(), format!("loss.margin={v}")];
    let e = compose(&args("1e400")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot parse the value `1e400` of `loss.margin`: `1e400` is out of range for a float"
    );
    for v in [".inf", "-.inf", ".nan"] {
        let e = compose(&args(v)).unwrap_err();
        assert!(
            e.to_string().contains("is not a finite float") && e.to_string().contains(v),
            "{e}"
        );
    }
    // a finite float still goes in
    let cfg = compose(&args("1e300")).unwrap();
    assert_eq!(cfg.get_f64("loss.margin").unwrap(), 1e300);
}
