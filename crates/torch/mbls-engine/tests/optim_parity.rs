//! Optimizers, schedulers and gradient clipping against PyTorch 2.11.
//!
//! The fixtures in `tests/fixtures/optim/` are written by `make_fixtures.py` there (see its
//! docstring to regenerate). Parameters and gradients must agree to 1e-6 (absolute plus
//! relative), learning rates to 1e-12. Run with `--nocapture` to see the measured errors.

use std::path::{Path, PathBuf};

use mbls_engine::optim::{
    Adam, AdamConfig, AdamW, CosineWarmup, LrScheduler, MultiStepLr, Optimizer, PlateauConfig,
    PlateauMode, ReduceLrOnPlateau, Sgd, SgdConfig, StepLr, ThresholdMode, WeightDecayPolicy,
    clip_grad_norm,
};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

const PARAM_TOL: f64 = 1e-6;
const LR_TOL: f64 = 1e-12;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/optim")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn shape(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("shape")
        .iter()
        .map(|x| x.as_i64().expect("dim"))
        .collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.detach().to_kind(Kind::Float).reshape([-1])).unwrap()
}

/// Largest absolute error and largest error relative to max(1, |expected|).
#[derive(Debug, Default, Clone, Copy)]
struct Err {
    abs: f64,
    scaled: f64,
}

impl Err {
    fn update(&mut self, got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let d = (g as f64 - w as f64).abs();
            self.abs = self.abs.max(d);
            self.scaled = self.scaled.max(d / (w as f64).abs().max(1.0));
            assert!(
                d <= PARAM_TOL * (1.0 + (w as f64).abs()),
                "{what}[{i}]: got {g}, PyTorch {w} (diff {d:e})"
            );
        }
    }
}

/// The fixture script's deterministic tensor: element i is
/// `scale * sin(0.7 i + 1.3 seed) + 0.25 cos(0.31 i (seed + 1))` in f64, rounded to f32.
fn formula(shape: &[i64], seed: f64, scale: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let i = i as f64;
            (scale * (0.7 * i + 1.3 * seed).sin() + 0.25 * (0.31 * i * (seed + 1.0)).cos()) as f32
        })
        .collect();
    Tensor::from_slice(&v).reshape(shape)
}

/// A tensor given in a fixture: explicit values, or formula arguments (with an optional
/// sample of the values, checked bit for bit).
fn fixture_tensor(
    v: &Value,
    values_key: &str,
    sample_key: &str,
    shape: &[i64],
    stride: usize,
) -> Tensor {
    if let Some(vals) = v.get(values_key) {
        return Tensor::from_slice(&f32s(vals)).reshape(shape);
    }
    let t = formula(
        shape,
        v["seed"].as_f64().unwrap(),
        v["scale"].as_f64().unwrap(),
    );
    if let Some(sample) = v.get(sample_key) {
        let got: Vec<f32> = values(&t).into_iter().step_by(stride).collect();
        // The formula is evaluated with the platform's libm (sin/cos): allow one float32 ulp
        // against the fixture's Python values, whatever libm variant the CPU selects.
        let want = f32s(sample);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= w.abs() * f32::EPSILON,
                "formula value {g} differs from the fixture's {w}"
            );
        }
    }
    t
}

