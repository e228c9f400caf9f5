//! Composition, overrides, errors, interpolation and printing of the embedded configuration.

use mbls_config::{Config, ConfigError, Value};

/// The README's example command line.
const README_EXAMPLE: &[&str] = &[
    "data=tiny_imagenet",
    "model=resnet50_tiny",
    "model.num_classes=200",
    "loss=logit_margin",
    "loss.margin=10.0",
    "loss.alpha=0.1",
    "optim=sgd",
    "optim.lr=0.1",
    "optim.momentum=0.9",
    "scheduler=multi_step",
    "scheduler.milestones=[40, 60]",
    "train.max_epoch=100",
];

#[test]
fn defaults_compose() {
    let cfg = Config::compose(&[]).unwrap();
    let chosen: Vec<(&str, &str)> = cfg
        .choices()
        .iter()
        .map(|(g, o)| (g.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        chosen,
        [
            ("data", "cifar10"),
            ("model", "resnet50"),
            ("loss", "ce"),
            ("optim", "sgd"),
            ("scheduler", "multi_step"),
            ("wandb", "my"),
        ]
    );
    assert_eq!(cfg.get_str("task").unwrap(), "cv");
    assert_eq!(cfg.get_str("device").unwrap(), "cpu");
    assert_eq!(cfg.get_i64("seed").unwrap(), 1);
    assert_eq!(cfg.get_i64("log_period").unwrap(), 10);
    assert!(cfg.get_bool("train.clip_grad_norm").unwrap());
    assert_eq!(cfg.get_i64("train.max_epoch").unwrap(), 200);
    assert!(!cfg.get_bool("train.resume").unwrap());
    assert_eq!(cfg.get_i64("train.keep_checkpoint_num").unwrap(), 1);
    assert_eq!(cfg.get_i64("train.keep_checkpoint_interval").unwrap(), 0);
    assert_eq!(cfg.get_i64("calibrate.num_bins").unwrap(), 15);
    // mbls draws the Test/TestPT diagrams by default (the reference: False, wandb only)
    assert!(cfg.get_bool("calibrate.visualize").unwrap());
    assert_eq!(cfg.get_f64("train.clip_max_norm").unwrap(), 2.0);
    assert!(cfg.get_bool("train.channels_last").unwrap());
    assert_eq!(cfg.get_str("test.checkpoint").unwrap(), "");
    assert!(!cfg.get_bool("test.save_logits").unwrap());
    assert!(!cfg.get_bool("test.post_temperature").unwrap());
    assert!(!cfg.get_bool("wandb.enable").unwrap());
    assert_eq!(cfg.get_str("wandb.project").unwrap(), "");
    assert_eq!(cfg.get_str("wandb.entity").unwrap(), "");
    assert_eq!(cfg.get_str("wandb.tags").unwrap(), "");

    assert_eq!(cfg.get_str("data.name").unwrap(), "cifar10");
    assert_eq!(cfg.get_str("data.data_root").unwrap(), "data/cifar10");
    assert_eq!(cfg.get_usize("data.batch_size").unwrap(), 128);
    assert_eq!(cfg.get_i64("data.num_workers").unwrap(), 4);
    assert!(cfg.get_bool("data.augment").unwrap());
    assert_eq!(cfg.get_f64("data.val_split").unwrap(), 0.1);
    assert!(cfg.get_bool("data.shuffle").unwrap());
    assert_eq!(cfg.get_i64("data.random_seed").unwrap(), 1);

    assert_eq!(cfg.get_str("model.name").unwrap(), "resnet50");
    assert_eq!(cfg.get_i64("model.num_classes").unwrap(), 10);
    assert!(cfg.get_bool("model.pretrained").unwrap());
    assert!(!cfg.get_bool("model.has_dropout").unwrap());

    assert_eq!(cfg.get_str("loss.name").unwrap(), "ce");
    assert_eq!(cfg.get_i64("loss.ignore_index").unwrap(), -100);

    assert_eq!(cfg.get_str("optim.name").unwrap(), "sgd");
    assert_eq!(cfg.get_f64("optim.lr").unwrap(), 0.1);
    assert_eq!(cfg.get_f64("optim.momentum").unwrap(), 0.9);
    assert_eq!(cfg.get_f64("optim.weight_decay").unwrap(), 5e-4);
    assert!(!cfg.get_bool("optim.nesterov").unwrap());
    assert!(!cfg.get_bool("optim.no_decay_norm_bias").unwrap());

    assert_eq!(cfg.get_str("scheduler.name").unwrap(), "multi_step");
    assert_eq!(
        cfg.get_i64_list("scheduler.milestones").unwrap(),
        [150, 250]
    );
    assert_eq!(cfg.get_f64("scheduler.gamma").unwrap(), 0.1);

    // Top-level order: the group files, then the primary config's own keys (`_self_` last),
    // `wandb` staying where its group put it.
    let Value::Map(entries) = cfg.value() else {
        panic!("root is not a mapping")
    };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "data",
            "model",
            "loss",
            "optim",
            "scheduler",
            "wandb",
            "task",
            "device",
            "seed",
            "log_period",
            "train",
            "calibrate",
            "test",
            "ood"
        ]
    );
}

