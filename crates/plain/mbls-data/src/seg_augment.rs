//! Albumentations-style augmentations of the reference for VOC and CUB (image and mask).
//!
//! The reference builds these pipelines with albumentations 1.x on top of OpenCV 4 (spec 5.3, 5.4):
//!
//! * VOC train: `LongestMaxSize(640)` → `PadIfNeeded(512, 512, value 0, mask_value 255)` →
//!   `RandomCrop(512, 512)` → `HorizontalFlip()` → `RandomBrightnessContrast(0.3, 0.3, p 0.5)` →
//!   `HueSaturationValue(20, 30, 20, p 0.5)` ([`voc_train`]);
//! * VOC val/test: `LongestMaxSize(480)` → `PadIfNeeded(480, 480, 0, 255)` ([`voc_eval`]);
//! * CUB train: `Resize(256, 256)` → `RandomCrop(224, 224)` → `HorizontalFlip()` ([`cub_train`]);
//! * CUB test: `Resize(256, 256)` → `CenterCrop(224, 224)` ([`cub_eval`]).
//!
//! Normalisation (ImageNet mean/std, [`crate::augment::IMAGENET_MEAN`]) happens later, in the
//! loader. Every transform works on [`Sample`]s whose target is a class (image only) or a
//! [`Mask`] of the image's size (geometric transforms move it along; a mask of another size is an
//! error).
//!
//! The deterministic kernels are public and follow OpenCV's 8-bit arithmetic:
//! [`resize_linear`] is `cv2.resize(INTER_LINEAR)` (half-pixel centres, no antialiasing, 11-bit
//! fixed-point weights, its 2x2 area shortcut for exact halving, and the rounding of its SIMD
//! vertical pass), [`resize_nearest`] is `INTER_NEAREST` (`floor(x * src/dst)`), [`rgb_to_hsv`]
//! and [`hsv_to_rgb_row`] are `COLOR_RGB2HSV` / `COLOR_HSV2RGB` for 8-bit images (hue in `0..180`;
//! the latter truncates in OpenCV's vector blocks and rounds in its scalar tail). The tests compare
//! them with OpenCV 4.10 output on x86 (`tests/fixtures/seg_augment`): all exact. Other OpenCV
//! versions or CPUs can differ by one level in places (e.g. OpenCV's scalar resize rounding).
//!
//! Randomness: every random choice comes from the `rng` argument, as `f64` uniforms in `[0, 1)`
//! ([`uniform01`]); each transform with a probability draws one uniform for it (applied when the
//! draw is below `p`, as albumentations' `random.random() < p`), then its parameters in
//! albumentations' order. Python's stream itself cannot be reproduced (nor is it needed).

