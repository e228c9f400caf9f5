//! The AVX2 passes against the portable ones.

use super::*;

/// A deterministic pseudo-random image: integer-valued logits (many tied maxima), and
/// targets with some ignored pixels.
fn image(c: usize, hw: usize) -> (Vec<f32>, Vec<i64>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let x = (0..c * hw)
        .map(|_| (next() % 9) as f32 * 1.5 - 6.0)
        .collect();
    let y = (0..hw)
        .map(|_| match next() % 10 {
            0 => 255,
            v => (v as usize % c) as i64,
        })
        .collect();
    (x, y)
}

/// The hand-written AVX2 passes give the same bits as the portable loops, for every dense
/// loss, on tiles that end in partial blocks of 32, 16 and 8 pixels.
#[test]
fn avx2_dense_passes_equal_the_portable_ones() {
    if !std::arch::is_x86_feature_detected!("avx2") {
        mbls_testkit::skip("this CPU has no AVX2");
        return;
    }
    for (c, hw) in [(7usize, 1353usize), (21, 512 + 57), (2, 31), (1, 100)] {
        let (x, y) = image(c, hw);
        let kinds = [
            RowLoss::Ce,
            RowLoss::Ls { alpha: 0.2 },
            RowLoss::Focal {
                gamma: 2.0,
                mean: true,
            },
            RowLoss::LogitMargin {
                margin: 3.0,
                alpha: 0.1,
            },
            RowLoss::LogitMargin {
                margin: 0.0,
                alpha: 0.1,
            },
            RowLoss::Entropy { alpha: 0.1 },
            RowLoss::L1 { alpha: 1.0 },
            RowLoss::Brier,
        ];
        for kind in kinds {
            let ctx = Ctx {
                kind,
                c,
                ignore_index: 255,
                inv_n: 1.0 / hw as f32,
                inv_nc: 1.0 / (hw * c) as f32,
            };
            let tiles = hw.div_ceil(TILE);
            let mut ga = vec![0f32; c * hw];
            let mut gp = vec![0f32; c * hw];
            // SAFETY: the CPU has AVX2 (checked above)
            let sa = unsafe { dense_image_avx2(&ctx, &x, &y, &mut ga, c, hw, tiles) };
            let sp = dense_image::<false>(&ctx, &x, &y, &mut gp, c, hw, tiles);
            assert_eq!(sa, sp, "{kind:?} c={c} hw={hw}: sums");
            let same = ga.iter().zip(&gp).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{kind:?} c={c} hw={hw}: gradients differ");
        }
    }
}

/// The same for the row kernels (`N x C` input), with class counts around the 8 lanes.
#[test]
fn avx2_row_passes_equal_the_portable_ones() {
    if !std::arch::is_x86_feature_detected!("avx2") {
        mbls_testkit::skip("this CPU has no AVX2");
        return;
    }
    let sizes = [
        (10usize, 128usize),
        (200, 64),
        (13, 40),
        (3, 50),
        (8, 9),
        (1, 5),
    ];
    // scale 8: probabilities far below ECP's clamp at 1e-10
    for ((c, rows), scale) in sizes.iter().flat_map(|&s| [(s, 1.0f32), (s, 8.0)]) {
        let (mut x, y) = image(c, rows);
        x.iter_mut().for_each(|v| *v *= scale);
        for kind in [
            RowLoss::Ce,
            RowLoss::LogitMargin {
                margin: 3.0,
                alpha: 0.1,
            },
            RowLoss::LogitMargin {
                margin: 20.0,
                alpha: 0.1,
            },
            RowLoss::Entropy { alpha: 0.1 },
            RowLoss::L1 { alpha: 1.0 },
            RowLoss::Brier,
        ] {
            let ctx = Ctx {
                kind,
                c,
                ignore_index: 255,
                inv_n: 1.0 / rows as f32,
                inv_nc: 1.0 / (rows * c) as f32,
            };
            // `image` lays out planes; any layout will do for rows
            let mut ga = vec![0f32; c * rows];
            let mut gp = vec![0f32; c * rows];
            // SAFETY: the CPU has AVX2 (checked above)
            let sa = unsafe { chunk_2d_avx2(&ctx, &x, &y, &mut ga) };
            let sp = chunk_2d::<false>(&ctx, &x, &y, &mut gp);
            assert_eq!(sa, sp, "{kind:?} c={c}: sums");
            let same = ga.iter().zip(&gp).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{kind:?} c={c}: gradients differ");
        }
    }
}
