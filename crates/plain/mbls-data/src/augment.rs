//! Image augmentations of the reference (torchvision-style) and conversion to normalised CHW floats.
//!
//! The reference's CIFAR-10 and Tiny-ImageNet pipelines are
//! `RandomCrop(size, padding=4) → RandomHorizontalFlip() → ToTensor → Normalize(mean, std)` for
//! training and `ToTensor → Normalize` for evaluation. This module provides the same operations on
//! [`Image`]s (8-bit HWC), with torchvision's semantics for PIL images:
//!
//! * [`RandomCrop`]: zero padding of `padding` pixels on every side, then a `size`×`size` window
//!   whose top row is drawn uniformly in `0..=H+2p-size` and then its left column likewise
//!   (no draw when the padded image is exactly the window, as torchvision).
//! * [`RandomHorizontalFlip`]: mirrors left–right when a uniform draw in `[0, 1)` is `< p`.
//! * [`Resize`]: Pillow's bilinear resampling (which torchvision uses for PIL images): a triangle
//!   filter widened by the scale factor when shrinking (antialiasing), 22-bit fixed-point
//!   coefficients, two separable passes with 8-bit rounding in between. An integer size sets the
//!   shorter side (the longer one is `int(size * long / short)`). The output is bit-identical to
//!   Pillow 13.0 (the version torchvision 0.26 installs), including its pass order: vertical first
//!   when the height shrinks by more than twice as many pixels as the width
//!   (python-pillow/Pillow#9549), horizontal first otherwise. Pillow 12 and older always went
//!   horizontal first; in the affected cases the two orders differ by at most one gray level.
//! * [`CenterCrop`]: torchvision's offsets `int(round((H - h) / 2.0))` (Python rounds halves to
//!   even) with zero padding first when the crop is larger than the image.
//! * [`Compose`] and [`Identity`].
//! * [`Normalize`]: `ToTensor` (division by 255 in `f32`) then `Normalize` (subtract the mean,
//!   then divide by the standard deviation, both `f32`), written into a CHW `f32` slice. The result
//!   is bit-identical to torchvision (checked by `tests/augment_fixtures.rs`). RGB images, or grey
//!   ones with a 1-channel normalisation ([`Normalize::MNIST`], [`Normalize::FASHION_MNIST`]).
//!
//! A [`Target::Mask`] is transformed together with its image: crops and flips move it the same
//! way (padding is filled with 0, torchvision's fill), and [`Resize`] uses nearest-neighbour
//! sampling for it.
//!
//! All randomness comes from the `rng` argument of [`Transform::apply`] through
//! [`uniform_below`] and [`uniform_f32`], so results depend only on the loader's
//! (seed, epoch, sample index) derivation.

use crate::{DataError, Image, Mask, Sample, Target, Transform};
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

/// Per-channel mean of CIFAR-10 used by the reference (`calibrate.data.cifar10`).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation of CIFAR-10 used by the reference.
pub const CIFAR10_STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
/// ImageNet per-channel mean (Tiny-ImageNet, CUB and VOC pipelines of the reference).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Mean of the MNIST training images (one grey channel; not in the reference).
pub const MNIST_MEAN: f32 = 0.1307;
/// Standard deviation of the MNIST training images.
pub const MNIST_STD: f32 = 0.3081;
/// Mean of the Fashion-MNIST training images (one grey channel; not in the reference).
pub const FASHION_MNIST_MEAN: f32 = 0.2860;
/// Standard deviation of the Fashion-MNIST training images.
pub const FASHION_MNIST_STD: f32 = 0.3530;

