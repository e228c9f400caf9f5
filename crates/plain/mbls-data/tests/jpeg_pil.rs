//! JPEG pixels against PIL's: every fixture of `tests/fixtures/jpeg` (written by its
//! `make_fixtures.py` with Pillow's libjpeg-turbo) decodes to exactly the bytes PIL decodes,
//! through the public decoder and through an image folder. Integer arithmetic throughout
//! (libjpeg's integer IDCT, upsampling and colour tables), so equality holds on every CPU.

use mbls_data::{Dataset, ImageFolder, Target, decode_rgb};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg")
}

/// `(file name, width, height)` of every fixture.
fn listed() -> Vec<(String, usize, usize)> {
    let text = std::fs::read_to_string(fixtures().join("sizes.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (
                parts[0].to_string(),
                parts[1].parse().unwrap(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_fixture_decodes_to_pils_pixels_exactly() {
    let files = listed();
    assert_eq!(files.len(), 13, "fixture list changed");
    for (name, width, height) in files {
        let path = fixtures().join(&name);
        let bytes = std::fs::read(&path).unwrap();
        let expected = std::fs::read(path.with_extension("rgb")).unwrap();
        let image = decode_rgb(&bytes, &path).unwrap();
        assert_eq!(
            (image.width, image.height, image.channels),
            (width, height, 3),
            "{name}"
        );
        let differing = image
            .data
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "{name}: {differing} values differ from PIL's");
        assert_eq!(image.data.len(), expected.len(), "{name}");
    }
}

#[test]
fn an_image_folder_serves_pils_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("real");
    std::fs::create_dir(&class).unwrap();
    let names = ["cifar_bird.jpg", "synth_progressive.jpg"];
    for name in names {
        std::fs::copy(fixtures().join(name), class.join(name)).unwrap();
    }
    let folder = ImageFolder::open(dir.path()).unwrap();
    assert_eq!(folder.len(), 2);
    for (i, name) in names.iter().enumerate() {
        let sample = folder.get(i).unwrap();
        assert!(matches!(sample.target, Target::Class(0)));
        let expected = std::fs::read(fixtures().join(name).with_extension("rgb")).unwrap();
        assert_eq!(sample.image.data, expected, "{name}");
    }
}

#[test]
fn truncated_and_corrupt_jpegs_are_errors_naming_the_file() {
    let path = fixtures().join("synth_444.jpg");
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 200, 3, 200] {
        let err = decode_rgb(&bytes[..keep], Path::new("cut/x.jpg"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut/x.jpg"), "{keep}: {err}");
    }
    // a quantisation table index out of range in the frame header
    let mut bad = bytes.clone();
    let sof = bad.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bad[sof + 12] = 9; // first component's table selector
    let err = decode_rgb(&bad, Path::new("bad.jpg"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.jpg"), "{err}");
}
