//! The reference's data protocol (`pipeline::build`) on small datasets generated in the official
//! formats: split sizes, which split feeds validation, eval transforms on val/test, `drop_last`,
//! normalisation, determinism for a seed; and on the real CIFAR-10 JPEG copy
//! (`shared/data/cifar10-jpg.tar.gz`, skipped with a message when absent).

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};
use mbls_data::Normalize;
use mbls_data::write_cifar_binary;
use mbls_data::{Batch, DataError, Dataset, Image, Loader, Sample, Target};
use mbls_data::{DataSpec, DatasetName, Pipelines, build};
use mbls_data::{cifar_split, per_class_split};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An in-memory 32x32 dataset whose pixels depend on the index.
struct Mem {
    labels: Vec<usize>,
    classes: Vec<String>,
    salt: u8,
}

impl Mem {
    fn new(n: usize, num_classes: usize, salt: u8) -> Self {
        Mem {
            labels: (0..n).map(|i| (i * 7 + 3) % num_classes).collect(),
            classes: (0..num_classes).map(|c| format!("class{c:03}")).collect(),
            salt,
        }
    }

    fn image(&self, index: usize) -> Image {
        let mut data = Vec::with_capacity(32 * 32 * 3);
        for y in 0..32usize {
            for x in 0..32usize {
                data.push((index * 3 + x * 5) as u8 ^ self.salt);
                data.push((index + y * 7) as u8);
                data.push((x * y + index) as u8);
            }
        }
        Image {
            height: 32,
            width: 32,
            channels: 3,
            data,
        }
    }
}

impl Dataset for Mem {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        Ok(Sample {
            image: self.image(index),
            target: Target::Class(self.labels[index]),
        })
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn source(&self, index: usize) -> String {
        format!("mem#{index}")
    }

    fn label_of(&self, index: usize) -> Option<usize> {
        self.labels.get(index).copied()
    }
}

fn cifar10_root(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let out = dir.join("cifar-10-batches-bin");
    write_cifar_binary(&Mem::new(n_train, 10, 0), &out, true).unwrap();
    write_cifar_binary(&Mem::new(n_test, 10, 0x55), &out, false).unwrap();
    dir.to_path_buf()
}

fn all_batches(loader: &Loader, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).map(|b| b.unwrap()).collect()
}

/// Every sample of every batch equals ToTensor → Normalize of the untransformed image.
fn assert_eval_transform(loader: &Loader) -> usize {
    let ds = loader.dataset();
    let norm = loader.normalize();
    let mut n = 0;
    for batch in all_batches(loader, 0) {
        let per = batch.shape[1] * batch.shape[2] * batch.shape[3];
        for (k, &idx) in batch.indices.iter().enumerate() {
            let want = norm.to_chw(&ds.get(idx).unwrap().image).unwrap();
            assert_eq!(
                &batch.images[k * per..(k + 1) * per],
                want.as_slice(),
                "{idx}"
            );
            n += 1;
        }
    }
    n
}

/// Some sample of the epoch differs from its untransformed image (augmentation is on).
fn differs_from_raw(loader: &Loader) -> bool {
    let ds = loader.dataset();
    let norm = loader.normalize();
    all_batches(loader, 0).iter().any(|batch| {
        let per = batch.shape[1] * batch.shape[2] * batch.shape[3];
        batch.indices.iter().enumerate().any(|(k, &idx)| {
            let raw = norm.to_chw(&ds.get(idx).unwrap().image).unwrap();
            batch.images[k * per..(k + 1) * per] != raw[..]
        })
    })
}

fn spec(name: DatasetName, root: &Path, batch: usize) -> DataSpec {
    DataSpec {
        batch_size: batch,
        num_workers: 1,
        ..DataSpec::reference(name, root)
    }
}

