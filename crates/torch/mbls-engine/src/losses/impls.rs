//! The loss implementations. Operation order follows the reference so that float32 values
//! and gradients agree with it to rounding.

use super::fused::{RowLoss, attach, fused};
use super::inputs::prepare;
use super::params::{AlphaSchedule, Reduction};
use super::{Loss, LossError, LossTerms};
use tch::{Kind, Tensor};

const EPS: f64 = 1e-10;

/// Runs the fused CPU kernel when it applies and wraps its result as loss terms.
fn try_fused(
    kind: RowLoss,
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
    names: &'static [&'static str],
) -> Result<Option<LossTerms>, LossError> {
    Ok(fused(kind, logits, targets, ignore_index)?
        .map(|(terms, g)| LossTerms::with_values(names, attach(logits, &g, terms[0]), &terms[1..])))
}

/// How a row-wise loss starts: finished by the fused kernel, or the rows to compute on.
enum Start {
    /// The fused kernel computed the terms, or no row is left (zero terms).
    Done(LossTerms),
    /// The logits and targets of the rows kept after `ignore_index`.
    Rows(Tensor, Tensor),
}

/// The preamble every row-wise loss shares: the fused CPU kernel `kind` when it applies
/// (`None`: the loss has none), else the rows kept after `ignore_index`, or zero terms
/// connected to the graph when every row is ignored.
fn start(
    kind: Option<RowLoss>,
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
    names: &'static [&'static str],
) -> Result<Start, LossError> {
    if let Some(kind) = kind {
        if let Some(t) = try_fused(kind, logits, targets, ignore_index, names)? {
            return Ok(Start::Done(t));
        }
    }
    let (x, y) = prepare(logits, targets, ignore_index)?;
    if y.numel() == 0 {
        return Ok(Start::Done(zeros(logits, names)));
    }
    Ok(Start::Rows(x, y))
}

/// `let (x, y) = rows!(kind, self, logits, targets);` runs [`start`] for the loss `self` and
/// returns its terms from the calling `forward` when they are done.
macro_rules! rows {
    ($kind:expr, $loss:expr, $logits:expr, $targets:expr) => {
        match start(
            $kind,
            $logits,
            $targets,
            $loss.ignore_index,
            $loss.term_names(),
        )? {
            Start::Rows(x, y) => (x, y),
            Start::Done(t) => return Ok(t),
        }
    };
}

/// Zero terms connected to the graph, for a batch whose rows are all ignored.
fn zeros(logits: &Tensor, names: &'static [&'static str]) -> LossTerms {
    let z = logits.sum(logits.kind()) * 0.0;
    LossTerms::new(names, names.iter().map(|_| z.shallow_clone()).collect())
}

fn ce(x: &Tensor, y: &Tensor) -> Result<Tensor, LossError> {
    Ok(x.f_cross_entropy_loss::<Tensor>(y, None, tch::Reduction::Mean, -100, 0.0)?)
}

/// `1 - t` (one rounding, like torch's `1 - t`).
fn one_minus(t: &Tensor) -> Tensor {
    t.neg() + 1.0
}

fn log_softmax(x: &Tensor) -> Tensor {
    x.log_softmax(1, x.kind())
}

/// Cross-entropy (`ce`).
pub(crate) struct CrossEntropy {
    pub ignore_index: i64,
}

impl Loss for CrossEntropy {
    fn name(&self) -> &'static str {
        "ce"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let (x, y) = rows!(Some(RowLoss::Ce), self, logits, targets);
        Ok(LossTerms::new(self.term_names(), vec![ce(&x, &y)?]))
    }
}

/// Label smoothing (`ls`).
pub(crate) struct LabelSmoothing {
    pub alpha: f64,
    pub ignore_index: i64,
    pub reduction: Reduction,
}