/// A uniform integer in `0..n` drawn from `rng` (`n > 0`; returns 0 when `n <= 1` without drawing).
///
/// Lemire's multiply-and-reject method on 32-bit draws for `n <= 2^32`, on 64-bit draws above;
/// unbiased. This is the project's own scheme, not torch's `randint` stream.
pub fn uniform_below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n64 = n as u64;
    if n64 <= u64::from(u32::MAX) + 1 {
        // 32-bit path: m = x * n; accept unless the low part falls in the biased zone.
        let threshold = ((1u64 << 32) - n64) % n64;
        loop {
            let m = u64::from(rng.next_u32()) * n64;
            if (m & 0xffff_ffff) >= threshold {
                return (m >> 32) as usize;
            }
        }
    } else {
        let n128 = u128::from(n64);
        let threshold = n64.wrapping_neg() % n64;
        loop {
            let m = u128::from(rng.next_u64()) * n128;
            if (m as u64) >= threshold {
                return (m >> 64) as usize;
            }
        }
    }
}

/// A uniform `f32` in `[0, 1)` with 24 random bits (one 32-bit draw from `rng`).
pub fn uniform_f32(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Copies the window of `plane` (rows `top..top+out_h`, columns `left..left+out_w`, coordinates
/// that may lie outside the plane, which reads as `fill`) into a new `out_h × out_w` plane.
#[allow(clippy::too_many_arguments)]
fn window(
    data: &[u8],
    height: usize,
    width: usize,
    channels: usize,
    top: isize,
    left: isize,
    out_h: usize,
    out_w: usize,
    fill: u8,
) -> Vec<u8> {
    let mut out = vec![fill; out_h * out_w * channels];
    // Column range of the output that falls inside the source.
    let c0 = (-left).clamp(0, out_w as isize) as usize;
    let c1 = (width as isize - left).clamp(0, out_w as isize) as usize;
    if c0 >= c1 {
        return out;
    }
    for r in 0..out_h {
        let sr = top + r as isize;
        if sr < 0 || sr >= height as isize {
            continue;
        }
        let src_start = (sr as usize * width + (left + c0 as isize) as usize) * channels;
        let len = (c1 - c0) * channels;
        let dst_start = (r * out_w + c0) * channels;
        out[dst_start..dst_start + len].copy_from_slice(&data[src_start..src_start + len]);
    }
    out
}

/// Crops (and pads) a sample: the output's pixel `(r, c)` is the input's `(top + r, left + c)`,
/// zero outside.
fn crop_sample(sample: Sample, top: isize, left: isize, out_h: usize, out_w: usize) -> Sample {
    let im = &sample.image;
    let data = window(
        &im.data,
        im.height,
        im.width,
        im.channels,
        top,
        left,
        out_h,
        out_w,
        0,
    );
    let image = Image {
        height: out_h,
        width: out_w,
        channels: im.channels,
        data,
    };
    let target = match sample.target {
        Target::Mask(m) => Target::Mask(Mask {
            height: out_h,
            width: out_w,
            data: window(&m.data, m.height, m.width, 1, top, left, out_h, out_w, 0),
        }),
        t => t,
    };
    Sample { image, target }
}

/// torchvision's `RandomCrop(size, padding)` on a PIL image: pads every side with `padding`
/// zero pixels, then takes a uniformly random `size × size` window (top drawn first, then left).
/// A mask target is cropped identically (padded with 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomCrop {
    /// Side of the square output.
    pub size: usize,
    /// Zero padding added on all four sides before cropping.
    pub padding: usize,
}

impl RandomCrop {
    /// Crops the window at `(top, left)` of the padded image (`top, left <= H + 2p - size`); the
    /// deterministic part of [`RandomCrop`], exposed for tests and fixtures.
    pub fn crop_at(&self, sample: Sample, top: usize, left: usize) -> Result<Sample, DataError> {
        sample.check()?;
        let (ph, pw) = self.padded(&sample)?;
        if top + self.size > ph || left + self.size > pw {
            return Err(DataError::Invalid(format!(
                "crop window at ({top}, {left}) of size {} exceeds the padded {ph}x{pw} image",
                self.size
            )));
        }
        let p = self.padding as isize;
        Ok(crop_sample(
            sample,
            top as isize - p,
            left as isize - p,
            self.size,
            self.size,
        ))
    }

    fn padded(&self, sample: &Sample) -> Result<(usize, usize), DataError> {
        let ph = sample.image.height + 2 * self.padding;
        let pw = sample.image.width + 2 * self.padding;
        if self.size == 0 || self.size > ph || self.size > pw {
            return Err(DataError::Invalid(format!(
                "RandomCrop size {} does not fit the padded {ph}x{pw} image",
                self.size
            )));
        }
        Ok((ph, pw))
    }
}

impl Transform for RandomCrop {
    fn apply(&self, sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        let (ph, pw) = self.padded(&sample)?;
        let (top, left) = if ph == self.size && pw == self.size {
            (0, 0)
        } else {
            let top = uniform_below(rng, ph - self.size + 1);
            let left = uniform_below(rng, pw - self.size + 1);
            (top, left)
        };
        self.crop_at(sample, top, left)
    }
}

fn flip_rows(data: &mut [u8], width: usize, channels: usize) {
    if width == 0 || channels == 0 {
        return;
    }
    for row in data.chunks_exact_mut(width * channels) {
        if channels == 3 {
            let (mut a, mut b) = (0usize, width - 1);
            while a < b {
                for k in 0..3 {
                    row.swap(a * 3 + k, b * 3 + k);
                }
                a += 1;
                b -= 1;
            }
        } else {
            let (mut a, mut b) = (0usize, width - 1);
            while a < b {
                for k in 0..channels {
                    row.swap(a * channels + k, b * channels + k);
                }
                a += 1;
                b -= 1;
            }
        }
    }
}

/// Mirrors a sample left–right (image and mask): the deterministic part of
/// [`RandomHorizontalFlip`].
pub fn hflip(mut sample: Sample) -> Result<Sample, DataError> {
    sample.check()?;
    let im = &mut sample.image;
    flip_rows(&mut im.data, im.width, im.channels);
    if let Target::Mask(m) = &mut sample.target {
        flip_rows(&mut m.data, m.width, 1);
    }
    Ok(sample)
}

/// torchvision's `RandomHorizontalFlip(p)`: flips when one uniform draw in `[0, 1)` is below `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomHorizontalFlip {
    /// Probability of flipping (the reference uses 0.5).
    pub p: f32,
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        RandomHorizontalFlip { p: 0.5 }
    }
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        if uniform_f32(rng) < self.p {
            hflip(sample)
        } else {
            sample.check()?;
            Ok(sample)
        }
    }
}