#[test]
fn cifar10_protocol_on_binary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = cifar10_root(tmp.path(), 500, 100);
    let s = DataSpec {
        seed: 7,
        ..spec(DatasetName::Cifar10, &root, 64)
    };
    let p = build(&s).unwrap();
    assert!(p.format.contains("binary"), "{}", p.format);
    assert_eq!(p.num_classes, 10);
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (450, 50, 100));
    let (train_idx, val_idx) = cifar_split(500, 0.1, Some(7)).unwrap();
    assert_eq!(p.val_indices, val_idx);
    assert_eq!(p.train_indices, train_idx);
    assert!(!p.val_is_test && !p.segmentation);
    assert_eq!(p.normalize, Normalize::CIFAR10);
    // drop_last on train only; random order on train and val, official order on test.
    assert!(p.train.options().drop_last && !p.val.options().drop_last);
    assert!(p.train.options().shuffle && p.val.options().shuffle && !p.test.options().shuffle);
    assert_eq!(p.train.num_batches(), 7);
    let train = all_batches(&p.train, 0);
    assert_eq!(train.len(), 7);
    assert!(train.iter().all(|b| b.shape == [64, 3, 32, 32]));
    // Validation indices are the split's, in a random order.
    let mut seen: Vec<usize> = all_batches(&p.val, 0)
        .iter()
        .flat_map(|b| b.indices.clone())
        .collect();
    assert_ne!(seen, val_idx);
    seen.sort_unstable();
    let mut sorted = val_idx.clone();
    sorted.sort_unstable();
    assert_eq!(seen, sorted);
    // Eval transform on val and test, augmentation on train.
    assert_eq!(assert_eval_transform(&p.val), 50);
    assert_eq!(assert_eval_transform(&p.test), 100);
    assert_eq!(
        all_batches(&p.test, 0)[0].indices,
        (0..64).collect::<Vec<_>>()
    );
    assert!(differs_from_raw(&p.train));
    assert!(p.train_transform[0].starts_with("RandomCrop(32, padding=4)"));
    assert!(p.eval_transform.is_empty());
}

#[test]
fn cifar10_without_augment_or_shuffle() {
    let tmp = tempfile::tempdir().unwrap();
    let root = cifar10_root(tmp.path(), 200, 20);
    let s = DataSpec {
        augment: false,
        shuffle: false,
        ..spec(DatasetName::Cifar10, &root, 32)
    };
    let p = build(&s).unwrap();
    assert_eq!(p.val_indices, (0..20).collect::<Vec<_>>());
    assert_eq!(assert_eval_transform(&p.train), 160);
    assert!(p.train_transform.is_empty());
}

#[test]
fn splits_and_batches_are_deterministic_for_a_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = cifar10_root(tmp.path(), 300, 10);
    let s = spec(DatasetName::Cifar10, &root, 50);
    let a = build(&s).unwrap();
    let b = build(&DataSpec {
        num_workers: 2,
        ..s.clone()
    })
    .unwrap();
    assert_eq!(a.val_indices, b.val_indices);
    assert_eq!(all_batches(&a.train, 3), all_batches(&b.train, 3));
    assert_eq!(all_batches(&a.val, 1), all_batches(&b.val, 1));
    assert_ne!(all_batches(&a.train, 0), all_batches(&a.train, 1));
    let c = build(&DataSpec { seed: 2, ..s }).unwrap();
    assert_ne!(a.val_indices, c.val_indices);
}

#[test]
fn cifar100_keeps_the_last_batch_and_cifar10_constants() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    std::fs::create_dir_all(&dir).unwrap();
    let names: String = (0..100).map(|c| format!("fine{c}\n")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), names).unwrap();
    let coarse: String = (0..20).map(|c| format!("coarse{c}\n")).collect();
    std::fs::write(dir.join("coarse_label_names.txt"), coarse).unwrap();
    for (file, n) in [("train.bin", 230usize), ("test.bin", 40)] {
        let mem = Mem::new(n, 100, 1);
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.push((mem.labels[i] / 5) as u8);
            bytes.push(mem.labels[i] as u8);
            let im = mem.image(i);
            for c in 0..3 {
                bytes.extend(im.data.iter().skip(c).step_by(3));
            }
        }
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    let p = build(&spec(DatasetName::Cifar100, tmp.path(), 50)).unwrap();
    assert_eq!(p.num_classes, 100);
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (207, 23, 40));
    assert!(!p.train.options().drop_last);
    assert_eq!(p.train.num_batches(), 5);
    assert_eq!(all_batches(&p.train, 0).last().unwrap().len(), 7);
    assert_eq!(p.normalize, Normalize::CIFAR10);
    assert_eq!(assert_eval_transform(&p.test), 40);
}

