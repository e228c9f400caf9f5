//! Hand-written AVX2 versions of the two MbLS-specific passes of the dense kernel (and of the
//! per-pixel max every dense loss needs). LLVM's auto-vectoriser turned the portable loops
//! into masked stores and per-lane branches; these keep the running values of several pixel
//! vectors in registers across the class planes. They do exactly the scalar loops'
//! operations in the same order (no fused multiply-adds), so results are the same bits.

use mbls_base::fastmath;
use std::arch::x86_64::*;

/// Pixels per block of the max pass (4 vectors of 8).
const MAX_BLOCK: usize = 32;
/// Pixels per block of the MbLS gradient pass (2 vectors of 8).
const GRAD_BLOCK: usize = 16;

/// Stage 1 over whole blocks of 32 pixels of the tile `[start, start + len)`: per-pixel
/// max over the `c` class planes (strictly greater replaces, so the first maximal class is
/// kept), with `MARGIN` the index of that class (as f32), with `LS` the sum of the logits
/// in class order. Returns how many pixels it did (a multiple of 32, from the tile start).
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(super) fn max_planes<const MARGIN: bool, const LS: bool>(
    x: &[f32],
    hw: usize,
    c: usize,
    start: usize,
    len: usize,
    mx: &mut [f32],
    am: &mut [f32],
    sx: &mut [f32],
) -> usize {
    let done = len / MAX_BLOCK * MAX_BLOCK;
    if done == 0 || c == 0 {
        return 0;
    }
    // every load below is of plane k < c at pixels start..start + done
    assert!((c - 1) * hw + start + done <= x.len());
    assert!(mx.len() >= done && am.len() >= done && sx.len() >= done);
    let base = x.as_ptr();
    for ib in (0..done).step_by(MAX_BLOCK) {
        // SAFETY: the asserts above bound every offset (plane k < c, pixel < start + done).
        unsafe {
            let p0 = base.add(start + ib);
            let mut m = [
                _mm256_loadu_ps(p0),
                _mm256_loadu_ps(p0.add(8)),
                _mm256_loadu_ps(p0.add(16)),
                _mm256_loadu_ps(p0.add(24)),
            ];
            let mut a = [_mm256_setzero_ps(); 4];
            let mut s = m;
            for k in 1..c {
                let p = base.add(k * hw + start + ib);
                let kf = _mm256_set1_ps(k as f32);
                for j in 0..4 {
                    let v = _mm256_loadu_ps(p.add(8 * j));
                    if MARGIN {
                        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, m[j]);
                        a[j] = _mm256_blendv_ps(a[j], kf, gt);
                    }
                    if LS {
                        s[j] = _mm256_add_ps(s[j], v);
                    }
                    // max_ps(v, m) is `v > m ? v : m`, the scalar loop's select
                    m[j] = _mm256_max_ps(v, m[j]);
                }
            }
            for j in 0..4 {
                _mm256_storeu_ps(mx.as_mut_ptr().add(ib + 8 * j), m[j]);
                if MARGIN {
                    _mm256_storeu_ps(am.as_mut_ptr().add(ib + 8 * j), a[j]);
                }
                if LS {
                    _mm256_storeu_ps(sx.as_mut_ptr().add(ib + 8 * j), s[j]);
                }
            }
        }
    }
    done
}

