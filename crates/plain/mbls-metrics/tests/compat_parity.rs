//! Parity with other libraries' calibration errors: the values in `tests/data/compat_parity.json`
//! were computed by torchmetrics 1.9.0, netcal 1.4.0, scikit-learn 1.9.1, relplot 1.0.3 and
//! uncertainty-calibration 0.1.4 from PyPI (`bash bench/compat_parity.sh`, which runs
//! `bench/compat_parity.py`) on seeded float32 inputs that put samples exactly on bin edges
//! and at 0 and 1, so that every binning convention is exercised. The bar is 1e-6;
//! the float64 libraries are checked far tighter.

use mbls_metrics::compat::{self, Library, Precision, Strategy};
use mbls_metrics::estimators;
use serde_json::Value;

fn data() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/compat_parity.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect(path)).expect("valid JSON")
}

/// The confidences and targets of a case: top label for the multiclass case, p(positive)
/// for the binary one. Also returns the probabilities and labels.
struct Case {
    conf: Vec<f32>,
    hit: Vec<bool>,
    v: Value,
}

fn case(d: &Value, name: &str) -> Case {
    let c = &d["cases"][name];
    let labels: Vec<i64> = c["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let (mut conf, mut hit) = (Vec::new(), Vec::new());
    for (row, &y) in c["probs"].as_array().unwrap().iter().zip(&labels) {
        match row {
            Value::Array(p) => {
                let p: Vec<f32> = p.iter().map(|v| v.as_f64().unwrap() as f32).collect();
                let (mut best, mut arg) = (p[0], 0);
                for (k, &x) in p.iter().enumerate() {
                    if x > best {
                        (best, arg) = (x, k);
                    }
                }
                conf.push(best);
                hit.push(arg as i64 == y);
            }
            v => {
                conf.push(v.as_f64().unwrap() as f32);
                hit.push(y == 1);
            }
        }
    }
    Case {
        conf,
        hit,
        v: c.clone(),
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(what: &str, got: f64, want: f64, tol: f64) -> f64 {
    let e = (got - want).abs();
    assert!(
        e <= tol,
        "{what}: {got} vs {want} (|d| {e:.3e} > {tol:.0e})"
    );
    e
}

#[test]
fn torchmetrics_parity() {
    let d = data();
    let mut worst = 0f64;
    for name in ["multiclass", "binary"] {
        let c = case(&d, name);
        let r = &c.v["torchmetrics"];
        for n in [10, 15] {
            let t = compat::torchmetrics(&c.conf, &c.hit, n);
            let edges: Vec<f64> = r[format!("bin_boundaries_{n}")]
                .as_array()
                .unwrap()
                .iter()
                .map(f)
                .collect();
            let ours: Vec<f64> = t.edges.iter().map(|&e| e as f64).collect();
            assert_eq!(ours, edges, "{name}: edges of {n} bins");
            let counts: Vec<u64> = t.bins.iter().map(|b| b.count).collect();
            let want: Vec<u64> = r[format!("bin_counts_{n}")]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(counts, want, "{name}: counts of {n} bins");
            for (key, got) in [("l1", t.l1), ("l2", t.l2), ("max", t.max)] {
                let k = format!("{key}_{n}");
                worst = worst.max(close(&format!("{name} {k}"), got, f(&r[&k]), 1e-6));
            }
        }
    }
    println!("torchmetrics: worst |d| {worst:.2e}");
}

#[test]
fn netcal_parity() {
    let d = data();
    let mut worst = 0f64;
    for name in ["multiclass", "binary"] {
        let c = case(&d, name);
        for (dt, precision) in [("f32", Precision::F32), ("f64", Precision::F64)] {
            let r = &c.v["netcal"][dt];
            for n in [10, 15] {
                for em in [false, true] {
                    let got = compat::netcal(&c.conf, &c.hit, n, em, precision);
                    for (m, v) in [("ece", got.ece), ("mce", got.mce), ("ace", got.ace)] {
                        let key = if em {
                            format!("{m}_equal_mass_{n}")
                        } else {
                            format!("{m}_{n}")
                        };
                        let what = format!("{name} {dt} {key}");
                        worst = worst.max(close(&what, v, f(&r[&key]), 1e-12));
                    }
                }
            }
        }
    }
    println!("netcal: worst |d| {worst:.2e}");
}

#[test]
fn sklearn_parity() {
    let d = data();
    let mut worst = 0f64;
    for name in ["multiclass", "binary"] {
        let c = case(&d, name);
        for (sname, strategy) in [
            ("uniform", Strategy::Uniform),
            ("quantile", Strategy::Quantile),
        ] {
            for n in [5, 10, 15] {
                let r = &c.v["sklearn"][format!("{sname}_{n}")];
                let got = compat::sklearn_curve(&c.conf, &c.hit, n, strategy);
                let list =
                    |k: &str| -> Vec<f64> { r[k].as_array().unwrap().iter().map(f).collect() };
                assert_eq!(got.edges, list("bin_edges"), "{name} {sname} {n}: edges");
                let counts: Vec<f64> = got.counts.iter().map(|&c| c as f64).collect();
                assert_eq!(counts, list("counts"), "{name} {sname} {n}: counts");
                for (key, ours) in [("prob_true", &got.prob_true), ("prob_pred", &got.prob_pred)] {
                    for (a, b) in ours.iter().zip(list(key)) {
                        worst =
                            worst.max(close(&format!("{name} {sname} {n} {key}"), *a, b, 1e-12));
                    }
                }
                worst = worst.max(close(
                    &format!("{name} {sname} {n} ece"),
                    got.ece,
                    f(&r["ece"]),
                    1e-12,
                ));
            }
        }
    }
    println!("sklearn: worst |d| {worst:.2e}");
}

#[test]
fn compat_reports_use_the_same_functions() {
    let d = data();
    let c = case(&d, "multiclass");
    let r = compat::compat(Library::Netcal, &c.conf, &c.hit, 10).unwrap();
    assert_eq!(r.ece, f(&c.v["netcal"]["f32"]["ece_10"]));
    assert_eq!(r.ace, Some(f(&c.v["netcal"]["f32"]["ace_10"])));
    assert_eq!(
        r.ece_equal_mass,
        Some(f(&c.v["netcal"]["f32"]["ece_equal_mass_10"]))
    );
    let r = compat::compat(Library::Sklearn, &c.conf, &c.hit, 5).unwrap();
    assert_eq!(r.ece, f(&c.v["sklearn"]["uniform_5"]["ece"]));
    let r = compat::compat(Library::Torchmetrics, &c.conf, &c.hit, 15).unwrap();
    close("l2", r.l2.unwrap(), f(&c.v["torchmetrics"]["l2_15"]), 1e-6);
    assert_eq!(r.bins.len(), 16);
}

/// The probabilities of the multiclass case as an N x K row-major matrix, and its labels.
fn matrix(c: &Case) -> (Vec<f32>, Vec<i64>, usize) {
    let rows = c.v["probs"].as_array().unwrap();
    let k = rows[0].as_array().unwrap().len();
    let probs = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let labels = c.v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    (probs, labels, k)
}

#[test]
fn relplot_smooth_ece_parity() {
    let d = data();
    for name in ["multiclass", "binary"] {
        let c = case(&d, name);
        let r = &c.v["relplot"];
        let s = estimators::smooth_ece(&c.conf, &c.hit).unwrap();
        assert_eq!(s.sigma, f(&r["sigma"]), "{name}: bandwidth");
        let e = close(&format!("{name} smece"), s.value, f(&r["smece"]), 1e-12);
        let f64conf: Vec<f64> = c.conf.iter().map(|&x| x as f64).collect();
        let at = estimators::smooth_ece_at(&f64conf, &c.hit, 0.05);
        let e2 = close(
            &format!("{name} smece(0.05)"),
            at,
            f(&r["smece_sigma_0_05"]),
            1e-12,
        );
        for step in r["search_trace"].as_array().unwrap() {
            let (sigma, want) = (f(&step[0]), f(&step[1]));
            close(
                &format!("{name} smece({sigma})"),
                estimators::smooth_ece_at(&f64conf, &c.hit, sigma),
                want,
                1e-12,
            );
        }
        println!("relplot {name}: |d| {e:.2e}, at 0.05 {e2:.2e}");
    }
}

#[test]
fn uncertainty_calibration_parity() {
    let d = data();
    let mut worst = 0f64;
    for name in ["multiclass", "binary"] {
        let c = case(&d, name);
        let u = &c.v["uncertainty_calibration"];
        let edges = estimators::equal_mass_upper_edges(&c.conf, 15);
        let want: Vec<f64> = u["equal_mass_bins_15"]
            .as_array()
            .unwrap()
            .iter()
            .map(f)
            .collect();
        assert_eq!(edges, want, "{name}: equal-mass bins");
        let top = estimators::errors(&c.conf, &c.hit).unwrap();
        let r = if name == "binary" {
            &u["binary"]
        } else {
            &u["top_label"]
        };
        // the library averages top-label bins in float32: 1e-7
        for (key, got) in [
            ("p2_debiased", top.l2_debiased),
            ("p2_plugin", top.l2_plugin),
        ] {
            worst = worst.max(close(&format!("{name} {key}"), got, f(&r[key]), 1e-7));
        }
        let lp = |p: f64, debias: bool, upper: &[f64]| {
            estimators::binned_lp_error(&c.conf, &c.hit, upper, p, debias)
        };
        worst = worst.max(close(
            &format!("{name} p1_plugin"),
            lp(1.0, false, &edges),
            f(&r["p1_plugin"]),
            1e-7,
        ));
        for nb in [10usize, 15] {
            let ew: Vec<f64> = (1..=nb).map(|i| i as f64 * 1.0 / nb as f64).collect();
            for (key, got) in [
                (format!("ece_{nb}"), lp(1.0, false, &ew)),
                (format!("p2_plugin_equal_width_{nb}"), lp(2.0, false, &ew)),
                (format!("p2_debiased_equal_width_{nb}"), lp(2.0, true, &ew)),
            ] {
                worst = worst.max(close(&format!("{name} {key}"), got, f(&r[&key]), 1e-7));
            }
        }
        if name == "multiclass" {
            let (probs, labels, k) = matrix(&c);
            let m = estimators::classwise_errors(&probs, &labels, k).unwrap();
            let r = &u["marginal"];
            for (key, got) in [("p2_debiased", m.l2_debiased), ("p2_plugin", m.l2_plugin)] {
                worst = worst.max(close(&format!("marginal {key}"), got, f(&r[key]), 1e-12));
            }
        }
    }
    println!("uncertainty-calibration: worst |d| {worst:.2e}");
}

#[test]
fn ks_parity() {
    let d = data();
    for name in ["multiclass", "binary"] {
        let c = case(&d, name);
        let k = estimators::ks_error(&c.conf, &c.hit).unwrap();
        let e = close(&format!("{name} ks"), k, f(&c.v["ks"]["tie_ends"]), 1e-12);
        println!("ks {name}: |d| {e:.2e}");
    }
}
