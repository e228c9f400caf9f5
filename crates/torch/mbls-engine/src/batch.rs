//! The boundary between the plain-Rust data crate and libtorch: a loader [`Batch`] becomes
//! tensors (NCHW float32 images, int64 labels or per-pixel masks).

use mbls_data::Batch;
use tch::{Device, Kind, Tensor};

/// Tensors of one batch.
#[derive(Debug)]
pub struct BatchTensors {
    /// `N x C x H x W` float32 images.
    pub images: Tensor,
    /// `N` int64 class labels, or `N x H x W` int64 masks for segmentation batches.
    pub targets: Tensor,
}

/// Copies `batch` into tensors on `device`.
pub fn to_tensors(batch: &Batch, device: Device) -> Result<BatchTensors, tch::TchError> {
    let [n, c, h, w] = batch.shape.map(|d| d as i64);
    let images = Tensor::f_from_slice(&batch.images)?
        .f_view([n, c, h, w])?
        .f_to_device(device)?;
    let targets = match &batch.masks {
        Some(m) => Tensor::f_from_slice(m)?.f_view([n, h, w])?,
        None => Tensor::f_from_slice(&batch.labels)?,
    }
    .f_to_kind(Kind::Int64)?
    .f_to_device(device)?;
    Ok(BatchTensors { images, targets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_values_survive() {
        let batch = Batch {
            images: (0..2 * 3 * 2 * 2).map(|v| v as f32).collect(),
            shape: [2, 3, 2, 2],
            labels: vec![4, 1],
            masks: None,
            indices: vec![7, 9],
            skipped: vec![],
        };
        let t = to_tensors(&batch, Device::Cpu).unwrap();
        assert_eq!(t.images.size(), [2, 3, 2, 2]);
        assert_eq!(t.images.double_value(&[1, 2, 1, 0]), 22.0);
        assert_eq!(Vec::<i64>::try_from(&t.targets).unwrap(), [4, 1]);
        let seg = Batch {
            masks: Some(vec![0, 1, 255, 2, 3, 4, 5, 6]),
            labels: vec![],
            ..batch
        };
        let t = to_tensors(&seg, Device::Cpu).unwrap();
        assert_eq!(t.targets.size(), [2, 2, 2]);
        assert_eq!(t.targets.int64_value(&[0, 1, 0]), 255);
    }
}