#[test]
fn every_group_option_composes_with_a_name_and_typed_keys() {
    for (group, options) in Config::groups() {
        for option in *options {
            let cfg = Config::compose(&[&format!("{group}={option}")])
                .unwrap_or_else(|e| panic!("{group}={option}: {e}"));
            assert_eq!(cfg.group(group), *option);
            if *group != "wandb" {
                let name = cfg.get_str(&format!("{group}.name")).unwrap();
                let expected = if *option == "newgroups" { "ng" } else { option };
                assert_eq!(name, expected, "{group}={option}");
            }
            assert!(Config::option_yaml(group, option).is_some());
        }
    }
    let names: Vec<&str> = Config::groups().iter().map(|(g, _)| *g).collect();
    assert_eq!(
        names,
        ["data", "model", "loss", "optim", "scheduler", "wandb"]
    );
}

#[test]
fn group_option_values() {
    let c = |args: &[&str]| Config::compose(args).unwrap();

    let cfg = c(&["loss=ls"]);
    assert_eq!(cfg.get_f64("loss.alpha").unwrap(), 0.05);
    assert_eq!(cfg.get_str("loss.reduction").unwrap(), "mean");
    let cfg = c(&["loss=focal"]);
    assert_eq!(cfg.get_f64("loss.gamma").unwrap(), 3.0);
    assert!(cfg.get_bool("loss.size_average").unwrap());
    let cfg = c(&["loss=logit_margin"]);
    assert_eq!(cfg.get_f64("loss.margin").unwrap(), 10.0);
    assert_eq!(cfg.get_f64("loss.alpha").unwrap(), 0.1);
    assert_eq!(cfg.get_str("loss.schedule").unwrap(), "");
    assert_eq!(cfg.get_f64("loss.mu").unwrap(), 0.0);
    assert_eq!(cfg.get_f64("loss.max_alpha").unwrap(), 100.0);
    assert_eq!(cfg.get_i64("loss.step_size").unwrap(), 100);
    assert_eq!(c(&["loss=mmce"]).get_f64("loss.lamda").unwrap(), 1.0);
    assert_eq!(c(&["loss=penalty_l1"]).get_f64("loss.alpha").unwrap(), 1.0);

    let cfg = c(&["optim=adam"]);
    assert_eq!(cfg.get_f64("optim.lr").unwrap(), 0.01);
    assert_eq!(cfg.get_f64_list("optim.betas").unwrap(), [0.9, 0.999]);
    let cfg = c(&["optim=adamw"]);
    assert_eq!(cfg.get_f64("optim.weight_decay").unwrap(), 0.01);

    let cfg = c(&["scheduler=plateau"]);
    assert_eq!(cfg.get_str("scheduler.mode").unwrap(), "min");
    assert_eq!(cfg.get_f64("scheduler.factor").unwrap(), 0.5);
    assert_eq!(cfg.get_i64("scheduler.patience").unwrap(), 10);
    assert_eq!(cfg.get_str("scheduler.metric").unwrap(), "val_loss");
    let cfg = c(&["scheduler=cosine"]);
    assert_eq!(cfg.get_i64("scheduler.warmup_epochs").unwrap(), 5);

    let cfg = c(&["model=deeplabv3", "data=voc", "task=segment"]);
    assert_eq!(cfg.get_i64("model.num_classes").unwrap(), 21);
    assert_eq!(cfg.get_str("model.encoder_name").unwrap(), "resnet50");
    assert_eq!(cfg.get_str("model.encoder_weights").unwrap(), "imagenet");
    assert_eq!(cfg.get_i64("model.in_channels").unwrap(), 3);
    assert_eq!(cfg.get_usize("data.batch_size").unwrap(), 8);
    assert_eq!(cfg.get_str("task").unwrap(), "segment");
    assert!(
        c(&["model=resnet101"])
            .get_bool("model.has_dropout")
            .unwrap()
    );
    assert!(!c(&["model=resnet110_cifar"]).contains("model.pretrained"));

    let cfg = c(&["data=newgroups", "model=global_pooling", "seed=7"]);
    assert_eq!(cfg.get_str("data.name").unwrap(), "ng");
    assert_eq!(cfg.get_f64("data.test_split").unwrap(), 0.2);
    assert_eq!(cfg.get_i64("data.random_seed").unwrap(), 7);
    assert_eq!(cfg.get_i64("model.num_classes").unwrap(), 20);
    // the dataset's name selects it too (one set, one printed option: newgroups)
    for alias in ["data=ng", "data=newsgroups"] {
        let other = c(&[alias, "model=global_pooling", "seed=7"]);
        assert_eq!(other.to_yaml(), cfg.to_yaml(), "{alias}");
        assert_eq!(other.group("data"), "newgroups", "{alias}");
    }
    let cfg = c(&["data=cub"]);
    assert_eq!(cfg.get_i64("data.scale_size").unwrap(), 256);
    assert_eq!(cfg.get_i64("data.crop_size").unwrap(), 224);
    assert_eq!(cfg.get_i64("data.num_workers").unwrap(), 8);
}

