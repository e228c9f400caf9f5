//! `mbls data` as a user runs it: describe generated datasets (text and `--json`; CIFAR binary
//! files, image folders, MNIST / Fashion-MNIST IDX files plain and gzipped), time the training
//! loader, convert an image-folder archive to CIFAR binary files and read them back, fail with
//! exit code 2 and one line on bad input (also truncated or mislabelled IDX files); and the real
//! CIFAR-10 JPEG copy (`shared/data/cifar10-jpg.tar.gz`, skipped with a message when absent).

use image::{ImageBuffer, Rgb, RgbImage};
use mbls_data::{Cifar, CifarKind};
use mbls_data::{DataError, Dataset, Image, ImageFolder, Sample, Target, write_cifar_binary};
use mbls_data::{cifar_split, holdout_split};
use std::path::Path;

mod common;

fn ok(args: &[&str]) -> String {
    common::ok("data", args)
}

fn json(args: &[&str]) -> serde_json::Value {
    common::json("data", args)
}

/// Runs a failing command: exit code 2, one `error:` line on stderr containing `needle`.
fn fails(args: &[&str], needle: &str) {
    common::fails_in_one_line("data", args, needle)
}

/// A generated 32x32 dataset of 10 classes.
struct Mem {
    n: usize,
    classes: Vec<String>,
}

impl Dataset for Mem {
    fn len(&self) -> usize {
        self.n
    }