use crate::augment::Compose;
use crate::error::DataError;
use crate::sample::{Image, Mask, Sample, Target, Transform};
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// A uniform `f64` in `[0, 1)` with 53 random bits (one 64-bit draw), the analogue of Python's
/// `random.random()`.
pub fn uniform01(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `random.uniform(a, b)` = `a + (b - a) * random()`.
fn uniform(rng: &mut ChaCha8Rng, a: f64, b: f64) -> f64 {
    a + (b - a) * uniform01(rng)
}

fn check_buffer(src: &[u8], h: usize, w: usize, cn: usize) -> Result<(), DataError> {
    if src.len() != h * w * cn {
        return Err(DataError::Invalid(format!(
            "buffer holds {} bytes, not {h}x{w}x{cn}",
            src.len()
        )));
    }
    Ok(())
}

/// Round half to even, as Python 3's `round` and albumentations' `py3round`.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (r - x).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// `cvRound` of an `f32` (round half to even, as `lrintf`), saturated to `u8`.
fn saturate_u8_f32(x: f32) -> u8 {
    let r = f64::from(x);
    round_half_even(r).clamp(0.0, 255.0) as u8
}

// ---------------------------------------------------------------------------------------------
// Resizing

/// `cv2.resize(src, (dst_w, dst_h), interpolation=INTER_LINEAR)` for 8-bit HWC data with `cn`
/// channels, bit for bit on x86 builds of OpenCV 4 (see the module docs).
///
/// Sample positions are `(d + 0.5) * src/dst - 0.5` (computed as OpenCV: scale `1 / (dst/src)` in
/// `f64`, position rounded to `f32`); weights are `round(w * 2048)`; horizontal sums are exact; the
/// vertical combination uses OpenCV's SIMD rounding
/// `(((h0 >> 4) * b0 >> 16) + ((h1 >> 4) * b1 >> 16) + 2) >> 2` on every value (OpenCV 4.10's x86
/// build gives exactly this, also at the row ends; its scalar formula `(h0 * b0 + h1 * b1 + 2^21)
/// >> 22` can be one level higher and is not used). Exact halving in both
/// directions is a 2x2 average `(sum + 2) >> 2` (OpenCV switches to INTER_AREA there).
pub fn resize_linear(
    src: &[u8],
    src_h: usize,
    src_w: usize,
    cn: usize,
    dst_h: usize,
    dst_w: usize,
) -> Result<Vec<u8>, DataError> {
    check_buffer(src, src_h, src_w, cn)?;
    if dst_h == 0 || dst_w == 0 || src_h == 0 || src_w == 0 {
        return Ok(Vec::new());
    }
    if (src_h, src_w) == (dst_h, dst_w) {
        return Ok(src.to_vec());
    }
    let inv_x = dst_w as f64 / src_w as f64;
    let inv_y = dst_h as f64 / src_h as f64;
    let scale_x = 1.0 / inv_x;
    let scale_y = 1.0 / inv_y;
    let (ix, iy) = (round_half_even(scale_x), round_half_even(scale_y));
    let area_fast = (scale_x - ix).abs() < f64::EPSILON && (scale_y - iy).abs() < f64::EPSILON;
    let row = src_w * cn;
    if area_fast && ix == 2.0 && iy == 2.0 {
        let mut out = vec![0u8; dst_h * dst_w * cn];
        for dy in 0..dst_h {
            let (r0, r1) = (2 * dy * row, (2 * dy + 1).min(src_h - 1) * row);
            for dx in 0..dst_w {
                let (c0, c1) = (2 * dx * cn, (2 * dx + 1).min(src_w - 1) * cn);
                for k in 0..cn {
                    let s = u32::from(src[r0 + c0 + k])
                        + u32::from(src[r0 + c1 + k])
                        + u32::from(src[r1 + c0 + k])
                        + u32::from(src[r1 + c1 + k]);
                    out[(dy * dst_w + dx) * cn + k] = ((s + 2) >> 2) as u8;
                }
            }
        }
        return Ok(out);
    }
    // Horizontal table: source column and the two 11-bit weights of each destination column.
    let mut xofs = Vec::with_capacity(dst_w);
    for dx in 0..dst_w {
        let mut fx = ((dx as f64 + 0.5) * scale_x - 0.5) as f32;
        let mut sx = fx.floor() as i64;
        fx -= sx as f32;
        if sx < 0 {
            fx = 0.0;
            sx = 0;
        }
        if sx >= src_w as i64 - 1 {
            fx = 0.0;
            sx = src_w as i64 - 1;
        }
        let a0 = round_half_even(f64::from((1.0f32 - fx) * 2048.0)) as i32;
        let a1 = round_half_even(f64::from(fx * 2048.0)) as i32;
        xofs.push((sx as usize, a0, a1));
    }
    let width = dst_w * cn;
    let hresize = |y: usize, buf: &mut Vec<i32>| {
        buf.clear();
        let s = &src[y * row..(y + 1) * row];
        for &(sx, a0, a1) in &xofs {
            for k in 0..cn {
                let p0 = i32::from(s[sx * cn + k]);
                let v = if sx + 1 < src_w {
                    p0 * a0 + i32::from(s[(sx + 1) * cn + k]) * a1
                } else {
                    p0 * a0
                };
                buf.push(v);
            }
        }
    };
    let mut out = vec![0u8; dst_h * width];
    let (mut h0, mut h1) = (Vec::with_capacity(width), Vec::with_capacity(width));
    let mut cached: (Option<usize>, Option<usize>) = (None, None);
    for dy in 0..dst_h {
        let mut fy = ((dy as f64 + 0.5) * scale_y - 0.5) as f32;
        let sy = fy.floor() as i64;
        fy -= sy as f32;
        let b0 = round_half_even(f64::from((1.0f32 - fy) * 2048.0)) as i32;
        let b1 = round_half_even(f64::from(fy * 2048.0)) as i32;
        let clampy = |y: i64| y.clamp(0, src_h as i64 - 1) as usize;
        let (y0, y1) = (clampy(sy), clampy(sy + 1));
        if cached.0 != Some(y0) {
            if cached.1 == Some(y0) {
                std::mem::swap(&mut h0, &mut h1);
                cached.0 = Some(y0);
                cached.1 = None;
            } else {
                hresize(y0, &mut h0);
                cached.0 = Some(y0);
            }
        }
        if cached.1 != Some(y1) {
            hresize(y1, &mut h1);
            cached.1 = Some(y1);
        }
        let dst = &mut out[dy * width..(dy + 1) * width];
        for x in 0..width {
            let (s0, s1) = (h0[x], h1[x]);
            let t0 = ((s0 >> 4) * b0) >> 16;
            let t1 = ((s1 >> 4) * b1) >> 16;
            dst[x] = ((t0 + t1 + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    Ok(out)
}

/// `cv2.resize(src, (dst_w, dst_h), interpolation=INTER_NEAREST)` for 8-bit HWC data: destination
/// pixel `(y, x)` copies source `(min(floor(y * s_y), h - 1), min(floor(x * s_x), w - 1))` with
/// `s = 1 / (dst/src)`.
pub fn resize_nearest(
    src: &[u8],
    src_h: usize,
    src_w: usize,
    cn: usize,
    dst_h: usize,
    dst_w: usize,
) -> Result<Vec<u8>, DataError> {
    check_buffer(src, src_h, src_w, cn)?;
    if dst_h == 0 || dst_w == 0 || src_h == 0 || src_w == 0 {
        return Ok(Vec::new());
    }
    let ifx = 1.0 / (dst_w as f64 / src_w as f64);
    let ify = 1.0 / (dst_h as f64 / src_h as f64);
    let xs: Vec<usize> = (0..dst_w)
        .map(|x| ((x as f64 * ifx).floor() as usize).min(src_w - 1))
        .collect();
    let mut out = Vec::with_capacity(dst_h * dst_w * cn);
    for y in 0..dst_h {
        let sy = ((y as f64 * ify).floor() as usize).min(src_h - 1);
        let row = &src[sy * src_w * cn..(sy + 1) * src_w * cn];
        for &sx in &xs {
            out.extend_from_slice(&row[sx * cn..(sx + 1) * cn]);
        }
    }
    Ok(out)
}

/// Resizes a sample: bilinear ([`resize_linear`]) image, nearest ([`resize_nearest`]) mask.
fn resize_sample(sample: Sample, h: usize, w: usize) -> Result<Sample, DataError> {
    sample.check()?;
    if h == 0 || w == 0 {
        return Err(DataError::Invalid(format!(
            "cannot resize to {h}x{w} (height x width)"
        )));
    }
    let im = sample.image;
    if (im.height, im.width) == (h, w) {
        return Ok(Sample {
            image: im,
            target: sample.target,
        });
    }
    let data = resize_linear(&im.data, im.height, im.width, im.channels, h, w)?;
    let target = match sample.target {
        Target::Mask(m) => Target::Mask(Mask {
            height: h,
            width: w,
            data: resize_nearest(&m.data, m.height, m.width, 1, h, w)?,
        }),
        t => t,
    };
    Ok(Sample {
        image: Image {
            height: h,
            width: w,
            channels: im.channels,
            data,
        },
        target,
    })
}

/// The size that albumentations' `LongestMaxSize(max_size)` gives an `height x width` image:
/// `scale = max_size / max(height, width)`, each side `round(side * scale)` (half to even); the
/// size is unchanged when the scale is exactly 1.
pub fn longest_max_size_dims(height: usize, width: usize, max_size: usize) -> (usize, usize) {
    let scale = max_size as f64 / height.max(width) as f64;
    if scale == 1.0 {
        return (height, width);
    }
    (
        round_half_even(height as f64 * scale) as usize,
        round_half_even(width as f64 * scale) as usize,
    )
}

/// `LongestMaxSize(max_size)`: rescales so that the longer side is `max_size` (up or down),
/// keeping the aspect ratio ([`longest_max_size_dims`]); bilinear image, nearest mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongestMaxSize {
    /// The length of the longer side after resizing.
    pub max_size: usize,
}

impl Transform for LongestMaxSize {
    fn apply(&self, sample: Sample, _rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        let (h, w) = longest_max_size_dims(sample.image.height, sample.image.width, self.max_size);
        resize_sample(sample, h, w)
    }
}

/// `Resize(height, width)` (albumentations, INTER_LINEAR): bilinear image, nearest mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize {
    /// Output rows.
    pub height: usize,
    /// Output columns.
    pub width: usize,
}

impl Transform for Resize {
    fn apply(&self, sample: Sample, _rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        resize_sample(sample, self.height, self.width)
    }
}

// ---------------------------------------------------------------------------------------------
// Padding, cropping, flipping

/// Albumentations' centred padding of `PadIfNeeded`: `(top, bottom, left, right)` with
/// `top = floor((min_height - height) / 2)`, `bottom` the rest (likewise left/right), and no
/// padding on a side that is already long enough.
pub fn pad_if_needed_offsets(
    height: usize,
    width: usize,
    min_height: usize,
    min_width: usize,
) -> (usize, usize, usize, usize) {
    let split = |have: usize, want: usize| {
        if have < want {
            let top = (want - have) / 2;
            (top, want - have - top)
        } else {
            (0, 0)
        }
    };
    let (top, bottom) = split(height, min_height);
    let (left, right) = split(width, min_width);
    (top, bottom, left, right)
}

/// Pads HWC data with a constant on each side (`cv2.copyMakeBorder(BORDER_CONSTANT)`).
pub fn pad_constant(
    src: &[u8],
    height: usize,
    width: usize,
    cn: usize,
    (top, bottom, left, right): (usize, usize, usize, usize),
    value: u8,
) -> Result<Vec<u8>, DataError> {
    check_buffer(src, height, width, cn)?;
    let new_w = width + left + right;
    let new_h = height + top + bottom;
    let mut out = vec![value; new_h * new_w * cn];
    for y in 0..height {
        let d = ((y + top) * new_w + left) * cn;
        out[d..d + width * cn].copy_from_slice(&src[y * width * cn..(y + 1) * width * cn]);
    }
    Ok(out)
}

/// `PadIfNeeded(min_height, min_width, border_mode=BORDER_CONSTANT, value, mask_value)`: pads the
/// image with `value` and the mask with `mask_value` up to at least `min_height x min_width`,
/// centred as [`pad_if_needed_offsets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadIfNeeded {
    /// Minimum rows.
    pub min_height: usize,
    /// Minimum columns.
    pub min_width: usize,
    /// Image fill value (0 in the reference).
    pub value: u8,
    /// Mask fill value (255 = ignore in the reference).
    pub mask_value: u8,
}

impl Transform for PadIfNeeded {
    fn apply(&self, sample: Sample, _rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        let im = sample.image;
        let pads = pad_if_needed_offsets(im.height, im.width, self.min_height, self.min_width);
        if pads == (0, 0, 0, 0) {
            return Ok(Sample {
                image: im,
                target: sample.target,
            });
        }
        let (h, w) = (im.height + pads.0 + pads.1, im.width + pads.2 + pads.3);
        let data = pad_constant(&im.data, im.height, im.width, im.channels, pads, self.value)?;
        let target = match sample.target {
            Target::Mask(m) => Target::Mask(Mask {
                height: h,
                width: w,
                data: pad_constant(&m.data, m.height, m.width, 1, pads, self.mask_value)?,
            }),
            t => t,
        };
        Ok(Sample {
            image: Image {
                height: h,
                width: w,
                channels: im.channels,
                data,
            },
            target,
        })
    }
}

/// Crops `height x width` at (`top`, `left`) from the image and its mask; errors when the window
/// does not fit.
pub fn crop_sample(
    sample: Sample,
    top: usize,
    left: usize,
    height: usize,
    width: usize,
) -> Result<Sample, DataError> {
    sample.check()?;
    let im = sample.image;
    if top + height > im.height || left + width > im.width || height == 0 || width == 0 {
        return Err(DataError::Invalid(format!(
            "crop of {height}x{width} at ({top}, {left}) does not fit a {}x{} image",
            im.height, im.width
        )));
    }
    let cut = |data: &[u8], w: usize, cn: usize| {
        let mut out = Vec::with_capacity(height * width * cn);
        for y in top..top + height {
            let s = (y * w + left) * cn;
            out.extend_from_slice(&data[s..s + width * cn]);
        }
        out
    };
    let data = cut(&im.data, im.width, im.channels);
    let target = match sample.target {
        Target::Mask(m) => Target::Mask(Mask {
            height,
            width,
            data: cut(&m.data, m.width, 1),
        }),
        t => t,
    };
    Ok(Sample {
        image: Image {
            height,
            width,
            channels: im.channels,
            data,
        },
        target,
    })
}

fn check_crop_fits(sample: &Sample, height: usize, width: usize) -> Result<(), DataError> {
    let im = &sample.image;
    if height > im.height || width > im.width {
        return Err(DataError::Invalid(format!(
            "requested crop size ({height}, {width}) is larger than the image size ({}, {})",
            im.height, im.width
        )));
    }
    Ok(())
}

/// `RandomCrop(height, width)` (as albumentations 1.3.1, checked): draws `h_start`, `w_start`
/// uniform in `[0, 1)` and crops at `top = floor((H - height + 1) * h_start)`,
/// `left = floor((W - width + 1) * w_start)`, i.e. uniformly over every valid offset (releases
/// before albumentations PR #1080 used `H - height` and never reached the last offset). An image
/// smaller than the crop is an error (as albumentations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomCrop {
    /// Crop rows.
    pub height: usize,
    /// Crop columns.
    pub width: usize,
}

impl Transform for RandomCrop {
    fn apply(&self, sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        check_crop_fits(&sample, self.height, self.width)?;
        let h_start = uniform01(rng);
        let w_start = uniform01(rng);
        let top = ((sample.image.height - self.height + 1) as f64 * h_start) as usize;
        let left = ((sample.image.width - self.width + 1) as f64 * w_start) as usize;
        crop_sample(sample, top, left, self.height, self.width)
    }
}

/// `CenterCrop(height, width)`: `top = (H - height) / 2`, `left = (W - width) / 2` (floor). An image
/// smaller than the crop is an error (as albumentations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CenterCrop {
    /// Crop rows.
    pub height: usize,
    /// Crop columns.
    pub width: usize,
}

