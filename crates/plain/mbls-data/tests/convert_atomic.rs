//! `write_cifar_binary_splits` (what `mbls data convert` writes): one complete CIFAR-10 binary
//! folder, read back by `Cifar`; a conversion that fails half-way (a truncated source image)
//! leaves the folder it would have replaced byte-identical, and nothing beside it.

use image::{ImageBuffer, Rgb, RgbImage};
use mbls_data::{Cifar, CifarKind};
use mbls_data::{DataError, Dataset};
use mbls_data::{ImageFolder, write_cifar_binary_splits};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `root/{train,test}/c0..c9/` with `per_class` 32x32 PNG images per class, pixels from `seed`.
fn source(root: &Path, seed: u8, per_class: usize) {
    for split in ["train", "test"] {
        for c in 0..10u8 {
            let dir = root.join(split).join(format!("c{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            for k in 0..per_class {
                let im: RgbImage = ImageBuffer::from_fn(32, 32, |x, y| {
                    Rgb([
                        seed.wrapping_add(x as u8),
                        c.wrapping_mul(20).wrapping_add(k as u8),
                        (y as u8).wrapping_mul(3),
                    ])
                });
                im.save(dir.join(format!("{k}.png"))).unwrap();
            }
        }
    }
}

/// The training and test splits of a [`source`] folder.
fn open(root: &Path) -> (ImageFolder, ImageFolder) {
    (
        ImageFolder::open(&root.join("train")).unwrap(),
        ImageFolder::open(&root.join("test")).unwrap(),
    )
}

/// Every entry under `dir` (relative path -> bytes; `None` for folders).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writes_one_complete_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    source(&src, 1, 2);
    let (train, test) = open(&src);
    let root = tmp.path().join("out");
    let out = root.join("cifar-10-batches-bin");
    let files = write_cifar_binary_splits(&train, &test, &out).unwrap();
    for f in &files {
        assert_eq!(f.parent(), Some(out.as_path()));
    }
    let file_names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        file_names,
        [
            "batches.meta.txt",
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin"
        ]
    );
    assert_eq!(names(&out), file_names);
    // 20 training images in 5 files of 4 records.
    assert_eq!(std::fs::metadata(&files[1]).unwrap().len(), 4 * 3073);
    let back = Cifar::open(&root, CifarKind::Cifar10, true).unwrap();
    assert_eq!(back.len(), 20);
    for i in [0, 7, 19] {
        assert_eq!(back.get(i).unwrap(), train.get(i).unwrap(), "{i}");
    }
    let back_test = Cifar::open(&root, CifarKind::Cifar10, false).unwrap();
    assert_eq!(back_test.len(), 20);
    assert_eq!(back_test.get(9).unwrap(), test.get(9).unwrap());
    // No temporary folder left beside it.
    assert_eq!(names(&root), ["cifar-10-batches-bin"]);

    // A second conversion replaces the folder as a whole (a stray file does not survive).
    std::fs::write(out.join("notes.txt"), b"stray").unwrap();
    let src2 = tmp.path().join("src2");
    source(&src2, 50, 1);
    let (train2, test2) = open(&src2);
    write_cifar_binary_splits(&train2, &test2, &out).unwrap();
    assert_eq!(names(&out), file_names);
    let back = Cifar::open(&root, CifarKind::Cifar10, true).unwrap();
    assert_eq!(back.len(), 10);
    assert_eq!(back.get(3).unwrap(), train2.get(3).unwrap());
    assert_eq!(names(&root), ["cifar-10-batches-bin"]);
}

#[test]
fn failed_conversion_leaves_the_previous_folder_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let out = root.join("cifar-10-batches-bin");
    let good = tmp.path().join("good");
    source(&good, 1, 2);
    let (train, test) = open(&good);
    write_cifar_binary_splits(&train, &test, &out).unwrap();
    let before = snapshot(&root);
    // The folder and its 7 files.
    assert_eq!(before.len(), 8);

    // A second source with more images whose last test image is truncated: its training
    // batches are complete (and are written first), then its test split fails.
    let bad = tmp.path().join("bad");
    source(&bad, 99, 3);
    let cut = bad.join("test/c9/2.png");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (train2, test2) = open(&bad);
    let err = write_cifar_binary_splits(&train2, &test2, &out).unwrap_err();
    assert!(matches!(err, DataError::Image { .. }), "{err:?}");
    assert!(err.to_string().contains("2.png"), "{err}");
    assert_eq!(snapshot(&root), before);
    // The previous dataset still reads back whole.
    let back = Cifar::open(&root, CifarKind::Cifar10, true).unwrap();
    assert_eq!(back.len(), 20);
    assert_eq!(back.get(19).unwrap(), train.get(19).unwrap());
    let back_test = Cifar::open(&root, CifarKind::Cifar10, false).unwrap();
    assert_eq!(back_test.len(), 20);

    // Into an absent folder, a failed conversion creates nothing there.
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let err = write_cifar_binary_splits(&train2, &test2, &fresh.join("cifar-10-batches-bin"))
        .unwrap_err();
    assert!(matches!(err, DataError::Image { .. }), "{err:?}");
    assert!(names(&fresh).is_empty(), "{:?}", names(&fresh));
}

#[test]
fn refuses_a_file_in_place_of_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    source(&src, 1, 1);
    let (train, test) = open(&src);
    let out = tmp.path().join("cifar-10-batches-bin");
    std::fs::write(&out, b"not a folder").unwrap();
    let err = write_cifar_binary_splits(&train, &test, &out).unwrap_err();
    match &err {
        DataError::Io { path, .. } => assert_eq!(path, &out),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("not a folder"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"not a folder");
    assert_eq!(names(tmp.path()), ["cifar-10-batches-bin", "src"]);
}
