//! The 20 Newsgroups text CNN of the reference (`ng_model.py`, `GlobalPoolingCNN`).

use super::layers::{Conv, ConvSpec, Linear, Order, WeightInit};
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// `GlobalPoolingCNN`: three `Conv1d(k=5)` + ReLU stages (the first two followed by
/// `MaxPool1d(5, stride 1)`), a global max over time, then `Linear(128, 128)` + ReLU and
/// `Linear(128, num_classes)`, output divided by `temp`. Input `(batch, length, embedding)`.
#[derive(Debug)]
pub struct GlobalPoolingCnn {
    convs: [Conv; 3],
    fc1: Linear,
    fc2: Linear,
    temp: f64,
}

impl GlobalPoolingCnn {
    /// Width of the convolutions and of the hidden linear layer.
    pub const HIDDEN: i64 = 128;

    pub(crate) fn new(
        p: &nn::Path,
        order: &mut Order,
        embedding: i64,
        num_classes: i64,
        temp: f64,
    ) -> Self {
        let spec = ConvSpec {
            kernel: 5,
            stride: 1,
            padding: 0,
            bias: true,
            dilation: 1,
            two_d: false,
            init: WeightInit::TorchDefault,
        };
        let h = Self::HIDDEN;
        let convs = [
            Conv::new(&(p / "conv1"), order, embedding, h, spec),
            Conv::new(&(p / "conv2"), order, h, h, spec),
            Conv::new(&(p / "conv3"), order, h, h, spec),
        ];
        let fc1 = Linear::new(&(p / "fc1"), order, h, h);
        let fc2 = Linear::new(&(p / "fc2"), order, h, num_classes);
        GlobalPoolingCnn {
            convs,
            fc1,
            fc2,
            temp,
        }
    }
}

impl ModuleT for GlobalPoolingCnn {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let mut x = xs.transpose(1, 2);
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward(&x).relu();
            if i < 2 {
                x = x.max_pool1d([5], [1], [0], [1], false);
            }
        }
        let x = x.amax([2], false);
        self.fc2.forward(&self.fc1.forward(&x).relu()) / self.temp
    }
}