impl Transform for CenterCrop {
    fn apply(&self, sample: Sample, _rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        check_crop_fits(&sample, self.height, self.width)?;
        let top = (sample.image.height - self.height) / 2;
        let left = (sample.image.width - self.width) / 2;
        crop_sample(sample, top, left, self.height, self.width)
    }
}

/// Mirrors the image and its mask left-right.
pub fn hflip_sample(sample: Sample) -> Result<Sample, DataError> {
    sample.check()?;
    let mut sample = sample;
    let flip = |data: &mut [u8], w: usize, cn: usize| {
        if w == 0 {
            return;
        }
        for row in data.chunks_mut(w * cn) {
            for x in 0..w / 2 {
                for k in 0..cn {
                    row.swap(x * cn + k, (w - 1 - x) * cn + k);
                }
            }
        }
    };
    let (w, cn) = (sample.image.width, sample.image.channels);
    flip(&mut sample.image.data, w, cn);
    if let Target::Mask(m) = &mut sample.target {
        flip(&mut m.data, w, 1);
    }
    Ok(sample)
}

/// `HorizontalFlip(p)`: mirrors image and mask when a uniform draw is below `p` (0.5 in the
/// reference).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HorizontalFlip {
    /// Probability of flipping.
    pub p: f64,
}

impl Transform for HorizontalFlip {
    fn apply(&self, sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        if uniform01(rng) < self.p {
            hflip_sample(sample)
        } else {
            Ok(sample)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Colour

/// Albumentations' 8-bit brightness/contrast lookup table (`_brightness_contrast_adjust_uint`):
/// in `f32`, `lut[i] = i * alpha + beta * 255` (`brightness_by_max`; otherwise
/// `+ alpha * beta * mean`), clipped to `[0, 255]` and truncated to `u8`. `mean` is the mean of all
/// image values (only used when `brightness_by_max` is false).
pub fn brightness_contrast_lut(
    alpha: f64,
    beta: f64,
    brightness_by_max: bool,
    mean: f64,
) -> [u8; 256] {
    let mut lut = [0u8; 256];
    let alpha32 = alpha as f32;
    let add = if brightness_by_max {
        (beta * 255.0) as f32
    } else {
        (alpha * beta * mean) as f32
    };
    for (i, out) in lut.iter_mut().enumerate() {
        let mut v = i as f32;
        if alpha != 1.0 {
            v *= alpha32;
        }
        if beta != 0.0 {
            v += add;
        }
        *out = v.clamp(0.0, 255.0) as u8;
    }
    lut
}

/// Applies [`brightness_contrast_lut`] to every value of the image (all channels).
pub fn brightness_contrast(image: &Image, alpha: f64, beta: f64, brightness_by_max: bool) -> Image {
    let mean = if brightness_by_max || image.data.is_empty() {
        0.0
    } else {
        image.data.iter().map(|&v| f64::from(v)).sum::<f64>() / image.data.len() as f64
    };
    let lut = brightness_contrast_lut(alpha, beta, brightness_by_max, mean);
    Image {
        data: image.data.iter().map(|&v| lut[v as usize]).collect(),
        ..image.clone()
    }
}

/// `RandomBrightnessContrast(brightness_limit, contrast_limit, brightness_by_max, p)`: when a
/// uniform draw is below `p`, draws `alpha = 1 + U(-contrast_limit, contrast_limit)` then
/// `beta = U(-brightness_limit, brightness_limit)` and applies [`brightness_contrast`]. The mask is
/// unchanged. Reference: limits 0.3, `brightness_by_max` true, `p` 0.5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomBrightnessContrast {
    /// Brightness shift range `[-l, l]` (fraction of 255 when `brightness_by_max`).
    pub brightness_limit: f64,
    /// Contrast factor range `1 + [-l, l]`.
    pub contrast_limit: f64,
    /// Brightness relative to the maximum value (true) or to the image mean (false).
    pub brightness_by_max: bool,
    /// Probability of applying.
    pub p: f64,
}

impl Default for RandomBrightnessContrast {
    /// The reference's `RandomBrightnessContrast(0.3, 0.3, p=0.5)` (`brightness_by_max` true).
    fn default() -> Self {
        RandomBrightnessContrast {
            brightness_limit: 0.3,
            contrast_limit: 0.3,
            brightness_by_max: true,
            p: 0.5,
        }
    }
}

impl Transform for RandomBrightnessContrast {
    fn apply(&self, sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        if uniform01(rng) >= self.p {
            return Ok(sample);
        }
        let alpha = 1.0 + uniform(rng, -self.contrast_limit, self.contrast_limit);
        let beta = uniform(rng, -self.brightness_limit, self.brightness_limit);
        let image = brightness_contrast(&sample.image, alpha, beta, self.brightness_by_max);
        Ok(Sample {
            image,
            target: sample.target,
        })
    }
}

fn hsv_tables() -> &'static ([i32; 256], [i32; 256]) {
    static TABLES: std::sync::OnceLock<([i32; 256], [i32; 256])> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut sdiv = [0i32; 256];
        let mut hdiv = [0i32; 256];
        for i in 1..256 {
            sdiv[i] = round_half_even(f64::from(255 << 12) / i as f64) as i32;
            hdiv[i] = round_half_even(f64::from(180 << 12) / (6.0 * i as f64)) as i32;
        }
        (sdiv, hdiv)
    })
}