/// Stage 4 of MbLS over whole blocks of 16 pixels: for every class plane, the gradient
/// `e * gscale - (x < thr ? s : 0)`, and per pixel the penalty `sum relu(thr - x)` and
/// the count of penalised logits. Returns how many pixels it did.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(super) fn margin_grad(
    x: &[f32],
    e: &[f32],
    e_stride: usize,
    g: &mut [f32],
    hw: usize,
    c: usize,
    start: usize,
    len: usize,
    thr: &[f32],
    gscale: &[f32],
    s: f32,
    pen: &mut [f32],
    act: &mut [f32],
) -> usize {
    let done = len / GRAD_BLOCK * GRAD_BLOCK;
    if done == 0 || c == 0 {
        return 0;
    }
    assert!((c - 1) * hw + start + done <= x.len());
    assert!((c - 1) * hw + start + done <= g.len());
    assert!((c - 1) * e_stride + done <= e.len());
    assert!(thr.len() >= done && gscale.len() >= done);
    assert!(pen.len() >= done && act.len() >= done);
    let zero = _mm256_setzero_ps();
    let sv = _mm256_set1_ps(s);
    for ib in (0..done).step_by(GRAD_BLOCK) {
        // SAFETY: the asserts above bound every offset (plane k < c, pixel < done).
        unsafe {
            let th = [
                _mm256_loadu_ps(thr.as_ptr().add(ib)),
                _mm256_loadu_ps(thr.as_ptr().add(ib + 8)),
            ];
            let gs = [
                _mm256_loadu_ps(gscale.as_ptr().add(ib)),
                _mm256_loadu_ps(gscale.as_ptr().add(ib + 8)),
            ];
            let mut p = [zero; 2];
            let mut n = [_mm256_setzero_si256(); 2];
            for k in 0..c {
                let xp = x.as_ptr().add(k * hw + start + ib);
                let ep = e.as_ptr().add(k * e_stride + ib);
                let gp = g.as_mut_ptr().add(k * hw + start + ib);
                for j in 0..2 {
                    let d = _mm256_sub_ps(th[j], _mm256_loadu_ps(xp.add(8 * j)));
                    let on = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
                    p[j] = _mm256_add_ps(p[j], _mm256_and_ps(on, d));
                    // the mask is all ones (-1) where on: subtracting it counts
                    n[j] = _mm256_sub_epi32(n[j], _mm256_castps_si256(on));
                    let ge = _mm256_mul_ps(_mm256_loadu_ps(ep.add(8 * j)), gs[j]);
                    _mm256_storeu_ps(gp.add(8 * j), _mm256_sub_ps(ge, _mm256_and_ps(on, sv)));
                }
            }
            for j in 0..2 {
                _mm256_storeu_ps(pen.as_mut_ptr().add(ib + 8 * j), p[j]);
                _mm256_storeu_ps(act.as_mut_ptr().add(ib + 8 * j), _mm256_cvtepi32_ps(n[j]));
            }
        }
    }
    done
}

/// The MbLS part of one row in a single pass over its logits: the gradient
/// `g_k = e_k * scale - (x_k < thr ? s : 0)`, the penalty and the count of penalised
/// logits (8 lanes, lane `i` taking elements `i mod 8`, as [`super::margin_grad`]), and
/// the first index where `x_k == mx` (0 if none, as [`super::first_index_of`]).
#[target_feature(enable = "avx2")]
pub(super) fn margin_row(
    x: &[f32],
    e: &[f32],
    g: &mut [f32],
    scale: f32,
    thr: f32,
    s: f32,
    mx: f32,
) -> (f64, u32, usize) {
    let c = x.len();
    assert!(e.len() >= c && g.len() >= c);
    let full = c / 8 * 8;
    let zero = _mm256_setzero_ps();
    let (tv, sv, scv, mv) = (
        _mm256_set1_ps(thr),
        _mm256_set1_ps(s),
        _mm256_set1_ps(scale),
        _mm256_set1_ps(mx),
    );
    let mut p = zero;
    let mut n = _mm256_setzero_si256();
    let mut first = usize::MAX;
    for k in (0..full).step_by(8) {
        // SAFETY: k + 8 <= full <= the length of x, e and g (asserted above).
        unsafe {
            let xv = _mm256_loadu_ps(x.as_ptr().add(k));
            let d = _mm256_sub_ps(tv, xv);
            let on = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
            p = _mm256_add_ps(p, _mm256_and_ps(on, d));
            n = _mm256_sub_epi32(n, _mm256_castps_si256(on));
            let ge = _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr().add(k)), scv);
            let gv = _mm256_sub_ps(ge, _mm256_and_ps(on, sv));
            _mm256_storeu_ps(g.as_mut_ptr().add(k), gv);
            if first == usize::MAX {
                let eq = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(xv, mv));
                if eq != 0 {
                    first = k + eq.trailing_zeros() as usize;
                }
            }
        }
    }
    let mut pen = [0f32; 8];
    let mut act = [0i32; 8];
    // SAFETY: 8-lane stores into 8-element arrays.
    unsafe {
        _mm256_storeu_ps(pen.as_mut_ptr(), p);
        _mm256_storeu_si256(act.as_mut_ptr().cast(), n);
    }
    for k in full..c {
        let i = k - full;
        let d = thr - x[k];
        let on = d > 0.0;
        pen[i] += if on { d } else { 0.0 };
        act[i] += on as i32;
        g[k] = e[k] * scale - if on { s } else { 0.0 };
        if first == usize::MAX && x[k] == mx {
            first = k;
        }
    }
    if first == usize::MAX {
        first = 0;
    }
    let active: i32 = act.iter().sum();
    (pen.iter().map(|&v| v as f64).sum(), active as u32, first)
}

