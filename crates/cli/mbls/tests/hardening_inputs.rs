//! Hostile and careless inputs (issue 13), through the real binary: each case the bad-input
//! campaign found is refused with exit code 2 and a message that names the file and the
//! problem (no panic, no huge allocation, no silently wrong result), and valid input that was
//! refused is read.

use mbls_npy::{NpyArray, NpyData, write_npz};
use std::path::Path;

mod common;

/// Deterministic pseudo-random logits (`n x c`, C order) and labels in `0..c`.
fn synth(n: usize, c: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f32 / (1u64 << 31) as f32
    };
    let logits: Vec<f32> = (0..n * c).map(|_| next() * 4.0 - 2.0).collect();
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        labels.push((next() * c as f32) as i64 % c as i64);
    }
    (logits, labels)
}

/// Writes `data` of `shape` as `name` (C order) in `dir`; returns the path.
fn write(dir: &Path, name: &str, shape: &[usize], data: NpyData) -> String {
    let p = dir.join(name);
    NpyArray::new(shape.to_vec(), data)
        .unwrap()
        .write(&p)
        .unwrap();
    p.to_string_lossy().into_owned()
}

/// Writes logits and labels as the `.npz` archive `name` in `dir`; returns the path.
fn write_pair(dir: &Path, name: &str, logits: &NpyArray, labels: &NpyArray) -> String {
    let p = dir.join(name);
    write_npz(&p, &[("logits", logits), ("labels", labels)]).unwrap();
    p.to_string_lossy().into_owned()
}

/// Writes a `.npy` file with a hand-made header (`shape` as Python prints a tuple) followed
/// by the raw bytes `data`; returns the path.
fn write_raw(
    dir: &Path,
    name: &str,
    descr: &str,
    fortran: bool,
    shape: &str,
    data: &[u8],
) -> String {
    let order = if fortran { "True" } else { "False" };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    let mut header = dict.into_bytes();
    // magic (6), version (2), header length (2), then the dict padded to a multiple of 64
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.resize(total - 11, b' ');
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

/// Writes `c_order` (the elements of a `shape` array in C order) as a Fortran-order float32
/// `.npy`, laid out here independently of the library; returns the path.
fn write_fortran(dir: &Path, name: &str, shape: &[usize], c_order: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(c_order.len() * 4);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..c_order.len() {
        let offset = idx.iter().zip(shape).fold(0, |o, (&i, &d)| o * d + i);
        bytes.extend_from_slice(&c_order[offset].to_le_bytes());
        // in Fortran order the first index runs fastest
        for (i, &d) in idx.iter_mut().zip(shape) {
            *i += 1;
            if *i < d {
                break;
            }
            *i = 0;
        }
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let text = format!("({})", dims.join(", "));
    write_raw(dir, name, "<f4", true, &text, &bytes)
}

/// Where the array data of the `k`-th `.npy` member starts in the bytes of a stored `.npz`.
fn member_data(npz: &[u8], k: usize) -> usize {
    let magic = npz
        .windows(6)
        .enumerate()
        .filter(|(_, w)| *w == b"\x93NUMPY")
        .map(|(i, _)| i)
        .nth(k)
        .unwrap();
    magic + npz[magic..].iter().position(|&b| b == b'\n').unwrap() + 1
}

#[test]
fn empty_dimensions_are_refused_by_eval_and_loss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, shape, needle) in [
        ("n0", vec![0usize, 3, 4, 4], "no samples (N = 0)"),
        ("c0", vec![2, 0, 4, 4], "C = 0"),
        ("h0", vec![2, 3, 0, 4], "spatial dimension 2"),
        ("w0", vec![2, 3, 4, 0], "spatial dimension 3"),
        ("n0_rows", vec![0, 3], "no samples (N = 0)"),
        ("c0_rows", vec![2, 0], "C = 0"),
    ] {
        let mut lshape = vec![shape[0]];
        lshape.extend_from_slice(&shape[2..]);
        let labels = vec![0i64; lshape.iter().product::<usize>()];
        let la = NpyArray::new(shape, NpyData::F32(vec![])).unwrap();
        let ta = NpyArray::new(lshape, NpyData::I64(labels)).unwrap();
        let l = d.join(format!("{name}_l.npy"));
        let t = d.join(format!("{name}_t.npy"));
        la.write(&l).unwrap();
        ta.write(&t).unwrap();
        let l = l.to_string_lossy().into_owned();
        let t = t.to_string_lossy().into_owned();
        // `mbls loss` panicked on these ("cannot reshape tensor of 0 elements")
        let err = common::fails("loss", &[&l, &t], needle);
        assert!(err.contains(&l), "{err}");
        // `mbls eval` refuses them the same way: two .npy files (streamed when dense) ...
        let err = common::fails("eval", &[&l, &t], needle);
        assert!(err.contains(&l), "{err}");
        // ... and one .npz (in memory); an empty spatial size gave exit 0 and mIoU 0
        let z = write_pair(d, &format!("{name}.npz"), &la, &ta);
        common::fails("eval", &[&z], needle);
    }
}