#[test]
fn readme_example() {
    let cfg = Config::compose(README_EXAMPLE).unwrap();
    assert_eq!(cfg.group("data"), "tiny_imagenet");
    assert_eq!(cfg.group("model"), "resnet50_tiny");
    assert_eq!(cfg.group("loss"), "logit_margin");
    assert_eq!(cfg.group("optim"), "sgd");
    assert_eq!(cfg.group("scheduler"), "multi_step");
    assert_eq!(cfg.group("wandb"), "my");
    assert_eq!(cfg.get_str("data.name").unwrap(), "tiny_imagenet");
    assert_eq!(cfg.get_usize("data.batch_size").unwrap(), 64);
    assert_eq!(cfg.get_i64("data.val_samples_per_class").unwrap(), 50);
    assert_eq!(cfg.get_str("model.name").unwrap(), "resnet50_tiny");
    assert_eq!(cfg.get_i64("model.num_classes").unwrap(), 200);
    assert_eq!(cfg.get_f64("loss.margin").unwrap(), 10.0);
    assert_eq!(cfg.get_f64("loss.alpha").unwrap(), 0.1);
    assert_eq!(cfg.get_f64("optim.lr").unwrap(), 0.1);
    assert_eq!(cfg.get_f64("optim.momentum").unwrap(), 0.9);
    assert_eq!(cfg.get_i64_list("scheduler.milestones").unwrap(), [40, 60]);
    assert_eq!(
        cfg.get_f64_list("scheduler.milestones").unwrap(),
        [40.0, 60.0]
    );
    assert_eq!(cfg.get_i64("train.max_epoch").unwrap(), 100);
    assert_eq!(cfg.get_i64("data.random_seed").unwrap(), 1);
}

#[test]
fn group_selection_is_order_independent() {
    let reference = Config::compose(README_EXAMPLE).unwrap();
    // Key overrides first, group selections last.
    let mut keys_first: Vec<&str> = README_EXAMPLE
        .iter()
        .copied()
        .filter(|a| a.contains('.'))
        .collect();
    keys_first.extend(README_EXAMPLE.iter().copied().filter(|a| !a.contains('.')));
    assert_eq!(Config::compose(&keys_first).unwrap(), reference);
    // Reversed.
    let reversed: Vec<&str> = README_EXAMPLE.iter().rev().copied().collect();
    assert_eq!(Config::compose(&reversed).unwrap(), reference);
    // A key of a non-default option given before its group is selected.
    let cfg = Config::compose(&["loss.margin=5", "loss=logit_margin"]).unwrap();
    assert_eq!(cfg.get_f64("loss.margin").unwrap(), 5.0);
}

