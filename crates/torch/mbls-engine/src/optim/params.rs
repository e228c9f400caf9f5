//! Named parameters and the weight-decay policy.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::OptimError;

/// Which parameters receive weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightDecayPolicy {
    /// Every parameter (PyTorch's default and the MbLS reference's behaviour).
    #[default]
    All,
    /// Only parameters with at least 2 dimensions (convolution and linear weights,
    /// embeddings). Parameters with fewer than 2 dimensions, i.e. biases and the weights and
    /// biases of batch/group/layer normalisation, get no weight decay. The rule looks at the
    /// shape only, never at the name, so it holds whatever the model calls its layers.
    ExcludeBiasAndNorm,
}

impl WeightDecayPolicy {
    /// Whether a parameter of this shape receives weight decay under the policy.
    pub fn applies_to(self, shape: &[i64]) -> bool {
        match self {
            WeightDecayPolicy::All => true,
            WeightDecayPolicy::ExcludeBiasAndNorm => shape.len() >= 2,
        }
    }
}

/// A parameter handled by an optimizer: its name, the tensor (sharing storage with the
/// model's variable) and whether weight decay applies to it.
#[derive(Debug)]
pub struct Param {
    pub(crate) name: String,
    pub(crate) tensor: Tensor,
    pub(crate) weight_decay: bool,
}

impl Param {
    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter tensor (shares storage with the model's variable).
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// Whether weight decay applies to this parameter.
    pub fn weight_decay(&self) -> bool {
        self.weight_decay
    }

    /// The parameter's shape.
    pub fn shape(&self) -> Vec<i64> {
        self.tensor.size()
    }
}

/// The trainable variables of a var store (those requiring gradients), sorted by name,
/// ready to pass to an optimizer constructor. Buffers such as batch-norm running statistics
/// (created without gradient) are left out.
pub fn trainable_variables(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Builds the parameter list: checks for an empty list, duplicate names and non-float
/// tensors, and resolves the weight-decay flag of each parameter.
pub(crate) fn build_params(
    params: impl IntoIterator<Item = (String, Tensor)>,
    policy: WeightDecayPolicy,
) -> Result<Vec<Param>, OptimError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (name, tensor) in params {
        if !seen.insert(name.clone()) {
            return Err(OptimError::DuplicateParameter(name));
        }
        let kind = tensor.kind();
        if !tensor.is_floating_point() {
            return Err(OptimError::NonFloatParameter { name, kind });
        }
        let weight_decay = policy.applies_to(&tensor.size());
        out.push(Param {
            name,
            tensor,
            weight_decay,
        });
    }
    if out.is_empty() {
        return Err(OptimError::EmptyParameterList);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, nn};

    #[test]
    fn policy_by_dimension() {
        assert!(WeightDecayPolicy::All.applies_to(&[4]));
        assert!(WeightDecayPolicy::ExcludeBiasAndNorm.applies_to(&[8, 3, 3, 3]));
        assert!(WeightDecayPolicy::ExcludeBiasAndNorm.applies_to(&[10, 4]));
        assert!(!WeightDecayPolicy::ExcludeBiasAndNorm.applies_to(&[4]));
        assert!(!WeightDecayPolicy::ExcludeBiasAndNorm.applies_to(&[]));
    }

    #[test]
    fn build_rejects_bad_lists() {
        let t = || Tensor::zeros([2], (Kind::Float, Device::Cpu));
        assert!(matches!(
            build_params(Vec::new(), WeightDecayPolicy::All),
            Err(OptimError::EmptyParameterList)
        ));
        let dup = vec![("a".to_string(), t()), ("a".to_string(), t())];
        match build_params(dup, WeightDecayPolicy::All) {
            Err(OptimError::DuplicateParameter(n)) => assert_eq!(n, "a"),
            other => panic!("{other:?}"),
        }
        let ints = vec![(
            "idx".to_string(),
            Tensor::zeros([2], (Kind::Int64, Device::Cpu)),
        )];
        let err = build_params(ints, WeightDecayPolicy::All).unwrap_err();
        assert!(err.to_string().contains("`idx`"), "{err}");
    }

    #[test]
    fn trainable_variables_skip_buffers_and_sort() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _w = root.zeros("z_weight", &[2, 2]);
        let _b = root.zeros("a_bias", &[2]);
        let _buf = root.zeros_no_train("running_mean", &[2]);
        let names: Vec<String> = trainable_variables(&vs)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a_bias", "z_weight"]);
    }
}