fn f64_field(cfg: &Value, key: &str, default: f64) -> f64 {
    cfg.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn build_optimizer(case: &Value, params: Vec<(String, Tensor)>) -> Box<dyn Optimizer> {
    let cfg = &case["config"];
    let policy = match case["decay_policy"].as_str().unwrap() {
        "all" => WeightDecayPolicy::All,
        "no_decay_1d" => WeightDecayPolicy::ExcludeBiasAndNorm,
        other => panic!("unknown decay policy {other}"),
    };
    match case["optimizer"].as_str().unwrap() {
        "sgd" => Box::new(
            Sgd::new(
                params,
                SgdConfig {
                    lr: f64_field(cfg, "lr", 1e-3),
                    momentum: f64_field(cfg, "momentum", 0.0),
                    dampening: f64_field(cfg, "dampening", 0.0),
                    nesterov: cfg
                        .get("nesterov")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    weight_decay: f64_field(cfg, "weight_decay", 0.0),
                    decay_policy: policy,
                },
            )
            .unwrap(),
        ),
        kind @ ("adam" | "adamw") => {
            let betas = cfg
                .get("betas")
                .map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap()))
                .unwrap_or((0.9, 0.999));
            let default_wd = if kind == "adamw" { 1e-2 } else { 0.0 };
            let config = AdamConfig {
                lr: f64_field(cfg, "lr", 1e-3),
                betas,
                eps: f64_field(cfg, "eps", 1e-8),
                weight_decay: f64_field(cfg, "weight_decay", default_wd),
                amsgrad: cfg.get("amsgrad").and_then(Value::as_bool).unwrap_or(false),
                decay_policy: policy,
            };
            if kind == "adam" {
                Box::new(Adam::new(params, config).unwrap())
            } else {
                Box::new(AdamW::new(params, config).unwrap())
            }
        }
        other => panic!("unknown optimizer {other}"),
    }
}

/// Sets each parameter's gradient to the given values (None: leave it as is, undefined if
/// it never had one) through a backward pass of `sum_i (p_i * g_i).sum()`, whose gradient
/// is exactly `g_i`.
fn set_grads(params: &[Tensor], grads: &[Option<Tensor>]) {
    let mut loss: Option<Tensor> = None;
    for (p, g) in params.iter().zip(grads) {
        if let Some(g) = g {
            let term = (p * g).sum(Kind::Float);
            loss = Some(match loss {
                None => term,
                Some(l) => l + term,
            });
        }
    }
    if let Some(l) = loss {
        l.backward();
    }
}

fn run_optimizer_case(path: &Path) -> Err {
    let case = read_json(path);
    let name = case["name"].as_str().unwrap().to_string();
    // large cases store every `stride`-th value only
    let stride = case
        .get("sample_stride")
        .map_or(1, |s| s.as_u64().unwrap() as usize);
    let mut named = Vec::new();
    let mut handles = Vec::new();
    let mut shapes = Vec::new();
    for p in case["params"].as_array().unwrap() {
        let s = shape(&p["shape"]);
        let t = fixture_tensor(p, "init", "init_sample", &s, stride).set_requires_grad(true);
        handles.push(t.shallow_clone());
        named.push((p["name"].as_str().unwrap().to_string(), t));
        shapes.push(s);
    }
    let mut opt = build_optimizer(&case, named);
    let mut err = Err::default();
    let steps = case["grads"].as_array().unwrap();
    for (step, step_grads) in steps.iter().enumerate() {
        let grads: Vec<Option<Tensor>> = step_grads
            .as_array()
            .unwrap()
            .iter()
            .zip(&shapes)
            .map(|(g, s)| match g {
                Value::Null => None,
                Value::Array(_) => Some(Tensor::from_slice(&f32s(g)).reshape(s)),
                _ => Some(fixture_tensor(g, "values", "sample", s, stride)),
            })
            .collect();
        opt.zero_grad();
        set_grads(&handles, &grads);
        opt.step().unwrap();
        let after = case["after"][step].as_array().unwrap();
        for (k, (h, want)) in handles.iter().zip(after).enumerate() {
            let got: Vec<f32> = values(h).into_iter().step_by(stride).collect();
            err.update(&got, &f32s(want), &format!("{name} step {step} param {k}"));
        }
    }
    println!(
        "{name:32} max abs err {:.3e}  max rel err {:.3e}",
        err.abs, err.scaled
    );
    err
}

#[test]
fn optimizers_match_pytorch() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("optimizer_") && n.ends_with(".json")
        })
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 14, "optimizer fixtures: {paths:?}");
    let mut worst = Err::default();
    for p in &paths {
        let e = run_optimizer_case(p);
        worst.abs = worst.abs.max(e.abs);
        worst.scaled = worst.scaled.max(e.scaled);
    }
    println!(
        "optimizers: max abs err {:.3e}, max rel err {:.3e}",
        worst.abs, worst.scaled
    );
}

