//! Tiny-ImageNet on small trees written in the official layout: class order, the byte-wise sorted
//! recursive file list (`…_0, …_1, …_10, …`), labels from names and from val_annotations.txt,
//! grayscale → RGB, the reference's per-class split, and the errors.

use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use mbls_data::{DataError, Dataset, Target};
use mbls_data::{TinyImageNet, TinySplit};
use std::path::Path;

fn jpeg(path: &Path, w: u32, h: u32, gray: bool, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut enc = JpegEncoder::new_with_quality(file, 95);
    if gray {
        let data = vec![value; (w * h) as usize];
        enc.encode(&data, w, h, ExtendedColorType::L8).unwrap();
    } else {
        let data: Vec<u8> = (0..w * h).flat_map(|_| [value, 255 - value, 128]).collect();
        enc.encode(&data, w, h, ExtendedColorType::Rgb8).unwrap();
    }
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
}

/// wnids n02, n01 (unsorted in the file); 12 train images per class; 4 val; 2 test.
fn tree(root: &Path) {
    std::fs::write(root.join("wnids.txt"), "n02\nn01\n\n").unwrap();
    for wnid in ["n01", "n02"] {
        for cnt in 0..12 {
            let p = root.join(format!("train/{wnid}/images/{wnid}_{cnt}.JPEG"));
            jpeg(&p, 8, 6, cnt == 3, (cnt * 10) as u8);
        }
        touch(&root.join(format!("train/{wnid}/{wnid}_boxes.txt")));
        // hidden files and folders are not globbed
        touch(&root.join(format!("train/{wnid}/.hidden/{wnid}_99.JPEG")));
        touch(&root.join(format!("train/{wnid}/images/.{wnid}_98.JPEG")));
    }
    let mut ann = String::new();
    for (i, wnid) in ["n02", "n01", "n01", "n02"].iter().enumerate() {
        jpeg(
            &root.join(format!("val/images/val_{i}.JPEG")),
            8,
            8,
            i == 0,
            50,
        );
        ann.push_str(&format!("val_{i}.JPEG\t{wnid}\t0\t0\t7\t7\n"));
    }
    std::fs::write(root.join("val/val_annotations.txt"), ann).unwrap();
    for i in 0..2 {
        jpeg(
            &root.join(format!("test/images/test_{i}.JPEG")),
            8,
            8,
            false,
            9,
        );
    }
}

#[test]
fn train_order_labels_and_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let ds = TinyImageNet::open(tmp.path(), TinySplit::Train).unwrap();
    assert_eq!(ds.classes(), ["n01", "n02"]);
    assert_eq!(ds.len(), 24);
    let names: Vec<String> = ds
        .paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    let order = [0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9];
    let want: Vec<String> = ["n01", "n02"]
        .iter()
        .flat_map(|w| order.iter().map(move |c| format!("{w}_{c}.JPEG")))
        .collect();
    assert_eq!(names, want);
    assert_eq!(ds.labels(), [vec![0; 12], vec![1; 12]].concat());
    let s = ds.get(13).unwrap();
    assert_eq!(s.target, Target::Class(1));
    assert_eq!((s.image.height, s.image.width, s.image.channels), (6, 8, 3));
    // n01_3.JPEG (index 5) is grayscale: three equal channels
    let g = ds.get(5).unwrap().image;
    assert_eq!(g.channels, 3);
    assert!(g.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(ds.source(0).ends_with("n01_0.JPEG"));
    assert!(ds.get(24).is_err());
}

#[test]
fn val_and_test_splits() {
    let tmp = tempfile::tempdir().unwrap();
    tree(tmp.path());
    let val = TinyImageNet::open(tmp.path(), TinySplit::Val).unwrap();
    assert_eq!(val.labels(), [1, 0, 0, 1]);
    assert_eq!(val.get(2).unwrap().target, Target::Class(0));
    let test = TinyImageNet::open(tmp.path(), TinySplit::Test).unwrap();
    assert_eq!(test.len(), 2);
    assert!(test.labels().is_empty());
    assert!(matches!(test.get(0), Err(DataError::Invalid(_))));
    assert_eq!(test.image(1).unwrap().channels, 3);
    assert!(test.reference_split(1).is_err());
}

#[test]
fn reference_split_is_per_class_split_of_the_sorted_order() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("wnids.txt"), "b\na\n").unwrap();
    for w in ["a", "b"] {
        for c in 0..55 {
            touch(&tmp.path().join(format!("train/{w}/images/{w}_{c}.JPEG")));
        }
    }
    let ds = TinyImageNet::open(tmp.path(), TinySplit::Train).unwrap();
    let (train, val) = ds.reference_split(1).unwrap();
    assert_eq!((train.len(), val.len()), (10, 100));
    let expected = mbls_data::per_class_split(ds.labels(), 50, 1).unwrap();
    assert_eq!((train.clone(), val.clone()), expected);
    let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..110).collect::<Vec<_>>());
    // 50 validation images of class a (indices 0..55) come first
    assert!(val[..50].iter().all(|&i| i < 55));
    // an empty file is reported with its name when decoded
    let err = ds.get(0).unwrap_err().to_string();
    assert!(err.contains("a_0.JPEG"), "{err}");
}

#[test]
fn errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let err = TinyImageNet::open(root, TinySplit::Train).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }) && err.to_string().contains("wnids.txt"));
    std::fs::write(root.join("wnids.txt"), "n01\n").unwrap();
    let err = TinyImageNet::open(root, TinySplit::Train).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }) && err.to_string().contains("train"));

    touch(&root.join("train/n09/images/n09_0.JPEG"));
    let err = TinyImageNet::open(root, TinySplit::Train).unwrap_err();
    assert!(matches!(err, DataError::Label { .. }), "{err}");
    assert!(err.to_string().contains("n09_0.JPEG"));
    std::fs::remove_dir_all(root.join("train/n09")).unwrap();
    for bad in ["n01_007.JPEG", "n01_500.JPEG", "n01.JPEG", "n01_x.JPEG"] {
        let p = root.join("train/n01/images").join(bad);
        touch(&p);
        let err = TinyImageNet::open(root, TinySplit::Train).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{bad}: {err}");
        std::fs::remove_file(p).unwrap();
    }

    touch(&root.join("val/images/val_0.JPEG"));
    touch(&root.join("val/images/val_1.JPEG"));
    let ann = root.join("val/val_annotations.txt");
    std::fs::write(&ann, "val_0.JPEG\tn01\t0\t0\t1\t1\nval_1.JPEG n01\n").unwrap();
    let err = TinyImageNet::open(root, TinySplit::Val).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err}");
    assert!(err.to_string().contains("line 2") && err.to_string().contains("val_annotations.txt"));
    std::fs::write(&ann, "val_0.JPEG\tn01\nval_1.JPEG\tn05\n").unwrap();
    let err = TinyImageNet::open(root, TinySplit::Val).unwrap_err();
    assert!(matches!(err, DataError::Label { .. }), "{err}");
    assert!(err.to_string().contains("n05 (line 2)"));
    std::fs::write(&ann, "val_0.JPEG\tn01\n").unwrap();
    let err = TinyImageNet::open(root, TinySplit::Val).unwrap_err();
    assert!(
        err.to_string()
            .contains("no annotation for image val_1.JPEG"),
        "{err}"
    );
    std::fs::write(root.join("wnids.txt"), "n01\nn01\n").unwrap();
    assert!(matches!(
        TinyImageNet::open(root, TinySplit::Val),
        Err(DataError::Format { .. })
    ));
}