impl Loss for LabelSmoothing {
    fn name(&self) -> &'static str {
        "ls"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        // the fused kernel computes the mean reduction only
        let kind = (self.reduction == Reduction::Mean).then_some(RowLoss::Ls {
            alpha: self.alpha as f32,
        });
        let (x, y) = rows!(kind, self, logits, targets);
        let logp = x.log_softmax(-1, x.kind());
        let nll = -logp.gather(-1, &y.unsqueeze(1), false).squeeze_dim(1);
        let smooth = -logp.mean_dim(-1, false, x.kind());
        let per_row = nll * (1.0 - self.alpha) + smooth * self.alpha;
        let loss = match self.reduction {
            Reduction::Mean => per_row.mean(x.kind()),
            Reduction::Sum => per_row.sum(x.kind()),
            Reduction::None => per_row,
        };
        Ok(LossTerms::new(self.term_names(), vec![loss]))
    }
}

fn focal_terms(logpt: &Tensor, gamma: &Tensor, size_average: bool) -> Tensor {
    let pt = logpt.exp();
    let loss = (one_minus(&pt).pow(gamma) * -1.0) * logpt;
    if size_average {
        loss.mean(loss.kind())
    } else {
        loss.sum(loss.kind())
    }
}

/// Focal loss (`focal`).
pub(crate) struct Focal {
    pub gamma: f64,
    pub ignore_index: i64,
    pub size_average: bool,
}

impl Loss for Focal {
    fn name(&self) -> &'static str {
        "focal"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let kind = RowLoss::Focal {
            gamma: self.gamma as f32,
            mean: self.size_average,
        };
        let (x, y) = rows!(Some(kind), self, logits, targets);
        let logpt = log_softmax(&x).gather(1, &y.unsqueeze(1), false).view([-1]);
        let gamma = Tensor::from(self.gamma).to_kind(x.kind());
        Ok(LossTerms::new(
            self.term_names(),
            vec![focal_terms(&logpt, &gamma, self.size_average)],
        ))
    }
}

/// Adaptive focal loss FLSD-53 (`focal_adaptive`), vectorised.
pub(crate) struct FocalAdaptive {
    pub gamma: f64,
    pub ignore_index: i64,
    pub size_average: bool,
}

impl Loss for FocalAdaptive {
    fn name(&self) -> &'static str {
        "focal_adaptive"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let kind = RowLoss::FocalAdaptive {
            gamma: self.gamma as f32,
            mean: self.size_average,
        };
        let (x, y) = rows!(Some(kind), self, logits, targets);
        let logpt = log_softmax(&x).gather(1, &y.unsqueeze(1), false).view([-1]);
        // gamma per sample from p_t, not differentiated: >= 0.5 -> gamma, < 0.2 -> 5, else 3
        let pt = logpt.detach().exp().to_kind(Kind::Double);
        let high = pt.ge(0.5).to_kind(Kind::Double);
        let low = pt.lt(0.2).to_kind(Kind::Double);
        let gamma = (&high * self.gamma + one_minus(&high) * (&low * 5.0 + one_minus(&low) * 3.0))
            .to_kind(x.kind());
        Ok(LossTerms::new(
            self.term_names(),
            vec![focal_terms(&logpt, &gamma, self.size_average)],
        ))
    }
}

/// Entropy penalty ECP (`penalty_ent`).
pub(crate) struct PenaltyEntropy {
    pub alpha: f64,
    pub ignore_index: i64,
}

impl Loss for PenaltyEntropy {
    fn name(&self) -> &'static str {
        "penalty_ent"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss", "loss_ce", "loss_ent"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let (x, y) = rows!(
            Some(RowLoss::Entropy { alpha: self.alpha }),
            self,
            logits,
            targets
        );
        let loss_ce = ce(&x, &y)?;
        let prob = log_softmax(&x).exp().clamp(EPS, 1.0 - EPS);
        let ent = -&prob * prob.log();
        let loss_ent = ent.mean(x.kind());
        let loss = &loss_ce - &loss_ent * self.alpha;
        Ok(LossTerms::new(
            self.term_names(),
            vec![loss, loss_ce, loss_ent],
        ))
    }
}

