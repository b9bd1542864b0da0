//! The output head of one step: the two-class softmax of the logit difference, its
//! cross-entropy, the prediction's correctness and the logits' gradient, fused.

use super::flush;
use crate::approx;
use crate::lanes::Vf32;

/// The output head of one step for one lane group, from the logit difference `d`.
///
/// Two-class softmax and cross-entropy by [`approx::ln1p_exp_and_sigmoid`] (the function the
/// exhaustive tests of [`approx::softplus`] and [`approx::sigmoid`] check): `p1 = sigmoid(d)`
/// and the loss `softplus(s) = max(s, 0) + ln(1 + e^-|s|)` with `s = d` for `y = 0` and
/// `s = -d` for `y = 1` (`|s| = |d|`, so one evaluation serves both). `d` is clamped to
/// `[-80, 80]` first so that `e^-|d| / (1 + e^-|d|) >= e^-80 / 2` stays a normal float (the
/// linear part `max(s, 0)` keeps the unclamped `d`). Returns (loss, correct, dl1), each masked
/// by `valid`; `dl1 = (p1 - y) scale` is flushed.
#[inline(always)]
pub(super) fn head(d: Vf32, y: Vf32, valid: Vf32, scale: Vf32) -> (Vf32, Vf32, Vf32) {
    let cap = Vf32::splat(80.0);
    let (ln1p, p1) = approx::ln1p_exp_and_sigmoid(d.max(-cap).min(cap));
    let positive = d.simd_ge(Vf32::ZERO);
    let yes = y.simd_ne(Vf32::ZERO);
    let s = yes.select(-d, d);
    let loss = s.max(Vf32::ZERO) + ln1p;
    let wrong = (positive.select(Vf32::ONE, Vf32::ZERO) - y).abs();
    let correct = wrong.mul_neg_add(valid, valid);
    let dl = flush((p1 - y) * (valid * scale));
    (loss * valid, correct, dl)
}
