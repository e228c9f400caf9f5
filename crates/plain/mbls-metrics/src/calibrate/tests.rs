use super::*;
use crate::{ClassificationOptions, ScoreKind, evaluate};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

struct Gen(ChaCha8Rng);

impl Gen {
    fn new(seed: u64) -> Self {
        Gen(ChaCha8Rng::seed_from_u64(seed))
    }
    fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// A class drawn from softmax(row).
    fn draw(&mut self, row: &[f64]) -> i64 {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let mut u = self.uniform() * s;
        for (k, v) in e.iter().enumerate() {
            if u < *v {
                return k as i64;
            }
            u -= v;
        }
        (row.len() - 1) as i64
    }
}

/// Logits whose labels follow `softmax(true_map(z))`: over-confident when the map shrinks.
fn data(
    seed: u64,
    n: usize,
    k: usize,
    true_map: impl Fn(&[f64]) -> Vec<f64>,
) -> (Vec<f32>, Vec<i64>) {
    let mut g = Gen::new(seed);
    let mut logits = Vec::with_capacity(n * k);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let z: Vec<f64> = (0..k).map(|_| 2.5 * g.normal()).collect();
        labels.push(g.draw(&true_map(&z)));
        logits.extend(z.iter().map(|&v| v as f32));
    }
    (logits, labels)
}

fn overconfident(seed: u64, n: usize, k: usize) -> (Vec<f32>, Vec<i64>) {
    data(seed, n, k, |z| z.iter().map(|v| v * 0.5).collect())
}

fn ece(scores: &Calibrated, labels: &[i64], k: usize) -> f64 {
    let opts = ClassificationOptions {
        kind: scores.kind,
        ..Default::default()
    };
    evaluate(&scores.scores, labels, k, opts).unwrap().ece
}

#[test]
fn method_names_parse_with_aliases_and_a_closest_suggestion() {
    for m in Method::ALL {
        assert_eq!(Method::parse(m.name()).unwrap(), m);
    }
    assert_eq!(Method::parse("temperature").unwrap(), Method::Temperature);
    assert_eq!(Method::parse("histogram").unwrap(), Method::Histogram);
    let e = Method::parse("dirichlett").unwrap_err().to_string();
    assert!(e.contains("closest: dirichlet"), "{e}");
}

#[test]
fn every_multiclass_method_improves_calibration_on_held_out_logits() {
    let k = 5;
    let (vl, vy) = overconfident(1, 6000, k);
    let (tl, ty) = overconfident(2, 6000, k);
    let before = ece(
        &Calibrated {
            scores: tl.clone(),
            kind: ScoreKind::Logits,
        },
        &ty,
        k,
    );
    assert!(before > 0.1, "the data should be over-confident: {before}");
    for m in Method::ALL.into_iter().filter(|m| !m.binary_only()) {
        let cal = fit(m, &vl, &vy, k, &FitOptions::default()).unwrap();
        assert_eq!(cal.method(), m);
        let out = cal.apply(&tl).unwrap();
        let after = ece(&out, &ty, k);
        assert!(after < 0.04, "{m}: test ECE {before} -> {after}");
        assert!(cal.fit.nll_after < cal.fit.nll_before, "{m}: {:?}", cal.fit);
        if matches!(out.kind, ScoreKind::Probabilities) {
            for r in out.scores.chunks_exact(k) {
                let s: f32 = r.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{m}: row sums to {s}");
            }
        }
    }
}

#[test]
fn matrix_and_dirichlet_recover_a_known_map() {
    let w = [[1.5, 0.3, 0.0], [0.0, 0.8, 0.2], [0.1, 0.0, 1.2]];
    let b = [0.2, -0.1, 0.0];
    let map = |z: &[f64]| -> Vec<f64> {
        (0..3)
            .map(|j| (0..3).map(|i| w[j][i] * z[i]).sum::<f64>() + b[j])
            .collect()
    };
    let (l, y) = data(3, 40_000, 3, map);
    let opts = FitOptions {
        reg_lambda: Some(0.0),
        reg_mu: Some(0.0),
        ..Default::default()
    };
    let cal = fit(Method::Matrix, &l, &y, 3, &opts).unwrap();
    let Params::Matrix { weights, bias } = &cal.params else {
        panic!("{:?}", cal.params)
    };
    // the map is identified up to adding the same vector to every row (softmax's
    // invariance): compare differences between rows
    for j in 1..3 {
        for i in 0..3 {
            let fitted = weights[j][i] - weights[0][i];
            let truth = w[j][i] - w[0][i];
            assert!(
                (fitted - truth).abs() < 0.08,
                "W[{j}][{i}]: {fitted} vs {truth}"
            );
        }
        let fb = bias[j] - bias[0];
        assert!((fb - (b[j] - b[0])).abs() < 0.08, "b[{j}]: {fb}");
    }
}