/// OpenCV's 8-bit `COLOR_RGB2HSV` of one pixel: `v = max`, `s = round(255 * (v - min) / v)` and
/// hue in `0..180` (degrees / 2), in its 12-bit fixed-point arithmetic.
pub fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (sdiv, hdiv) = hsv_tables();
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let v = r.max(g).max(b);
    let vmin = r.min(g).min(b);
    let diff = v - vmin;
    let s = (diff * sdiv[v as usize] + (1 << 11)) >> 12;
    let h = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut h = (h * hdiv[diff as usize] + (1 << 11)) >> 12;
    if h < 0 {
        h += 180;
    }
    (h.clamp(0, 255) as u8, s as u8, v as u8)
}

/// Pixels per block of OpenCV's vectorised 8-bit `COLOR_HSV2RGB` on x86 (its AVX2 build: 4 vectors
/// of 8 floats). Within a row, the pixels of whole blocks are truncated to `u8`, the remaining
/// `width % 32` pixels are rounded ([`hsv_to_rgb_row`]).
pub const HSV2RGB_BLOCK: usize = 32;

/// OpenCV's `HSV2RGB` arithmetic in `f32` (hue `0..180`): returns `(r, g, b)` scaled to `0..=255`,
/// before the conversion to `u8`.
fn hsv_to_rgb_f32(h: u8, s: u8, v: u8) -> [f32; 3] {
    let hscale = 6.0f32 / 180.0;
    let sf = f32::from(s) * (1.0f32 / 255.0);
    let vf = f32::from(v) * (1.0f32 / 255.0);
    // (b, g, r) entries of [v, v(1-s), v(1-sh), v(1-s(1-h))] by sector.
    const SECTORS: [[usize; 3]; 6] = [
        [1, 3, 0],
        [1, 0, 2],
        [3, 0, 1],
        [0, 2, 1],
        [0, 1, 3],
        [2, 1, 0],
    ];
    let mut hf = f32::from(h) * hscale;
    let sector = hf.floor();
    hf -= sector;
    let sector = (sector as usize) % 6;
    // OpenCV's AVX2 build fuses `1 - s * h` into one multiply-add (single rounding).
    let tab = [
        vf,
        vf * (1.0 - sf),
        vf * (-sf).mul_add(hf, 1.0),
        vf * (-sf).mul_add(1.0 - hf, 1.0),
    ];
    let idx = SECTORS[sector];
    [
        tab[idx[2]] * 255.0,
        tab[idx[1]] * 255.0,
        tab[idx[0]] * 255.0,
    ]
}