fn rgb32(seed: usize) -> RgbImage {
    ImageBuffer::from_fn(32, 32, |x, y| {
        Rgb([
            (seed * 13 + x as usize) as u8,
            (seed * 5 + y as usize * 3) as u8,
            (x * y) as u8,
        ])
    })
}

/// `root/{train,test}/{cat,dog,emu}/NNN.png`: 20 / 4 images per class.
fn image_folder(root: &Path) {
    for (split, n) in [("train", 20), ("test", 4)] {
        for (c, class) in ["cat", "dog", "emu"].iter().enumerate() {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                rgb32(c * 100 + i)
                    .save(d.join(format!("{i:03}.png")))
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
fn folder_and_archive_use_the_cifar10_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    image_folder(&dir);
    let archive = tmp.path().join("imgs.tar.gz");
    tar_gz(&dir, &archive);
    let a = build(&spec(DatasetName::Folder, &dir, 16)).unwrap();
    let b = build(&DataSpec {
        cache: true,
        ..spec(DatasetName::Folder, &archive, 16)
    })
    .unwrap();
    for p in [&a, &b] {
        assert_eq!(p.classes, ["cat", "dog", "emu"]);
        assert_eq!((p.train.len(), p.val.len(), p.test.len()), (54, 6, 12));
        assert_eq!(p.val_indices, cifar_split(60, 0.1, Some(1)).unwrap().1);
        assert!(p.train.options().drop_last);
        assert_eq!(p.train.num_batches(), 3);
        assert_eq!(p.normalize, Normalize::CIFAR10);
        assert_eq!(assert_eval_transform(&p.val), 6);
        assert_eq!(assert_eval_transform(&p.test), 12);
    }
    assert!(a.format.contains("image folders"), "{}", a.format);
    assert!(b.format.contains("archive"), "{}", b.format);
    assert_eq!(all_batches(&a.train, 0), all_batches(&b.train, 0));
}

#[test]
fn folder_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("train/cat")).unwrap();
    let e = build(&spec(DatasetName::Folder, tmp.path(), 8)).unwrap_err();
    assert!(e.to_string().contains("test/ folder"), "{e}");
    let f = tmp.path().join("notes.txt");
    std::fs::write(&f, "x").unwrap();
    let e = build(&spec(DatasetName::Folder, &f, 8)).unwrap_err();
    assert!(e.to_string().contains(".tar.gz"), "{e}");
    let e = build(&spec(DatasetName::Cifar10, tmp.path(), 8)).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e}");
}

fn jpeg(path: &Path, w: u32, h: u32, seed: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let im: RgbImage = ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (seed * 31 + x as usize * 4) as u8,
            (seed * 7 + y as usize * 4) as u8,
            128,
        ])
    });
    im.save_with_format(path, image::ImageFormat::Jpeg).unwrap();
}

#[test]
fn tiny_imagenet_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let wnids = ["n02", "n01", "n03"];
    std::fs::write(root.join("wnids.txt"), wnids.join("\n") + "\n").unwrap();
    for (c, w) in wnids.iter().enumerate() {
        for i in 0..12 {
            let p = root.join(format!("train/{w}/images/{w}_{i}.JPEG"));
            jpeg(&p, 64, 64, c * 50 + i);
        }
    }
    let mut ann = String::new();
    for i in 0..6 {
        jpeg(&root.join(format!("val/images/val_{i}.JPEG")), 64, 64, i);
        ann.push_str(&format!("val_{i}.JPEG\t{}\t0\t0\t10\t10\n", wnids[i % 3]));
    }
    std::fs::write(root.join("val/val_annotations.txt"), ann).unwrap();
    let s = DataSpec {
        val_samples_per_class: 2,
        seed: 3,
        ..spec(DatasetName::TinyImageNet, root, 8)
    };
    let p = build(&s).unwrap();
    assert_eq!(p.classes, ["n01", "n02", "n03"]);
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (30, 6, 6));
    let labels = mbls_data::TinyImageNet::open(root, mbls_data::TinySplit::Train)
        .unwrap()
        .labels()
        .to_vec();
    assert_eq!(p.val_indices, per_class_split(&labels, 2, 3).unwrap().1);
    assert_eq!(p.normalize, Normalize::IMAGENET);
    assert!(!p.train.options().drop_last && p.train.options().shuffle && p.val.options().shuffle);
    assert_eq!(assert_eval_transform(&p.val), 6);
    assert_eq!(assert_eval_transform(&p.test), 6);
    assert!(p.train_transform[0].starts_with("RandomCrop(64, padding=4)"));
    assert!(
        all_batches(&p.train, 0)
            .iter()
            .all(|b| b.shape[1..] == [3, 64, 64])
    );
    let e = build(&DataSpec {
        shuffle: false,
        ..s
    })
    .unwrap_err();
    assert!(e.to_string().contains("shuffle"), "{e}");
}

