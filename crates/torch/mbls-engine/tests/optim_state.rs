//! Optimizer state through files: 3 steps, save, load into a fresh optimizer, 2 more steps
//! must equal 5 uninterrupted steps bit for bit; bad files are rejected with clear errors.

use std::path::Path;

use mbls_engine::optim::{
    Adam, AdamConfig, AdamW, OptimError, Optimizer, OptimizerState, Sgd, SgdConfig,
    WeightDecayPolicy, sidecar_path,
};
use tch::{Kind, Tensor};

const SHAPES: [&[i64]; 3] = [&[3, 4], &[4], &[2, 3, 2]];
const NAMES: [&str; 3] = ["conv.weight", "conv.bias", "fc.weight"];

fn formula(shape: &[i64], seed: f64, scale: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            (scale * (0.7 * i as f64 + 1.3 * seed).sin() + 0.1 * (0.3 * i as f64).cos()) as f32
        })
        .collect();
    Tensor::from_slice(&v).reshape(shape)
}

fn fresh_params() -> Vec<(String, Tensor)> {
    NAMES
        .iter()
        .zip(SHAPES)
        .enumerate()
        .map(|(k, (n, s))| {
            (
                n.to_string(),
                formula(s, k as f64 + 1.0, 0.8).set_requires_grad(true),
            )
        })
        .collect()
}

/// Copies of the parameter values, as fresh leaves (what loading model weights gives).
fn copy_params(params: &[Tensor]) -> Vec<(String, Tensor)> {
    NAMES
        .iter()
        .zip(params)
        .map(|(n, p)| (n.to_string(), p.detach().copy().set_requires_grad(true)))
        .collect()
}

fn do_step(opt: &mut dyn Optimizer, step: usize) {
    opt.zero_grad();
    let mut terms = Vec::new();
    for (k, p) in opt.params().iter().enumerate() {
        // the bias gets no gradient at step 0: its state starts one step later
        if k == 1 && step == 0 {
            continue;
        }
        let g = formula(&p.shape(), 10.0 * (step + 1) as f64 + k as f64, 0.5);
        terms.push((p.tensor() * g).sum(Kind::Float));
    }
    Tensor::stack(&terms, 0).sum(Kind::Float).backward();
    opt.clip_grad_norm(2.0, 2.0).unwrap();
    opt.step().unwrap();
}

fn values(opt: &dyn Optimizer) -> Vec<Vec<f32>> {
    opt.params()
        .iter()
        .map(|p| Vec::<f32>::try_from(p.tensor().detach().reshape([-1])).unwrap())
        .collect()
}

type Make = fn(Vec<(String, Tensor)>) -> Box<dyn Optimizer>;

fn makers() -> Vec<(&'static str, Make)> {
    vec![
        ("sgd", |p| {
            Box::new(
                Sgd::new(
                    p,
                    SgdConfig {
                        lr: 0.1,
                        momentum: 0.9,
                        nesterov: true,
                        weight_decay: 5e-4,
                        decay_policy: WeightDecayPolicy::ExcludeBiasAndNorm,
                        ..SgdConfig::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("adam", |p| {
            Box::new(
                Adam::new(
                    p,
                    AdamConfig {
                        lr: 0.01,
                        weight_decay: 1e-3,
                        amsgrad: true,
                        ..AdamConfig::default()
                    },
                )
                .unwrap(),
            )
        }),
        ("adamw", |p| {
            Box::new(AdamW::new(p, AdamConfig::adamw_default()).unwrap())
        }),
    ]
}

#[test]
fn resume_from_files_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    for (name, make) in makers() {
        let mut straight = make(fresh_params());
        for s in 0..5 {
            do_step(straight.as_mut(), s);
            if s == 2 {
                straight.set_lr(straight.lr() * 0.5).unwrap();
            }
        }

        let mut first = make(fresh_params());
        for s in 0..3 {
            do_step(first.as_mut(), s);
        }
        first.set_lr(first.lr() * 0.5).unwrap();
        let path = dir.path().join(format!("{name}.safetensors"));
        first.save(&path).unwrap();
        assert!(sidecar_path(&path).exists());
        let weights: Vec<Tensor> = first
            .params()
            .iter()
            .map(|p| p.tensor().shallow_clone())
            .collect();

        let mut resumed = make(copy_params(&weights));
        resumed.load(&path).unwrap();
        assert_eq!(resumed.lr(), first.lr(), "{name}: lr restored");
        assert_eq!(
            resumed.state_dict().unwrap().meta,
            first.state_dict().unwrap().meta,
            "{name}: metadata restored"
        );
        for s in 3..5 {
            do_step(resumed.as_mut(), s);
        }
        assert_eq!(
            values(resumed.as_ref()),
            values(straight.as_ref()),
            "{name}"
        );
        // nothing but the two files is left in the folder
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "adam.safetensors",
            "adam.safetensors.json",
            "adamw.safetensors",
            "adamw.safetensors.json",
            "sgd.safetensors",
            "sgd.safetensors.json"
        ]
    );
}

fn saved_sgd(path: &Path, steps: usize) -> Box<dyn Optimizer> {
    let (_, make) = makers().remove(0);
    let mut opt = make(fresh_params());
    for s in 0..steps {
        do_step(opt.as_mut(), s);
    }
    opt.save(path).unwrap();
    opt
}

#[test]
fn bad_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.safetensors");
    let b = dir.path().join("b.safetensors");
    saved_sgd(&a, 2);
    saved_sgd(&b, 3);

    // sidecar of another save
    std::fs::copy(sidecar_path(&b), sidecar_path(&a)).unwrap();
    match OptimizerState::load(&a) {
        Err(e @ OptimError::SaveMismatch { .. }) => {
            assert!(e.to_string().contains("a.safetensors"), "{e}")
        }
        other => panic!("{other:?}"),
    }

    // missing files
    let missing = dir.path().join("none.safetensors");
    match OptimizerState::load(&missing) {
        Err(e @ OptimError::Io { .. }) => assert!(e.to_string().contains("none.safetensors.json")),
        other => panic!("{other:?}"),
    }
    std::fs::write(sidecar_path(&missing), b"{ not json").unwrap();
    assert!(matches!(
        OptimizerState::load(&missing),
        Err(OptimError::Json { .. })
    ));

    // a different model: a parameter with another shape is named in the error
    let mut other_params = fresh_params();
    other_params[2].1 =
        Tensor::zeros([3, 4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let (_, make) = makers().remove(0);
    let mut opt = make(other_params);
    let err = opt.load(&b).unwrap_err();
    assert!(
        err.to_string().contains("`fc.weight`") && err.to_string().contains("[2, 3, 2]"),
        "{err}"
    );

    // another optimizer kind
    let (_, make_adam) = makers().remove(1);
    let mut adam = make_adam(fresh_params());
    assert!(matches!(
        adam.load(&b),
        Err(OptimError::KindMismatch { .. })
    ));
}

#[test]
fn state_before_any_step_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.safetensors");
    let opt = saved_sgd(&path, 0);
    let state = OptimizerState::load(&path).unwrap();
    assert!(state.tensors.is_empty());
    assert_eq!(state.meta, opt.state_dict().unwrap().meta);
}
