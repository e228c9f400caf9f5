//! `ImageFolder` on generated folders and archives, error cases, and the real CIFAR-10 JPEG copy
//! (`shared/data/cifar10-jpg.tar.gz`, skipped with a message when absent).

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use mbls_data::{Cifar, CifarKind};
use mbls_data::{DataError, Dataset, Target};
use mbls_data::{ImageFolder, write_cifar_binary};
use std::path::Path;

fn rgb(seed: u8, w: u32, h: u32) -> RgbImage {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            seed.wrapping_add(x as u8 * 7),
            seed.wrapping_mul(3).wrapping_add(y as u8 * 5),
            (x + y) as u8,
        ])
    })
}

/// root/{dog, airplane, cat}: PNG (RGB, gray, RGBA) and JPEG files, a nested folder, a text file.
fn make_folder(root: &Path) {
    for class in ["dog", "airplane", "cat", "cat/sub", "cat/a_sub"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    rgb(1, 8, 6).save(root.join("airplane/b.png")).unwrap();
    rgb(2, 8, 6).save(root.join("airplane/a.png")).unwrap();
    std::fs::write(root.join("airplane/readme.txt"), "not an image").unwrap();
    let gray: GrayImage = ImageBuffer::from_fn(5, 4, |x, y| Luma([(x * 40 + y) as u8]));
    gray.save(root.join("cat/z.png")).unwrap();
    let rgba: RgbaImage = ImageBuffer::from_fn(3, 3, |x, _| Rgba([10, 20, x as u8 * 50, 7]));
    rgba.save(root.join("cat/sub/m.PNG")).unwrap();
    rgb(3, 4, 4).save(root.join("cat/a_sub/q.png")).unwrap();
    rgb(4, 16, 16).save(root.join("dog/x.jpg")).unwrap();
}

/// The expected order (torchvision: sorted classes, sorted walk, sorted files).
const ORDER: [(&str, usize); 6] = [
    ("airplane/a.png", 0),
    ("airplane/b.png", 0),
    ("cat/z.png", 1),
    ("cat/a_sub/q.png", 1),
    ("cat/sub/m.PNG", 1),
    ("dog/x.jpg", 2),
];

fn check_generated(ds: &dyn Dataset) {
    assert_eq!(ds.classes(), ["airplane", "cat", "dog"]);
    assert_eq!(ds.len(), ORDER.len());
    for (i, (name, label)) in ORDER.iter().enumerate() {
        assert!(
            ds.source(i).replace('\\', "/").ends_with(name),
            "{} vs {name}",
            ds.source(i)
        );
        let s = ds.get(i).unwrap();
        assert_eq!(s.target, Target::Class(*label));
        assert_eq!(s.image.channels, 3);
        assert_eq!(s.image.data.len(), s.image.height * s.image.width * 3);
    }
    // lossless PNG round trip, HWC order
    let a = ds.get(0).unwrap().image;
    assert_eq!((a.height, a.width), (6, 8));
    assert_eq!(a.data, rgb(2, 8, 6).into_raw());
    // grayscale -> RGB replicates the gray value
    let g = ds.get(2).unwrap().image;
    assert_eq!((g.height, g.width), (4, 5));
    let px = |x: usize, y: usize| &g.data[(y * 5 + x) * 3..(y * 5 + x) * 3 + 3];
    assert_eq!(px(2, 3), [83, 83, 83]);
    // RGBA -> RGB drops alpha
    let m = ds.get(4).unwrap().image;
    assert_eq!(&m.data[6..9], [10, 20, 100]);
    // JPEG decodes to the right size
    let j = ds.get(5).unwrap().image;
    assert_eq!((j.height, j.width), (16, 16));
}

#[test]
fn folder_layout_and_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    make_folder(tmp.path());
    let ds = ImageFolder::open(tmp.path()).unwrap();
    check_generated(&ds);
    assert_eq!(ds.labels(), [0, 0, 1, 1, 1, 2]);
    assert!(ds.get(6).is_err());
}

