//! The libtorch side of mbls: everything that needs autograd (losses, models, optimizers,
//! training) is built on [`tch`] here. The plain-Rust crates (`mbls-metrics`, `mbls-npy`,
//! `mbls-plot`) never depend on this one.

#![warn(missing_docs)]

#[cfg(feature = "jemalloc")]
pub mod alloc;
pub mod batch;
pub mod checkpoint;
mod fsutil;
pub mod losses;
pub mod models;
pub mod optim;
pub mod pretrained;

pub use tch;

/// What libtorch this binary runs on: version string, thread count and CUDA availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// Number of intra-op threads libtorch uses.
    pub threads: i32,
    /// Whether a CUDA device is usable.
    pub cuda: bool,
    /// Number of CUDA devices.
    pub cuda_devices: i64,
}

/// Reports the libtorch backend this process is linked against.
pub fn backend_info() -> BackendInfo {
    BackendInfo {
        threads: tch::get_num_threads(),
        cuda: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    /// Cross-entropy of `logits` (N x C) against `labels` (N), mean over rows, and its
    /// gradient with respect to the logits, by libtorch's own op and autograd.
    fn cross_entropy_with_grad(logits: &Tensor, labels: &Tensor) -> (f64, Tensor) {
        let x = logits.detach().set_requires_grad(true);
        let loss = x.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, 0.0);
        loss.backward();
        (loss.double_value(&[]), x.grad())
    }

    #[test]
    fn libtorch_op_and_backward() {
        // softmax CE on 2 rows: gradient = (softmax - onehot) / N
        let logits = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5]).view([2, 3]);
        let labels = Tensor::from_slice(&[2i64, 0]);
        let (loss, grad) = cross_entropy_with_grad(&logits, &labels);
        let p0: Vec<f64> = {
            let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
            let s: f64 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        };
        let expected = (-(p0[2].ln()) + 3f64.ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        let g = Vec::<f32>::try_from(grad.to_kind(Kind::Float).view([-1])).unwrap();
        let want = [
            p0[0] / 2.0,
            p0[1] / 2.0,
            (p0[2] - 1.0) / 2.0,
            (1.0 / 3.0 - 1.0) / 2.0,
            1.0 / 6.0,
            1.0 / 6.0,
        ];
        for (a, b) in g.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn backend_reports_threads() {
        assert!(backend_info().threads >= 1);
    }
}