    fn get(&self, i: usize) -> Result<Sample, DataError> {
        let data = (0..32 * 32 * 3).map(|k| (k * 3 + i * 11) as u8).collect();
        Ok(Sample {
            image: Image {
                height: 32,
                width: 32,
                channels: 3,
                data,
            },
            target: Target::Class(i % 10),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, i: usize) -> String {
        format!("mem#{i}")
    }
}

fn cifar_binary(root: &Path, n_train: usize, n_test: usize) {
    let classes: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
    let out = root.join("cifar-10-batches-bin");
    let train = Mem {
        n: n_train,
        classes: classes.clone(),
    };
    write_cifar_binary(&train, &out, true).unwrap();
    write_cifar_binary(&Mem { n: n_test, classes }, &out, false).unwrap();
}

fn rgb(seed: usize) -> RgbImage {
    ImageBuffer::from_fn(32, 32, |x, y| {
        Rgb([
            (seed * 17 + x as usize) as u8,
            (seed * 3 + 2 * y as usize) as u8,
            (x ^ y) as u8,
        ])
    })
}

/// `root/{train,test}/class{0..10}/NN.png`, `per_train` / `per_test` images per class.
fn image_folder(root: &Path, per_train: usize, per_test: usize) {
    for (split, n) in [("train", per_train), ("test", per_test)] {
        for c in 0..10 {
            let d = root.join(split).join(format!("class{c}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                rgb(c * 100 + i)
                    .save(d.join(format!("{i:02}.png")))
                    .unwrap();
            }
        }
    }
}

fn tar_gz(src: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    t.append_dir_all("train", src.join("train")).unwrap();
    t.append_dir_all("test", src.join("test")).unwrap();
    t.into_inner().unwrap().finish().unwrap();
}

#[test]
fn describes_cifar10_binary_files() {
    let tmp = tempfile::tempdir().unwrap();
    cifar_binary(tmp.path(), 500, 100);
    let root = format!("data.data_root={}", tmp.path().display());
    let v = json(&["data=cifar10", &root, "seed=3"]);
    assert_eq!(v["dataset"], "cifar10");
    assert_eq!(v["num_classes"], 10);
    assert!(v["format"].as_str().unwrap().contains("binary"));
    assert_eq!(v["train"]["samples"], 450);
    assert_eq!(v["val"]["samples"], 50);
    assert_eq!(v["test"]["samples"], 100);
    assert_eq!(v["train"]["batches"], 3);
    assert_eq!(v["train"]["drop_last"], true);
    assert_eq!(v["val"]["shuffle"], true);
    assert_eq!(v["test"]["shuffle"], false);
    assert_eq!(v["split_seed"], 3);
    assert_eq!(
        v["normalize"]["mean"],
        serde_json::json!([0.4914, 0.4822, 0.4465])
    );
    let head: Vec<usize> = serde_json::from_value(v["val_indices_head"].clone()).unwrap();
    assert_eq!(head, cifar_split(500, 0.1, Some(3)).unwrap().1[..10]);

    let text = ok(&["data=cifar10", &root, "seed=3", "data.batch_size=100"]);
    assert!(
        text.contains("sizes      train 450  val 50  test 100"),
        "{text}"
    );
    assert!(
        text.contains("train      4 batches of 100 (drop_last), random order"),
        "{text}"
    );
    assert!(text.contains("RandomCrop(32, padding=4)"), "{text}");
    assert!(text.contains("val/test: ToTensor -> Normalize"), "{text}");
}

#[test]
fn describes_and_benches_an_image_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    image_folder(&dir, 6, 2);
    let root = format!("data.data_root={}", dir.display());
    let text = ok(&[
        "data=folder",
        &root,
        "data.batch_size=8",
        "data.num_workers=2",
        "--bench",
        "3",
    ]);
    assert!(
        text.contains("sizes      train 54  val 6  test 20"),
        "{text}"
    );
    assert!(text.contains("classes    10: class0, class1"), "{text}");
    assert!(
        text.contains("bench      3 training batches, 24 images"),
        "{text}"
    );
    assert!(text.contains("images/s"), "{text}");
    let v = json(&["data=folder", &root, "data.augment=false", "--show", "3"]);
    assert_eq!(v["train_transform"], serde_json::json!([]));
    assert_eq!(v["val_indices_head"].as_array().unwrap().len(), 3);
}

#[test]
fn convert_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    image_folder(&dir, 3, 1);
    let archive = tmp.path().join("imgs.tar.gz");
    tar_gz(&dir, &archive);
    let out = tmp.path().join("out");
    let text = ok(&[
        "convert",
        "--to",
        "cifar-binary",
        archive.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(
        text.contains("wrote      30 train + 10 test images"),
        "{text}"
    );
    assert!(text.contains("read back 30 + 10 images"), "{text}");
    let bin = out.join("cifar-10-batches-bin");
    for f in ["data_batch_1.bin", "data_batch_5.bin", "test_batch.bin"] {
        assert!(bin.join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::metadata(bin.join("data_batch_1.bin"))
            .unwrap()
            .len(),
        6 * 3073
    );
    // Pixels and labels read back as the source images (PNG is lossless).
    let src = ImageFolder::open(&dir.join("train")).unwrap();
    let back = Cifar::open(&out, CifarKind::Cifar10, true).unwrap();
    assert_eq!(back.len(), src.len());
    for i in [0, 7, 29] {
        assert_eq!(back.get(i).unwrap(), src.get(i).unwrap(), "{i}");
    }
    // And the result is a CIFAR-10 data root.
    let root = format!("data.data_root={}", out.display());
    let v = json(&["data=cifar10", &root]);
    assert_eq!(v["train"]["samples"], 27);
    assert_eq!(v["test"]["samples"], 10);
    assert_eq!(v["classes"][3], "class3");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let m = format!("data.data_root={}", missing.display());
    fails(&["data=cifar10", &m], "nothing-here");
    fails(&["data=folder", &m], "nothing-here");
    fails(&["data=svhn"], "unknown option `svhn`");
    fails(&["data.name=svhn"], "unknown dataset 'svhn'");
    fails(&["data=mnist", &m], "nothing-here");
    let empty = format!("data.data_root={}", tmp.path().display());
    fails(&["data=cifar10", &empty], "mbls data download data=cifar10");
    let txt = tmp.path().join("notes.txt");
    std::fs::write(&txt, "x").unwrap();
    let t = format!("data.data_root={}", txt.display());
    fails(&["data=folder", &t], ".tar.gz");
    fails(&["model=resnet50"], "data overrides only");
    fails(&["data=cifar10", "seed=-4"], "seed");
    fails(&["download", "data=cub"], "no download for data=cub");
    fails(
        &[
            "convert",
            "--to",
            "cifar-binary",
            missing.to_str().unwrap(),
            "out",
        ],
        "nothing-here",
    );
    // Images that are not 32x32 cannot become CIFAR records.
    let big = tmp.path().join("big");
    for split in ["train", "test"] {
        let d = big.join(split).join("a");
        std::fs::create_dir_all(&d).unwrap();
        let im: RgbImage = ImageBuffer::from_pixel(8, 8, Rgb([1, 2, 3]));
        im.save(d.join("x.png")).unwrap();
    }
    let out = tmp.path().join("o");
    fails(
        &[
            "convert",
            "--to",
            "cifar-binary",
            big.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        "32x32",
    );
}

#[test]
fn describes_mnist_idx_files() {
    let tmp = tempfile::tempdir().unwrap();
    // gzipped training files, plain test files
    common::idx_split(tmp.path(), "train", 120, true);
    common::idx_split(tmp.path(), "t10k", 30, false);
    let root = format!("data.data_root={}", tmp.path().display());
    let v = json(&["data=mnist", &root, "seed=4"]);
    assert_eq!(v["dataset"], "mnist");
    assert!(v["format"].as_str().unwrap().contains("MNIST IDX files"));
    assert_eq!(v["num_classes"], 10);
    assert_eq!(v["classes"][0], "0 - zero");
    assert_eq!(v["train"]["samples"], 110);
    assert_eq!(v["val"]["samples"], 10);
    assert_eq!(v["test"]["samples"], 30);
    assert_eq!(v["train"]["drop_last"], false);
    assert_eq!(v["test"]["shuffle"], false);
    assert_eq!(v["split_seed"], 4);
    assert_eq!(v["train_transform"], serde_json::json!([]));
    assert_eq!(v["normalize"]["mean"], serde_json::json!([0.1307]));
    assert_eq!(v["normalize"]["std"], serde_json::json!([0.3081]));
    assert_eq!(v["normalize"]["channels"], 1);
    let head: Vec<usize> = serde_json::from_value(v["val_indices_head"].clone()).unwrap();
    assert_eq!(head, holdout_split(120, 10, Some(4)).unwrap().1);

    // text, and two training batches through the loader (1-channel images)
    let text = ok(&[
        "data=mnist",
        &root,
        "data.batch_size=50",
        "data.num_workers=1",
        "--bench",
        "2",
    ]);
    assert!(
        text.contains("sizes      train 110  val 10  test 30  (val = 10 of the 120"),
        "{text}"
    );
    assert!(text.contains("training images, NumPy seed 1)"), "{text}");
    assert!(
        text.contains("train      3 batches of 50, random order"),
        "{text}"
    );
    assert!(
        text.contains("normalize  mean [0.1307]  std [0.3081]"),
        "{text}"
    );
    assert!(
        text.contains("bench      2 training batches, 100 images"),
        "{text}"
    );
    let v = json(&["data=mnist", &root, "data.augment=true"]);
    assert_eq!(
        v["train_transform"],
        serde_json::json!(["RandomCrop(28, padding=4)"])
    );

    // Fashion-MNIST in torchvision's layout, all files gzipped
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("FashionMNIST").join("raw");
    common::idx_split(&raw, "train", 24, true);
    common::idx_split(&raw, "t10k", 6, true);
    let root = format!("data.data_root={}", tmp.path().display());
    let v = json(&["data=fashion_mnist", &root]);
    assert_eq!(v["dataset"], "fashion_mnist");
    assert!(v["format"].as_str().unwrap().contains("Fashion-MNIST"));
    assert_eq!(v["classes"][9], "Ankle boot");
    assert_eq!(v["train"]["samples"], 22);
    assert_eq!(v["val"]["samples"], 2);
    assert_eq!(v["test"]["samples"], 6);
    assert_eq!(v["normalize"]["mean"], serde_json::json!([0.286]));
    assert_eq!(v["normalize"]["std"], serde_json::json!([0.353]));
}

/// A data root with valid MNIST files (train 24 plain, t10k 12 gzipped) after `corrupt`, and
/// its `data.data_root=` override.
fn corrupted_mnist(tmp: &Path, name: &str, corrupt: impl FnOnce(&Path)) -> String {
    let dir = tmp.join(name);
    common::idx_split(&dir, "train", 24, false);
    common::idx_split(&dir, "t10k", 12, true);
    corrupt(&dir);
    format!("data.data_root={}", dir.display())
}

/// `mbls data data=mnist` on a corrupted root: exit 2, one `error:` line naming `file` and
/// saying `what`.
fn mnist_fails(root: &str, file: &str, what: &str) {
    let err = common::fails("data", &["data=mnist", root], file);
    assert!(err.contains(what), "{what:?} not in {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
}

#[test]
fn bad_mnist_files_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let root = corrupted_mnist(t, "magic", |d| {
        let p = d.join("train-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b[3] = 0x01; // 2051 -> 2049
        std::fs::write(&p, b).unwrap();
    });
    mnist_fails(
        &root,
        "train-images-idx3-ubyte",
        "IDX magic number 2049, expected 2051",
    );
    let root = corrupted_mnist(t, "magic-gz", |d| {
        let labels = common::idx_bytes(2051, &[12], &[0; 12], true);
        std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), labels).unwrap();
    });
    mnist_fails(
        &root,
        "t10k-labels-idx1-ubyte.gz",
        "IDX magic number 2051, expected 2049",
    );
    let root = corrupted_mnist(t, "truncated", |d| {
        let p = d.join("train-images-idx3-ubyte");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() - 784]).unwrap();
    });
    mnist_fails(&root, "train-images-idx3-ubyte", "(truncated?)");
    let root = corrupted_mnist(t, "truncated-gz", |d| {
        let p = d.join("t10k-images-idx3-ubyte.gz");
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    });
    mnist_fails(&root, "t10k-images-idx3-ubyte.gz", "corrupt gzip data");
    let root = corrupted_mnist(t, "header", |d| {
        std::fs::write(d.join("train-labels-idx1-ubyte"), [0u8, 0, 8, 1, 0]).unwrap();
    });
    mnist_fails(&root, "train-labels-idx1-ubyte", "IDX header truncated");
    let root = corrupted_mnist(t, "counts", |d| {
        let labels = common::idx_bytes(2049, &[11], &[0; 11], true);
        std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), labels).unwrap();
    });
    mnist_fails(
        &root,
        "t10k-labels-idx1-ubyte.gz",
        "11 labels for the 12 images",
    );
    let root = corrupted_mnist(t, "missing", |d| {
        std::fs::remove_file(d.join("train-labels-idx1-ubyte")).unwrap();
    });
    mnist_fails(&root, "train-labels-idx1-ubyte", "missing IDX file");
}

#[test]
fn real_cifar10_jpg_archive() {
    let Some(path) = mbls_testkit::shared("data/cifar10-jpg.tar.gz") else {
        return;
    };
    let root = format!("data.data_root={}", path.display());
    let v = json(&["data=folder", &root, "--show", "50"]);
    assert_eq!(v["train"]["samples"], 45_000);
    assert_eq!(v["val"]["samples"], 5_000);
    assert_eq!(v["test"]["samples"], 10_000);
    assert_eq!(v["classes"][0], "airplane");
    assert_eq!(v["classes"][9], "truck");
    let head: Vec<usize> = serde_json::from_value(v["val_indices_head"].clone()).unwrap();
    assert_eq!(head, cifar_split(50_000, 0.1, Some(1)).unwrap().1[..50]);
}