/// OpenCV's 8-bit `COLOR_HSV2RGB` of one pixel as its scalar code (hue in `0..180`): computed in
/// `f32` from `h * 6/180`, `s / 255`, `v / 255` by hue sector (with `1 - s * h` as one fused
/// multiply-add, as OpenCV's AVX2 build), each channel `round(x * 255)` (half to even).
pub fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    let [r, g, b] = hsv_to_rgb_f32(h, s, v);
    (saturate_u8_f32(r), saturate_u8_f32(g), saturate_u8_f32(b))
}

/// As [`hsv_to_rgb`] but truncating `x * 255` (OpenCV's vector code path).
pub fn hsv_to_rgb_truncated(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    let [r, g, b] = hsv_to_rgb_f32(h, s, v);
    let t = |x: f32| x.clamp(0.0, 255.0) as u8;
    (t(r), t(g), t(b))
}

/// `cv2.cvtColor(row, COLOR_HSV2RGB)` of one image row (HSV triplets) as OpenCV 4.10 on x86 with
/// AVX2: the first `HSV2RGB_BLOCK * floor(width / HSV2RGB_BLOCK)` pixels through
/// [`hsv_to_rgb_truncated`], the rest through [`hsv_to_rgb`]. Rows whose width is a multiple of 32
/// (the reference's 512-pixel crops) are truncated throughout.
pub fn hsv_to_rgb_row(hsv: &[u8]) -> Vec<u8> {
    let width = hsv.len() / 3;
    let vector_end = width / HSV2RGB_BLOCK * HSV2RGB_BLOCK;
    let mut out = Vec::with_capacity(width * 3);
    for (i, p) in hsv.chunks_exact(3).enumerate() {
        let (r, g, b) = if i < vector_end {
            hsv_to_rgb_truncated(p[0], p[1], p[2])
        } else {
            hsv_to_rgb(p[0], p[1], p[2])
        };
        out.extend_from_slice(&[r, g, b]);
    }
    out
}