/// The output size of a [`Resize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeSize {
    /// The shorter side becomes this; the longer is `int(size * long / short)` (torchvision).
    Shorter(usize),
    /// Exactly `(height, width)`.
    Exact(usize, usize),
}

/// torchvision's `Resize` on a PIL image with bilinear interpolation (Pillow's antialiased
/// resampling). A mask target is resized with nearest-neighbour sampling (source pixel
/// `floor((x + 0.5) * in / out)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize {
    /// The requested size.
    pub size: ResizeSize,
}

impl Resize {
    /// Resize so that the shorter side is `size`.
    pub fn shorter(size: usize) -> Self {
        Resize {
            size: ResizeSize::Shorter(size),
        }
    }

    /// Resize to exactly `height × width`.
    pub fn exact(height: usize, width: usize) -> Self {
        Resize {
            size: ResizeSize::Exact(height, width),
        }
    }

    /// The `(height, width)` this transform produces from an `height × width` input.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        match self.size {
            ResizeSize::Exact(h, w) => (h, w),
            ResizeSize::Shorter(s) => {
                if height == 0 || width == 0 {
                    return (height, width);
                }
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                if width <= height {
                    (new_long, s)
                } else {
                    (s, new_long)
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 22;

/// Pillow-style resampling coefficients of one axis: for every output position the first input
/// position, the number of taps and the fixed-point weights (`ksize` per output position).
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

fn bilinear_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle filter has support 1
    let ksize = support.ceil() as usize * 2 + 1;
    let inv = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // Truncation toward zero (C casts), then clamping, as Pillow.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut total = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = triangle((x as f64 + xmin as f64 - center + 0.5) * inv);
            *kx = w;
            total += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let w = if total != 0.0 { kx / total } else { *kx };
            let f = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (f - 0.5).trunc() as i32
            } else {
                (f + 0.5).trunc() as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        bounds,
        ksize,
        weights,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    let v = v >> PRECISION_BITS;
    v.clamp(0, 255) as u8
}

/// Resamples rows: `src` is `height × in_w × ch`, the result `height × out_w × ch`.
fn resample_horizontal(src: &[u8], height: usize, in_w: usize, ch: usize, c: &Coeffs) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; height * out_w * ch];
    for y in 0..height {
        let row = &src[y * in_w * ch..(y + 1) * in_w * ch];
        let orow = &mut out[y * out_w * ch..(y + 1) * out_w * ch];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
            for b in 0..ch {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (x, &w) in k.iter().enumerate() {
                    ss = ss.wrapping_add(i32::from(row[(xmin + x) * ch + b]).wrapping_mul(w));
                }
                orow[xx * ch + b] = clip8(ss);
            }
        }
    }
    out
}