#[test]
fn later_overrides_win() {
    let cfg = Config::compose(&["optim.lr=0.5", "loss=focal", "optim.lr=0.2", "loss=ls"]).unwrap();
    assert_eq!(cfg.get_f64("optim.lr").unwrap(), 0.2);
    assert_eq!(cfg.group("loss"), "ls");
}

#[test]
fn value_forms() {
    let cfg = Config::compose(&[
        "device=cuda:0",
        "loss=logit_margin",
        "loss.margin=5",           // int for a float
        "optim.weight_decay=1e-4", // exponent
        "train.resume=true",       // any YAML 1.2 spelling
        "test.checkpoint=out/run 1/best.pth",
        "wandb.tags=123",            // unquoted scalar for a string key: its text
        "data.data_root='True'",     // quoted: a string
        "scheduler.milestones.0=30", // list element
        "train={max_epoch: 5, resume: False}",
        "+train.note=hello",
        "++calibrate.num_bins=20",
        "++calibrate.extra=[1, 2]",
        "+new.deep.key=0.5",
        "loss.schedule=",
    ])
    .unwrap();
    assert_eq!(cfg.get_str("device").unwrap(), "cuda:0");
    assert_eq!(cfg.get("loss.margin"), Some(&Value::Float(5.0)));
    assert_eq!(cfg.get_f64("optim.weight_decay").unwrap(), 1e-4);
    assert!(!cfg.get_bool("train.resume").unwrap());
    assert_eq!(cfg.get_i64("train.max_epoch").unwrap(), 5);
    assert!(cfg.get_bool("train.clip_grad_norm").unwrap());
    assert_eq!(
        cfg.get_str("test.checkpoint").unwrap(),
        "out/run 1/best.pth"
    );
    assert_eq!(cfg.get_str("wandb.tags").unwrap(), "123");
    assert_eq!(cfg.get_str("data.data_root").unwrap(), "True");
    assert_eq!(cfg.get_i64_list("scheduler.milestones").unwrap(), [30, 250]);
    assert_eq!(cfg.get_str("train.note").unwrap(), "hello");
    assert_eq!(cfg.get_i64("calibrate.num_bins").unwrap(), 20);
    assert_eq!(cfg.get_i64_list("calibrate.extra").unwrap(), [1, 2]);
    assert_eq!(cfg.get_f64("new.deep.key").unwrap(), 0.5);
    assert_eq!(cfg.get_str("loss.schedule").unwrap(), "");

    let owned: Vec<String> = vec!["seed=3".into()];
    assert_eq!(
        Config::compose_args(&owned)
            .unwrap()
            .get_i64("seed")
            .unwrap(),
        3
    );
}