/// Albumentations' `shift_hsv` for 8-bit RGB: to HSV ([`rgb_to_hsv`]), then lookup tables
/// `h' = trunc((h + hue_shift) mod 180)` (Python's non-negative modulo), `s' = trunc(clip(s +
/// sat_shift, 0, 255))`, `v' = trunc(clip(v + val_shift, 0, 255))` (a zero shift leaves its channel
/// alone), back to RGB row by row ([`hsv_to_rgb_row`]). All shifts zero returns the image
/// unchanged. Needs 3 channels.
pub fn shift_hsv(
    image: &Image,
    hue_shift: f64,
    sat_shift: f64,
    val_shift: f64,
) -> Result<Image, DataError> {
    if image.channels != 3 {
        return Err(DataError::Invalid(format!(
            "HueSaturationValue needs an RGB image, not {} channels",
            image.channels
        )));
    }
    check_buffer(&image.data, image.height, image.width, 3)?;
    if hue_shift == 0.0 && sat_shift == 0.0 && val_shift == 0.0 || image.width == 0 {
        return Ok(image.clone());
    }
    let mut lut_h = [0u8; 256];
    let mut lut_s = [0u8; 256];
    let mut lut_v = [0u8; 256];
    for i in 0..256 {
        let x = i as f64;
        lut_h[i] = if hue_shift != 0.0 {
            (x + hue_shift).rem_euclid(180.0) as u8
        } else {
            i as u8
        };
        lut_s[i] = if sat_shift != 0.0 {
            (x + sat_shift).clamp(0.0, 255.0) as u8
        } else {
            i as u8
        };
        lut_v[i] = if val_shift != 0.0 {
            (x + val_shift).clamp(0.0, 255.0) as u8
        } else {
            i as u8
        };
    }
    let mut data = Vec::with_capacity(image.data.len());
    let mut hsv = Vec::with_capacity(image.width * 3);
    for row in image.data.chunks_exact(image.width * 3) {
        hsv.clear();
        for px in row.chunks_exact(3) {
            let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
            hsv.extend_from_slice(&[lut_h[h as usize], lut_s[s as usize], lut_v[v as usize]]);
        }
        data.extend_from_slice(&hsv_to_rgb_row(&hsv));
    }
    Ok(Image {
        data,
        ..image.clone()
    })
}