#[test]
fn npy_headers_with_huge_shapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = write(d, "t.npy", &[2], NpyData::I64(vec![0, 1]));
    for (name, shape) in [
        // empty, but its strides overflow ("Stride calculation overflowed" in `mbls loss`)
        ("empty_huge.npy", "(0, 5, 1000000000000, 1000000000000)"),
        ("overflow.npy", "(18446744073709551615, 2)"),
        // 2^41 elements: past the 2^40 limit
        ("past_limit.npy", "(2, 1099511627776)"),
    ] {
        let l = write_raw(d, name, "<f4", false, shape, &[]);
        let err = common::fails("loss", &[&l, &t], "array too large");
        assert!(err.contains(name), "{err}");
        let err = common::fails("eval", &[&l, &t], "array too large");
        assert!(err.contains(name), "{err}");
    }
    let l = write_raw(d, "f.npy", "<f8", true, "(0, 1099511627777)", &[]);
    common::fails("eval", &[&l, &t], "array too large");
}

#[test]
fn model_class_counts_are_bounded() {
    for value in ["9223372036854775807", "100001", "0", "-3"] {
        let arg = format!("model.num_classes={value}");
        let args = ["model=resnet18_cifar", arg.as_str()];
        let err = common::fails("model", &args, "model.num_classes");
        assert!(err.contains("100000"), "{err}");
    }
    // a float is refused as one, before anything is allocated
    let args = ["model=resnet18_cifar", "model.num_classes=1e7"];
    common::fails("model", &args, "model.num_classes");
    let out = common::ok("model", &["model=resnet18_cifar", "model.num_classes=7"]);
    assert!(out.contains("classes 7"), "{out}");
}

#[test]
fn bootstrap_replicates_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = synth(30, 3, 3);
    let la = NpyArray::new(vec![30, 3], NpyData::F32(l)).unwrap();
    let ya = NpyArray::new(vec![30], NpyData::I64(y)).unwrap();
    let z = write_pair(dir.path(), "d.npz", &la, &ya);
    for reps in ["18446744073709551615", "1000001"] {
        let args = [z.as_str(), "--bootstrap", reps];
        common::fails("eval", &args, "at most 1000000 replicates");
    }
    let v = common::json("eval", &[z.as_str(), "--bootstrap", "20"]);
    assert_eq!(v["bootstrap"]["replicates"], 20);
}

#[test]
fn npz_members_with_a_flipped_bit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (l, y) = synth(30, 3, 4);
    let la = NpyArray::new(vec![30, 3], NpyData::F32(l)).unwrap();
    let ya = NpyArray::new(vec![30], NpyData::I64(y)).unwrap();
    let z = write_pair(dir.path(), "d.npz", &la, &ya);
    let good = std::fs::read(&z).unwrap();
    common::ok("eval", &[&z]);
    // a low mantissa bit of a logit, then the low bit of a label (another valid class):
    // both were read and evaluated without the CRC check
    for (k, member) in [(0, "logits.npy"), (1, "labels.npy")] {
        let mut bytes = good.clone();
        bytes[member_data(&good, k)] ^= 1;
        std::fs::write(&z, &bytes).unwrap();
        let needle = format!("CRC mismatch in member {member} of");
        let err = common::fails("eval", &[&z], &needle);
        assert!(err.contains(&z), "{err}");
    }
}

