//! The reference's networks on [`tch::nn`]: CIFAR-style, Tiny-ImageNet-style and
//! ImageNet-style (torchvision v1.5) ResNets, the 20 Newsgroups `GlobalPoolingCNN`, and
//! DeepLabV3 (segmentation_models_pytorch's, with a dilated ResNet encoder).
//!
//! Every variable is registered in the [`nn::VarStore`] under the very name the reference's
//! PyTorch `state_dict` uses (`conv1.weight`, `layer1.0.shortcut.1.running_var`,
//! `bn1.num_batches_tracked`, `fc.bias`, ...), and [`Model::state_dict_names`] lists them in
//! PyTorch's `state_dict` order, so that checkpoints can be exchanged.

mod deeplab;
mod layers;
mod resnet;
mod text;

pub use deeplab::{DeepLabConfig, DeepLabV3};
pub use resnet::{BlockKind, ResNet, ResNetConfig, ResNetStyle};
pub use text::GlobalPoolingCnn;

use layers::Order;
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// Every name [`build_model`] accepts.
pub const MODEL_NAMES: &[&str] = &[
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet50_cifar",
    "resnet101_cifar",
    "resnet110_cifar",
    "resnet152_cifar",
    "resnet18_tiny",
    "resnet34_tiny",
    "resnet50_tiny",
    "resnet101_tiny",
    "resnet110_tiny",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "global_pooling",
    "deeplabv3",
];

/// Errors of [`build_model`].
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model name is not one of [`MODEL_NAMES`].
    #[error("unknown model {name:?}; valid models: {}", MODEL_NAMES.join(", "))]
    Unknown {
        /// The name that was asked for.
        name: String,
    },
    /// An option was given to a model that does not support it.
    #[error("model {name:?} does not support {option}")]
    Unsupported {
        /// The model name.
        name: String,
        /// The option that does not apply.
        option: &'static str,
    },
    /// The number of classes is not positive.
    #[error("num_classes must be positive, got {0}")]
    NumClasses(i64),
    /// An option has a value the model cannot take.
    #[error("model {name:?}: {message}")]
    Invalid {
        /// The model name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Options of [`build_model`] beyond the name and class count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelOptions {
    /// Dropout(p = 0.5) before `fc` (ImageNet-style ResNets only; the reference's `resnet101`
    /// config sets it).
    pub has_dropout: bool,
    /// Logits are divided by this (CIFAR, Tiny and text models; the reference uses 1.0).
    pub temp: f64,
    /// Embedding width of the text model's input (`global_pooling`; 100 for GloVe).
    pub embedding_dim: i64,
    /// ResNet depth of DeepLabV3's encoder (`model.encoder_name=resnet50` gives 50).
    pub encoder_depth: u32,
    /// DeepLabV3's encoder output stride (8 or 16; smp's default and the reference: 8).
    pub output_stride: i64,
    /// DeepLabV3's dropout after the ASPP projection (smp's default 0.5).
    pub aspp_dropout: f64,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            has_dropout: false,
            temp: 1.0,
            embedding_dim: 100,
            encoder_depth: 50,
            output_stride: 8,
            aspp_dropout: 0.5,
        }
    }
}

/// One layer with parameters, as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Module path (`layer1.0.conv1`), the prefix of its `state_dict` names.
    pub path: String,
    /// PyTorch module type (`Conv2d`, `BatchNorm2d`, `Linear`, `Conv1d`).
    pub kind: String,
    /// Its settings (channels, kernel, stride, padding, dilation, bias, ...).
    pub description: String,
    /// Number of trainable parameters.
    pub parameters: i64,
}

/// A built network together with its `state_dict` names in PyTorch order.
#[derive(Debug)]
pub struct Model {
    name: String,
    net: Box<dyn ModuleT>,
    state_dict: Vec<String>,
    layers: Vec<Layer>,
}

impl Model {
    /// The name the model was built from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Full `state_dict` names (parameters and buffers, `num_batches_tracked` included) in the
    /// order PyTorch lists them; each is the full name of a variable of the [`nn::VarStore`]
    /// the model was built in (prefixed by the path it was built under, if any).
    pub fn state_dict_names(&self) -> &[String] {
        &self.state_dict
    }

    /// Every layer with parameters, in construction (= `state_dict`) order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
}

impl ModuleT for Model {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(xs, train)
    }
}