/// CE plus L1 distance to uniform (`penalty_l1`).
pub(crate) struct PenaltyL1 {
    pub alpha: f64,
    pub ignore_index: i64,
}

impl Loss for PenaltyL1 {
    fn name(&self) -> &'static str {
        "penalty_l1"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss", "loss_ce", "loss_l1"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let (x, y) = rows!(
            Some(RowLoss::L1 { alpha: self.alpha }),
            self,
            logits,
            targets
        );
        let (n, c) = (x.size()[0], x.size()[1]);
        let loss_ce = ce(&x, &y)?;
        let s = log_softmax(&x).exp();
        let loss_l1 = (s - 1.0 / c as f64).abs().sum(x.kind()) / n as f64;
        let loss = &loss_ce + &loss_l1 * self.alpha;
        Ok(LossTerms::new(
            self.term_names(),
            vec![loss, loss_ce, loss_l1],
        ))
    }
}

/// Brier score (`brier`).
pub(crate) struct Brier {
    pub ignore_index: i64,
}

impl Loss for Brier {
    fn name(&self) -> &'static str {
        "brier"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let (x, y) = rows!(Some(RowLoss::Brier), self, logits, targets);
        let n = x.size()[0];
        let onehot = x
            .zeros_like()
            .detach()
            .scatter_value(1, &y.unsqueeze(1), 1.0);
        let pt = log_softmax(&x).exp();
        let loss = (onehot - pt).pow_tensor_scalar(2).sum(x.kind()) / n as f64;
        Ok(LossTerms::new(self.term_names(), vec![loss]))
    }
}

fn laplace_kernel(a: &Tensor, b: &Tensor) -> Tensor {
    // exp(-1.0 * |a_i - b_j| / 0.4)
    ((a.unsqueeze(1) - b.unsqueeze(0)).abs() * -1.0 / 0.4).exp()
}

/// MMCE (`mmce`, MMCE_m of Kumar et al. 2018).
pub(crate) struct Mmce {
    pub lamda: f64,
    pub ignore_index: i64,
}

impl Loss for Mmce {
    fn name(&self) -> &'static str {
        "mmce"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let (x, y) = rows!(None, self, logits, targets);
        let n = x.size()[0];
        let p = x.softmax(1, x.kind());
        let (r, pred) = p.max_dim(1, false);
        let correct = pred.eq_tensor(&y).to_kind(x.kind());
        let c_minus_r = correct - &r;
        let dot = c_minus_r.unsqueeze(1).mm(&c_minus_r.unsqueeze(0));
        let numerator = dot * laplace_kernel(&r, &r);
        let n2 = Tensor::from(n as f32)
            .pow_tensor_scalar(2)
            .to_kind(x.kind());
        let loss = ce(&x, &y)? + (numerator.sum(x.kind()) * self.lamda) / n2;
        Ok(LossTerms::new(self.term_names(), vec![loss]))
    }
}

/// Weighted MMCE (`mmce_weighted`, MMCE_w), as the reference computes it.
pub(crate) struct MmceWeighted {
    pub lamda: f64,
    pub ignore_index: i64,
}

