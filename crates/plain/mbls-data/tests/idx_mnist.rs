//! MNIST / Fashion-MNIST IDX files generated here: plain and gzipped, torchvision's layout, and
//! corrupt headers; and the `data=mnist` / `data=fashion_mnist` pipelines built on them (the
//! seeded 1/12 holdout: 55,000 / 5,000 of a 60,000-image set, 1-channel normalisation).

use mbls_data::Normalize;
use mbls_data::holdout_split;
use mbls_data::{DataError, Dataset, Image, Target};
use mbls_data::{DataSpec, DatasetName, MNIST_VAL_SPLIT, Pipelines, build, mnist_val_count};
use mbls_data::{Mnist, MnistKind};
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
    write_sized(dir, prefix, n, 28, gzip);
}

/// Writes a split of `n` `side`x`side` images with labels `(i * 3) % 10`.
fn write_sized(dir: &Path, prefix: &str, n: usize, side: usize, gzip: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let body: Vec<u8> = (0..n)
        .flat_map(|i| (0..side * side).map(move |p| pixel(i, p)))
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| ((i * 3) % 10) as u8).collect();
    let images = idx(2051, &[n as u32, side as u32, side as u32], &body);
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

fn mnist_spec(name: DatasetName, root: &Path, batch: usize) -> DataSpec {
    DataSpec {
        batch_size: batch,
        num_workers: 1,
        ..DataSpec::reference(name, root)
    }
}

/// Train and validation indices partition `0..n`.
fn assert_partition(p: &Pipelines, n: usize) {
    let mut all = p.train_indices.clone();
    all.extend(&p.val_indices);
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
}

#[test]
fn mnist_pipeline_split_and_normalisation() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", 120, true);
    write_split(tmp.path(), "t10k", 30, false);
    let s = DataSpec {
        seed: 5,
        ..mnist_spec(DatasetName::Mnist, tmp.path(), 16)
    };
    let p = build(&s).unwrap();
    assert_eq!(p.name, DatasetName::Mnist);
    assert!(p.format.contains("MNIST IDX files in"), "{}", p.format);
    assert_eq!(p.num_classes, 10);
    assert_eq!(p.classes[3], "3 - three");
    // 1/12 of the 120 training images held out, with the NumPy shuffle of the seed.
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (110, 10, 30));
    let (train_idx, val_idx) = holdout_split(120, 10, Some(5)).unwrap();
    assert_eq!(p.train_indices, train_idx);
    assert_eq!(p.val_indices, val_idx);
    assert_partition(&p, 120);
    assert!(!p.val_is_test && !p.segmentation);
    // no augmentation by default, last partial batch kept, test in file order
    assert!(p.train_transform.is_empty() && p.eval_transform.is_empty());
    assert!(!p.train.options().drop_last);
    assert!(p.train.options().shuffle && p.val.options().shuffle);
    assert!(!p.test.options().shuffle);
    assert_eq!(p.train.num_batches(), 7);
    // one grey channel normalised with MNIST's mean and std
    assert_eq!(p.normalize, Normalize::MNIST);
    assert_eq!(p.normalize.channels, 1);
    assert_eq!(p.normalize.channel_mean(), &[0.1307f32][..]);
    assert_eq!(p.normalize.channel_std(), &[0.3081f32][..]);
    let batch = p.test.epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.shape, [16, 1, 28, 28]);
    assert_eq!(batch.indices, (0..16).collect::<Vec<_>>());
    for (k, &i) in batch.indices.iter().enumerate() {
        assert_eq!(batch.labels[k], ((i * 3) % 10) as i64);
        for px in [0, 100, 783] {
            let want = (f32::from(pixel(i, px)) / 255.0 - 0.1307) / 0.3081;
            assert_eq!(batch.images[k * 784 + px], want, "image {i} pixel {px}");
        }
    }
    // every training batch loads (1-channel images through the loader)
    let n: usize = p.train.epoch(0).map(|b| b.unwrap().len()).sum();
    assert_eq!(n, 110);
}

#[test]
fn mnist_split_is_seeded() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", 48, false);
    write_split(tmp.path(), "t10k", 4, false);
    let s = mnist_spec(DatasetName::Mnist, tmp.path(), 8);
    let a = build(&s).unwrap();
    let b = build(&s).unwrap();
    assert_eq!(a.val_indices, b.val_indices);
    assert_eq!(a.val_indices.len(), 4);
    let mut other = s.clone();
    other.seed = 2;
    let c = build(&other).unwrap();
    assert_ne!(a.val_indices, c.val_indices);
    // without shuffle the first twelfth is held out
    let mut unshuffled = s.clone();
    unshuffled.shuffle = false;
    assert_eq!(build(&unshuffled).unwrap().val_indices, vec![0, 1, 2, 3]);
    // another val_split is a fraction, as for CIFAR
    let mut quarter = s.clone();
    quarter.val_split = 0.25;
    let e = build(&quarter).unwrap();
    assert_eq!((e.train.len(), e.val.len()), (36, 12));
    assert_partition(&e, 48);
    // data.augment adds a random crop (no flip); batches keep the 28x28 size
    let mut augmented = s;
    augmented.augment = true;
    let f = build(&augmented).unwrap();
    assert_eq!(
        f.train_transform,
        vec!["RandomCrop(28, padding=4)".to_string()]
    );
    let batch = f.train.epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.shape, [8, 1, 28, 28]);
}