#[test]
fn cub_validates_on_the_test_split() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (mut images, mut labels, mut split) = (String::new(), String::new(), String::new());
    std::fs::write(root.join("classes.txt"), "1 001.A\n2 002.B\n").unwrap();
    for id in 1..=14usize {
        let class = 1 + id % 2;
        let rel = format!("00{class}.X/img_{id}.jpg");
        jpeg(&root.join("images").join(&rel), 40 + id as u32, 36, id);
        images.push_str(&format!("{id} {rel}\n"));
        labels.push_str(&format!("{id} {class}\n"));
        split.push_str(&format!("{id} {}\n", u8::from(id <= 9)));
    }
    std::fs::write(root.join("images.txt"), images).unwrap();
    std::fs::write(root.join("image_class_labels.txt"), labels).unwrap();
    std::fs::write(root.join("train_test_split.txt"), split).unwrap();
    let s = DataSpec {
        scale_size: 32,
        crop_size: 24,
        ..spec(DatasetName::Cub, root, 4)
    };
    let p = build(&s).unwrap();
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (9, 5, 5));
    assert!(p.val_is_test);
    assert!(p.train.options().drop_last && p.train.options().shuffle);
    assert!(!p.val.options().shuffle && !p.test.options().shuffle);
    assert_eq!(p.train.num_batches(), 2);
    assert_eq!(all_batches(&p.val, 0), all_batches(&p.test, 0));
    assert!(
        all_batches(&p.train, 0)
            .iter()
            .all(|b| b.shape == [4, 3, 24, 24])
    );
    assert!(
        all_batches(&p.test, 0)
            .iter()
            .all(|b| b.shape[1..] == [3, 24, 24])
    );
    assert_eq!(p.eval_transform, ["Resize(32, 32)", "CenterCrop(24, 24)"]);
    assert_eq!(p.normalize, Normalize::IMAGENET);
    let e = build(&DataSpec { crop_size: 40, ..s }).unwrap_err();
    assert!(e.to_string().contains("crop_size"), "{e}");
}

#[test]
fn voc_validates_and_tests_on_val() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("VOCdevkit/VOC2012");
    let seg = root.join("ImageSets/Segmentation");
    std::fs::create_dir_all(&seg).unwrap();
    std::fs::create_dir_all(root.join("SegmentationClass")).unwrap();
    let ids: Vec<String> = (0..5).map(|i| format!("2007_{i:06}")).collect();
    for (i, id) in ids.iter().enumerate() {
        jpeg(&root.join(format!("JPEGImages/{id}.jpg")), 30, 20, i);
        let m: GrayImage = ImageBuffer::from_fn(30, 20, |x, _| {
            Luma([if x < 3 { 255 } else { (x % 21) as u8 }])
        });
        m.save(root.join(format!("SegmentationClass/{id}.png")))
            .unwrap();
    }
    std::fs::write(seg.join("train.txt"), ids[..3].join("\n")).unwrap();
    std::fs::write(seg.join("val.txt"), ids[3..].join("\n")).unwrap();
    let p = build(&spec(DatasetName::Voc, tmp.path(), 2)).unwrap();
    assert!(p.segmentation && p.val_is_test);
    assert_eq!(p.num_classes, 21);
    assert_eq!((p.train.len(), p.val.len(), p.test.len()), (3, 2, 2));
    assert!(p.train.options().drop_last);
    let train = all_batches(&p.train, 0);
    assert_eq!(train.len(), 1);
    assert_eq!(train[0].shape, [2, 3, 512, 512]);
    assert_eq!(train[0].masks.as_ref().unwrap().len(), 2 * 512 * 512);
    let val = all_batches(&p.val, 0);
    assert_eq!(val, all_batches(&p.test, 0));
    assert_eq!(val[0].shape, [2, 3, 480, 480]);
}