impl Loss for MmceWeighted {
    fn name(&self) -> &'static str {
        "mmce_weighted"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let (x, y) = rows!(None, self, logits, targets);
        let kind = x.kind();
        let total = x.size()[0];
        let p = x.softmax(1, kind);
        let (r, pred) = p.max_dim(1, false);
        let correct = pred.eq_tensor(&y).to_kind(kind);
        let k_c = correct.sum(Kind::Int64).int64_value(&[]);
        let k_i = total - k_c;
        let both = k_c > 0 && k_i > 0;
        // the reference's fallback sizes when one group is empty
        let (k, kp) = if both {
            (k_c, k_i)
        } else {
            (2.min(total), (total - 2).max(0))
        };
        let correct_prob = (&r * &correct).topk(k, 0, true, true).0;
        let incorrect_prob = (&r * one_minus(&correct)).topk(kp, 0, true, true).0;
        let mean_of = |a: Tensor, b: Tensor| (a * b).mean(kind);
        let one_minus_c = one_minus(&correct_prob);
        let cc = mean_of(
            laplace_kernel(&correct_prob, &correct_prob),
            one_minus_c.unsqueeze(1).mm(&one_minus_c.unsqueeze(0)),
        );
        let ii = mean_of(
            laplace_kernel(&incorrect_prob, &incorrect_prob),
            incorrect_prob.unsqueeze(1).mm(&incorrect_prob.unsqueeze(0)),
        );
        let ci = mean_of(
            laplace_kernel(&correct_prob, &incorrect_prob),
            one_minus_c.unsqueeze(1).mm(&incorrect_prob.unsqueeze(0)),
        );
        let m = correct.sum(kind);
        let nn = one_minus(&correct).sum(kind);
        let mmd = cc / (&m * &m + 1e-5) + ii / (&nn * &nn + 1e-5) - ci * 2.0 / (&m * &nn + 1e-5);
        let cond = if both { 1.0 } else { 0.0 };
        let penalty = ((mmd + 1e-10).sqrt() * cond).clamp_min(0.0);
        let loss = ce(&x, &y)? + penalty * self.lamda;
        Ok(LossTerms::new(self.term_names(), vec![loss]))
    }
}

/// Margin-based label smoothing, MbLS: `LogitMargin` in Rust everywhere (this loss, its
/// [`LossSpec::LogitMargin`](super::LossSpec::LogitMargin) and its fused kernel's
/// `RowLoss::LogitMargin`), `logit_margin` in the configuration (the reference's name).
pub(crate) struct LogitMargin {
    pub margin: f64,
    pub alpha: f64,
    pub ignore_index: i64,
    pub schedule: AlphaSchedule,
    pub mu: f64,
    pub max_alpha: f64,
    pub step_size: usize,
}

