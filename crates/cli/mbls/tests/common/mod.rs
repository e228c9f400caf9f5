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

/// Writes `root/{train,test}/class{c}/NN.png`: 10 classes of 32x32 PNG images, `train` and
/// `test` images per class, each class a colour with noise, so that a network learns
/// something in a few steps.
pub fn class_images(root: &std::path::Path, train: usize, test: usize) {
    use image::{ImageBuffer, Rgb, RgbImage};
    for (split, n) in [("train", train), ("test", test)] {
        for c in 0..10usize {
            let d = root.join(split).join(format!("class{c}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let im: RgbImage = ImageBuffer::from_fn(32, 32, |x, y| {
                    let noise = ((x as usize * 7 + y as usize * 13 + i * 31) % 40) as u8;
                    Rgb([
                        ((c * 25) as u8).wrapping_add(noise),
                        ((255 - c * 20) as u8).wrapping_sub(noise),
                        ((c * 50) % 256) as u8 ^ noise,
                    ])
                });
                im.save(d.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }
}

/// An IDX file: the big-endian magic number and dimensions, then `body`; gzipped when `gzip`.
pub fn idx_bytes(magic: u32, dims: &[u32], body: &[u8], gzip: bool) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    if !gzip {
        return out;
    }
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&out).unwrap();
    e.finish().unwrap()
}

/// Writes the MNIST split `prefix` (`train` or `t10k`) of `n` 28x28 images, labels `i % 10`,
/// into `dir` (with `.gz` names when `gzip`).
pub fn idx_split(dir: &std::path::Path, prefix: &str, n: usize, gzip: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = if gzip { ".gz" } else { "" };
    let pixels: Vec<u8> = (0..n * 784).map(|k| (k * 7 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let images = idx_bytes(2051, &[n as u32, 28, 28], &pixels, gzip);
    let labels = idx_bytes(2049, &[n as u32], &labels, gzip);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), labels).unwrap();
}