/// [`super::entropy_row`], 8 lanes in registers (same operations, same lanes).
#[target_feature(enable = "avx2")]
pub(super) fn entropy_row(
    x: &[f32],
    e: &[f32],
    g: &mut [f32],
    inv: f32,
    mx: f32,
    lse: f32,
) -> (f32, f64) {
    let c = x.len();
    assert!(e.len() >= c && g.len() >= c);
    let full = c / 8 * 8;
    let floor = super::ent_floor();
    let (iv, mv, lv, one) = (
        _mm256_set1_ps(inv),
        _mm256_set1_ps(mx),
        _mm256_set1_ps(lse),
        _mm256_set1_ps(1.0),
    );
    let (eps, fv, sign) = (
        _mm256_set1_ps(super::ENT_EPS),
        _mm256_set1_ps(floor),
        _mm256_set1_ps(-0.0),
    );
    let mut wv = _mm256_setzero_ps();
    let mut hv = _mm256_setzero_ps();
    for k in (0..full).step_by(8) {
        // SAFETY: k + 8 <= full <= the length of x, e and g (asserted above).
        unsafe {
            let p = _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr().add(k)), iv);
            let xv = _mm256_loadu_ps(x.as_ptr().add(k));
            let lp = _mm256_sub_ps(_mm256_sub_ps(xv, mv), lv);
            let on = _mm256_cmp_ps::<_CMP_GE_OQ>(p, eps);
            let w = _mm256_and_ps(on, _mm256_mul_ps(p, _mm256_add_ps(lp, one)));
            let h = _mm256_blendv_ps(fv, _mm256_mul_ps(_mm256_xor_ps(p, sign), lp), on);
            _mm256_storeu_ps(g.as_mut_ptr().add(k), w);
            wv = _mm256_add_ps(wv, w);
            hv = _mm256_add_ps(hv, h);
        }
    }
    let mut wl = [0f32; 8];
    let mut hl = [0f32; 8];
    // SAFETY: 8-lane stores into 8-element arrays.
    unsafe {
        _mm256_storeu_ps(wl.as_mut_ptr(), wv);
        _mm256_storeu_ps(hl.as_mut_ptr(), hv);
    }
    for k in full..c {
        let (w, h) = super::ent_terms(e[k] * inv, (x[k] - mx) - lse, floor);
        g[k] = w;
        wl[k - full] += w;
        hl[k - full] += h;
    }
    (fastmath::fold8(&wl), fastmath::fold8(&hl) as f64)
}

/// [`super::l1_row`], 8 lanes in registers (same operations, same lanes).
#[target_feature(enable = "avx2")]
pub(super) fn l1_row(e: &[f32], g: &mut [f32], inv: f32, cinv: f32) -> (f32, f64) {
    let c = e.len();
    assert!(g.len() >= c);
    let full = c / 8 * 8;
    let (iv, cv, zero) = (
        _mm256_set1_ps(inv),
        _mm256_set1_ps(cinv),
        _mm256_setzero_ps(),
    );
    let (one, minus_one, abs) = (
        _mm256_set1_ps(1.0),
        _mm256_set1_ps(-1.0),
        _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)),
    );
    let mut wv = zero;
    let mut dv = zero;
    for k in (0..full).step_by(8) {
        // SAFETY: k + 8 <= full <= the length of e and g (asserted above).
        unsafe {
            let p = _mm256_mul_ps(_mm256_loadu_ps(e.as_ptr().add(k)), iv);
            let d = _mm256_sub_ps(p, cv);
            let sg = _mm256_or_ps(
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(d, zero), one),
                _mm256_and_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(d, zero), minus_one),
            );
            _mm256_storeu_ps(g.as_mut_ptr().add(k), sg);
            wv = _mm256_add_ps(wv, _mm256_mul_ps(sg, p));
            dv = _mm256_add_ps(dv, _mm256_and_ps(d, abs));
        }
    }
    let mut wl = [0f32; 8];
    let mut dl = [0f32; 8];
    // SAFETY: 8-lane stores into 8-element arrays.
    unsafe {
        _mm256_storeu_ps(wl.as_mut_ptr(), wv);
        _mm256_storeu_ps(dl.as_mut_ptr(), dv);
    }
    for k in full..c {
        let p = e[k] * inv;
        let (sg, d) = super::l1_terms(p, cinv);
        g[k] = sg;
        wl[k - full] += sg * p;
        dl[k - full] += d;
    }
    (fastmath::fold8(&wl), fastmath::fold8(&dl) as f64)
}