/// `HueSaturationValue(hue_shift_limit, sat_shift_limit, val_shift_limit, p)`: when a uniform draw
/// is below `p`, draws the hue, saturation and value shifts uniformly in `[-limit, limit]` (in that
/// order) and applies [`shift_hsv`]. The mask is unchanged. Reference: 20, 30, 20, `p` 0.5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HueSaturationValue {
    /// Hue shift range, in OpenCV hue units (0..180 = 0..360 degrees).
    pub hue_shift_limit: f64,
    /// Saturation shift range (0..255 scale).
    pub sat_shift_limit: f64,
    /// Value shift range (0..255 scale).
    pub val_shift_limit: f64,
    /// Probability of applying.
    pub p: f64,
}

impl Default for HueSaturationValue {
    /// Albumentations' defaults, as the reference: 20, 30, 20, `p` 0.5.
    fn default() -> Self {
        HueSaturationValue {
            hue_shift_limit: 20.0,
            sat_shift_limit: 30.0,
            val_shift_limit: 20.0,
            p: 0.5,
        }
    }
}

impl Transform for HueSaturationValue {
    fn apply(&self, sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        if uniform01(rng) >= self.p {
            return Ok(sample);
        }
        let hue = uniform(rng, -self.hue_shift_limit, self.hue_shift_limit);
        let sat = uniform(rng, -self.sat_shift_limit, self.sat_shift_limit);
        let val = uniform(rng, -self.val_shift_limit, self.val_shift_limit);
        let image = shift_hsv(&sample.image, hue, sat, val)?;
        Ok(Sample {
            image,
            target: sample.target,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The reference's pipelines

/// VOC training: `LongestMaxSize(640)` → `PadIfNeeded(512, 512, 0, 255)` → `RandomCrop(512, 512)`
/// → `HorizontalFlip(0.5)` → `RandomBrightnessContrast(0.3, 0.3, p 0.5)` →
/// `HueSaturationValue(20, 30, 20, p 0.5)`.
pub fn voc_train() -> Compose {
    Compose::new(vec![
        Box::new(LongestMaxSize { max_size: 640 }),
        Box::new(PadIfNeeded {
            min_height: 512,
            min_width: 512,
            value: 0,
            mask_value: 255,
        }),
        Box::new(RandomCrop {
            height: 512,
            width: 512,
        }),
        Box::new(HorizontalFlip { p: 0.5 }),
        Box::new(RandomBrightnessContrast::default()),
        Box::new(HueSaturationValue::default()),
    ])
}

/// VOC validation/test: `LongestMaxSize(480)` → `PadIfNeeded(480, 480, 0, 255)`.
pub fn voc_eval() -> Compose {
    Compose::new(vec![
        Box::new(LongestMaxSize { max_size: 480 }),
        Box::new(PadIfNeeded {
            min_height: 480,
            min_width: 480,
            value: 0,
            mask_value: 255,
        }),
    ])
}

/// CUB training: `Resize(256, 256)` → `RandomCrop(224, 224)` → `HorizontalFlip(0.5)`.
pub fn cub_train() -> Compose {
    Compose::new(vec![
        Box::new(Resize {
            height: 256,
            width: 256,
        }),
        Box::new(RandomCrop {
            height: 224,
            width: 224,
        }),
        Box::new(HorizontalFlip { p: 0.5 }),
    ])
}

/// CUB test: `Resize(256, 256)` → `CenterCrop(224, 224)`.
pub fn cub_eval() -> Compose {
    Compose::new(vec![
        Box::new(Resize {
            height: 256,
            width: 256,
        }),
        Box::new(CenterCrop {
            height: 224,
            width: 224,
        }),
    ])
}
