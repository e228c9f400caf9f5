//! JPEG decoding as PyTorch users get it: libjpeg-turbo (the copy bundled by `mozjpeg-sys`,
//! compiled from C, no system library), with the settings PIL decodes with — the integer
//! "slow" IDCT (`JDCT_ISLOW`), "fancy" (triangle-filter) chroma upsampling, libjpeg's
//! YCbCr→RGB tables. The pixels are then PIL's, which torchvision's `ImageFolder` hands to
//! PyTorch (`bench/compare_jpeg.sh` compares all 60,000 images of the CIFAR-10 JPEG copy).
//!
//! Errors: libjpeg's fatal errors become [`DataError::Image`] with libjpeg's message; a file that
//! ends before its last scanline is an error too ("premature end of JPEG file"), as PIL's
//! "image file is truncated" is, where libjpeg alone would fill the rest with gray. Other
//! libjpeg warnings (corrupt entropy data it recovers from) are accepted, as PIL accepts them.
//! An image whose decoding would take more than [`MAX_DECODE_BYTES_BASE`] plus
//! [`MAX_DECODE_BYTES_PER_FILE_BYTE`] times the file's size (the RGB pixels, and libjpeg's
//! coefficient buffers of a progressive file) is refused before decoding, so that a header
//! claiming 65,000 x 65,000 pixels costs nothing.

use crate::{DataError, Image};
use mozjpeg_sys::{J_COLOR_SPACE, JWRN_JPEG_EOF, jpeg_common_struct, jpeg_error_mgr};
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;

/// Decoding memory allowed whatever the file's size (48 MiB: the pixels and coefficients of an
/// 8-megapixel photograph).
pub(crate) const MAX_DECODE_BYTES_BASE: usize = 48 << 20;
/// Further decoding memory allowed per byte of the file (photographs compress 10-50x).
pub(crate) const MAX_DECODE_BYTES_PER_FILE_BYTE: usize = 256;

/// Bytes that decoding `decompress` to RGB takes at most: the output pixels, plus the whole
/// image's DCT coefficients (2 bytes each, blocks padded to whole MCUs), which libjpeg keeps for
/// a progressive or multi-scan file (counted for every file, to be safe).
fn decode_bytes<R>(decompress: &mozjpeg::Decompress<R>) -> usize {
    let (width, height) = decompress.size();
    let pixels = width.saturating_mul(height).saturating_mul(3);
    let coefficients = decompress.components().iter().fold(0usize, |sum, c| {
        let across = (c.width_in_blocks as usize).saturating_add(c.h_samp_factor.max(1) as usize);
        let down = (c.height_in_blocks as usize).saturating_add(c.v_samp_factor.max(1) as usize);
        sum.saturating_add(across.saturating_mul(down).saturating_mul(128))
    });
    pixels.saturating_add(coefficients)
}

/// True when `bytes` start like a JPEG file (SOI marker followed by another marker).
pub(crate) fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
}

/// libjpeg's message for the code in `cinfo.err`, as its `format_message` writes it.
fn message(cinfo: &mut jpeg_common_struct) -> String {
    // SAFETY: `cinfo.err` is the error manager set up by `error_manager` (jpeg_std_error's
    // functions); `format_message` writes at most 80 bytes, NUL included, into the buffer.
    unsafe {
        let err = &*cinfo.err;
        let Some(format) = err.format_message else {
            return format!("libjpeg message {}", err.msg_code);
        };
        // The binding declares the buffer `&[u8; 80]`; libjpeg writes into it, so it is passed
        // as the raw pointer it is in C.
        let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut [u8; 80]) =
            std::mem::transmute(format);
        let mut buffer = [0u8; 80];
        format(cinfo, &mut buffer);
        let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    }
}

/// What a libjpeg error unwinds with, caught in [`decode`].
struct Failure(String);

extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    let text = message(cinfo);
    resume_unwind(Box::new(Failure(text)));
}

extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return; // trace messages
    }
    // SAFETY: as in `message`.
    let code = unsafe {
        let err = &mut *cinfo.err;
        err.num_warnings += 1;
        err.msg_code
    };
    if code == JWRN_JPEG_EOF as c_int {
        resume_unwind(Box::new(Failure(
            "premature end of JPEG file (truncated)".to_string(),
        )));
    }
}

