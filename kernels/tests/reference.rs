//! Tests that make the scalar reference an oracle: its gradient is checked against central
//! differences of its own forward pass, it obeys the identities the math implies (zero
//! weights, mean over streams, carried state across windows, f32 against f64), its optimizer
//! steps match hand-computed values, and it learns the seed experiment's rule (and fails to
//! learn it when the lags are out of reach).
//!
//! Every tolerance is derived from the arithmetic: `u` is the unit roundoff (2^-53 for f64,
//! 2^-24 for f32) and `gamma(n) = n u / (1 - n u)` bounds the relative error of a sum of `n`
//! terms (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.1).

use bitrnn_kernels::Params;
use bitrnn_kernels::real::Real;
use bitrnn_kernels::reference::{
    Update, Window, adagrad_step, clip, forward, forward_backward, sgd_step,
};
use core::f64::consts::LN_2;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use bitrnn_kernels::testing::{Case, Lcg, central_difference};

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A priori bounds on how far the reference, run with unit roundoff `u`, can be from exact
/// arithmetic on the same case (first order in `u`).
#[derive(Debug)]
struct ErrorBound {
    /// Every entry of `h_last`.
    state: f64,
    /// The mean loss.
    loss: f64,
    /// Every entry of the gradient.
    grad: f64,
}

/// Running forward error analysis of the reference's loops (Higham's `gamma(n)` model), with
/// the weights' norms taken from `p`. Transcendentals (`tanh`, `exp`, `ln`) are taken to be
/// within 2 ulp, a relative error of `4u` (glibc promises 1-2 ulp for all three).
///
/// Forward, with `E_t` the error of every entry of `h_t` (`|h| <= 1`, `tanh` 1-Lipschitz):
/// `E_{t+1} = A E_t + gamma(H+2) Z + 4u`, `A = max_j sum_k |w_hh[j][k]|`,
/// `Z = max_j (|w_xh[.][j]| + |b_h[j]| + sum_k |w_hh[j][k]|)` bounds the terms of `z_j`.
/// Logits: `dL_t = R E_{t+1} + gamma(H+1) Y` (`R`, `Y`: row sums of `|w_hy|`, with `|b_y|`).
/// A sample's loss is 2-Lipschitz in the logits (max norm) and at most `2Y + ln 2`; the mean
/// of `N = S T` of them adds `gamma(N)`.
///
/// Backward, with `D_t` a bound on `|dh_t|` and `|dz_t|` (`|dl| <= 1/N`, `|1 - h^2| <= 1`):
/// `D_t = C/N + A' D_{t+1}` (`C`, `A'`: column sums of `|w_hy|`, `|w_hh|`), and its error
/// `e(dz_t) = C e(dl_t) + A' e(dz_{t+1}) + gamma(H+2) D_t + D_t (2 E_{t+1} + 4u)`, where
/// `e(dl_t) = (dL_t / 2 + 13u) / N` (softmax is 1/4-Lipschitz per logit difference). A
/// gradient entry sums `N` products of those with `h` (error `E`), plus `gamma(N)` times the
/// sum of their magnitudes.
fn error_bound(p: &Params<f64>, streams: usize, time_step: usize, u: f64) -> ErrorBound {
    let hd = p.hidden;
    let gamma = |n: usize| n as f64 * u / (1.0 - n as f64 * u);
    let (w_xh, w_hh, b_h, w_hy, b_y) = (p.w_xh(), p.w_hh(), p.b_h(), p.w_hy(), p.b_y());
    let max = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0, f64::max);
    let row_hh = |j: usize| (0..hd).map(|k| w_hh[j * hd + k].abs()).sum::<f64>();
    let a = max(&mut (0..hd).map(row_hh));
    let a_col = max(&mut (0..hd).map(|k| (0..hd).map(|j| w_hh[j * hd + k].abs()).sum()));
    let z =
        max(&mut (0..hd).map(|j| w_xh[j].abs().max(w_xh[hd + j].abs()) + b_h[j].abs() + row_hh(j)));
    let row_hy = |c: usize| (0..hd).map(|j| w_hy[c * hd + j].abs()).sum::<f64>();
    let r = row_hy(0).max(row_hy(1));
    let y = (b_y[0].abs() + row_hy(0)).max(b_y[1].abs() + row_hy(1));
    let c_col = max(&mut (0..hd).map(|j| w_hy[j].abs() + w_hy[hd + j].abs()));
    let n = streams * time_step;
    let (s, dl) = (streams as f64, 1.0 / n as f64);

    let mut e = vec![0.0; time_step + 1];
    for t in 0..time_step {
        e[t + 1] = a * e[t] + gamma(hd + 2) * z + 4.0 * u;
    }
    let d_logit: Vec<f64> = (0..time_step)
        .map(|t| r * e[t + 1] + gamma(hd + 1) * y)
        .collect();
    let sample_loss = 2.0 * y + LN_2;
    let per_sample =
        d_logit.iter().fold(0.0, |m, &d| m.max(2.0 * d)) + u * (3.0 * sample_loss + 15.0);
    let loss = per_sample + (gamma(n) + 2.0 * u) * sample_loss;

    let (mut g_hh, mut g_xb, mut g_hy, mut g_by, mut sum_dz) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut dz_next, mut e_dz_next) = (0.0, 0.0);
    for t in (0..time_step).rev() {
        let e_dl = (d_logit[t] / 2.0 + 13.0 * u) * dl;
        let dh = c_col * dl + a_col * dz_next;
        let e_dh = c_col * e_dl + a_col * e_dz_next + gamma(hd + 2) * dh;
        let e_dz = e_dh + dh * (2.0 * e[t + 1] + 4.0 * u);
        g_hh += e_dz + dh * (e[t] + u);
        g_xb += e_dz;
        g_hy += e_dl + dl * (e[t + 1] + u);
        g_by += e_dl;
        sum_dz += dh;
        (dz_next, e_dz_next) = (dh, e_dz);
    }
    let terms = sum_dz.max(time_step as f64 * dl);
    let grad = s * (g_hh.max(g_xb).max(g_hy).max(g_by) + gamma(n) * terms);
    ErrorBound {
        state: e[time_step],
        loss,
        grad,
    }
}

