//! DeepLabV3 as the reference builds it: `segmentation_models_pytorch.DeepLabV3` with a
//! ResNet encoder and smp's defaults (output stride 8, ASPP rates 12/24/36 plus image pooling,
//! 256 channels, 3x3 conv + BN + ReLU after the ASPP, 1x1 head, x8 bilinear upsampling with
//! `align_corners=True`).
//!
//! State-dict names are the ones of the reference's checkpoints (smp 0.2 era):
//! `encoder.*` (torchvision ResNet names, no `fc`), `decoder.0.convs.{0..4}.*` and
//! `decoder.0.project.*` (ASPP), `decoder.1.weight` (3x3 conv), `decoder.2.*` (its BN),
//! `segmentation_head.0.{weight,bias}`. Newer smp releases call `decoder.0/1/2`
//! `decoder.aspp/conv/bn`; [`crate::checkpoint`] accepts both spellings.

use super::layers::{BatchNorm, Conv, ConvSpec, Order, WeightInit};
use super::resnet::{BlockKind, ResNetConfig, ResNetStyle, ResNetTrunk};
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// Architecture of a [`DeepLabV3`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeepLabConfig {
    /// Output channels (classes) of the segmentation head.
    pub num_classes: i64,
    /// Encoder block kind and stage depths (ResNet-50: Bottleneck [3, 4, 6, 3]).
    pub encoder: (BlockKind, [usize; 4]),
    /// Encoder output stride: 8 (stages 3 and 4 dilated by 2 and 4) or 16 (stage 4 by 2).
    pub output_stride: i64,
    /// Dilation rates of the three atrous ASPP branches.
    pub atrous_rates: [i64; 3],
    /// Channels of the ASPP branches and the decoder.
    pub channels: i64,
    /// Dropout probability after the ASPP projection (active in training only).
    pub aspp_dropout: f64,
}

impl Default for DeepLabConfig {
    /// The reference's `model=deeplabv3`: ResNet-50 encoder, 21 classes, smp defaults.
    fn default() -> Self {
        DeepLabConfig {
            num_classes: 21,
            encoder: (BlockKind::Bottleneck, [3, 4, 6, 3]),
            output_stride: 8,
            atrous_rates: [12, 24, 36],
            channels: 256,
            aspp_dropout: 0.5,
        }
    }
}

/// Conv (no bias, smp decoder init) followed by BatchNorm; ReLU applied by the caller.
#[derive(Debug)]
struct ConvBn(Conv, BatchNorm);

impl ConvBn {
    fn new(
        conv_path: &nn::Path,
        bn_path: &nn::Path,
        order: &mut Order,
        cin: i64,
        cout: i64,
        spec: ConvSpec,
    ) -> Self {
        let conv = Conv::new(conv_path, order, cin, cout, spec);
        ConvBn(conv, BatchNorm::new(bn_path, order, cout))
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.1.forward_t(&self.0.forward(x), train).relu()
    }
}

/// DeepLabV3 with a dilated ResNet encoder (see the module documentation).
#[derive(Debug)]
pub struct DeepLabV3 {
    encoder: ResNetTrunk,
    branches: Vec<ConvBn>,
    pooling: ConvBn,
    project: ConvBn,
    aspp_dropout: f64,
    decoder: ConvBn,
    head: Conv,
    upsampling: i64,
}

impl DeepLabV3 {
    /// Builds the network under `p` with smp's initialisation: the encoder as torchvision's
    /// ResNet (kaiming-normal fan-out convs), decoder convs kaiming-uniform fan-in, head
    /// xavier-uniform with zero bias, BatchNorm 1/0.
    pub(crate) fn new(p: &nn::Path, order: &mut Order, cfg: &DeepLabConfig) -> Self {
        let dilations = match cfg.output_stride {
            16 => [1, 1, 1, 2],
            _ => [1, 1, 2, 4],
        };
        let trunk_cfg = ResNetConfig {
            style: ResNetStyle::ImageNet,
            block: cfg.encoder.0,
            depths: cfg.encoder.1,
            num_classes: 1,
            dropout: false,
            temp: 1.0,
        };
        let encoder = ResNetTrunk::new(&(p / "encoder"), order, &trunk_cfg, dilations);
        let cin = encoder.out_channels();
        let ch = cfg.channels;
        let init = WeightInit::KaimingUniformFanIn;
        let aspp = p / "decoder" / "0";
        let convs = &aspp / "convs";
        let mut branches = Vec::with_capacity(4);
        branches.push(ConvBn::new(
            &(&convs / "0" / "0"),
            &(&convs / "0" / "1"),
            order,
            cin,
            ch,
            ConvSpec::resnet(1, 1, 0, init),
        ));
        for (i, &rate) in cfg.atrous_rates.iter().enumerate() {
            let b = &convs / (i + 1).to_string();
            branches.push(ConvBn::new(
                &(&b / "0"),
                &(&b / "1"),
                order,
                cin,
                ch,
                ConvSpec::resnet(3, 1, 1, init).dilated(rate),
            ));
        }
        let pooling = ConvBn::new(
            &(&convs / "4" / "1"),
            &(&convs / "4" / "2"),
            order,
            cin,
            ch,
            ConvSpec::resnet(1, 1, 0, init),
        );
        let project = ConvBn::new(
            &(&aspp / "project" / "0"),
            &(&aspp / "project" / "1"),
            order,
            5 * ch,
            ch,
            ConvSpec::resnet(1, 1, 0, init),
        );
        let decoder = ConvBn::new(
            &(p / "decoder" / "1"),
            &(p / "decoder" / "2"),
            order,
            ch,
            ch,
            ConvSpec::resnet(3, 1, 1, init),
        );
        let head_spec = ConvSpec {
            bias: true,
            ..ConvSpec::resnet(1, 1, 0, WeightInit::XavierUniform)
        };
        let head = Conv::new(
            &(p / "segmentation_head" / "0"),
            order,
            ch,
            cfg.num_classes,
            head_spec,
        );
        DeepLabV3 {
            encoder,
            branches,
            pooling,
            project,
            aspp_dropout: cfg.aspp_dropout,
            decoder,
            head,
            upsampling: cfg.output_stride,
        }
    }
}

impl ModuleT for DeepLabV3 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let f = self.encoder.forward_t(xs, train);
        let (h, w) = (f.size()[2], f.size()[3]);
        let mut outs: Vec<Tensor> = self
            .branches
            .iter()
            .map(|b| b.forward_t(&f, train))
            .collect();
        // Image pooling: global average, 1x1 conv, BN, ReLU, then bilinear resize from 1x1,
        // which is a broadcast.
        let pooled = self
            .pooling
            .forward_t(&f.adaptive_avg_pool2d([1, 1]), train)
            .expand([-1, -1, h, w], false);
        outs.push(pooled);
        let mut x = self.project.forward_t(&Tensor::cat(&outs, 1), train);
        if self.aspp_dropout > 0.0 {
            x = x.dropout(self.aspp_dropout, train);
        }
        x = self.decoder.forward_t(&x, train);
        let logits = self.head.forward(&x);
        if self.upsampling > 1 {
            logits.upsample_bilinear2d([h * self.upsampling, w * self.upsampling], true, None, None)
        } else {
            logits
        }
    }
}