impl Loss for LogitMargin {
    fn name(&self) -> &'static str {
        "logit_margin"
    }
    fn term_names(&self) -> &'static [&'static str] {
        &["loss", "loss_ce", "loss_margin_l1"]
    }
    fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<LossTerms, LossError> {
        let kind = RowLoss::LogitMargin {
            margin: self.margin as f32,
            alpha: self.alpha,
        };
        let (x, y) = rows!(Some(kind), self, logits, targets);
        let loss_ce = ce(&x, &y)?;
        // max_j l_j - l_k, with the gradient flowing through the max as well
        let (max, _) = x.max_dim(1, true);
        let diff = max - &x;
        let loss_margin = (diff - self.margin).relu().mean(x.kind());
        let loss = &loss_ce + &loss_margin * self.alpha;
        Ok(LossTerms::new(
            self.term_names(),
            vec![loss, loss_ce, loss_margin],
        ))
    }
    fn epoch_end(&mut self, epoch: usize) {
        self.alpha = match self.schedule {
            AlphaSchedule::Constant => self.alpha,
            AlphaSchedule::Add => (self.alpha + self.mu).min(self.max_alpha),
            AlphaSchedule::Multiply => (self.alpha * self.mu).min(self.max_alpha),
            AlphaSchedule::Step => {
                if (epoch + 1) % self.step_size == 0 {
                    (self.alpha * self.mu).min(self.max_alpha)
                } else {
                    self.alpha
                }
            }
        };
    }
    fn scheduled_alpha(&self) -> Option<f64> {
        Some(self.alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LossSpec, build_loss};
    use super::*;
    use serde_json::json;

    fn spec(name: &str, params: serde_json::Value) -> Box<dyn Loss> {
        build_loss(&LossSpec::from_params(name, &mbls_testkit::loss_params(name, &params)).unwrap())
            .unwrap()
    }

    fn logits(n: i64, c: i64) -> Tensor {
        Tensor::arange(n * c, (Kind::Float, tch::Device::Cpu))
            .sin()
            .view([n, c])
            * 3.0
    }

    #[test]
    fn single_surviving_row_works() {
        // the reference's nonzero().squeeze() breaks here; we keep a 1 x C matrix
        for name in [
            "ce",
            "ls",
            "focal",
            "focal_adaptive",
            "penalty_ent",
            "logit_margin",
            "brier",
            "penalty_l1",
            "mmce",
        ] {
            let l = spec(name, json!({"ignore_index": 255}));
            let x = logits(3, 4).set_requires_grad(true);
            let y = Tensor::from_slice(&[255i64, 2, 255]);
            let t = l.forward(&x, &y).unwrap();
            let one = l.forward(&x.narrow(0, 1, 1), &y.narrow(0, 1, 1)).unwrap();
            let (a, b) = (t.values().unwrap()[0].1, one.values().unwrap()[0].1);
            // The reported total is float32 and passes through a libtorch dot product whose
            // summation order depends on the CPU: a few float32 ulps, not a fixed 1e-6.
            assert!(
                (a - b).abs() <= 1e-6 * a.abs().max(1.0) * 8.0,
                "{name}: {a} vs {b}"
            );
            t.total().backward();
            let g = x.grad();
            assert_eq!(
                g.narrow(0, 0, 1).abs().sum(Kind::Float).double_value(&[]),
                0.0,
                "{name}"
            );
        }
    }

    #[test]
    fn all_ignored_is_zero_with_a_graph() {
        let l = spec("logit_margin", json!({"ignore_index": 255}));
        let x = logits(2, 3).set_requires_grad(true);
        let y = Tensor::from_slice(&[255i64, 255]);
        let t = l.forward(&x, &y).unwrap();
        assert_eq!(
            t.values().unwrap(),
            vec![("loss", 0.0), ("loss_ce", 0.0), ("loss_margin_l1", 0.0)]
        );
        t.total().backward();
        assert_eq!(x.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn bad_targets_and_shapes() {
        let l = spec("ce", json!({}));
        let e = l
            .forward(&logits(2, 3), &Tensor::from_slice(&[0i64, 3]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("target 3 is outside 0..3"), "{e}");
        let e = l
            .forward(&logits(2, 3), &Tensor::from_slice(&[0i64, -1]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("target -1"), "{e}");
        let e = l
            .forward(&logits(2, 3), &Tensor::from_slice(&[0i64, 1, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("targets have shape [3]"), "{e}");
        let e = l
            .forward(&logits(2, 3), &Tensor::from_slice(&[0.0f32, 1.0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("integers"), "{e}");
        let e = l
            .forward(
                &Tensor::from_slice(&[1.0f32, 2.0]),
                &Tensor::from_slice(&[0i64]),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("N x C"), "{e}");
    }

    #[test]
    fn dense_equals_flattened_rows() {
        let x = logits(2 * 3 * 5, 4)
            .view([2, 3, 5, 4])
            .permute([0, 3, 1, 2])
            .contiguous(); // N C H W
        let y = Tensor::arange(30, (Kind::Int64, tch::Device::Cpu))
            .remainder(4)
            .view([2, 3, 5]);
        let rows = x.permute([0, 2, 3, 1]).reshape([-1, 4]);
        for name in ["ce", "ls", "focal", "logit_margin", "penalty_ent", "brier"] {
            let l = spec(name, json!({}));
            let a = l.forward(&x, &y).unwrap().values().unwrap()[0].1;
            let b = l
                .forward(&rows, &y.reshape([-1]))
                .unwrap()
                .values()
                .unwrap()[0]
                .1;
            // The reported total is float32 and passes through a libtorch dot product whose
            // summation order depends on the CPU: a few float32 ulps, not a fixed 1e-6.
            assert!(
                (a - b).abs() <= 1e-6 * a.abs().max(1.0) * 8.0,
                "{name}: {a} vs {b}"
            );
        }
    }

    /// Every fused loss (float32 input) against the tensor-op path (float64 input): terms to
    /// 1e-5 relative, gradients to 1e-7 absolute.
    fn fused_matches_the_op_path(x: &Tensor, y: &Tensor, what: &str) {
        let cases = [
            ("ce", json!({"ignore_index": 255})),
            ("ls", json!({"alpha": 0.2, "ignore_index": 255})),
            ("focal", json!({"gamma": 2.0, "ignore_index": 255})),
            ("focal", json!({"gamma": 1.5, "ignore_index": 255})),
            ("focal", json!({"gamma": 0.0, "ignore_index": 255})),
            ("focal_adaptive", json!({"gamma": 3.0, "ignore_index": 255})),
            (
                "logit_margin",
                json!({"margin": 4.0, "alpha": 0.3, "ignore_index": 255}),
            ),
            ("penalty_ent", json!({"alpha": 0.3, "ignore_index": 255})),
            ("penalty_l1", json!({"alpha": 0.7, "ignore_index": 255})),
            ("brier", json!({"ignore_index": 255})),
        ];
        for (name, params) in cases {
            let l = spec(name, params);
            let xf = x.detach().set_requires_grad(true);
            let tf = l.forward(&xf, y).unwrap();
            tf.total().backward();
            let xd = x.to_kind(Kind::Double).set_requires_grad(true);
            let td = l.forward(&xd, y).unwrap();
            td.total().backward();
            for ((na, a), (_, b)) in tf.values().unwrap().iter().zip(td.values().unwrap()) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{what} {name} {na}: {a} vs {b}"
                );
            }
            let gerr = (xf.grad().to_kind(Kind::Double) - xd.grad())
                .abs()
                .max()
                .double_value(&[]);
            assert!(gerr < 1e-7, "{what} {name}: gradient differs by {gerr}");
        }
    }

    /// The planar dense kernels, with tied maxima, ignored pixels and a tile boundary.
    #[test]
    fn dense_fused_kernels_match_the_op_path() {
        tch::manual_seed(3);
        let (n, c, h, w) = (2i64, 7i64, 33i64, 41i64); // 1353 pixels: 3 tiles, last not a multiple of 8
        // integer-valued logits: many ties of the maximum
        let x = Tensor::randint(6, [n, c, h, w], (Kind::Float, tch::Device::Cpu)) * 2.5;
        let mut y = Tensor::randint(c, [n, h, w], (Kind::Int64, tch::Device::Cpu));
        let ignore = Tensor::rand([n, h, w], (Kind::Float, tch::Device::Cpu)).lt(0.2);
        let _ = y.masked_fill_(&ignore, 255);
        fused_matches_the_op_path(&x, &y, "dense ties");
        // a wide range: probabilities below ECP's clamp at 1e-10
        let x = Tensor::randn([n, c, h, w], (Kind::Float, tch::Device::Cpu)) * 12.0;
        fused_matches_the_op_path(&x, &y, "dense wide");
    }

    /// The row kernels, with class counts around the 8 lanes, ties (a row of equal logits:
    /// every probability is exactly 1/C, where the L1 gradient's sign is 0) and wide ranges.
    #[test]
    fn row_fused_kernels_match_the_op_path() {
        tch::manual_seed(4);
        for c in [2i64, 7, 8, 13, 200] {
            let n = 50i64;
            let x = Tensor::randint(6, [n, c], (Kind::Float, tch::Device::Cpu)) * 2.5;
            let _ = x.get(0).fill_(1.5);
            let y = Tensor::randint(c, [n], (Kind::Int64, tch::Device::Cpu));
            let _ = y.get(1).fill_(255); // views: these write into y and x
            assert_eq!(y.int64_value(&[1]), 255);
            assert_eq!(x.double_value(&[0, c - 1]), 1.5);
            fused_matches_the_op_path(&x, &y, &format!("rows C={c} ties"));
            let x = Tensor::randn([n, c], (Kind::Float, tch::Device::Cpu)) * 12.0;
            fused_matches_the_op_path(&x, &y, &format!("rows C={c} wide"));
        }
    }

    #[test]
    fn flsd_gamma_rule() {
        // p_y of 0.1, 0.3 and 0.9 get gamma 5, 3 and the configured 2
        let l = spec(
            "focal_adaptive",
            json!({"gamma": 2.0, "size_average": false}),
        );
        let p = [0.1f64, 0.3, 0.9];
        let x: Vec<f32> = p
            .iter()
            .flat_map(|&q| [(q as f32).ln(), ((1.0 - q) as f32).ln()])
            .collect();
        let x = Tensor::from_slice(&x).view([3, 2]);
        let y = Tensor::from_slice(&[0i64, 0, 0]);
        let v = l.forward(&x, &y).unwrap().values().unwrap()[0].1;
        let want: f64 = p
            .iter()
            .zip([5.0, 3.0, 2.0])
            .map(|(&q, g): (&f64, f64)| -(1.0 - q).powf(g) * q.ln())
            .sum();
        assert!((v - want).abs() < 1e-5, "{v} vs {want}");
    }

    #[test]
    fn alpha_schedules() {
        let mut add = spec(
            "logit_margin",
            json!({"schedule": "add", "mu": 0.5, "max_alpha": 1.0, "alpha": 0.1}),
        );
        for e in 0..3 {
            add.epoch_end(e);
        }
        assert_eq!(add.scheduled_alpha(), Some(1.0));
        let mut step = spec(
            "logit_margin",
            json!({"schedule": "step", "mu": 2.0, "step_size": 2, "alpha": 0.1}),
        );
        step.epoch_end(0);
        assert_eq!(step.scheduled_alpha(), Some(0.1));
        step.epoch_end(1);
        assert_eq!(step.scheduled_alpha(), Some(0.2));
        let mut mul = spec(
            "logit_margin",
            json!({"schedule": "multiply", "mu": 10.0, "alpha": 1.0}),
        );
        mul.epoch_end(0);
        mul.epoch_end(1);
        mul.epoch_end(2);
        assert_eq!(mul.scheduled_alpha(), Some(100.0));
    }

    #[test]
    fn ls_reductions_and_mmce_weighted() {
        let x = logits(6, 5).set_requires_grad(true);
        let y = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 0]);
        let none = spec("ls", json!({"reduction": "none"}))
            .forward(&x, &y)
            .unwrap();
        assert_eq!(none.total().size(), vec![6]);
        assert!(none.values().is_err());
        let sum = spec("ls", json!({"reduction": "sum"}))
            .forward(&x, &y)
            .unwrap()
            .values()
            .unwrap()[0]
            .1;
        let mean = spec("ls", json!({}))
            .forward(&x, &y)
            .unwrap()
            .values()
            .unwrap()[0]
            .1;
        assert!((sum - 6.0 * mean).abs() < 1e-4);
        let w = spec("mmce_weighted", json!({})).forward(&x, &y).unwrap();
        let v = w.values().unwrap()[0].1;
        let ce = spec("ce", json!({}))
            .forward(&x, &y)
            .unwrap()
            .values()
            .unwrap()[0]
            .1;
        assert!(v.is_finite() && v >= ce - 1e-6, "{v} vs ce {ce}");
        w.total().backward();
        assert!(x.grad().isfinite().all().int64_value(&[]) == 1);
    }
}