/// The official size: 60,000 training images (1x1 here, to keep the files small) give the
/// 55,000 / 5,000 split.
#[test]
fn sixty_thousand_images_give_55000_and_5000() {
    assert_eq!(mnist_val_count(60_000, MNIST_VAL_SPLIT).unwrap(), 5_000);
    let tmp = tempfile::tempdir().unwrap();
    write_sized(tmp.path(), "train", 60_000, 1, true);
    write_sized(tmp.path(), "t10k", 10_000, 1, true);
    let p = build(&mnist_spec(DatasetName::FashionMnist, tmp.path(), 128)).unwrap();
    assert_eq!(
        (p.train.len(), p.val.len(), p.test.len()),
        (55_000, 5_000, 10_000)
    );
    assert_eq!(
        p.val_indices,
        holdout_split(60_000, 5_000, Some(1)).unwrap().1
    );
    assert_partition(&p, 60_000);
}

#[test]
fn fashion_pipeline_in_torchvision_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("FashionMNIST/raw");
    write_split(&raw, "train", 24, true);
    write_split(&raw, "t10k", 6, true);
    let p = build(&mnist_spec(DatasetName::FashionMnist, tmp.path(), 4)).unwrap();
    assert_eq!(p.name, DatasetName::FashionMnist);
    assert!(
        p.format.contains("Fashion-MNIST IDX files in"),
        "{}",
        p.format
    );
    assert!(p.format.contains("raw"), "{}", p.format);
    assert_eq!(p.classes[0], "T-shirt/top");
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (22, 2, 6));
    assert_eq!(p.normalize, Normalize::FASHION_MNIST);
    assert_eq!(p.normalize.channel_mean(), &[0.2860f32][..]);
    assert_eq!(p.normalize.channel_std(), &[0.3530f32][..]);
    let batch = p.test.epoch(0).next().unwrap().unwrap();
    let want = (f32::from(pixel(0, 0)) / 255.0 - 0.2860) / 0.3530;
    assert_eq!(batch.images[0], want);
    assert_eq!(DatasetName::parse("fashion_mnist").unwrap(), p.name);
}

/// Builds `data=mnist` after `corrupt` changed the freshly written files (train 24 plain,
/// t10k 12 gzipped).
fn build_corrupted(corrupt: impl FnOnce(&Path)) -> (DataError, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", 24, false);
    write_split(tmp.path(), "t10k", 12, true);
    corrupt(tmp.path());
    let err = build(&mnist_spec(DatasetName::Mnist, tmp.path(), 8)).unwrap_err();
    (err, tmp.path().to_path_buf())
}

/// The error is a [`DataError::Format`] for `file` (under the data root) whose message has `what`.
fn assert_format(err: &DataError, dir: &Path, file: &str, what: &str) {
    match err {
        DataError::Format { path, message } => {
            assert_eq!(path, &dir.join(file), "{err}");
            assert!(message.contains(what), "{what:?} not in {message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn mnist_pipeline_errors_name_the_file() {
    // wrong magic number (a labels file where the images belong)
    let (err, dir) = build_corrupted(|d| {
        std::fs::write(d.join("train-images-idx3-ubyte"), idx(2049, &[2], &[1, 2])).unwrap();
    });
    assert_format(
        &err,
        &dir,
        "train-images-idx3-ubyte",
        "magic number 2049, expected 2051",
    );
    // truncated image data
    let (err, dir) = build_corrupted(|d| {
        let p = d.join("train-images-idx3-ubyte");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 100]).unwrap();
    });
    assert_format(&err, &dir, "train-images-idx3-ubyte", "truncated");
    // truncated gzip stream
    let (err, dir) = build_corrupted(|d| {
        let p = d.join("t10k-images-idx3-ubyte.gz");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    assert_format(&err, &dir, "t10k-images-idx3-ubyte.gz", "corrupt gzip");
    // a header cut short
    let (err, dir) = build_corrupted(|d| {
        std::fs::write(d.join("train-labels-idx1-ubyte"), [0u8, 0]).unwrap();
    });
    assert_format(&err, &dir, "train-labels-idx1-ubyte", "too short");
    // image and label counts differ
    let (err, dir) = build_corrupted(|d| {
        std::fs::write(
            d.join("t10k-labels-idx1-ubyte.gz"),
            gz(&idx(2049, &[11], &[0; 11])),
        )
        .unwrap();
    });
    assert_format(
        &err,
        &dir,
        "t10k-labels-idx1-ubyte.gz",
        "11 labels for the 12 images",
    );
    // missing file
    let (err, _) = build_corrupted(|d| {
        std::fs::remove_file(d.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    });
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
    // training and test images of different sizes
    let (err, _) = build_corrupted(|d| {
        std::fs::remove_file(d.join("t10k-images-idx3-ubyte.gz")).unwrap();
        std::fs::remove_file(d.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        write_sized(d, "t10k", 12, 14, false);
    });
    let msg = err.to_string();
    assert!(
        msg.contains("28x28 training images") && msg.contains("14x14 test images"),
        "{msg}"
    );
    assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
}

#[test]
fn single_channel_normalisation() {
    let gray = Image {
        height: 1,
        width: 3,
        channels: 1,
        data: vec![0, 128, 255],
    };
    let out = Normalize::MNIST.to_chw(&gray).unwrap();
    let want: Vec<f32> = [0u8, 128, 255]
        .iter()
        .map(|&x| (f32::from(x) / 255.0 - 0.1307) / 0.3081)
        .collect();
    assert_eq!(out, want);
    assert_eq!(Normalize::MNIST.value(0, 128), want[1]);
    let rgb = Image {
        height: 1,
        width: 1,
        channels: 3,
        data: vec![1, 2, 3],
    };
    assert!(Normalize::MNIST.to_chw(&rgb).is_err());
    assert!(Normalize::CIFAR10.to_chw(&gray).is_err());
    assert!(Normalize::MNIST.write_chw(&gray, &mut [0.0; 2]).is_err());
    assert_eq!(Normalize::CIFAR10.channel_mean().len(), 3);
}