#[test]
fn fortran_order_npy_pairs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // classification: N x C logits in Fortran order, as NumPy writes a transposed array
    let (n, c) = (50, 4);
    let (l, y) = synth(n, c, 5);
    let lc = write(d, "c.npy", &[n, c], NpyData::F32(l.clone()));
    let lf = write_fortran(d, "f.npy", &[n, c], &l);
    let yp = write(d, "y.npy", &[n], NpyData::I64(y));
    let want = common::json("eval", &[&lc, &yp]);
    let got = common::json("eval", &[&lf, &yp]);
    assert_eq!(got["metrics"], want["metrics"]);
    let want = common::json("loss", &[lc.as_str(), yp.as_str(), "loss=logit_margin"]);
    let got = common::json("loss", &[lf.as_str(), yp.as_str(), "loss=logit_margin"]);
    assert_eq!(got["terms"], want["terms"]);
    // dense: N x C x H x W logits in Fortran order, read batch by batch
    let (b, c, h, w) = (3, 4, 5, 6);
    let (dense, _) = synth(b * h * w, c, 6);
    let labels: Vec<i64> = (0..b * h * w)
        .map(|i| if i % 9 == 0 { 255 } else { (i % c) as i64 })
        .collect();
    let dc = write(d, "dc.npy", &[b, c, h, w], NpyData::F32(dense.clone()));
    let df = write_fortran(d, "df.npy", &[b, c, h, w], &dense);
    let dy = write(d, "dy.npy", &[b, h, w], NpyData::I64(labels));
    let want = common::json("eval", &[dc.as_str(), dy.as_str(), "--seg-batch", "2"]);
    let got = common::json("eval", &[df.as_str(), dy.as_str(), "--seg-batch", "2"]);
    assert_eq!(want["kind"], "segmentation");
    assert_eq!(got["metrics"], want["metrics"]);
}

#[test]
fn loss_target_errors_name_the_targets_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let logits = NpyData::F32(vec![0.1, 0.2, 0.3, 1.0, -1.0, 0.5]);
    let l = write(d, "logits.npy", &[2, 3], logits);
    let cases = [
        (
            "range.npy",
            vec![2usize],
            vec![0i64, 3],
            "target 3 is outside",
        ),
        ("short.npy", vec![3], vec![0, 1, 2], "have shape [3]"),
        ("dense.npy", vec![2, 1], vec![0, 1], "mismatched N"),
    ];
    for (name, shape, data, needle) in cases {
        let t = d.join(name);
        NpyArray::new(shape, NpyData::I64(data))
            .unwrap()
            .write(&t)
            .unwrap();
        let t = t.to_string_lossy().into_owned();
        let err = common::fails("loss", &[&l, &t], needle);
        assert!(err.contains(&t) && !err.contains(&l), "{err}");
    }
}

#[cfg(unix)]
#[test]
fn outputs_never_replace_special_files_and_go_through_links() {
    use std::os::unix::fs::FileTypeExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (logits, labels) = synth(4, 3, 7);
    let l = write(d, "logits.npy", &[4, 3], NpyData::F32(logits));
    let t = write(d, "targets.npy", &[4], NpyData::I64(labels));
    // a device node: refused, and left a device
    let err = common::fails(
        "loss",
        &[l.as_str(), t.as_str(), "--grad-out", "/dev/null"],
        "not a regular file",
    );
    assert!(err.contains("/dev/null"), "{err}");
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // a folder: refused
    common::fails(
        "loss",
        &[l.as_str(), t.as_str(), "--grad-out", d.to_str().unwrap()],
        "is a folder",
    );
    // a symbolic link: the file it points to is written, the link kept
    let real = d.join("real_grad.npy");
    std::fs::write(&real, b"old").unwrap();
    let link = d.join("grad_link.npy");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    common::ok(
        "loss",
        &[l.as_str(), t.as_str(), "--grad-out", link.to_str().unwrap()],
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let g = NpyArray::read(&real).unwrap();
    assert_eq!(g.shape, vec![4, 3]);
}

#[test]
fn weights_that_are_not_weights_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = d.join("empty.pth");
    std::fs::write(&empty, b"").unwrap();
    let npy = write(d, "x.npy", &[2], NpyData::F32(vec![1.0, 2.0]));
    let junk = d.join("junk.bin");
    std::fs::write(&junk, b"garbage!garbage!").unwrap();
    let cases: Vec<(String, &str)> = vec![
        (empty.to_string_lossy().into_owned(), "empty file (0 bytes)"),
        (npy, "a NumPy .npy array"),
        (junk.to_string_lossy().into_owned(), "not a PyTorch .pth"),
        (d.to_string_lossy().into_owned(), "is a folder"),
        ("/dev/zero".into(), "not a regular file"),
    ];
    for (path, needle) in cases {
        let err = common::fails(
            "model",
            &["model=resnet18_cifar", "--load", path.as_str()],
            needle,
        );
        assert!(err.contains(&path), "{err}");
        // the cause is printed once
        assert_eq!(err.matches(needle).count(), 1, "{err}");
    }
}