#[test]
fn the_gradient_matches_finite_differences() {
    let k = 4;
    let (l, y) = overconfident(4, 300, k);
    for (full, log_probs) in [(true, false), (true, true), (false, false)] {
        let p = linear::tests_support::problem(&l, &y, k, full, log_probs, 0.3, 0.2);
        let dim = if full { k * k + k } else { 2 * k };
        let theta: Vec<f64> = (0..dim)
            .map(|i| 0.9 + 0.05 * (i % 7) as f64 - 0.1)
            .collect();
        let (_, g) = p.evaluate_for_tests(&theta);
        for i in 0..dim {
            let h = 1e-6;
            let mut a = theta.clone();
            a[i] += h;
            let mut b = theta.clone();
            b[i] -= h;
            let fd = (p.evaluate_for_tests(&a).0 - p.evaluate_for_tests(&b).0) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6,
                "full {full} coordinate {i}: {fd} vs {}",
                g[i]
            );
        }
    }
}

#[test]
fn fits_do_not_depend_on_the_number_of_threads() {
    let k = 6;
    let (l, y) = overconfident(5, 5000, k);
    let run = |threads: usize, m: Method| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| fit(m, &l, &y, k, &FitOptions::default()).unwrap().params)
    };
    for m in [
        Method::Matrix,
        Method::Dirichlet,
        Method::Vector,
        Method::Isotonic,
    ] {
        assert_eq!(run(1, m), run(2, m), "{m}");
    }
}

#[test]
fn temperature_methods_match_the_temperature_module() {
    let k = 5;
    let (l, y) = overconfident(6, 3000, k);
    let cal = fit(Method::TemperatureNll, &l, &y, k, &FitOptions::default()).unwrap();
    let t = crate::fit_temperature_nll(&l, &y, k).unwrap().temperature;
    assert_eq!(cal.params, Params::TemperatureNll { temperature: t });
    assert!(t > 1.5, "over-confident logits need T > 1: {t}");
    let cal = fit(Method::Temperature, &l, &y, k, &FitOptions::default()).unwrap();
    let g = crate::grid_search_temperature(&l, &y, k, 15).unwrap();
    assert_eq!(
        cal.params,
        Params::Temperature {
            temperature: g.temperature_ece
        }
    );
}

#[test]
fn platt_and_beta_recover_known_binary_maps() {
    let mut g = Gen::new(7);
    let n = 40_000;
    let mut pl = Vec::new();
    let mut py = Vec::new();
    let mut bl = Vec::new();
    let mut by = Vec::new();
    for _ in 0..n {
        let s = 3.0 * g.normal();
        pl.extend([0.0f32, s as f32]);
        py.push(i64::from(
            g.uniform() < 1.0 / (1.0 + (-(0.5 * s - 0.4)).exp()),
        ));
        bl.extend([0.0f32, s as f32]);
        let u = binary::beta_map(s, 1.5, 0.6, 0.3);
        by.push(i64::from(g.uniform() < 1.0 / (1.0 + (-u).exp())));
    }
    let s = |v: f32| f64::from(v);
    let cal = fit(Method::Platt, &pl, &py, 2, &FitOptions::default()).unwrap();
    let Params::Platt { a, b } = cal.params else {
        panic!()
    };
    assert!((a - 0.5).abs() < 0.03 && (b + 0.4).abs() < 0.05, "{a} {b}");
    let cal = fit(Method::Beta, &bl, &by, 2, &FitOptions::default()).unwrap();
    let Params::Beta { a, b, c } = cal.params else {
        panic!()
    };
    assert!(
        (a - 1.5).abs() < 0.1 && (b - 0.6).abs() < 0.1 && (c - 0.3).abs() < 0.1,
        "{a} {b} {c}"
    );
    // the output is two-class logits whose softmax is the fitted probability
    let out = cal.apply(&bl[..2]).unwrap();
    assert_eq!(out.scores[0], 0.0);
    let want = binary::beta_map(s(bl[1]), a, b, c) as f32;
    assert!((out.scores[1] - want).abs() < 1e-6);
}

