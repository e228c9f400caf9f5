//! Running the real `mbls` binary from the integration tests.
// each test binary uses a part of this module
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::Debug;
use std::process::{Command, Output};

/// Runs `mbls <sub> <args>`.
pub fn run<S: AsRef<OsStr>>(sub: &str, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mbls"))
        .arg(sub)
        .args(args)
        .output()
        .expect("run mbls")
}

/// Runs `mbls <sub> <args>`, asserts success and returns stdout.
pub fn ok<S: AsRef<OsStr> + Debug>(sub: &str, args: &[S]) -> String {
    let out = run(sub, args);
    assert!(
        out.status.success(),
        "mbls {sub} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `mbls <sub> <args> --json`, asserts success and parses stdout.
pub fn json<S: AsRef<OsStr> + Debug>(sub: &str, args: &[S]) -> serde_json::Value {
    let mut a: Vec<&OsStr> = args.iter().map(|s| s.as_ref()).collect();
    a.push(OsStr::new("--json"));
    serde_json::from_str(&ok(sub, &a)).expect("valid JSON")
}

/// Runs a command that must fail as bad input does: exit code 2 and an `error:` message on
/// stderr that contains `needle` (no panic); returns stderr. (Usage errors from the argument
/// parser add usage lines after the message.)
pub fn fails<S: AsRef<OsStr> + Debug>(sub: &str, args: &[S], needle: &str) -> String {
    let out = run(sub, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "mbls {sub} {args:?}: expected exit 2, stderr: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    err
}

/// [`fails`], and the message is one line.
pub fn fails_in_one_line<S: AsRef<OsStr> + Debug>(sub: &str, args: &[S], needle: &str) {
    let err = fails(sub, args, needle);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
}