#[test]
fn checkpoints_that_expand_out_of_proportion_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mbls = std::path::Path::new(env!("CARGO_BIN_EXE_mbls"));
    for (name, bytes, needle) in [
        // 2^28 float32 elements viewed over one with stride 0 (2.3 GB before)
        (
            "stride0.pth",
            mbls_fuzz::hostile::pth_stride_zero(),
            "stride 0",
        ),
        // 2,000 views of one storage, each copied densely
        (
            "views.pth",
            mbls_fuzz::hostile::pth_many_views(),
            "views of one storage",
        ),
        // memoised tuples expanded at every use (2^40 nodes)
        (
            "memo.pth",
            mbls_fuzz::hostile::pth_memo_bomb(),
            "referenced too many times",
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let p = p.to_string_lossy().into_owned();
        let err = common::fails("model", &["model=resnet18_cifar", "--load", &p], needle);
        assert!(err.contains("refused"), "{err}");
        // and the memory stays near the process's own (libtorch mapped, a ResNet built)
        let args: Vec<String> = ["model", "model=resnet18_cifar", "--load", &p]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = mbls_fuzz::process::run(mbls, &args, std::time::Duration::from_secs(120)).unwrap();
        assert_eq!(o.code, Some(2), "{name}: {}", o.stderr_tail);
        assert!(
            o.max_rss < 600 << 20,
            "{name}: peak RSS {} MB",
            o.max_rss >> 20
        );
    }
}

#[test]
fn logits_near_the_float32_range_give_finite_results_or_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let labels = NpyArray::new(vec![4], NpyData::I64(vec![0, 1, 2, 0])).unwrap();
    // all logits at float32's maximum: every difference is 0 (mean_diffs was -inf)
    let top = NpyArray::new(vec![4, 3], NpyData::F32(vec![f32::MAX; 12])).unwrap();
    let z = write_pair(d, "top.npz", &top, &labels);
    let v = common::json("eval", &[&z]);
    assert_eq!(v["metrics"]["logits"]["mean_diffs"], 0.0, "{v}");
    assert_eq!(v["metrics"]["logits"]["max_diffs"], 0.0, "{v}");
    // logits of ±3e38: the differences are 6e38, finite in double precision (max_diffs was inf)
    let wide: Vec<f32> = (0..12)
        .map(|i| if i % 2 == 0 { 3e38 } else { -3e38 })
        .collect();
    let wa = NpyArray::new(vec![4, 3], NpyData::F32(wide)).unwrap();
    let z = write_pair(d, "wide.npz", &wa, &labels);
    let v = common::json("eval", &[&z]);
    let m = &v["metrics"];
    for (key, x) in [
        ("mean_diffs", &m["logits"]["mean_diffs"]),
        ("max_diffs", &m["logits"]["max_diffs"]),
        ("nll", &m["nll"]),
    ] {
        let x = x.as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x > 1e38, "{key}: {v}");
    }
    // the MbLS loss of those logits overflows float32: refused, not printed as inf
    let l = d.join("wide_l.npy");
    let t = d.join("wide_t.npy");
    wa.write(&l).unwrap();
    labels.write(&t).unwrap();
    let (l, t) = (l.to_string_lossy(), t.to_string_lossy());
    let err = common::fails(
        "loss",
        &[&*l, &*t, "loss=logit_margin"],
        "overflows float32",
    );
    assert!(err.contains(&*l), "{err}");
    // a parameter outside float32's range is refused up front (it printed `null`)
    let (small, _) = synth(4, 3, 9);
    let sa = NpyArray::new(vec![4, 3], NpyData::F32(small)).unwrap();
    let s = d.join("small.npy");
    sa.write(&s).unwrap();
    let s = s.to_string_lossy();
    common::fails(
        "loss",
        &[&*s, &*t, "loss=logit_margin", "loss.alpha=1e308"],
        "finite float32 value",
    );
    common::ok("loss", &[&*s, &*t, "loss=logit_margin", "loss.alpha=1e30"]);
}