/// Resamples columns: `src` is `in_h × width × ch`, the result `out_h × width × ch`.
fn resample_vertical(src: &[u8], width: usize, ch: usize, c: &Coeffs) -> Vec<u8> {
    let out_h = c.bounds.len();
    let stride = width * ch;
    let mut out = vec![0u8; out_h * stride];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
        let orow = &mut out[yy * stride..(yy + 1) * stride];
        for (i, o) in orow.iter_mut().enumerate() {
            let mut ss: i32 = 1 << (PRECISION_BITS - 1);
            for (y, &w) in k.iter().enumerate() {
                ss = ss.wrapping_add(i32::from(src[(ymin + y) * stride + i]).wrapping_mul(w));
            }
            *o = clip8(ss);
        }
    }
    out
}

/// Pillow's bilinear resize of an 8-bit HWC buffer (horizontal pass first, 8-bit intermediate).
fn resize_bilinear(im: &Image, out_h: usize, out_w: usize) -> Image {
    let ch = im.channels;
    let mut data = std::borrow::Cow::Borrowed(&im.data[..]);
    // Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks
    // by more than twice as many pixels as the width; earlier versions always went horizontal
    // first (results differ by at most one gray level between the two orders).
    let shrink_h = im.height as i64 - out_h as i64;
    let shrink_w = im.width as i64 - out_w as i64;
    let vertical_first = shrink_h > 0 && shrink_h > 2 * shrink_w;
    if vertical_first {
        if out_h != im.height {
            let c = bilinear_coeffs(im.height, out_h);
            data = resample_vertical(&data, im.width, ch, &c).into();
        }
        if out_w != im.width {
            let c = bilinear_coeffs(im.width, out_w);
            data = resample_horizontal(&data, out_h, im.width, ch, &c).into();
        }
    } else {
        if out_w != im.width {
            let c = bilinear_coeffs(im.width, out_w);
            data = resample_horizontal(&data, im.height, im.width, ch, &c).into();
        }
        if out_h != im.height {
            let c = bilinear_coeffs(im.height, out_h);
            data = resample_vertical(&data, out_w, ch, &c).into();
        }
    }
    Image {
        height: out_h,
        width: out_w,
        channels: ch,
        data: data.into_owned(),
    }
}

fn resize_nearest(m: &Mask, out_h: usize, out_w: usize) -> Mask {
    let src_of = |o: usize, out: usize, inp: usize| -> usize {
        (((o as f64 + 0.5) * inp as f64 / out as f64) as usize).min(inp - 1)
    };
    let cols: Vec<usize> = (0..out_w).map(|x| src_of(x, out_w, m.width)).collect();
    let mut data = Vec::with_capacity(out_h * out_w);
    for y in 0..out_h {
        let sy = src_of(y, out_h, m.height);
        let row = &m.data[sy * m.width..(sy + 1) * m.width];
        data.extend(cols.iter().map(|&x| row[x]));
    }
    Mask {
        height: out_h,
        width: out_w,
        data,
    }
}

