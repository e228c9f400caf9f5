//! The three ResNet families of the reference: CIFAR-style (`resnet_cifar.py`), Tiny-ImageNet
//! style (`resnet_tiny_imagenet.py`) and ImageNet-style torchvision v1.5 (`resnet.py`).

use super::layers::{BatchNorm, Conv, ConvSpec, Linear, Order, WeightInit};
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// Which of the reference's ResNet files a network follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResNetStyle {
    /// 3x3 stem, no max-pool, `avg_pool2d(4)`, projection shortcut named `shortcut`,
    /// PyTorch default initialisation.
    Cifar,
    /// 3x3 stem, no max-pool, `AdaptiveAvgPool2d(2)`, `fc` on 4x the channels, projection
    /// named `downsample`, conv weights `normal(0, sqrt(2/n))`.
    Tiny,
    /// torchvision v1.5: 7x7/2 stem, 3x3/2 max-pool, `AdaptiveAvgPool2d(1)`, optional
    /// dropout(0.5) before `fc`, conv weights `kaiming_normal_(fan_out)`.
    ImageNet,
}

/// Residual block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions, expansion 1.
    Basic,
    /// 1x1, 3x3 (strided), 1x1 convolutions, expansion 4.
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> i64 {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Architecture of a [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResNetConfig {
    /// Which reference file the network follows.
    pub style: ResNetStyle,
    /// Residual block kind.
    pub block: BlockKind,
    /// Number of blocks in each of the four stages.
    pub depths: [usize; 4],
    /// Number of outputs of `fc`.
    pub num_classes: i64,
    /// Dropout(0.5) before `fc` (ImageNet style only).
    pub dropout: bool,
    /// Logits are divided by this (CIFAR and Tiny styles).
    pub temp: f64,
}

impl ResNetConfig {
    fn init(&self) -> WeightInit {
        match self.style {
            ResNetStyle::Cifar => WeightInit::TorchDefault,
            ResNetStyle::Tiny | ResNetStyle::ImageNet => WeightInit::KaimingNormalFanOut,
        }
    }
}

#[derive(Debug)]
struct Block {
    convs: Vec<(Conv, BatchNorm)>,
    projection: Option<(Conv, BatchNorm)>,
}

impl Block {
    fn new(
        p: &nn::Path,
        order: &mut Order,
        cfg: &ResNetConfig,
        cin: i64,
        planes: i64,
        stride: i64,
        dilation: i64,
    ) -> Self {
        let (kind, style, init) = (cfg.block, cfg.style, cfg.init());
        let cout = planes * kind.expansion();
        let layout: Vec<(i64, i64, i64, i64)> = match kind {
            // (in, out, kernel, stride)
            BlockKind::Basic => vec![(cin, planes, 3, stride), (planes, planes, 3, 1)],
            BlockKind::Bottleneck => vec![
                (cin, planes, 1, 1),
                (planes, planes, 3, stride),
                (planes, cout, 1, 1),
            ],
        };
        let mut convs = Vec::with_capacity(layout.len());
        for (i, (a, b, k, s)) in layout.into_iter().enumerate() {
            let conv = Conv::new(
                &(p / format!("conv{}", i + 1)),
                order,
                a,
                b,
                ConvSpec::resnet(k, s, k / 2, init).dilated(dilation),
            );
            let bn = BatchNorm::new(&(p / format!("bn{}", i + 1)), order, b);
            convs.push((conv, bn));
        }
        let projection = (stride != 1 || cin != cout).then(|| {
            let name = match style {
                ResNetStyle::Cifar => "shortcut",
                ResNetStyle::Tiny | ResNetStyle::ImageNet => "downsample",
            };
            let q = p / name;
            let conv = Conv::new(
                &(&q / "0"),
                order,
                cin,
                cout,
                ConvSpec::resnet(1, stride, 0, init).dilated(dilation),
            );
            let bn = BatchNorm::new(&(&q / "1"), order, cout);
            (conv, bn)
        });
        Block { convs, projection }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.convs.len() - 1;
        let mut out = x.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            out = bn.forward_t(&conv.forward(&out), train);
            if i != last {
                out = out.relu();
            }
        }
        let identity = match &self.projection {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x), train),
            None => x.shallow_clone(),
        };
        (out + identity).relu()
    }
}