/// libjpeg's standard error manager with errors and end-of-file warnings turned into unwinds.
fn error_manager() -> jpeg_error_mgr {
    // SAFETY: jpeg_error_mgr is a plain C struct that jpeg_std_error fills completely.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

/// Decodes a JPEG file into 8-bit RGB as PIL does; `Ok(None)` for the colour spaces this path
/// leaves to the general decoder (CMYK and YCCK, which PIL converts with its own formulas).
///
/// # Errors
/// [`DataError::Image`] naming `source` for a corrupt, truncated or oversized file.
pub(crate) fn decode(bytes: &[u8], source: &Path) -> Result<Option<Image>, DataError> {
    let fail = |message: String| DataError::Image {
        path: source.to_path_buf(),
        message,
    };
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Option<Image>, String> {
        let decompress = mozjpeg::Decompress::with_err(error_manager())
            .from_mem(bytes)
            .map_err(|e| e.to_string())?;
        if matches!(
            decompress.color_space(),
            J_COLOR_SPACE::JCS_CMYK | J_COLOR_SPACE::JCS_YCCK
        ) {
            return Ok(None);
        }
        let (width, height) = decompress.size();
        let needed = decode_bytes(&decompress);
        let allowed = MAX_DECODE_BYTES_BASE
            .saturating_add(MAX_DECODE_BYTES_PER_FILE_BYTE.saturating_mul(bytes.len()));
        if needed > allowed {
            return Err(format!(
                "refused: {width}x{height} pixels would take {needed} bytes to decode from a \
                 file of {} bytes, more than the {allowed} bytes allowed for it",
                bytes.len()
            ));
        }
        let pixel_bytes = width * height * 3;
        let mut started = decompress.rgb().map_err(|e| e.to_string())?;
        let data: Vec<u8> = started.read_scanlines().map_err(|e| e.to_string())?;
        if data.len() != pixel_bytes {
            return Err(format!(
                "decoded {} bytes for {width}x{height} RGB pixels",
                data.len()
            ));
        }
        // Trailing markers after the last scanline are not read, as PIL does not need them.
        drop(started);
        Ok(Some(Image {
            height,
            width,
            channels: 3,
            data,
        }))
    }));
    match result {
        Ok(Ok(image)) => Ok(image),
        Ok(Err(message)) => Err(fail(message)),
        Err(payload) => match payload.downcast::<Failure>() {
            Ok(failure) => Err(fail(failure.0)),
            Err(other) => resume_unwind(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width` x `height` 4:2:0 JPEG of colour gradients, written by the `image` crate's encoder.
    fn sample_jpeg(width: u32, height: u32) -> Vec<u8> {
        let mut rgb = Vec::new();
        for y in 0..height {
            for x in 0..width {
                rgb.extend_from_slice(&[(x * 16) as u8, (y * 30) as u8, ((x + y) * 9) as u8]);
            }
        }
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode(&rgb, width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_jpeg_to_rgb_of_its_size() {
        let bytes = sample_jpeg(16, 8);
        assert!(is_jpeg(&bytes));
        let image = decode(&bytes, Path::new("a.jpg")).unwrap().unwrap();
        assert_eq!((image.width, image.height, image.channels), (16, 8, 3));
        assert_eq!(image.data.len(), 16 * 8 * 3);
        // lossy, but close to the encoded gradient
        assert!(
            (image.data[3 * 5] as i32 - 80).abs() <= 8,
            "{}",
            image.data[15]
        );
    }

    #[test]
    fn a_truncated_file_is_an_error_not_gray_pixels() {
        let bytes = sample_jpeg(64, 64);
        let cut = &bytes[..bytes.len() * 2 / 3];
        let err = decode(cut, Path::new("cut.jpg")).unwrap_err().to_string();
        assert!(
            err.contains("cut.jpg") && err.contains("premature end"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_headers_are_errors_naming_the_file() {
        let mut bytes = sample_jpeg(16, 8);
        // garbage after the SOI marker
        for b in bytes.iter_mut().skip(2).take(40) {
            *b = 0x17;
        }
        let err = decode(&bytes, Path::new("bad.jpg"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.jpg"), "{err}");
        assert!(decode(&[0xFF, 0xD8, 0xFF], Path::new("x.jpg")).is_err());
    }

    #[test]
    fn a_header_claiming_huge_dimensions_is_refused_before_decoding() {
        let mut bytes = sample_jpeg(16, 8);
        // SOF0 marker: FF C0, length (2), precision (1), height (2), width (2)
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("baseline SOF0");
        bytes[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0x00, 0xFF, 0x00]);
        let err = decode(&bytes, Path::new("huge.jpg"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("refused") && err.contains("65280x65280"),
            "{err}"
        );
    }
}
