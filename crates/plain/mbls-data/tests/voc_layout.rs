//! Pascal VOC 2012 segmentation on a small tree in the official layout with real palette PNG masks
//! (written with the `png` crate in indexed mode): masks are read as palette indices, not colours;
//! sizes and label values are checked.

use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use mbls_data::{DataError, Dataset, Target};
use mbls_data::{VOC_CLASSES, Voc, VocSplit, read_mask, voc_palette};
use std::path::Path;

fn jpeg(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = JpegEncoder::new_with_quality(std::fs::File::create(path).unwrap(), 90);
    let data: Vec<u8> = (0..w * h).flat_map(|i| [i as u8, 10, 20]).collect();
    enc.encode(&data, w, h, ExtendedColorType::Rgb8).unwrap();
}

/// Writes `values` (h x w) as an indexed PNG with the VOC palette at `depth` bits.
fn palette_png(path: &Path, w: u32, h: u32, values: &[u8], depth: png::BitDepth) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(depth);
    let pal: Vec<u8> = voc_palette().iter().flatten().copied().collect();
    enc.set_palette(pal);
    let mut writer = enc.write_header().unwrap();
    let bits = depth as usize;
    let per_byte = 8 / bits;
    let stride = (w as usize).div_ceil(per_byte);
    let mut packed = vec![0u8; stride * h as usize];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let v = values[y * w as usize + x];
            packed[y * stride + x / per_byte] |= v << (8 - bits * (x % per_byte + 1));
        }
    }
    writer.write_image_data(&packed).unwrap();
}

fn gray_png(path: &Path, w: u32, h: u32, values: &[u8], color: png::ColorType) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(values)
        .unwrap();
}

fn tree(root: &Path) -> Vec<u8> {
    let seg = root.join("ImageSets/Segmentation");
    std::fs::create_dir_all(&seg).unwrap();
    std::fs::write(seg.join("train.txt"), "2007_000032\n2007_000039\n").unwrap();
    std::fs::write(seg.join("val.txt"), "2007_000033\n").unwrap();
    let (w, h) = (7u32, 5u32);
    let mask: Vec<u8> = (0..w * h)
        .map(|i| if i % 6 == 5 { 255 } else { (i % 21) as u8 })
        .collect();
    for id in ["2007_000032", "2007_000039", "2007_000033"] {
        jpeg(&root.join(format!("JPEGImages/{id}.jpg")), w, h);
        palette_png(
            &root.join(format!("SegmentationClass/{id}.png")),
            w,
            h,
            &mask,
            png::BitDepth::Eight,
        );
    }
    mask
}

#[test]
fn palette_is_the_official_colour_map() {
    let p = voc_palette();
    assert_eq!(p[0], [0, 0, 0]);
    assert_eq!(p[1], [128, 0, 0]);
    assert_eq!(p[2], [0, 128, 0]);
    assert_eq!(p[15], [192, 128, 128]); // person
    assert_eq!(p[20], [0, 64, 128]); // tvmonitor
    assert_eq!(p[255], [224, 224, 192]); // boundary
    assert_eq!(VOC_CLASSES.len(), 21);
    assert_eq!(VOC_CLASSES[15], "person");
}

#[test]
fn samples_carry_palette_index_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("VOCdevkit/VOC2012");
    let mask = tree(&root);
    let train = Voc::open(&root, VocSplit::Train).unwrap();
    assert_eq!(train.ids(), ["2007_000032", "2007_000039"]);
    assert_eq!(train.classes().len(), 21);
    let s = train.get(1).unwrap();
    assert_eq!((s.image.height, s.image.width, s.image.channels), (5, 7, 3));
    let Target::Mask(m) = s.target else {
        panic!("not a mask")
    };
    assert_eq!((m.height, m.width), (5, 7));
    assert_eq!(m.data, mask);
    assert!(train.source(0).ends_with("2007_000032.jpg"));
    // the folder holding VOCdevkit works too
    let val = Voc::open(tmp.path(), VocSplit::Val).unwrap();
    assert_eq!(val.len(), 1);
    assert!(Voc::open(&root, VocSplit::TrainVal).is_err()); // no trainval.txt here
    assert!(train.get(2).is_err());
}

#[test]
fn low_bit_depth_and_grayscale_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let values: Vec<u8> = (0..15).map(|i| (i % 4) as u8).collect();
    for depth in [
        png::BitDepth::Two,
        png::BitDepth::Four,
        png::BitDepth::Eight,
    ] {
        let p = tmp.path().join(format!("m{}.png", depth as u8));
        palette_png(&p, 5, 3, &values, depth);
        let m = read_mask(&p).unwrap();
        assert_eq!((m.height, m.width, &m.data), (3, 5, &values), "{depth:?}");
    }
    let one: Vec<u8> = (0..27).map(|i| (i % 3 == 0) as u8).collect();
    let p = tmp.path().join("m1.png");
    palette_png(&p, 9, 3, &one, png::BitDepth::One);
    assert_eq!(read_mask(&p).unwrap().data, one);
    let p = tmp.path().join("gray.png");
    gray_png(&p, 3, 1, &[0, 7, 255], png::ColorType::Grayscale);
    assert_eq!(read_mask(&p).unwrap().data, [0, 7, 255]);
    let p = tmp.path().join("rgb.png");
    gray_png(&p, 1, 1, &[1, 2, 3], png::ColorType::Rgb);
    let err = read_mask(&p).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }) && err.to_string().contains("rgb.png"));
    std::fs::write(tmp.path().join("junk.png"), b"not a png").unwrap();
    assert!(matches!(
        read_mask(&tmp.path().join("junk.png")),
        Err(DataError::Image { .. })
    ));
}

#[test]
fn bad_masks_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    tree(root);
    let ds = Voc::open(root, VocSplit::Train).unwrap();
    let mut bad = vec![0u8; 35];
    bad[9] = 21;
    palette_png(
        &root.join("SegmentationClass/2007_000032.png"),
        7,
        5,
        &bad,
        png::BitDepth::Eight,
    );
    let err = ds.get(0).unwrap_err().to_string();
    assert!(
        err.contains("2007_000032.png") && err.contains("row 1, column 2") && err.contains("21"),
        "{err}"
    );
    palette_png(
        &root.join("SegmentationClass/2007_000039.png"),
        6,
        5,
        &[0; 30],
        png::BitDepth::Eight,
    );
    let err = ds.get(1).unwrap_err().to_string();
    assert!(
        err.contains("2007_000039.png") && err.contains("5x6"),
        "{err}"
    );
    std::fs::remove_file(root.join("JPEGImages/2007_000039.jpg")).unwrap();
    let err = ds.get(1).unwrap_err().to_string();
    assert!(err.contains("2007_000039.jpg"), "{err}");
    std::fs::remove_dir_all(root.join("SegmentationClass")).unwrap();
    let err = Voc::open(root, VocSplit::Train).unwrap_err();
    assert!(
        matches!(err, DataError::Missing { .. }) && err.to_string().contains("SegmentationClass")
    );
}
