//! Small building blocks (convolution, batch norm, linear) that register their variables
//! under exactly the names PyTorch's `state_dict` uses, and record the order of creation so
//! that a model can list its `state_dict` in PyTorch order.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Records the full `state_dict` names of variables in the order they are created, and a
/// description of every layer with parameters.
#[derive(Debug, Default)]
pub(crate) struct Order {
    pub(crate) names: Vec<String>,
    pub(crate) layers: Vec<super::Layer>,
}

impl Order {
    fn push(&mut self, p: &nn::Path, name: &str) {
        self.names.push(p.path(name));
    }

    fn layer(&mut self, p: &nn::Path, kind: &str, description: String, parameters: i64) {
        // the module path is the name of a variable minus its last component
        let full = p.path("x");
        let path = full.strip_suffix(".x").unwrap_or("").to_string();
        self.layers.push(super::Layer {
            path,
            kind: kind.to_string(),
            description,
            parameters,
        });
    }
}

/// How a weight tensor is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightInit {
    /// PyTorch's default for conv and linear layers: `kaiming_uniform_(a = sqrt(5))`, that is
    /// uniform in `±1/sqrt(fan_in)`.
    TorchDefault,
    /// `normal(0, sqrt(2 / fan_out))` with `fan_out = out_channels * kernel elements`
    /// (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`).
    KaimingNormalFanOut,
    /// `kaiming_uniform_(mode="fan_in", nonlinearity="relu")`: uniform in `±sqrt(6 / fan_in)`
    /// (segmentation_models_pytorch's decoder initialisation; bias 0).
    KaimingUniformFanIn,
    /// `xavier_uniform_`: uniform in `±sqrt(6 / (fan_in + fan_out))` (smp's head; bias 0).
    XavierUniform,
}

fn weight_init(init: WeightInit, dims: &[i64]) -> Init {
    let receptive: i64 = dims[2..].iter().product();
    match init {
        WeightInit::TorchDefault => {
            let bound = 1.0 / ((dims[1] * receptive) as f64).sqrt();
            Init::Uniform {
                lo: -bound,
                up: bound,
            }
        }
        WeightInit::KaimingNormalFanOut => Init::Randn {
            mean: 0.0,
            stdev: (2.0 / (dims[0] * receptive) as f64).sqrt(),
        },
        WeightInit::KaimingUniformFanIn => {
            let bound = (6.0 / (dims[1] * receptive) as f64).sqrt();
            Init::Uniform {
                lo: -bound,
                up: bound,
            }
        }
        WeightInit::XavierUniform => {
            let bound = (6.0 / ((dims[0] + dims[1]) * receptive) as f64).sqrt();
            Init::Uniform {
                lo: -bound,
                up: bound,
            }
        }
    }
}

/// A 1-d or 2-d convolution (square kernels, symmetric stride and padding).
#[derive(Debug)]
pub(crate) struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    dilation: i64,
    two_d: bool,
}

/// Settings of a [`Conv`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub(crate) kernel: i64,
    pub(crate) stride: i64,
    pub(crate) padding: i64,
    pub(crate) dilation: i64,
    pub(crate) bias: bool,
    pub(crate) two_d: bool,
    pub(crate) init: WeightInit,
}

impl ConvSpec {
    /// A bias-free 2-d convolution as used throughout the ResNets.
    pub(crate) fn resnet(kernel: i64, stride: i64, padding: i64, init: WeightInit) -> Self {
        ConvSpec {
            kernel,
            stride,
            padding,
            dilation: 1,
            bias: false,
            two_d: true,
            init,
        }
    }

    /// The same convolution dilated by `dilation`, with padding `(kernel / 2) * dilation`
    /// (segmentation_models_pytorch's `replace_strides_with_dilation`, stride set to 1).
    pub(crate) fn dilated(mut self, dilation: i64) -> Self {
        if dilation > 1 {
            self.stride = 1;
            self.dilation = dilation;
            self.padding = (self.kernel / 2) * dilation;
        }
        self
    }
}