#[test]
fn unknown_group_option_lists_the_valid_ones() {
    let e = Config::compose(&["loss=logit_margn"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown option `logit_margn` for config group `loss`; valid options: ce, ls, focal, \
         focal_adaptive, logit_margin, mmce, penalty_ent, brier, penalty_l1, mmce_weighted"
    );
    assert!(matches!(e, ConfigError::UnknownOption { ref group, .. } if group == "loss"));
}

#[test]
fn unknown_key_names_it_and_suggests() {
    let e = Config::compose(&["optim.lrr=0.1"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "key `optim.lrr` is not in the config (did you mean `optim.lr`?); \
         to add a new key use `+optim.lrr=VALUE`"
    );
    let e = Config::compose(&["lr=0.1"]).unwrap_err();
    assert_eq!(
        e,
        ConfigError::UnknownKey {
            key: "lr".into(),
            suggestion: Some("optim.lr".into()),
            hint: None
        }
    );
    // A key of another option of the group.
    let e = Config::compose(&["loss.margin=5"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "key `loss.margin` is not in the config; the selected loss=ce has no such key, it exists \
         with loss=logit_margin; to add a new key use `+loss.margin=VALUE`"
    );
    let e = Config::compose(&["nothing.like.it=1"]).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::UnknownKey {
                suggestion: None,
                ..
            }
        ),
        "{e}"
    );
    // Adding works where setting does not.
    assert!(Config::compose(&["+nothing.like.it=1"]).is_ok());
}

#[test]
fn adding_an_existing_key_fails() {
    let e = Config::compose(&["+seed=3"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot add `seed`: it is already in the config; to override it use `seed=VALUE`"
    );
    assert!(matches!(
        Config::compose(&["+loss=ce"]),
        Err(ConfigError::KeyExists { .. })
    ));
    let e = Config::compose(&["+seed.sub=3"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad override `+seed.sub=3`: cannot add a key under `seed`, which is an integer"
    );
}

#[test]
fn wrong_types_fail() {
    let e = Config::compose(&["optim.lr=abc"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot set `optim.lr` to `abc`: expected a float, got a string"
    );
    let e = Config::compose(&["train.max_epoch=1.5"]).unwrap_err();
    assert_eq!(
        e,
        ConfigError::TypeMismatch {
            key: "train.max_epoch".into(),
            value: "1.5".into(),
            expected: "an integer".into(),
            found: "a float".into()
        }
    );
    let e = Config::compose(&["train.resume=yes"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot set `train.resume` to `yes`: expected a boolean, got a string"
    );
    let e = Config::compose(&["scheduler.milestones=40"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot set `scheduler.milestones` to `40`: expected a list, got an integer"
    );
    let e = Config::compose(&["scheduler.milestones=[40, 6.5]"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot set `scheduler.milestones` to `[40, 6.5]`: expected a list of integers, got an \
         element that is a float"
    );
    let e = Config::compose(&["train=3"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot set `train` to `3`: expected a mapping, got an integer"
    );
    let e = Config::compose(&["train={max_epochs: 3}"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "key `train.max_epochs` is not in the config (did you mean `train.max_epoch`?); to add a \
         new key use `+train.max_epochs=VALUE`"
    );
    // Interpolated values are checked once resolved.
    let e = Config::compose(&["train.max_epoch=${device}"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot set `train.max_epoch` to `${device}`: expected an integer, got a string"
    );
    let cfg = Config::compose(&["loss=ls", "loss.alpha=${seed}"]).unwrap();
    assert_eq!(cfg.get("loss.alpha"), Some(&Value::Float(1.0)));
}

#[test]
fn malformed_overrides_fail() {
    let e = Config::compose(&["loss"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad override `loss`: expected `group=option`, `key=value` or `+key=value` (no `=` found)"
    );
    assert!(matches!(
        Config::compose(&["~seed"]),
        Err(ConfigError::BadOverride { .. })
    ));
    let e = Config::compose(&["scheduler.milestones=[40, 60"]).unwrap_err();
    assert!(
        matches!(e, ConfigError::BadValue { ref key, .. } if key == "scheduler.milestones"),
        "{e}"
    );
}

#[test]
fn interpolation() {
    let cfg = Config::compose(&[
        "seed=5",
        "+run.name=${data.name}-${model.name}-${loss.name}-s${seed}",
        "+run.batch=${data.batch_size}",
        "+run.milestones=${scheduler.milestones}",
        "+run.first=${scheduler.milestones.0}",
        "+run.sibling=${.batch}",
        "+run.literal=\\${seed}",
    ])
    .unwrap();
    assert_eq!(cfg.get_i64("data.random_seed").unwrap(), 5);
    assert_eq!(cfg.get_str("run.name").unwrap(), "cifar10-resnet50-ce-s5");
    assert_eq!(cfg.get_i64("run.batch").unwrap(), 128);
    assert_eq!(cfg.get_i64_list("run.milestones").unwrap(), [150, 250]);
    assert_eq!(cfg.get_i64("run.first").unwrap(), 150);
    assert_eq!(cfg.get_i64("run.sibling").unwrap(), 128);
    assert_eq!(cfg.get_str("run.literal").unwrap(), "${seed}");
    // Resolution sees the final tree, whatever the override order.
    let cfg =
        Config::compose(&["data.random_seed=${train.max_epoch}", "train.max_epoch=7"]).unwrap();
    assert_eq!(cfg.get_i64("data.random_seed").unwrap(), 7);
}

#[test]
fn interpolation_errors() {
    let e = Config::compose(&["+a=${b}", "+b=${a}"]).unwrap_err();
    assert_eq!(e.to_string(), "cyclic interpolation: a -> b -> a");
    let e = Config::compose(&["seed=${seed}"]).unwrap_err();
    assert_eq!(e.to_string(), "cyclic interpolation: seed -> seed");
    let e = Config::compose(&["+x=${data.batchsize}"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "interpolation `${data.batchsize}` in `x` refers to a missing key (did you mean \
         `data.batch_size`?)"
    );
    let e = Config::compose(&["+x=${now:%Y}"]).unwrap_err();
    assert!(matches!(e, ConfigError::InterpolationInvalid { .. }), "{e}");
}

#[test]
fn accessors_report_missing_keys_and_wrong_types() {
    let cfg = Config::compose(&[]).unwrap();
    let e = cfg.get_f64("optim.lrate").unwrap_err();
    assert_eq!(
        e.to_string(),
        "missing config key `optim.lrate` (did you mean `optim.lr`?)"
    );
    let e = cfg.get_i64("optim.lr").unwrap_err();
    assert_eq!(
        e.to_string(),
        "config key `optim.lr` is a float (`0.1`), expected an integer"
    );
    assert!(cfg.get_bool("seed").is_err());
    assert!(cfg.get_str("seed").is_err());
    assert!(cfg.get_f64_list("seed").is_err());
    assert!(cfg.get_i64_list("optim.lr").is_err());
    assert!(cfg.get_usize("loss.ignore_index").is_err());
    assert_eq!(cfg.get_f64("seed").unwrap(), 1.0);
    assert_eq!(cfg.choice("loss"), Some("ce"));
    assert_eq!(cfg.choice("seed"), None);

    let loss = cfg.subtree("loss").unwrap();
    assert_eq!(loss.path(), "loss");
    assert_eq!(loss.get_i64("ignore_index").unwrap(), -100);
    assert_eq!(loss.group("loss"), "ce");
    let e = loss.get_f64("margin").unwrap_err();
    assert_eq!(e.to_string(), "missing config key `loss.margin`");
    let e = cfg.subtree("seed").unwrap_err();
    assert!(
        matches!(e, ConfigError::WrongType { ref key, .. } if key == "seed"),
        "{e}"
    );
    let nested = cfg.subtree("train").unwrap();
    assert_eq!(nested.get_i64("max_epoch").unwrap(), 200);
}

#[test]
#[should_panic(expected = "`seed` is not a config group")]
fn group_panics_for_a_non_group() {
    let _ = Config::compose(&[]).unwrap().group("seed");
}

#[test]
fn to_yaml_round_trips() {
    for args in [
        &[][..],
        README_EXAMPLE,
        &[
            "loss=focal",
            "optim=adam",
            "device=cuda:0",
            "wandb.tags=True",
            "+extra.s='10'",
            "+extra.tiny=1e-12",
            "+extra.empty=[]",
            "+extra.map={}",
            "+extra.null=null",
            "+extra.hash=a #b",
        ][..],
    ] {
        let cfg = Config::compose(args).unwrap();
        let text = cfg.to_yaml();
        let parsed = Value::parse_yaml(&text).unwrap();
        assert_eq!(&parsed, cfg.value(), "{text}");
        assert_eq!(format!("{cfg}"), text);
    }
    let text = Config::compose(&[]).unwrap().to_yaml();
    assert!(text.starts_with("data:\n  name: cifar10\n"), "{text}");
    assert!(
        text.contains("  lr: 0.1\n  momentum: 0.9\n  weight_decay: 0.0005\n"),
        "{text}"
    );
}

#[test]
fn serializes_as_json() {
    let cfg = Config::compose(&["loss=logit_margin"]).unwrap();
    let json = serde_json::to_value(cfg.value()).unwrap();
    assert_eq!(json["loss"]["margin"], serde_json::json!(10.0));
    assert_eq!(json["data"]["random_seed"], serde_json::json!(1));
}