/// `cases` random cases; failures are saved under `kernels/proptest-regressions/` (cargo runs
/// integration tests from the package root).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/reference.txt",
        ))),
        ..ProptestConfig::default()
    }
}

const U64: f64 = f64::EPSILON / 2.0;
const U32: f64 = f32::EPSILON as f64 / 2.0;

// ---------------------------------------------------------------------------------------
// 1. The gradient against central differences of the loss.
// ---------------------------------------------------------------------------------------

proptest! {
    // About 1.5 s in the test profile (opt-level 3).
    #![proptest_config(config(1024))]

    #[test]
    fn gradient_matches_central_differences(
        hidden in 1usize..=10,
        streams in 1usize..=6,
        time_step in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let case = Case::random(hidden, streams, time_step, 1.5, seed);
        let (loss, grad, _) = case.run::<f64>();
        let mut params = case.params.clone();
        for (i, &g) in grad.iter().enumerate() {
            let (fd, tol) = central_difference(&case, &mut params, i, loss, g);
            prop_assert!(
                (g - fd).abs() <= tol,
                "entry {i}: backward {g:e}, central difference {fd:e}, tolerance {tol:e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Identities.
// ---------------------------------------------------------------------------------------

/// (a) With every weight zero, `h_t = 0` and both logits are 0 whatever the carried state:
/// `p = (1/2, 1/2)`, each sample's loss is exactly `ln 2` and its dlogit is
/// `(1/2 - [y = c]) / (S T)`, so `d b_y[c] = (n_other - n_c) / (2 S T)` and every other
/// gradient entry is exactly 0 (`h = 0`, `w_hy = 0`).
fn check_zero_weights<F: Real>(case: &Case, u: f64) {
    let (loss, grad, h_last) = case.run::<F>();
    let n = case.streams * case.time_step;
    let gamma = |k: usize| k as f64 * u / (1.0 - k as f64 * u);
    if n == 1 {
        assert_eq!(loss, F::from_f64(LN_2).to_f64(), "one sample: exactly ln 2");
    }
    // The mean of N copies of ln 2 rounds N - 1 additions and one product by fl(1/N).
    assert!(
        (loss - LN_2).abs() <= (gamma(n + 1) + u) * LN_2,
        "loss {loss} != ln 2 for {n} samples"
    );
    assert!(h_last.iter().all(|&h| h == 0.0), "h_last = tanh(0) = 0");
    let b_y = case.params.layout().ranges()[5].0;
    for (i, &g) in grad[..b_y].iter().enumerate() {
        assert_eq!(g, 0.0, "gradient entry {i} must be exactly 0");
    }
    for c in 0..2 {
        let n_c = case.y.iter().filter(|&&y| usize::from(y) == c).count();
        let expected = (n as f64 - 2.0 * n_c as f64) / (2.0 * n as f64);
        // Each dlogit is exactly +-fl(1/N)/2; their sum rounds N - 1 times.
        assert!(
            (grad[b_y + c] - expected).abs() <= gamma(n + 1) * 0.5,
            "d b_y[{c}] = {} != {expected}",
            grad[b_y + c]
        );
    }
}

#[test]
fn zero_weights_give_ln2_and_half_dlogits() {
    for hidden in [1, 3, 8] {
        for (streams, time_step) in [(1, 1), (1, 5), (3, 1), (6, 6), (5, 3)] {
            let mut case = Case::random(hidden, streams, time_step, 1.0, 17 + hidden as u64);
            case.params.data.fill(0.0);
            check_zero_weights::<f64>(&case, U64);
            check_zero_weights::<f32>(&case, U32);
        }
    }
    // A single sample: the dlogits are exactly -1/2 on the target and +1/2 on the other.
    for y in 0..2u8 {
        let case = Case {
            streams: 1,
            time_step: 1,
            params: Params::zeros(4),
            h0: vec![0.5, -0.25, 0.75, -1.0 + 1.0 / 64.0],
            x: vec![1 - y],
            y: vec![y],
        };
        let (_, grad, _) = case.run::<f64>();
        let b_y = case.params.layout().ranges()[5].0;
        let mut expected = [0.5, 0.5];
        expected[usize::from(y)] = -0.5;
        assert_eq!(grad[b_y..], expected);
    }
}

/// (a') With only the output layer zero, the logits are still 0, so the loss is `ln 2` and
/// the dlogits are `+-1/(2 S T)` per sample, but now `d w_hy[c][j] = sum (1/2 - [y = c])
/// h_t[j] / (S T)` weighs each sample's dlogit with its own hidden state; `h_t` is obtained
/// independently by chaining one-step forward passes. The gradient of every weight before
/// the output layer is exactly 0 (`dh = w_hy^T dl = 0`).
#[test]
fn zero_output_layer_weighs_dlogits_by_state() {
    for (i, seed) in (0..20u64).enumerate() {
        let mut case = Case::random(1 + i % 7, 1 + i % 4, 4, 1.5, seed);
        let (hd, s_n, t_n) = (case.hidden(), case.streams, case.time_step);
        let [.., (w_hy, b_y), (_, end)] = case.params.layout().ranges();
        case.params.data[w_hy..end].fill(0.0);
        let (loss, grad, _) = case.run::<f64>();
        // Logits exactly 0: the mean of N <= 16 copies of ln 2, as in (a).
        assert!(
            (loss - LN_2).abs() <= 64.0 * U64 * LN_2,
            "loss {loss} != ln 2"
        );
        assert!(grad[..w_hy].iter().all(|&g| g == 0.0));
        let mut expected = vec![0.0; 2 * hd];
        let mut h = case.h0.clone();
        for t in 0..t_n {
            let step = case.steps_subset(t..t + 1, h.clone());
            forward(&step.params, &step.h0, &step.window(), &mut h);
            for s in 0..s_n {
                let y = usize::from(case.y[t * s_n + s]);
                for c in 0..2 {
                    let dl = if c == y { -0.5 } else { 0.5 } / (s_n * t_n) as f64;
                    for j in 0..hd {
                        expected[c * hd + j] += dl * h[s * hd + j];
                    }
                }
            }
        }
        let err = max_abs_diff(&grad[w_hy..b_y], &expected);
        // Both sides sum the same N <= 16 terms of size <= 1/(2N) (the states are bitwise the
        // same: the same operations), in different orders and with fl(1/N) rounded apart:
        // each side is within gamma(N + 1) / 2 <= 9u of the exact sum, 18u apart at most.
        assert!(err <= 64.0 * U64, "d w_hy differs by {err:e}");
        assert!(expected.iter().any(|&g| g.abs() > 1e-3), "degenerate case");
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// (b) `forward` and `forward_backward` agree bit for bit on the loss and on `h_last`,
    /// and `forward_backward` overwrites (never accumulates into) a poisoned gradient.
    #[test]
    fn forward_agrees_with_forward_backward(
        hidden in 1usize..=10,
        streams in 1usize..=6,
        time_step in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let case = Case::random(hidden, streams, time_step, 1.5, seed);
        let mut h_fwd = vec![f64::NAN; streams * hidden];
        let loss_fwd = forward(&case.params, &case.h0, &case.window(), &mut h_fwd);
        let mut grad = Params::filled(hidden, f64::NAN);
        let mut h_fb = vec![f64::NAN; streams * hidden];
        let loss_fb =
            forward_backward(&case.params, &case.h0, &case.window(), &mut grad, &mut h_fb);
        prop_assert_eq!(loss_fwd.to_bits(), loss_fb.to_bits());
        prop_assert_eq!(&h_fwd, &h_fb);
        prop_assert!(h_fwd.iter().all(|h| h.abs() < 1.0));
        prop_assert!(loss_fwd.is_finite() && loss_fwd > 0.0);
        prop_assert!(grad.data.iter().all(|g| g.is_finite()));
        // A second call with the same output buffer gives the same gradient (no accumulation).
        let first = grad.clone();
        forward_backward(&case.params, &case.h0, &case.window(), &mut grad, &mut h_fb);
        prop_assert_eq!(first, grad);
    }

    /// (c) f32 and f64 agree within the a priori error bound of the f32 run (plus that of the
    /// f64 run, 2^29 times smaller), on the loss, `h_last` and every gradient entry. Weights are
    /// Glorot-sized, where the bound is informative: the test also requires it to be below
    /// 1e-3, so it cannot pass vacuously. Measured over 3000 cases: the bound is at most
    /// 1.8e-4 (0.6% of the largest gradient entry) and the observed differences reach 5%
    /// (loss), 21% (`h_last`) and 4% (gradient) of it.
    #[test]
    fn f32_agrees_with_f64_within_rounding_bound(
        hidden in 1usize..=10,
        streams in 1usize..=6,
        time_step in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let case = Case::glorot(hidden, streams, time_step, seed);
        let b32 = error_bound(&case.params, streams, time_step, U32);
        let b64 = error_bound(&case.params, streams, time_step, U64);
        prop_assert!(b32.loss < 1e-3 && b32.grad < 1e-3 && b32.state < 1e-3, "{b32:?}");
        let (l32, g32, h32) = case.run::<f32>();
        let (l64, g64, h64) = case.run::<f64>();
        prop_assert!((l32 - l64).abs() <= b32.loss + b64.loss,
            "loss: f32 {l32}, f64 {l64}, bound {:e}", b32.loss + b64.loss);
        let dh = max_abs_diff(&h32, &h64);
        prop_assert!(dh <= b32.state + b64.state, "h_last differs by {dh:e}, bound {b32:?}");
        let dg = max_abs_diff(&g32, &g64);
        prop_assert!(dg <= b32.grad + b64.grad, "gradient differs by {dg:e}, bound {b32:?}");
    }

    /// (d) Carried state: one window of `T` steps and the same steps as two windows of `T1` and
    /// `T2` steps, the second starting from the first's `h_last`, reach the same final state
    /// (bit for bit: the same operations in the same order) and the same total loss,
    /// `T1 L1 + T2 L2 = T L` (within the three runs' f64 loss bounds). The carried state
    /// matters: another `h0` changes the loss.
    #[test]
    fn split_window_carries_state_and_loss(
        hidden in 1usize..=10,
        streams in 1usize..=6,
        time_step in 2usize..=6,
        split_at in 1usize..6,
        seed in any::<u64>(),
    ) {
        let t1 = 1 + (split_at - 1) % (time_step - 1);
        let long = Case::glorot(hidden, streams, time_step, seed);
        let (loss, _, h_last) = long.run::<f64>();
        let first = long.steps_subset(0..t1, long.h0.clone());
        let (loss1, _, h_mid) = first.run::<f64>();
        let second = long.steps_subset(t1..time_step, h_mid);
        let (loss2, _, h_end) = second.run::<f64>();
        prop_assert_eq!(&h_end, &h_last);

        let bound = |c: &Case| {
            c.time_step as f64 * error_bound(&c.params, c.streams, c.time_step, U64).loss
        };
        let total = t1 as f64 * loss1 + (time_step - t1) as f64 * loss2;
        let tol = bound(&long) + bound(&first) + bound(&second) + 4.0 * U64 * total;
        prop_assert!((total - time_step as f64 * loss).abs() <= tol,
            "T1 L1 + T2 L2 = {total}, T L = {}, tolerance {tol:e}", time_step as f64 * loss);

        let mut other = long.clone();
        other.h0.iter_mut().for_each(|h| *h = -*h * 0.5 + 0.25);
        let (loss_other, _, _) = other.run::<f64>();
        prop_assert!((loss_other - loss).abs() > 100.0 * bound(&long),
            "h0 must change the loss: {loss} vs {loss_other}");
    }

    /// (d') Truncation: the gradients of the two halves, weighted by their steps, miss exactly
    /// the terms that cross the window boundary through `w_hh`. With `w_hh = 0` there are none
    /// and `T g = T1 g1 + T2 g2`; with `w_hh != 0` the long window's gradient differs.
    #[test]
    fn gradient_stops_at_window_boundary(
        hidden in 1usize..=10,
        streams in 1usize..=6,
        time_step in 2usize..=6,
        split_at in 1usize..6,
        seed in any::<u64>(),
    ) {
        let t1 = 1 + (split_at - 1) % (time_step - 1);
        let t2 = time_step - t1;
        let mut long = Case::glorot(hidden, streams, time_step, seed);
        for zero_recurrence in [true, false] {
            if zero_recurrence {
                long.params.w_hh_mut().fill(0.0);
            } else {
                long.params = Case::glorot(hidden, streams, time_step, seed).params;
            }
            let (_, grad, _) = long.run::<f64>();
            let (_, grad1, h_mid) = long.steps_subset(0..t1, long.h0.clone()).run::<f64>();
            let (_, grad2, _) = long.steps_subset(t1..time_step, h_mid).run::<f64>();
            let split: Vec<f64> = grad1
                .iter()
                .zip(&grad2)
                .map(|(g1, g2)| (t1 as f64 * g1 + t2 as f64 * g2) / time_step as f64)
                .collect();
            let bound = |t: usize| error_bound(&long.params, streams, t, U64).grad;
            let tol = bound(time_step)
                + (t1 as f64 * bound(t1) + t2 as f64 * bound(t2)) / time_step as f64
                + 4.0 * U64 * split.iter().fold(0.0, |m, g| m.max(g.abs()));
            let diff = max_abs_diff(&grad, &split);
            if zero_recurrence {
                prop_assert!(diff <= tol, "w_hh = 0: split differs by {diff:e} > {tol:e}");
            } else {
                prop_assert!(diff > 100.0 * tol, "w_hh != 0: split differs by only {diff:e}");
            }
        }
    }

    /// (e) The loss is a mean over streams, so for disjoint stream sets `S1 + S2 = S`:
    /// `grad(S) = (S1 grad(S1) + S2 grad(S2)) / S` and likewise the loss; the streams never
    /// interact, so `h_last` is the concatenation, bit for bit.
    #[test]
    fn gradient_is_stream_weighted_mean(
        hidden in 1usize..=10,
        streams in 2usize..=6,
        split_at in 1usize..6,
        time_step in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let s1 = 1 + (split_at - 1) % (streams - 1);
        let s2 = streams - s1;
        let all = Case::glorot(hidden, streams, time_step, seed);
        let (loss, grad, h_last) = all.run::<f64>();
        let (loss1, grad1, h1) = all.streams_subset(0..s1).run::<f64>();
        let (loss2, grad2, h2) = all.streams_subset(s1..streams).run::<f64>();
        prop_assert_eq!(h_last, [h1, h2].concat());

        let (w1, w2) = (s1 as f64 / streams as f64, s2 as f64 / streams as f64);
        let bound = |s: usize| error_bound(&all.params, s, time_step, U64);
        let (b, b1, b2) = (bound(streams), bound(s1), bound(s2));
        let mean_loss = (s1 as f64 * loss1 + s2 as f64 * loss2) / streams as f64;
        let tol = b.loss + w1 * b1.loss + w2 * b2.loss + 4.0 * U64 * mean_loss;
        prop_assert!((loss - mean_loss).abs() <= tol, "loss {loss} vs {mean_loss}");
        let mean: Vec<f64> = grad1
            .iter()
            .zip(&grad2)
            .map(|(g1, g2)| (s1 as f64 * g1 + s2 as f64 * g2) / streams as f64)
            .collect();
        let tol = b.grad + w1 * b1.grad + w2 * b2.grad
            + 4.0 * U64 * mean.iter().fold(0.0, |m, g| m.max(g.abs()));
        let diff = max_abs_diff(&grad, &mean);
        prop_assert!(diff <= tol, "gradient differs by {diff:e} > {tol:e}");
    }
}

// ---------------------------------------------------------------------------------------
// 2 (f). Optimizer steps.
// ---------------------------------------------------------------------------------------

/// Two Adagrad steps (lr 0.1, accumulator 0.1 as the caller fills it), computed by hand in
/// 40-digit decimal (`accum += g^2; w -= lr g / sqrt(accum)`), rounded to the nearest f64.
#[test]
fn adagrad_matches_hand_computed_steps() {
    let mut w = [0.5, -1.0, 2.0, 0.0];
    let mut accum = [0.1; 4];
    let steps: [([f64; 4], [f64; 4], [f64; 4]); 2] = [
        (
            [0.3, -0.4, 0.0, 1.0],
            [0.19, 0.26, 0.1, 1.1],
            [
                0.431_175_279_838_831_47,
                -0.921_553_545_944_726_4,
                2.0,
                -0.095_346_258_924_559_24,
            ],
        ),
        (
            [-0.2, -0.4, 0.5, 1.0],
            [0.23, 0.42, 0.35, 2.1],
            [
                0.472_878_162_650_246_4,
                -0.859_832_205_959_889_6,
                1.915_484_574_527_148_3,
                -0.164_352_814_858_794_66,
            ],
        ),
    ];
    for (grad, accum_expected, w_expected) in steps {
        adagrad_step(&mut w, &mut accum, &grad, Update::plain(0.1));
        for i in 0..4 {
            // A handful of roundings of numbers of order 1: a few ulp.
            assert!((accum[i] - accum_expected[i]).abs() <= 8.0 * U64 * accum_expected[i]);
            assert!(
                (w[i] - w_expected[i]).abs() <= 8.0 * U64 * w_expected[i].abs().max(1.0),
                "w[{i}] = {} expected {}",
                w[i],
                w_expected[i]
            );
        }
    }
    // A zero gradient leaves a weight exactly where it was (entry 2 after step 1).
    let mut w = [2.0f32];
    let mut accum = [0.1f32];
    adagrad_step(&mut w, &mut accum, &[0.0], Update::plain(0.1));
    assert_eq!((w, accum), ([2.0], [0.1]));
}

/// min-char-rnn's Adagrad (`--clip 5 --adagrad-eps 1e-8 --adagrad-init 0`): `mem += g^2`
/// from 0, `w -= lr g / sqrt(mem + 1e-8)` with `g` clipped to [-5, 5]. The first step moves
/// every weight by `lr` against its gradient's sign (less for `|g|` near `sqrt(eps)`), a zero
/// gradient leaves the weight and a zero accumulator as they are (no 0 / 0), and a gradient
/// beyond the clip counts as 5 in the accumulator too.
#[test]
fn adagrad_with_min_char_rnn_settings() {
    let update = Update {
        lr: 0.1,
        clip: Some(5.0),
        eps: 1e-8,
    };
    let mut w = [1.0f64, 1.0, 1.0, 1.0, 1.0];
    let mut accum = [0.0; 5];
    let g = [10.0, -0.5, 0.0, 1e-4, -7.0];
    adagrad_step(&mut w, &mut accum, &g, update);
    assert_eq!(accum, [25.0, 0.25, 0.0, 1e-4 * 1e-4, 25.0]);
    assert_eq!(w[0], 1.0 - 0.1 * 5.0 / (25.0f64 + 1e-8).sqrt());
    assert!((w[0] - 0.9).abs() < 1e-8 && (w[1] - 1.1).abs() < 1e-8);
    assert_eq!(w[2], 1.0);
    // |g| = 1e-4 = sqrt(2 eps) after the step: lr / sqrt(2) of a step.
    assert!((w[3] - (1.0 - 0.1 / 2f64.sqrt())).abs() < 1e-12, "{}", w[3]);
    assert!((w[4] - 1.1).abs() < 1e-8);
    assert_eq!(clip(-7.0, Some(5.0)), -5.0);
    assert!(w.iter().all(|v| v.is_finite()));
}

proptest! {
    #![proptest_config(config(256))]

    /// Adagrad's accumulator never decreases (it adds `g^2 >= 0`) and stays at least the
    /// caller's start value; each step moves a weight against its gradient and by less than
    /// `lr`, since `|g| / sqrt(accum) < 1` once `accum >= 0.1 + g^2`.
    #[test]
    fn adagrad_accumulator_never_decreases(
        grads in prop::collection::vec(prop::collection::vec(-10.0f64..10.0, 5), 1..20),
    ) {
        let lr = 0.1;
        let mut w = vec![0.25; 5];
        let mut accum = vec![0.1; 5];
        for g in &grads {
            let (w_before, accum_before) = (w.clone(), accum.clone());
            adagrad_step(&mut w, &mut accum, g, Update::plain(lr));
            for i in 0..5 {
                prop_assert!(accum[i] >= accum_before[i] && accum[i] >= 0.1);
                let step = w_before[i] - w[i];
                prop_assert!(step.abs() < lr);
                prop_assert!(step * g[i] >= 0.0);
            }
        }
    }
}

/// SGD: `w -= lr g`, on numbers exact in binary, so the results are exact.
#[test]
fn sgd_matches_hand_computed_steps() {
    let mut w = [1.0, -2.0, 0.5];
    sgd_step(&mut w, &[0.5, -0.25, 0.0], Update::plain(0.5));
    assert_eq!(w, [0.75, -1.875, 0.5]);
    sgd_step(&mut w, &[1.0, 0.125, -2.0], Update::plain(0.5));
    assert_eq!(w, [0.25, -1.9375, 1.5]);
    let mut w = [1.0f32, -2.0];
    sgd_step(&mut w, &[0.5, -0.25], Update::plain(0.5));
    assert_eq!(w, [0.75, -1.875]);
}

// ---------------------------------------------------------------------------------------
// 3. Learning the seed experiment's rule.
// ---------------------------------------------------------------------------------------

/// The seed data (SEED.md): `x` fair bits; `y[i] = !x[i-a]` when `x[i-a] == x[i-b]`, else a
/// coin (the first `max(a, b)` targets are coins).
fn seed_data(len: usize, lags: (usize, usize), rng: &mut Lcg) -> (Vec<u8>, Vec<u8>) {
    let x: Vec<u8> = (0..len).map(|_| rng.bit()).collect();
    let (a, b) = lags;
    let y = (0..len)
        .map(|i| {
            if i >= a.max(b) && x[i - a] == x[i - b] {
                1 - x[i - a]
            } else {
                rng.bit()
            }
        })
        .collect();
    (x, y)
}

/// Trains hidden 6 on `streams` streams of `windows * 5` steps (one epoch, no data repeated),
/// `time_step` 5, Adagrad 0.1 (accumulator 0.1), Glorot-uniform weights and zero biases, the
/// state carried from window to window when `carry` (else every window starts from zero).
/// Returns the loss of every window.
fn train(lags: (usize, usize), seed: u64, streams: usize, windows: usize, carry: bool) -> Vec<f64> {
    const HIDDEN: usize = 6;
    const TIME_STEP: usize = 5;
    let steps = windows * TIME_STEP;
    let mut rng = Lcg(seed);
    let (x_all, y_all) = seed_data(streams * steps, lags, &mut rng);

    let mut params = Params::<f64>::zeros(HIDDEN);
    let glorot = |fan_in: usize, fan_out: usize| (6.0 / (fan_in + fan_out) as f64).sqrt();
    let ranges = params.layout().ranges();
    for (k, (fan_in, fan_out)) in [(0, (2, HIDDEN)), (1, (HIDDEN, HIDDEN)), (4, (HIDDEN, 2))] {
        let limit = glorot(fan_in, fan_out);
        for w in &mut params.data[ranges[k].0..ranges[k].1] {
            *w = rng.range(-limit, limit);
        }
    }
    let mut accum = Params::filled(HIDDEN, 0.1);
    let mut grad = Params::zeros(HIDDEN);
    let (mut x, mut y) = (vec![0; streams * TIME_STEP], vec![0; streams * TIME_STEP]);
    let mut h = vec![0.0; streams * HIDDEN];
    let mut h_next = h.clone();
    let mut losses = Vec::with_capacity(windows);
    for w in 0..windows {
        // Stream s is the contiguous slice s * steps.. of the data (the tutorial's reshape).
        for t in 0..TIME_STEP {
            for s in 0..streams {
                x[t * streams + s] = x_all[s * steps + w * TIME_STEP + t];
                y[t * streams + s] = y_all[s * steps + w * TIME_STEP + t];
            }
        }
        let win = Window {
            streams,
            time_step: TIME_STEP,
            x: &x,
            y: &y,
        };
        losses.push(forward_backward(&params, &h, &win, &mut grad, &mut h_next));
        adagrad_step(
            &mut params.data,
            &mut accum.data,
            &grad.data,
            Update::plain(0.1),
        );
        if carry {
            core::mem::swap(&mut h, &mut h_next);
        }
    }
    losses
}

/// Mean loss of the last 200 of 600 windows (20 streams: 12,000 sample-steps, so the
/// sampling noise of the mean is about 0.003).
fn final_loss(lags: (usize, usize), seed: u64, carry: bool) -> f64 {
    let losses = train(lags, seed, 20, 600, carry);
    losses[400..].iter().sum::<f64>() / 200.0
}

/// The rule with lags (1, 2) is learned: the loss falls from ln 2 towards `ln 2 / 2 = 0.3466`
/// (half the targets forced, half coins). Measured over seeds 1..=20: 0.346..0.359 (seeds
/// 1..=10: 0.346..0.357), a margin of 0.09 below the 0.45 bound. The data are fresh (one
/// epoch), so the loss cannot beat ln 2 / 2 by more than noise: below 0.33 would mean a leak
/// from targets to inputs.
#[test]
fn learns_the_seed_rule() {
    for seed in 1..=10 {
        let loss = final_loss((1, 2), seed, true);
        assert!(loss < 0.45 && loss > 0.33, "seed {seed}: loss {loss}");
    }
}

/// Lags (5, 6) with the state reset every window: no input of a window says anything about
/// its targets (they depend on `x` 5 and 6 steps back, the window has 5 steps), so the loss
/// stays at ln 2. Measured over seeds 1..=20: 0.6934..0.6944, margin 0.053 above 0.64.
#[test]
fn cannot_learn_lags_beyond_the_window_without_state() {
    for seed in 1..=10 {
        let loss = final_loss((5, 6), seed, false);
        assert!(loss > 0.64, "seed {seed}: loss {loss}");
    }
}

/// Lags (10, 11) with the state carried: the inputs the targets depend on lie 6 to 11 steps
/// before the window, so the carried state would have to hold them that long, while truncated
/// BPTT only trains paths that start at the window (at most 5 steps). Measured over seeds
/// 1..=20: 0.673..0.694 (seed 7 is the 0.673: even these lags are slowly reachable), margin
/// 0.033 above 0.64.
///
/// Lags (5, 6) with the state carried are *not* unlearnable: those inputs are the last two of
/// the previous window, present in the carried state `h_{-1}`, and the path from `h_{-1}` to
/// the loss of step 4 is inside the window, so BPTT trains a 6-step memory that then serves
/// every position. Measured (seeds 1..=20, 600 windows): 0.447..0.694, about half the seeds
/// well below 0.64; in one such run (seed 3, 250 streams) every window position's loss is
/// near 0.49, so the memory is not tied to step 4.
#[test]
fn far_lags_stay_unlearned_with_carried_state() {
    for seed in 1..=10 {
        let loss = final_loss((10, 11), seed, true);
        assert!(loss > 0.64, "seed {seed}: loss {loss}");
    }
}
