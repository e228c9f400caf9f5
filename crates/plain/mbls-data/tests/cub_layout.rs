//! CUB-200-2011 on a small tree in the official layout: joins of the id files in images.txt order,
//! 1-based labels, the train/test flag, class names, decoding to RGB, and the errors.

use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use mbls_data::Cub;
use mbls_data::{DataError, Dataset, Target};
use std::path::Path;

fn jpeg(path: &Path, w: u32, h: u32, gray: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = JpegEncoder::new_with_quality(std::fs::File::create(path).unwrap(), 90);
    if gray {
        enc.encode(&vec![77; (w * h) as usize], w, h, ExtendedColorType::L8)
            .unwrap();
    } else {
        let data: Vec<u8> = (0..w * h).flat_map(|i| [i as u8, 0, 200]).collect();
        enc.encode(&data, w, h, ExtendedColorType::Rgb8).unwrap();
    }
}

const IMAGES: &str = "1 001.Albatross/a_1.jpg\n2 002.Auklet/b_2.jpg\n3 001.Albatross/a_3.jpg\n5 003.Blackbird/c_5.jpg\n4 002.Auklet/b_4.jpg\n";

fn tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let w = |name: &str, text: &str| std::fs::write(root.join(name), text).unwrap();
    w(
        "classes.txt",
        "1 001.Albatross\n2 002.Auklet\n3 003.Blackbird\n",
    );
    w("images.txt", IMAGES);
    w("image_class_labels.txt", "4 2\n1 1\n2 2\n3 1\n5 3\n");
    w("train_test_split.txt", "1 1\n2 0\n3 0\n4 1\n5 1\n");
    for (i, line) in IMAGES.lines().enumerate() {
        let rel = line.split(' ').nth(1).unwrap();
        jpeg(&root.join("images").join(rel), 10 + i as u32, 7, i == 3);
    }
}

#[test]
fn train_and_test_splits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("CUB_200_2011");
    tree(&root);
    let train = Cub::open(&root, true).unwrap();
    assert_eq!(
        train.classes(),
        ["001.Albatross", "002.Auklet", "003.Blackbird"]
    );
    assert_eq!(train.ids(), [1, 5, 4]); // images.txt order
    assert_eq!(train.labels(), [0, 2, 1]);
    assert!(train.source(1).ends_with("003.Blackbird/c_5.jpg"));
    let s = train.get(1).unwrap();
    assert_eq!(s.target, Target::Class(2));
    assert_eq!(
        (s.image.height, s.image.width, s.image.channels),
        (7, 13, 3)
    );
    assert!(s.image.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2])); // grayscale → RGB

    // the folder above CUB_200_2011 works too
    let test = Cub::open(tmp.path(), false).unwrap();
    assert_eq!(test.ids(), [2, 3]);
    assert_eq!(test.labels(), [1, 0]);
    assert_eq!(test.len(), 2);
    assert_eq!(test.get(0).unwrap().image.width, 11);
    assert!(test.root().ends_with("CUB_200_2011"));
}

#[test]
fn inconsistent_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    tree(root);
    let set = |name: &str, text: &str| std::fs::write(root.join(name), text).unwrap();
    let expect = |needle: &str, file: &str, label: bool| {
        let err = Cub::open(root, true).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle) && msg.contains(file), "{msg}");
        assert_eq!(matches!(err, DataError::Label { .. }), label, "{msg}");
    };

    set("image_class_labels.txt", "4 2\n1 1\n2 4\n3 1\n5 3\n");
    expect("4 (line 3", "image_class_labels.txt", true);
    set("image_class_labels.txt", "4 2\n1 0\n2 2\n3 1\n5 3\n");
    expect("0 (line 2", "image_class_labels.txt", true);
    set("image_class_labels.txt", "4 2\n1 1\n2 2\n3 1\n");
    expect("no label for image id 5", "image_class_labels.txt", false);
    set("image_class_labels.txt", "4 2\n1 1\n2 2\n3 1\n5 3\n6 1\n");
    expect(
        "image id 6 is not in images.txt",
        "image_class_labels.txt",
        false,
    );
    set("image_class_labels.txt", "4 2\n1 1\n2 2\n3 1\n5 3\n5 3\n");
    expect("duplicate image id 5", "image_class_labels.txt", false);
    set("image_class_labels.txt", "4 2\n1 1\n2 2\n3 1\n5 3\n");

    set("train_test_split.txt", "1 1\n2 0\n3 2\n4 1\n5 1\n");
    expect("line 3", "train_test_split.txt", false);
    set("train_test_split.txt", "1 1\n2 0\n3 0\n4 1\n5 1\n");

    set("images.txt", "1 a.jpg\n1 b.jpg\n");
    expect("duplicate image id 1", "images.txt", false);
    set("images.txt", "1 a.jpg extra\n");
    expect("line 1", "images.txt", false);
    set("images.txt", "x a.jpg\n");
    expect("not a number", "images.txt", false);
    set("images.txt", IMAGES);

    set("classes.txt", "1 a\n3 c\n");
    expect("line 2", "classes.txt", false);
    std::fs::remove_file(root.join("classes.txt")).unwrap();
    let err = Cub::open(root, true).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }) && err.to_string().contains("classes.txt"));

    // a missing image file is reported when decoded
    set(
        "classes.txt",
        "1 001.Albatross\n2 002.Auklet\n3 003.Blackbird\n",
    );
    std::fs::remove_file(root.join("images/001.Albatross/a_1.jpg")).unwrap();
    let ds = Cub::open(root, true).unwrap();
    let err = ds.get(0).unwrap_err();
    assert!(err.to_string().contains("a_1.jpg"), "{err}");
}

/// A JPEG with an EXIF APP1 segment whose orientation tag is `orientation`.
fn jpeg_with_orientation(path: &Path, w: u32, h: u32, orientation: u8) {
    let mut bytes = Vec::new();
    let data: Vec<u8> = (0..w * h).flat_map(|i| [(i * 30) as u8, 0, 0]).collect();
    JpegEncoder::new_with_quality(&mut bytes, 95)
        .encode(&data, w, h, ExtendedColorType::Rgb8)
        .unwrap();
    let mut app1 = vec![0xff, 0xe1, 0, 34];
    app1.extend_from_slice(b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0");
    app1.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(app1.len(), 36);
    bytes.splice(2..2, app1);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn exif_orientation_is_applied_as_opencv() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    tree(root);
    // image id 1 (train index 0) is rotated 90 degrees by its EXIF tag: 4x2 becomes 2x4
    jpeg_with_orientation(&root.join("images/001.Albatross/a_1.jpg"), 4, 2, 6);
    let ds = Cub::open(root, true).unwrap();
    let im = ds.get(0).unwrap().image;
    assert_eq!((im.height, im.width), (4, 2));
    // Tiny-ImageNet reads as PIL, which ignores the tag
    std::fs::write(root.join("wnids.txt"), "n01\n").unwrap();
    jpeg_with_orientation(&root.join("train/n01/images/n01_0.JPEG"), 4, 2, 6);
    let tiny = mbls_data::TinyImageNet::open(root, mbls_data::TinySplit::Train).unwrap();
    let im = tiny.get(0).unwrap().image;
    assert_eq!((im.height, im.width), (2, 4));
}
