//! Decodes a list of image files with mbls-data's decoder and writes their 8-bit RGB pixels,
//! one image after the other, to one raw file: the mbls side of `bench/compare_jpeg.sh`, which
//! compares them with PIL's pixels.
//!
//! ```text
//! cargo run --release -p mbls-data --example jpeg_dump -- <list file> <output file>
//! ```
//!
//! The list holds one path per line. Prints one `RESULT` line with the number of images, the
//! pixel bytes written and the decoding time per image (one thread, files read beforehand).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [list, output] = args.as_slice() else {
        return Err("usage: jpeg_dump <list file> <output file>".into());
    };
    let paths: Vec<PathBuf> = std::fs::read_to_string(list)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    let files = paths
        .iter()
        .map(std::fs::read)
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let mut pixels = Vec::new();
    for (bytes, path) in files.iter().zip(&paths) {
        let image = mbls_data::decode_rgb(bytes, Path::new(path))?;
        pixels.extend_from_slice(&image.data);
    }
    let seconds = start.elapsed().as_secs_f64();
    std::fs::File::create(output)?.write_all(&pixels)?;
    println!(
        "RESULT images={} bytes={} us_per_image={:.2}",
        paths.len(),
        pixels.len(),
        seconds * 1e6 / paths.len().max(1) as f64
    );
    Ok(())
}
