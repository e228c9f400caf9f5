//! Test support shared by the workspace's crates (a dev-dependency only): where the shared
//! reference folder (`../shared` beside the checkout) is, and how a test that needs a file
//! from it reports that it skipped. Such tests never pass silently: they print a `SKIPPED:`
//! line that shows in `cargo test` output.

#![warn(missing_docs)]

use std::path::PathBuf;

/// The shared reference folder: `$MBLS_SHARED` when set, else `shared/` beside the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("MBLS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // this crate is at <checkout>/crates/plain/mbls-testkit
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared")
        })
}

/// `rel` inside the shared folder when it exists; otherwise reports the skip (naming the
/// missing path) and returns `None`, so a test reads `let Some(p) = shared("...") else { return };`.
pub fn shared(rel: &str) -> Option<PathBuf> {
    match lookup(rel) {
        Ok(p) => Some(p),
        Err(p) => {
            skip(&format!(
                "{} is absent (set MBLS_SHARED to the shared folder)",
                p.display()
            ));
            None
        }
    }
}

/// `rel` inside the shared folder: `Ok` when it exists, else `Err` with the path looked at.
fn lookup(rel: &str) -> Result<PathBuf, PathBuf> {
    let p = shared_dir().join(rel);
    if p.exists() { Ok(p) } else { Err(p) }
}

/// Prints `SKIPPED: reason` on stderr. Written to the stream directly: the test harness
/// captures only the print macros, so the line shows even when the test passes.
pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

/// The `loss` subtree of the built-in configuration with `loss=<name>` (its group file: the
/// only place where loss defaults live), with the entries of `overrides` (a JSON object, or
/// null for none)
/// replacing or adding to it: the parameters a test gives `LossSpec::from_params`.
///
/// # Panics
/// When `name` is not a loss option of the built-in configuration, or `overrides` is not a
/// JSON object.
pub fn loss_params(
    name: &str,
    overrides: &serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    let cfg = mbls_config::Config::compose(&[format!("loss={name}").as_str()])
        .unwrap_or_else(|e| panic!("loss={name}: {e}"));
    let tree = serde_json::to_value(cfg.get("loss").expect("a loss section"))
        .expect("the config converts to JSON");
    let serde_json::Value::Object(mut m) = tree else {
        panic!("loss: not a mapping")
    };
    if !overrides.is_null() {
        for (k, v) in overrides
            .as_object()
            .expect("overrides: a JSON object or null")
        {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_are_none_and_present_ones_are_found() {
        let missing = lookup("no/such/file/anywhere.bin").unwrap_err();
        assert!(missing.ends_with("no/such/file/anywhere.bin"));
        // the folder itself may or may not be there; its lookup is deterministic either way
        assert_eq!(shared_dir(), shared_dir());
        let d = tempfile_dir();
        std::fs::write(d.join("x.txt"), "x").unwrap();
        // SAFETY: the only test of this binary; nothing else reads the environment meanwhile
        unsafe { std::env::set_var("MBLS_SHARED", &d) };
        assert_eq!(shared("x.txt"), Some(d.join("x.txt")));
        // SAFETY: as above
        unsafe { std::env::remove_var("MBLS_SHARED") };
        let _ = std::fs::remove_dir_all(&d);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("mbls-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
