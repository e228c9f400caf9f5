//! MNIST / Fashion-MNIST IDX files generated here: plain and gzipped, torchvision's layout, and
//! corrupt headers.

use mbls_data::idx::{Mnist, MnistKind};
use mbls_data::{DataError, Dataset, Target};
use std::io::Write;
use std::path::Path;

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn pixel(i: usize, p: usize) -> u8 {
    ((i * 13 + p * 3) % 256) as u8
}

/// Writes a split of `n` 28x28 images with labels `(i * 3) % 10`.
fn write_split(dir: &Path, prefix: &str, n: usize, gzip: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let body: Vec<u8> = (0..n)
        .flat_map(|i| (0..784).map(move |p| pixel(i, p)))
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| ((i * 3) % 10) as u8).collect();
    let images = idx(2051, &[n as u32, 28, 28], &body);
    let labels = idx(2049, &[n as u32], &labels);
    let (images, labels, ext) = if gzip {
        (gz(&images), gz(&labels), ".gz")
    } else {
        (images, labels, "")
    };
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), labels).unwrap();
}

fn check(m: &Mnist, n: usize) {
    assert_eq!(m.len(), n);
    assert_eq!(m.classes().len(), 10);
    for i in 0..n {
        let s = m.get(i).unwrap();
        assert_eq!(s.target, Target::Class((i * 3) % 10));
        assert_eq!(
            (s.image.height, s.image.width, s.image.channels),
            (28, 28, 1)
        );
        assert_eq!(s.image.data[0], pixel(i, 0));
        assert_eq!(s.image.data[783], pixel(i, 783));
        assert_eq!(s.image.data[28 * 5 + 7], pixel(i, 28 * 5 + 7));
    }
    assert!(m.get(n).is_err());
}

#[test]
fn plain_and_gzipped() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", 7, false);
    write_split(tmp.path(), "t10k", 3, true);
    check(&Mnist::open(tmp.path(), true).unwrap(), 7);
    let test = Mnist::open(tmp.path(), false).unwrap();
    check(&test, 3);
    assert_eq!(test.classes()[0], "0 - zero");
    assert!(test.source(2).contains("t10k-images-idx3-ubyte.gz"));
}

#[test]
fn torchvision_layout_and_fashion_names() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(&tmp.path().join("FashionMNIST/raw"), "train", 4, true);
    let m = Mnist::open_kind(tmp.path(), true, MnistKind::Fashion).unwrap();
    check(&m, 4);
    assert_eq!(m.classes()[0], "T-shirt/top");
    assert_eq!(m.classes()[9], "Ankle boot");
    let tmp = tempfile::tempdir().unwrap();
    write_split(&tmp.path().join("MNIST/raw"), "t10k", 2, false);
    check(&Mnist::open(tmp.path(), false).unwrap(), 2);
}

/// Opens the test split after `corrupt` changed one of the freshly written files.
fn open_corrupted(corrupt: impl FnOnce(&Path)) -> (DataError, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "t10k", 3, false);
    corrupt(tmp.path());
    let err = Mnist::open(tmp.path(), false).unwrap_err();
    (err, tmp.path().to_path_buf())
}

#[test]
fn corrupt_headers() {
    // wrong magic in the image file
    let (err, dir) = open_corrupted(|d| {
        let p = d.join("t10k-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b[3] = 0x01;
        std::fs::write(&p, b).unwrap();
    });
    match err {
        DataError::Format { path, message } => {
            assert_eq!(path, dir.join("t10k-images-idx3-ubyte"));
            assert!(message.contains("2051"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // truncated image data
    let (err, _) = open_corrupted(|d| {
        let p = d.join("t10k-images-idx3-ubyte");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 1]).unwrap();
    });
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    // header shorter than the dimensions
    let (err, _) = open_corrupted(|d| {
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), [0u8, 0, 8, 1, 0]).unwrap();
    });
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    // label count differs from image count
    let (err, _) = open_corrupted(|d| {
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx(2049, &[2], &[1, 2])).unwrap();
    });
    assert!(err.to_string().contains("2 labels"), "{err}");
    // label out of range
    let (err, _) = open_corrupted(|d| {
        std::fs::write(
            d.join("t10k-labels-idx1-ubyte"),
            idx(2049, &[3], &[1, 12, 2]),
        )
        .unwrap();
    });
    assert!(
        matches!(
            err,
            DataError::Label {
                num_classes: 10,
                ..
            }
        ),
        "{err:?}"
    );
    // corrupt gzip stream
    let (err, _) = open_corrupted(|d| {
        std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
        std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), b"\x1f\x8b\x08\x00junk").unwrap();
    });
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    // missing file
    let (err, _) = open_corrupted(|d| {
        std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
    });
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
}