impl Transform for Resize {
    fn apply(&self, sample: Sample, _rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        let im = &sample.image;
        if im.height == 0 || im.width == 0 {
            return Err(DataError::Invalid(format!(
                "cannot resize an empty {}x{} image",
                im.height, im.width
            )));
        }
        let (oh, ow) = self.output_size(im.height, im.width);
        if oh == 0 || ow == 0 {
            return Err(DataError::Invalid(format!(
                "Resize {:?} of a {}x{} image gives an empty {oh}x{ow} image",
                self.size, im.height, im.width
            )));
        }
        if (oh, ow) == (im.height, im.width) {
            return Ok(sample);
        }
        let image = resize_bilinear(im, oh, ow);
        let target = match sample.target {
            Target::Mask(m) => Target::Mask(resize_nearest(&m, oh, ow)),
            t => t,
        };
        Ok(Sample { image, target })
    }
}

/// Python's `int(round(d / 2.0))` for a non-negative integer `d` (halves round to even).
fn half_round_even(d: usize) -> usize {
    let m = d / 2;
    if d % 2 == 0 || m % 2 == 0 { m } else { m + 1 }
}

/// torchvision's `CenterCrop((height, width))`: pads with zeros (left/top get `(size - W) // 2`)
/// when the crop is larger than the image, then crops at `int(round((H - h) / 2.0))`,
/// `int(round((W - w) / 2.0))`. A mask target is cropped identically (padding 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CenterCrop {
    /// Output rows.
    pub height: usize,
    /// Output columns.
    pub width: usize,
}

impl CenterCrop {
    /// A square crop.
    pub fn square(size: usize) -> Self {
        CenterCrop {
            height: size,
            width: size,
        }
    }
}

impl Transform for CenterCrop {
    fn apply(&self, sample: Sample, _rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        sample.check()?;
        let (h, w) = (sample.image.height, sample.image.width);
        if self.height == 0 || self.width == 0 {
            return Err(DataError::Invalid(format!(
                "CenterCrop size {}x{} is empty",
                self.height, self.width
            )));
        }
        // Padding first (torchvision pads left/top by (size - W) // 2 and right/bottom by the rest).
        let pad_top = if self.height > h {
            (self.height - h) / 2
        } else {
            0
        };
        let pad_left = if self.width > w {
            (self.width - w) / 2
        } else {
            0
        };
        let ph = h.max(self.height);
        let pw = w.max(self.width);
        let top = half_round_even(ph - self.height) as isize - pad_top as isize;
        let left = half_round_even(pw - self.width) as isize - pad_left as isize;
        if (top, left, self.height, self.width) == (0, 0, h, w) {
            return Ok(sample);
        }
        Ok(crop_sample(sample, top, left, self.height, self.width))
    }
}

/// Applies transforms in order (torchvision's `Compose`); an empty list is the identity.
#[derive(Default)]
pub struct Compose {
    /// The transforms, first applied first.
    pub transforms: Vec<Box<dyn Transform>>,
}

impl Compose {
    /// A composition of `transforms`.
    pub fn new(transforms: Vec<Box<dyn Transform>>) -> Self {
        Compose { transforms }
    }
}

impl std::fmt::Debug for Compose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compose")
            .field("len", &self.transforms.len())
            .finish()
    }
}

impl Transform for Compose {
    fn apply(&self, mut sample: Sample, rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        for t in &self.transforms {
            sample = t.apply(sample, rng)?;
        }
        Ok(sample)
    }
}

/// The transform that changes nothing (evaluation pipelines: only ToTensor → Normalize).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl Transform for Identity {
    fn apply(&self, sample: Sample, _rng: &mut ChaCha8Rng) -> Result<Sample, DataError> {
        Ok(sample)
    }
}

/// `ToTensor` followed by `Normalize(mean, std)`: `((x as f32) / 255 - mean[c]) / std[c]`, each
/// step rounded to `f32` in that order, as torchvision computes it.
///
/// A normalisation is for 3-channel (RGB) images or for 1-channel (grey) images
/// ([`Normalize::gray`], e.g. [`Normalize::MNIST`]); an image with another channel count is an
/// error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Per-channel mean (of values in `[0, 1]`); for a 1-channel normalisation the three
    /// entries are equal and only the first is used.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (as `mean` for 1 channel).
    pub std: [f32; 3],
    /// Channels of the images it applies to: 3 (RGB) or 1 (grey).
    pub channels: usize,
}