fn check_lrs(name: &str, sched: &mut dyn LrScheduler, case: &Value) -> f64 {
    let want: Vec<f64> = case["lrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let metrics: Option<Vec<f64>> = case.get("metrics").map(|m| {
        m.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    });
    let mut got = vec![sched.lr()];
    for e in 0..want.len() - 1 {
        let metric = metrics.as_ref().map(|m| m[e]);
        got.push(sched.step(metric).unwrap());
        assert_eq!(sched.epoch(), e as u64 + 1);
    }
    let mut max_err: f64 = 0.0;
    for (e, (g, w)) in got.iter().zip(&want).enumerate() {
        let d = (g - w).abs();
        max_err = max_err.max(d);
        assert!(d <= LR_TOL, "{name} epoch {e}: got {g}, PyTorch {w}");
    }
    println!("{name:24} max lr err {max_err:.3e}");
    max_err
}

#[test]
fn schedulers_match_pytorch() {
    let fixture = read_json(&fixture_dir().join("schedulers.json"));
    let mut seen = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let base = case["base_lr"].as_f64().unwrap();
        let f = |k: &str| case[k].as_f64().unwrap();
        let u = |k: &str| case[k].as_u64().unwrap();
        let mut sched: Box<dyn LrScheduler> = match case["kind"].as_str().unwrap() {
            "multistep" => {
                let m: Vec<u64> = case["milestones"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                Box::new(MultiStepLr::new(base, &m, f("gamma")).unwrap())
            }
            "step" => Box::new(StepLr::new(base, u("step_size"), f("gamma")).unwrap()),
            "plateau" => {
                let config = PlateauConfig {
                    mode: match case["mode"].as_str().unwrap() {
                        "min" => PlateauMode::Min,
                        _ => PlateauMode::Max,
                    },
                    factor: f("factor"),
                    patience: u("patience"),
                    threshold: f("threshold"),
                    threshold_mode: match case["threshold_mode"].as_str().unwrap() {
                        "rel" => ThresholdMode::Rel,
                        _ => ThresholdMode::Abs,
                    },
                    cooldown: u("cooldown"),
                    min_lr: f("min_lr"),
                    eps: f("eps"),
                };
                Box::new(ReduceLrOnPlateau::new(base, config).unwrap())
            }
            "cosine_warmup" => Box::new(
                CosineWarmup::new(
                    base,
                    u("warmup_epochs"),
                    u("total_epochs"),
                    f("min_lr"),
                    f("warmup_start_factor"),
                )
                .unwrap(),
            ),
            other => panic!("unknown scheduler {other}"),
        };
        check_lrs(name, sched.as_mut(), case);
        seen += 1;
    }
    assert_eq!(seen, 6);
}

#[test]
fn clip_grad_norm_matches_pytorch() {
    let fixture = read_json(&fixture_dir().join("clip.json"));
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let norm_type = match &case["norm_type"] {
            Value::String(s) if s == "inf" => f64::INFINITY,
            v => v.as_f64().unwrap(),
        };
        let max_norm = case["max_norm"].as_f64().unwrap();
        let params: Vec<Tensor> = case["shapes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Tensor::zeros(shape(s), (Kind::Float, Device::Cpu)).set_requires_grad(true))
            .collect();
        let grads: Vec<Option<Tensor>> = case["grads"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&params)
            .map(|(g, p)| Some(Tensor::from_slice(&f32s(g)).reshape(p.size())))
            .collect();
        set_grads(&params, &grads);
        let total = clip_grad_norm(&params, max_norm, norm_type).unwrap();
        let want_total = case["total_norm"].as_f64().unwrap();
        let total_err = (total - want_total).abs();
        assert!(
            total_err <= PARAM_TOL * want_total.max(1.0),
            "{name}: total norm {total} vs PyTorch {want_total}"
        );
        let mut err = Err::default();
        for (k, (p, want)) in params
            .iter()
            .zip(case["after"].as_array().unwrap())
            .enumerate()
        {
            err.update(&values(&p.grad()), &f32s(want), &format!("{name} grad {k}"));
        }
        println!(
            "{name:20} total norm err {total_err:.3e}  grads max abs err {:.3e}",
            err.abs
        );
    }
}