/// Builds the model `name` (one of [`MODEL_NAMES`]) with `num_classes` outputs, registering its
/// variables under `vs` with the reference's default initialisation.
pub fn build_model(
    name: &str,
    num_classes: i64,
    vs: &nn::Path,
    opts: ModelOptions,
) -> Result<Model, ModelError> {
    if num_classes <= 0 {
        return Err(ModelError::NumClasses(num_classes));
    }
    let mut order = Order::default();
    let net: Box<dyn ModuleT> = if name == "global_pooling" {
        if opts.has_dropout {
            return Err(ModelError::Unsupported {
                name: name.into(),
                option: "has_dropout",
            });
        }
        Box::new(GlobalPoolingCnn::new(
            vs,
            &mut order,
            opts.embedding_dim,
            num_classes,
            opts.temp,
        ))
    } else if name == "deeplabv3" {
        let invalid = |message: String| ModelError::Invalid {
            name: name.into(),
            message,
        };
        if opts.has_dropout {
            return Err(ModelError::Unsupported {
                name: name.into(),
                option: "has_dropout",
            });
        }
        let encoder = resnet_layout(opts.encoder_depth)
            .filter(|_| opts.encoder_depth != 110)
            .ok_or_else(|| {
            invalid(format!(
                "encoder resnet{} is not one of resnet18, resnet34, resnet50, resnet101, resnet152",
                opts.encoder_depth
            ))
        })?;
        if opts.output_stride != 8 && opts.output_stride != 16 {
            return Err(invalid(format!(
                "output_stride must be 8 or 16, got {}",
                opts.output_stride
            )));
        }
        if !(0.0..1.0).contains(&opts.aspp_dropout) {
            return Err(invalid(format!(
                "aspp_dropout must be in [0, 1), got {}",
                opts.aspp_dropout
            )));
        }
        let cfg = DeepLabConfig {
            num_classes,
            encoder,
            output_stride: opts.output_stride,
            aspp_dropout: opts.aspp_dropout,
            ..DeepLabConfig::default()
        };
        Box::new(DeepLabV3::new(vs, &mut order, &cfg))
    } else {
        let unknown = || ModelError::Unknown { name: name.into() };
        let (base, style) = match name.split_once('_') {
            Some((b, "cifar")) => (b, ResNetStyle::Cifar),
            Some((b, "tiny")) => (b, ResNetStyle::Tiny),
            Some(_) => return Err(unknown()),
            None => (name, ResNetStyle::ImageNet),
        };
        let depth: u32 = base
            .strip_prefix("resnet")
            .and_then(|d| d.parse().ok())
            .ok_or_else(unknown)?;
        let allowed = match depth {
            110 => style != ResNetStyle::ImageNet,
            152 => style != ResNetStyle::Tiny,
            _ => true,
        };
        let (kind, depths) = resnet_layout(depth)
            .filter(|_| allowed)
            .ok_or_else(unknown)?;
        if opts.has_dropout && style != ResNetStyle::ImageNet {
            return Err(ModelError::Unsupported {
                name: name.into(),
                option: "has_dropout",
            });
        }
        let cfg = ResNetConfig {
            style,
            block: kind,
            depths,
            num_classes,
            dropout: opts.has_dropout,
            temp: opts.temp,
        };
        Box::new(ResNet::new(vs, &mut order, &cfg))
    };
    Ok(Model {
        name: name.into(),
        net,
        state_dict: order.names,
        layers: order.layers,
    })
}

/// `t` with PyTorch's `channels_last` strides (NHWC in memory, NCHW shape); other ranks are
/// returned as they are. libtorch's convolutions then run in NHWC, which
/// `bench/compare_models.sh --channels-last` measured faster for training on CPU.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Converts every 4-d variable of `vs` (convolution weights) to channels-last strides in
/// place, as `model.to(memory_format=torch.channels_last)` does; values are unchanged.
pub fn vars_to_channels_last(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let c = channels_last(&v);
                v.set_data(&c);
            }
        }
    });
}