#[test]
fn isotonic_fit_pools_adjacent_violators_and_ties() {
    let (x, y) = isotonic_fit(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0, 3.0, 2.0, 4.0, 3.5]);
    assert_eq!(x, [1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(y, [1.0, 2.5, 2.5, 3.75, 3.75]);
    // tied inputs share one value; unsorted input
    let (x, y) = isotonic_fit(&[2.0, 1.0, 2.0, 3.0], &[0.0, 1.0, 1.0, 1.0]);
    assert_eq!(x, [1.0, 2.0, 3.0]);
    assert_eq!(y, [2.0 / 3.0, 2.0 / 3.0, 1.0]);
    assert_eq!(binning::tests_interp(&x, &y, 0.0), 2.0 / 3.0);
    assert_eq!(binning::tests_interp(&x, &y, 2.5), (2.0 / 3.0 + 1.0) / 2.0);
    assert_eq!(binning::tests_interp(&x, &y, 9.0), 1.0);
}

#[test]
fn histogram_values_are_class_frequencies_per_bin() {
    // two classes, logits [0, s]: p_1 = σ(s)
    let s = [-3.0f32, -3.0, 3.0, 3.0, 3.0, 3.0];
    let labels = [0i64, 1, 1, 1, 1, 0];
    let logits: Vec<f32> = s.iter().flat_map(|&v| [0.0, v]).collect();
    let cal = fit(
        Method::Histogram,
        &logits,
        &labels,
        2,
        &FitOptions {
            num_bins: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let Params::Histogram { values, .. } = &cal.params else {
        panic!()
    };
    // class 1: p = 0.047 (bin 0: 1 of 2 positive), p = 0.95 (bin 1: 3 of 4)
    assert_eq!(values[1], [0.5, 0.75]);
    assert_eq!(values[0], [0.25, 0.5]);
}

#[test]
fn json_round_trip_and_validation() {
    let k = 3;
    let (l, y) = overconfident(8, 2000, k);
    for m in [
        Method::Matrix,
        Method::Isotonic,
        Method::Histogram,
        Method::TemperatureNll,
    ] {
        let cal = fit(m, &l, &y, k, &FitOptions::default()).unwrap();
        let back = Calibrator::from_json(&cal.to_json()).unwrap();
        assert_eq!(back.params, cal.params);
        assert_eq!(back.apply(&l).unwrap(), cal.apply(&l).unwrap());
    }
    let cal = fit(Method::Vector, &l, &y, k, &FitOptions::default()).unwrap();
    let text = cal.to_json();
    for (from, to, needle) in [
        ("\"classes\": 3", "\"classes\": 4", "must hold 4"),
        ("mbls-calibrator", "other", "format"),
        ("\"version\": 1", "\"version\": 7", "version 7"),
        (
            "\"method\": \"vector\"",
            "\"method\": \"vectr\"",
            "unknown variant",
        ),
    ] {
        let e = Calibrator::from_json(&text.replacen(from, to, 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{from} -> {to}: {e}");
    }
    assert!(Calibrator::from_json("{").is_err());
    assert!(Calibrator::from_json("[1, 2]").is_err());
    // applied to logits of another class count
    let e = cal.apply(&[0.0; 4]).unwrap_err().to_string();
    assert!(e.contains("classes of the calibrator"), "{e}");
}

#[test]
fn bad_fits_are_refused_with_the_reason() {
    let k = 3;
    let (l, y0) = overconfident(9, 300, k);
    let mut y = y0.clone();
    let e = fit(Method::Beta, &l, &y, k, &FitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("binary") && e.contains("3 classes"), "{e}");
    for v in &mut y {
        if *v == 2 {
            *v = 0;
        }
    }
    let e = fit(Method::Matrix, &l, &y, k, &FitOptions::default()).unwrap_err();
    assert!(
        matches!(e, MetricError::MissingClass { class: 2, .. }),
        "{e}"
    );
    let mut bad = l.clone();
    bad[4] = f32::NAN;
    let e = fit(Method::Vector, &bad, &y0, k, &FitOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            MetricError::NonFinite {
                sample: 1,
                class: 1,
                ..
            }
        ),
        "{e}"
    );
    let opts = FitOptions {
        reg_lambda: Some(-1.0),
        ..Default::default()
    };
    let e = fit(Method::Matrix, &l, &y0, k, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("reg_lambda"), "{e}");
}