/// The convolutional part of a ResNet (stem and four stages), without pooling or `fc`: the
/// classification networks and DeepLabV3's encoder share it.
#[derive(Debug)]
pub(crate) struct ResNetTrunk {
    style: ResNetStyle,
    stem: (Conv, BatchNorm),
    layers: Vec<Vec<Block>>,
    out_channels: i64,
}

impl ResNetTrunk {
    /// Builds stem and stages under `p`. `dilations[s] > 1` replaces the strides of stage `s`
    /// by that dilation (every convolution of the stage, as segmentation_models_pytorch's
    /// `make_dilated` does), keeping the projection shortcut the strided layout needs.
    pub(crate) fn new(
        p: &nn::Path,
        order: &mut Order,
        cfg: &ResNetConfig,
        dilations: [i64; 4],
    ) -> Self {
        let (style, kind, init) = (cfg.style, cfg.block, cfg.init());
        let stem_spec = match style {
            ResNetStyle::ImageNet => ConvSpec::resnet(7, 2, 3, init),
            _ => ConvSpec::resnet(3, 1, 1, init),
        };
        let stem = (
            Conv::new(&(p / "conv1"), order, 3, 64, stem_spec),
            BatchNorm::new(&(p / "bn1"), order, 64),
        );
        let mut cin = 64;
        let mut layers = Vec::with_capacity(4);
        for (stage, &n) in cfg.depths.iter().enumerate() {
            let planes = 64 << stage;
            let lp = p / format!("layer{}", stage + 1);
            let mut blocks = Vec::with_capacity(n);
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(Block::new(
                    &(&lp / b.to_string()),
                    order,
                    cfg,
                    cin,
                    planes,
                    stride,
                    dilations[stage],
                ));
                cin = planes * kind.expansion();
            }
            layers.push(blocks);
        }
        ResNetTrunk {
            style,
            stem,
            layers,
            out_channels: cin,
        }
    }

    /// Channels of the last stage's output.
    pub(crate) fn out_channels(&self) -> i64 {
        self.out_channels
    }

    /// The last stage's feature map.
    pub(crate) fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = self
            .stem
            .1
            .forward_t(&self.stem.0.forward(xs), train)
            .relu();
        if self.style == ResNetStyle::ImageNet {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for block in self.layers.iter().flatten() {
            x = block.forward_t(&x, train);
        }
        x
    }
}

/// A ResNet of one of the reference's three styles.
#[derive(Debug)]
pub struct ResNet {
    style: ResNetStyle,
    trunk: ResNetTrunk,
    fc: Linear,
    dropout: bool,
    temp: f64,
}

impl ResNet {
    /// Builds the network under `p`.
    pub(crate) fn new(p: &nn::Path, order: &mut Order, cfg: &ResNetConfig) -> Self {
        let trunk = ResNetTrunk::new(p, order, cfg, [1; 4]);
        let cin = trunk.out_channels();
        let fc_in = match cfg.style {
            ResNetStyle::Tiny => cin * 4,
            _ => cin,
        };
        let fc = Linear::new(&(p / "fc"), order, fc_in, cfg.num_classes);
        ResNet {
            style: cfg.style,
            trunk,
            fc,
            dropout: cfg.dropout,
            temp: cfg.temp,
        }
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = self.trunk.forward_t(xs, train);
        x = match self.style {
            ResNetStyle::Cifar => x.avg_pool2d([4, 4], [4, 4], [0, 0], false, true, None::<i64>),
            ResNetStyle::Tiny => x.adaptive_avg_pool2d([2, 2]),
            ResNetStyle::ImageNet => x.adaptive_avg_pool2d([1, 1]),
        };
        x = x.flatten(1, -1);
        if self.dropout {
            x = x.dropout(0.5, train);
        }
        let out = self.fc.forward(&x);
        match self.style {
            ResNetStyle::ImageNet => out,
            _ => out / self.temp,
        }
    }
}