/// Block kind and stage depths of ResNet-`depth` (the reference's 110 is Bottleneck
/// [3, 4, 26, 3]); `None` for other depths.
pub fn resnet_layout(depth: u32) -> Option<(BlockKind, [usize; 4])> {
    Some(match depth {
        18 => (BlockKind::Basic, [2, 2, 2, 2]),
        34 => (BlockKind::Basic, [3, 4, 6, 3]),
        50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
        101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
        110 => (BlockKind::Bottleneck, [3, 4, 26, 3]),
        152 => (BlockKind::Bottleneck, [3, 8, 36, 3]),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_valid_ones() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let e = build_model("resnet110", 10, &vs.root(), ModelOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("resnet110_cifar") && msg.contains("global_pooling"),
            "{msg}"
        );
        assert!(build_model("resnet50_foo", 10, &vs.root(), ModelOptions::default()).is_err());
    }

    #[test]
    fn every_name_builds_and_registers_its_state_dict() {
        for &name in [
            "resnet18_cifar",
            "resnet18_tiny",
            "resnet18",
            "global_pooling",
        ]
        .iter()
        {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let m = build_model(name, 7, &vs.root(), ModelOptions::default()).unwrap();
            let vars = vs.variables();
            assert_eq!(vars.len(), m.state_dict_names().len(), "{name}");
            for n in m.state_dict_names() {
                assert!(vars.contains_key(n), "{name}: {n}");
            }
            // The layer list accounts for every trainable parameter.
            let trainable: i64 = vars
                .values()
                .filter(|t| t.requires_grad())
                .map(|t| t.numel() as i64)
                .sum();
            let listed: i64 = m.layers().iter().map(|l| l.parameters).sum();
            assert_eq!(listed, trainable, "{name}");
        }
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let m = build_model("resnet18_cifar", 10, &vs.root(), ModelOptions::default()).unwrap();
        let l = m
            .layers()
            .iter()
            .find(|l| l.path == "layer2.0.conv1")
            .unwrap();
        assert_eq!(l.kind, "Conv2d");
        assert_eq!(
            l.description,
            "64 -> 128, kernel 3x3, stride 2, padding 1, dilation 1, bias false"
        );
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let m = build_model("deeplabv3", 21, &vs.root(), ModelOptions::default()).unwrap();
        let l = m
            .layers()
            .iter()
            .find(|l| l.path == "encoder.layer4.1.conv2")
            .unwrap();
        assert!(l.description.contains("padding 4, dilation 4"), "{l:?}");
    }

    #[test]
    fn resnet_shapes_and_default_init() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let m = build_model("resnet18_cifar", 10, &vs.root(), ModelOptions::default()).unwrap();
        let x = Tensor::zeros([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(m.forward_t(&x, false).size(), [2, 10]);
        let vars = vs.variables();
        let w = &vars["layer1.0.conv1.weight"];
        let bound = 1.0 / (64.0f64 * 9.0).sqrt();
        assert!(w.abs().max().double_value(&[]) <= bound);
        assert_eq!(vars["bn1.num_batches_tracked"].kind(), tch::Kind::Int64);
        let _ = m.forward_t(&x, true);
        assert_eq!(vars["bn1.num_batches_tracked"].int64_value(&[]), 1);
    }

    #[test]
    fn kaiming_fan_out_init_for_tiny_and_imagenet() {
        for name in ["resnet50_tiny", "resnet50"] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let _m = build_model(name, 10, &vs.root(), ModelOptions::default()).unwrap();
            let w = &vs.variables()["layer4.0.conv2.weight"];
            let want = (2.0 / (9.0 * 512.0f64)).sqrt();
            let std = w.std(true).double_value(&[]);
            assert!((std / want - 1.0).abs() < 0.02, "{name}: {std} vs {want}");
        }
    }

    /// Mean within 5 standard errors of 0, standard deviation within 3% of `std`.
    fn check_moments(name: &str, t: &Tensor, std: f64) {
        let n = t.numel() as f64;
        let mean = t.mean(tch::Kind::Double).double_value(&[]);
        let got = t.std(true).double_value(&[]);
        assert!(mean.abs() <= 5.0 * std / n.sqrt(), "{name}: mean {mean}");
        assert!((got / std - 1.0).abs() < 0.03, "{name}: std {got} vs {std}");
    }

    fn check_uniform(name: &str, t: &Tensor, bound: f64) {
        assert!(
            t.abs().max().double_value(&[]) <= bound * (1.0 + 1e-6),
            "{name}"
        );
        check_moments(name, t, bound / 3f64.sqrt());
    }

    #[test]
    fn initialisation_distributions_follow_pytorch_and_smp() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _m = build_model("resnet50_cifar", 100, &vs.root(), ModelOptions::default()).unwrap();
        let v = vs.variables();
        // PyTorch default conv/linear init: uniform(±1/sqrt(fan_in)), bias likewise.
        check_uniform(
            "conv",
            &v["layer3.0.conv2.weight"],
            1.0 / (256.0f64 * 9.0).sqrt(),
        );
        check_uniform("fc.weight", &v["fc.weight"], 1.0 / 2048f64.sqrt());
        assert!(v["fc.bias"].abs().max().double_value(&[]) <= 1.0 / 2048f64.sqrt());
        for (n, want) in [
            ("bn1.weight", 1.0),
            ("bn1.bias", 0.0),
            ("bn1.running_mean", 0.0),
        ] {
            let t = &v[n];
            assert_eq!(t.min().double_value(&[]), want, "{n}");
            assert_eq!(t.max().double_value(&[]), want, "{n}");
        }
        // Tiny-ImageNet: normal(0, sqrt(2 / (k k out))); ImageNet: kaiming-normal fan-out.
        for name in ["resnet18_tiny", "resnet18"] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let _m = build_model(name, 10, &vs.root(), ModelOptions::default()).unwrap();
            let w = &vs.variables()["layer3.1.conv1.weight"];
            check_moments(name, w, (2.0 / (9.0 * 256.0f64)).sqrt());
        }
        // DeepLabV3 (smp): decoder kaiming-uniform fan-in, head xavier-uniform with zero bias,
        // encoder as torchvision (kaiming-normal fan-out).
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _m = build_model("deeplabv3", 21, &vs.root(), ModelOptions::default()).unwrap();
        let v = vs.variables();
        check_uniform(
            "aspp 1x1",
            &v["decoder.0.convs.0.0.weight"],
            (6.0 / 2048.0f64).sqrt(),
        );
        check_uniform(
            "aspp 3x3",
            &v["decoder.0.convs.2.0.weight"],
            (6.0 / (2048.0 * 9.0f64)).sqrt(),
        );
        check_uniform(
            "decoder.1",
            &v["decoder.1.weight"],
            (6.0 / (256.0 * 9.0f64)).sqrt(),
        );
        check_uniform(
            "head",
            &v["segmentation_head.0.weight"],
            (6.0 / (256.0 + 21.0f64)).sqrt(),
        );
        assert_eq!(
            v["segmentation_head.0.bias"].abs().max().double_value(&[]),
            0.0
        );
        check_moments(
            "encoder",
            &v["encoder.layer2.0.conv2.weight"],
            (2.0 / (9.0 * 128.0f64)).sqrt(),
        );
        // Text CNN: PyTorch default conv1d init.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _m = build_model("global_pooling", 20, &vs.root(), ModelOptions::default()).unwrap();
        check_uniform(
            "conv1d",
            &vs.variables()["conv2.weight"],
            1.0 / (128.0f64 * 5.0).sqrt(),
        );
    }

    #[test]
    fn deeplab_options_are_checked() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let bad = |o: ModelOptions| build_model("deeplabv3", 21, &vs.root(), o).is_err();
        let d = ModelOptions::default();
        assert!(bad(ModelOptions {
            output_stride: 4,
            ..d
        }));
        assert!(bad(ModelOptions {
            encoder_depth: 110,
            ..d
        }));
        assert!(bad(ModelOptions {
            aspp_dropout: 1.0,
            ..d
        }));
        assert!(bad(ModelOptions {
            has_dropout: true,
            ..d
        }));
        let x = Tensor::zeros([2, 3, 48, 64], (tch::Kind::Float, tch::Device::Cpu));
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let m = build_model(
            "deeplabv3",
            5,
            &vs.root(),
            ModelOptions {
                encoder_depth: 18,
                output_stride: 16,
                ..d
            },
        )
        .unwrap();
        assert_eq!(m.forward_t(&x, false).size(), [2, 5, 48, 64]);
    }

    #[test]
    fn channels_last_keeps_values_and_outputs() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let m = build_model("resnet18_cifar", 10, &vs.root(), ModelOptions::default()).unwrap();
        let x = Tensor::randn([2, 3, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
        let a = tch::no_grad(|| m.forward_t(&x, false));
        vars_to_channels_last(&vs);
        let w = &vs.variables()["layer1.0.conv1.weight"];
        assert_eq!(w.stride(), [576, 1, 192, 64]);
        let b = tch::no_grad(|| m.forward_t(&channels_last(&x), false));
        let err = (a - b).abs().max().double_value(&[]);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn dropout_only_for_imagenet_style() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let opts = ModelOptions {
            has_dropout: true,
            ..ModelOptions::default()
        };
        assert!(build_model("resnet50_cifar", 10, &vs.root(), opts).is_err());
        assert!(build_model("resnet34", 10, &(vs.root() / "a"), opts).is_ok());
    }
}