impl Conv {
    pub(crate) fn new(p: &nn::Path, order: &mut Order, cin: i64, cout: i64, s: ConvSpec) -> Self {
        let dims: Vec<i64> = if s.two_d {
            vec![cout, cin, s.kernel, s.kernel]
        } else {
            vec![cout, cin, s.kernel]
        };
        let weight = p.var("weight", &dims, weight_init(s.init, &dims));
        order.push(p, "weight");
        let bias = s.bias.then(|| {
            let init = match s.init {
                WeightInit::KaimingUniformFanIn | WeightInit::XavierUniform => Init::Const(0.0),
                WeightInit::TorchDefault | WeightInit::KaimingNormalFanOut => {
                    let fan_in: i64 = dims[1..].iter().product();
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    Init::Uniform {
                        lo: -bound,
                        up: bound,
                    }
                }
            };
            let b = p.var("bias", &[cout], init);
            order.push(p, "bias");
            b
        });
        let params = dims.iter().product::<i64>() + if s.bias { cout } else { 0 };
        let k = if s.two_d {
            format!("{0}x{0}", s.kernel)
        } else {
            s.kernel.to_string()
        };
        order.layer(
            p,
            if s.two_d { "Conv2d" } else { "Conv1d" },
            format!(
                "{cin} -> {cout}, kernel {k}, stride {}, padding {}, dilation {}, bias {}",
                s.stride, s.padding, s.dilation, s.bias
            ),
            params,
        );
        Conv {
            weight,
            bias,
            stride: s.stride,
            padding: s.padding,
            dilation: s.dilation,
            two_d: s.two_d,
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        if self.two_d {
            let (s, q, d) = (self.stride, self.padding, self.dilation);
            x.conv2d(&self.weight, self.bias.as_ref(), [s, s], [q, q], [d, d], 1)
        } else {
            x.conv1d(
                &self.weight,
                self.bias.as_ref(),
                [self.stride],
                [self.padding],
                [self.dilation],
                1,
            )
        }
    }
}

/// `BatchNorm2d` with PyTorch's defaults (eps 1e-5, momentum 0.1, affine, tracked running
/// statistics), including the int64 `num_batches_tracked` buffer.
#[derive(Debug)]
pub(crate) struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
}

impl BatchNorm {
    pub(crate) fn new(p: &nn::Path, order: &mut Order, c: i64) -> Self {
        let weight = p.var("weight", &[c], Init::Const(1.0));
        let bias = p.var("bias", &[c], Init::Const(0.0));
        let running_mean = p.zeros_no_train("running_mean", &[c]);
        let running_var = p.ones_no_train("running_var", &[c]);
        let num_batches_tracked = p.add(
            "num_batches_tracked",
            Tensor::zeros([], (Kind::Int64, p.device())),
            false,
        );
        for n in [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ] {
            order.push(p, n);
        }
        order.layer(
            p,
            "BatchNorm2d",
            format!("{c}, eps 1e-5, momentum 0.1"),
            2 * c,
        );
        BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
        }
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let mut n = self.num_batches_tracked.shallow_clone();
                let _ = n.g_add_scalar_(1);
            });
        }
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            0.1,
            1e-5,
            true,
        )
    }
}

/// A fully connected layer with PyTorch's default initialisation.
#[derive(Debug)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    pub(crate) fn new(p: &nn::Path, order: &mut Order, fin: i64, fout: i64) -> Self {
        let bound = 1.0 / (fin as f64).sqrt();
        let u = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = p.var("weight", &[fout, fin], u);
        let bias = p.var("bias", &[fout], u);
        order.push(p, "weight");
        order.push(p, "bias");
        order.layer(p, "Linear", format!("{fin} -> {fout}"), fin * fout + fout);
        Linear { weight, bias }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}