impl Normalize {
    /// The reference's CIFAR-10 normalisation.
    pub const CIFAR10: Normalize = Normalize {
        mean: CIFAR10_MEAN,
        std: CIFAR10_STD,
        channels: 3,
    };
    /// ImageNet normalisation (Tiny-ImageNet, CUB, VOC).
    pub const IMAGENET: Normalize = Normalize {
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        channels: 3,
    };
    /// MNIST's `Normalize((0.1307,), (0.3081,))` for 1-channel images.
    pub const MNIST: Normalize = Normalize::gray(MNIST_MEAN, MNIST_STD);
    /// Fashion-MNIST's `Normalize((0.2860,), (0.3530,))` for 1-channel images.
    pub const FASHION_MNIST: Normalize = Normalize::gray(FASHION_MNIST_MEAN, FASHION_MNIST_STD);

    /// A normalisation of 1-channel (grey) images with `mean` and `std`.
    pub const fn gray(mean: f32, std: f32) -> Normalize {
        Normalize {
            mean: [mean; 3],
            std: [std; 3],
            channels: 1,
        }
    }

    /// The means of the channels it applies to (`channels` values).
    pub fn channel_mean(&self) -> &[f32] {
        &self.mean[..self.channels.min(3)]
    }

    /// The standard deviations of the channels it applies to (`channels` values).
    pub fn channel_std(&self) -> &[f32] {
        &self.std[..self.channels.min(3)]
    }

    /// The normalised value of byte `x` in channel `c` (`c < 3`).
    #[inline]
    pub fn value(&self, c: usize, x: u8) -> f32 {
        (f32::from(x) / 255.0f32 - self.mean[c]) / self.std[c]
    }

    /// The 256 possible outputs of each channel (bit-identical to [`Normalize::value`]).
    pub fn table(&self) -> [[f32; 256]; 3] {
        let mut t = [[0f32; 256]; 3];
        for (c, tc) in t.iter_mut().enumerate() {
            for (x, v) in tc.iter_mut().enumerate() {
                *v = self.value(c, x as u8);
            }
        }
        t
    }

    /// Writes `image` (HWC, [`Normalize::channels`] channels) into `out` as CHW floats;
    /// `out.len()` must be `channels * height * width`.
    pub fn write_chw(&self, image: &Image, out: &mut [f32]) -> Result<(), DataError> {
        self.write_chw_with(&self.table(), image, out)
    }

    /// [`Normalize::write_chw`] with a precomputed [`Normalize::table`] (the loader's fast path).
    pub fn write_chw_with(
        &self,
        table: &[[f32; 256]; 3],
        image: &Image,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let hw = image.height * image.width;
        let c = self.channels;
        if (c != 1 && c != 3) || image.channels != c {
            return Err(DataError::Invalid(format!(
                "Normalize needs {c}-channel images, got {} channels",
                image.channels
            )));
        }
        if image.data.len() != hw * c || out.len() != hw * c {
            return Err(DataError::Invalid(format!(
                "Normalize: {}x{}x{c} image with {} bytes into a buffer of {} floats",
                image.height,
                image.width,
                image.data.len(),
                out.len()
            )));
        }
        if c == 1 {
            for (o, &px) in out.iter_mut().zip(&image.data) {
                *o = table[0][px as usize];
            }
            return Ok(());
        }
        let (r, rest) = out.split_at_mut(hw);
        let (g, b) = rest.split_at_mut(hw);
        for (i, px) in image.data.chunks_exact(3).enumerate() {
            r[i] = table[0][px[0] as usize];
            g[i] = table[1][px[1] as usize];
            b[i] = table[2][px[2] as usize];
        }
        Ok(())
    }

    /// `image` as a new CHW vector.
    pub fn to_chw(&self, image: &Image) -> Result<Vec<f32>, DataError> {
        let mut out = vec![0f32; image.height * image.width * image.channels];
        self.write_chw(image, &mut out)?;
        Ok(out)
    }
}