#[test]
fn real_cifar10_jpg_archive_has_the_reference_split() {
    let Some(path) = mbls_testkit::shared("data/cifar10-jpg.tar.gz") else {
        return;
    };
    let p: Pipelines = build(&spec(DatasetName::Folder, &path, 128)).unwrap();
    assert_eq!(p.classes.len(), 10);
    assert_eq!(p.classes[0], "airplane");
    assert_eq!(
        (p.train.len(), p.val.len(), p.test.len()),
        (45_000, 5_000, 10_000)
    );
    let (train_idx, val_idx) = cifar_split(50_000, 0.1, Some(1)).unwrap();
    assert_eq!(p.val_indices, val_idx);
    assert_eq!(p.train_indices, train_idx);
    assert_eq!(p.train.num_batches(), 351);
    let first = p.val.epoch(0).next().unwrap().unwrap();
    assert_eq!(first.shape, [128, 3, 32, 32]);
    let ds: Arc<dyn Dataset> = Arc::clone(p.val.dataset());
    let want = Normalize::CIFAR10
        .to_chw(&ds.get(first.indices[0]).unwrap().image)
        .unwrap();
    assert_eq!(&first.images[..3 * 32 * 32], want.as_slice());
}

/// `data.train_subset`: a seeded, class-balanced subset of the training split; validation and
/// test unchanged; the same seed gives the same subset, another seed another one.
#[test]
fn a_training_subset_is_balanced_seeded_and_leaves_val_and_test_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = cifar10_root(tmp.path(), 400, 30);
    let mut spec = DataSpec::reference(DatasetName::Cifar10, &root);
    spec.num_workers = 0;
    let full = build(&spec).unwrap();
    spec.train_subset = Some(53);
    let sub = build(&spec).unwrap();
    assert_eq!(sub.train_indices.len(), 53);
    assert_eq!(sub.val_indices, full.val_indices);
    assert_eq!(sub.test.len(), full.test.len());
    // a subset of the training split, in its order, no duplicates
    let pos: Vec<usize> = sub
        .train_indices
        .iter()
        .map(|i| full.train_indices.iter().position(|j| j == i).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
    // 53 over 10 classes: 5 or 6 each, the 3 extra to the first classes
    let ds = sub.train.dataset();
    let mut counts = [0usize; 10];
    for &i in &sub.train_indices {
        counts[ds.label_of(i).unwrap()] += 1;
    }
    assert_eq!(counts, [6, 6, 6, 5, 5, 5, 5, 5, 5, 5]);
    assert_eq!(build(&spec).unwrap().train_indices, sub.train_indices);
    spec.seed = 2;
    let other = build(&spec).unwrap();
    assert_eq!(other.train_indices.len(), 53);
    assert_ne!(other.train_indices, sub.train_indices);
    // too many, or none
    spec.seed = 1;
    for n in [0, 361] {
        spec.train_subset = Some(n);
        let err = build(&spec).unwrap_err().to_string();
        assert!(
            err.contains("data.train_subset") && err.contains("360"),
            "{err}"
        );
    }
}

/// A class with fewer images than its share is used up; the others make up for it.
#[test]
fn a_balanced_subset_fills_up_from_the_larger_classes() {
    let ds = Mem {
        labels: (0..30).map(|i| if i < 3 { 0 } else { 1 + i % 2 }).collect(),
        classes: vec!["a".into(), "b".into(), "c".into()],
        salt: 0,
    };
    let indices: Vec<usize> = (0..30).collect();
    let chosen = mbls_data::balanced_subset(&ds, &indices, 21, 7).unwrap();
    let count = |c| chosen.iter().filter(|&&i| ds.labels[i] == c).count();
    assert_eq!((count(0), count(1), count(2)), (3, 9, 9));
    // labels the dataset cannot give without decoding: refused
    struct NoLabels(Mem);
    impl Dataset for NoLabels {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn get(&self, index: usize) -> Result<Sample, DataError> {
            self.0.get(index)
        }
        fn classes(&self) -> &[String] {
            self.0.classes()
        }
        fn source(&self, index: usize) -> String {
            self.0.source(index)
        }
    }
    let err = mbls_data::balanced_subset(&NoLabels(ds), &indices, 5, 7).unwrap_err();
    assert!(err.to_string().contains("labels are known"), "{err}");
}