fn tar_gz(root: &Path, out: &Path, prefix: &str) {
    let f = std::fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(prefix, root).unwrap();
    // a file at the split level is not a sample
    let data = b"top-level file";
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, format!("{prefix}/LICENSE.png"), &data[..])
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn archive_matches_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("train");
    make_folder(&root);
    let archive = tmp.path().join("data.tar.gz");
    tar_gz(&root, &archive, "./train");
    let ds = ImageFolder::from_tar_gz(&archive, "train").unwrap();
    check_generated(&ds);
    let folder = ImageFolder::open(&root).unwrap();
    for i in 0..ds.len() {
        assert_eq!(ds.get(i).unwrap(), folder.get(i).unwrap());
    }
    // another prefix holds nothing
    match ImageFolder::from_tar_gz(&archive, "test").unwrap_err() {
        DataError::Missing { path, .. } => assert_eq!(path, archive),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn corrupt_image_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    make_folder(tmp.path());
    let bad = tmp.path().join("dog/y.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap();
    let ds = ImageFolder::open(tmp.path()).unwrap();
    assert_eq!(ds.len(), 7);
    match ds.get(6).unwrap_err() {
        DataError::Image { path, .. } => assert_eq!(path, bad),
        other => panic!("unexpected {other:?}"),
    }
    // archive member names appear in the error as archive/member
    let archive = tmp.path().join("x.tar.gz");
    let src = tempfile::tempdir().unwrap();
    make_folder(src.path());
    std::fs::write(src.path().join("dog/y.jpg"), b"garbage").unwrap();
    tar_gz(src.path(), &archive, "train");
    let ds = ImageFolder::from_tar_gz(&archive, "train").unwrap();
    let err = ds.get(6).unwrap_err();
    assert!(err.to_string().contains("x.tar.gz"), "{err}");
    assert!(err.to_string().contains("dog/y.jpg"), "{err}");
}

#[test]
fn empty_class_and_missing_root() {
    let tmp = tempfile::tempdir().unwrap();
    make_folder(tmp.path());
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    match ImageFolder::open(tmp.path()).unwrap_err() {
        DataError::Missing { path, .. } => assert_eq!(path, tmp.path().join("empty")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        ImageFolder::open(&tmp.path().join("nope")),
        Err(DataError::Missing { .. })
    ));
    assert!(matches!(
        ImageFolder::from_tar_gz(&tmp.path().join("nope.tar.gz"), "train"),
        Err(DataError::Missing { .. })
    ));
}

#[test]
fn corrupt_archive_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("broken.tar.gz");
    std::fs::write(&p, b"\x1f\x8b\x08\x00 garbage garbage").unwrap();
    let err = ImageFolder::from_tar_gz(&p, "train").unwrap_err();
    assert!(err.to_string().contains("broken.tar.gz"), "{err}");
}

#[test]
fn writer_refuses_non_cifar_images() {
    let tmp = tempfile::tempdir().unwrap();
    make_folder(tmp.path());
    let ds = ImageFolder::open(tmp.path()).unwrap();
    let out = tmp.path().join("out");
    let err = write_cifar_binary(&ds, &out, false).unwrap_err();
    assert!(err.to_string().contains("32x32x3"), "{err}");
    assert!(!out.join("test_batch.bin").exists());
}

#[test]
fn real_cifar10_jpg_test_split() {
    let Some(archive) = mbls_testkit::shared("data/cifar10-jpg.tar.gz") else {
        return;
    };
    let ds = ImageFolder::from_tar_gz(&archive, "test").unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(
        ds.classes(),
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck"
        ]
    );
    let mut per_class = [0usize; 10];
    for &l in ds.labels() {
        per_class[l] += 1;
    }
    assert_eq!(per_class, [1_000; 10]);

    // The binary copy of every 5th image (200 per class; decoding all 10,000 JPEGs in a debug
    // build would take several seconds), read back through `Cifar`.
    let subset = Subset {
        inner: &ds,
        indices: (0..10_000).step_by(5).collect(),
    };
    let tmp = tempfile::tempdir().unwrap();
    write_cifar_binary(&subset, tmp.path(), false).unwrap();
    let back = Cifar::open(tmp.path(), CifarKind::Cifar10, false).unwrap();
    assert_eq!(back.len(), 2_000);
    let sub_labels: Vec<usize> = subset.indices.iter().map(|&i| ds.labels()[i]).collect();
    assert_eq!(back.labels(), sub_labels.as_slice());
    assert_eq!(back.classes(), ds.classes());

    // Channel means of the sample (official CIFAR-10 test means: 0.494 0.485 0.450).
    let mut sums = [0f64; 3];
    for i in 0..back.len() {
        let p = back.planar(i).unwrap();
        for (c, sum) in sums.iter_mut().enumerate() {
            *sum += p[c * 1024..(c + 1) * 1024]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>();
        }
    }
    let means: Vec<f64> = sums
        .iter()
        .map(|s| s / (back.len() as f64 * 1024.0 * 255.0))
        .collect();
    for (m, want) in means.iter().zip([0.49, 0.48, 0.45]) {
        assert!((m - want).abs() < 0.02, "channel means {means:?}");
    }
    for k in (0..2_000).step_by(199) {
        let a = ds.get(subset.indices[k]).unwrap();
        assert_eq!(
            (a.image.height, a.image.width, a.image.channels),
            (32, 32, 3)
        );
        assert_eq!(a, back.get(k).unwrap(), "image {k}");
    }
}

/// A view of some samples of a dataset.
struct Subset<'a> {
    inner: &'a ImageFolder,
    indices: Vec<usize>,
}

impl Dataset for Subset<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, index: usize) -> Result<mbls_data::Sample, DataError> {
        self.inner.get(self.indices[index])
    }
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }
    fn source(&self, index: usize) -> String {
        self.inner.source(self.indices[index])
    }
}
