//! Gradient clipping by total norm (`torch.nn.utils.clip_grad_norm_`).

use tch::{Device, Tensor};

use super::{OptimError, check_range};

/// Clips the gradients of `params` in place so that their total norm is at most
/// `max_norm`, and returns the total norm before clipping, as
/// `torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)` (`error_if_nonfinite=False`).
///
/// The total norm is the `norm_type`-norm of the per-tensor norms (equal to the norm of all
/// gradients concatenated), computed in the gradients' kind; parameters without a gradient
/// are ignored (no gradient at all: returns 0). The clip coefficient is
/// `max_norm / (total + 1e-6)` in the gradients' kind; the gradients are multiplied by it
/// when it is below 1 (PyTorch multiplies by the coefficient clamped to 1, which leaves
/// them unchanged otherwise). `norm_type` is any p > 0, or `f64::INFINITY` for the largest
/// absolute value; `max_norm` must be finite and >= 0.
///
/// As in PyTorch, a non-finite total norm (NaN or infinite gradients) is returned and the
/// gradients are scaled by the resulting NaN or zero coefficient: check the return value.
pub fn clip_grad_norm<'a, I>(params: I, max_norm: f64, norm_type: f64) -> Result<f64, OptimError>
where
    I: IntoIterator<Item = &'a Tensor>,
{
    check_range(
        "max_norm",
        max_norm,
        max_norm >= 0.0 && max_norm.is_finite(),
        "must be finite and >= 0",
    )?;
    check_range(
        "norm_type",
        norm_type,
        norm_type > 0.0 && !norm_type.is_nan(),
        "must be > 0 (or infinity)",
    )?;
    let _guard = tch::no_grad_guard();
    let mut grads: Vec<Tensor> = params
        .into_iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .collect();
    if grads.is_empty() {
        return Ok(0.0);
    }
    let first_device: Device = grads[0].device();
    let norms = grads
        .iter()
        .map(|g| tensor_norm(g, norm_type)?.f_to_device(first_device))
        .collect::<Result<Vec<_>, _>>()?;
    let total = tensor_norm(&Tensor::f_stack(&norms, 0)?, norm_type)?;
    // PyTorch: clip_coef = max_norm / (total + 1e-6), i.e. reciprocal(total + 1e-6) * max_norm
    let coef = total
        .f_add_scalar(1e-6)?
        .f_reciprocal()?
        .f_mul_scalar(max_norm)?
        .f_clamp_max(1.0)?;
    if coef.f_double_value(&[])? < 1.0 {
        for g in &mut grads {
            let _ = g.f_mul_(&coef.f_to_device(g.device())?)?;
        }
    }
    Ok(total.f_double_value(&[])?)
}

/// The `p`-norm of all elements of `t` (a 0-d tensor of `t`'s kind).
fn tensor_norm(t: &Tensor, p: f64) -> Result<Tensor, tch::TchError> {
    let flat = t.f_reshape([-1])?;
    if p.is_infinite() {
        flat.f_abs()?.f_max()
    } else {
        flat.f_norm_scalaropt_dim(p, [0i64], false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn with_grad(values: &[f32]) -> Tensor {
        let p = Tensor::zeros([values.len() as i64], (Kind::Float, Device::Cpu))
            .set_requires_grad(true);
        (&p * Tensor::from_slice(values))
            .sum(Kind::Float)
            .backward();
        p
    }

    #[test]
    fn clips_above_and_not_below() {
        let a = with_grad(&[3.0, 0.0]);
        let b = with_grad(&[0.0, 4.0]);
        let total = clip_grad_norm([&a, &b], 1.0, 2.0).unwrap();
        assert!((total - 5.0).abs() < 1e-6);
        let ga = Vec::<f32>::try_from(a.grad()).unwrap();
        assert!((ga[0] - 0.6).abs() < 1e-6, "{ga:?}");
        let total = clip_grad_norm([&a, &b], 10.0, 2.0).unwrap();
        assert!((total - 1.0).abs() < 1e-5);
        let gb = Vec::<f32>::try_from(b.grad()).unwrap();
        assert!((gb[1] - 0.8).abs() < 1e-6, "{gb:?}");
    }

    #[test]
    fn infinity_norm_no_grads_and_validation() {
        let a = with_grad(&[-3.0, 1.0]);
        let total = clip_grad_norm([&a], 100.0, f64::INFINITY).unwrap();
        assert_eq!(total, 3.0);
        let none = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        assert_eq!(clip_grad_norm([&none], 1.0, 2.0).unwrap(), 0.0);
        assert!(clip_grad_norm([&a], -1.0, 2.0).is_err());
        assert!(clip_grad_norm([&a], f64::NAN, 2.0).is_err());
        assert!(clip_grad_norm([&a], 1.0, 0.0).is_err());
    }
}
