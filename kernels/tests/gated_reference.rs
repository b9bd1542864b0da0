//! Tests that make the scalar reference an oracle for the gated cells (PyTorch's GRU and
//! LSTM): the gradient against central differences of the forward pass, the identities the
//! gates imply when saturated, the carried state (`h`, and the LSTM's `c`) across windows,
//! the truncation at the window boundary, f32 against f64, and the tanh RNN's results bit
//! for bit as they were before the gated cells existed.
//!
//! `u` is the unit roundoff (2^-53 for f64, 2^-24 for f32) and `gamma(n) = n u / (1 - n u)`
//! bounds the relative error of a sum of `n` terms (Higham, 2nd ed., section 3.1).
//!
//! A gate is saturated with a bias of +-60: `sigmoid(60) = 1 / (1 + e^-60)` rounds to exactly
//! 1 in f64 (`e^-60 = 8.8e-27 < u`), and `sigmoid(-60) = e^-60 / (1 + e^-60) = 8.8e-27`.

use bitrnn_kernels::reference::{forward, forward_backward};
use bitrnn_kernels::testing::{Case, central_difference, loss_moved};
use bitrnn_kernels::{Cell, Params};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const U64: f64 = f64::EPSILON / 2.0;
const U32: f64 = f32::EPSILON as f64 / 2.0;
/// `sigmoid(-SATURATE)` is `8.8e-27`, `sigmoid(SATURATE)` exactly 1 (f64).
const SATURATE: f64 = 60.0;

fn gamma(n: usize, u: f64) -> f64 {
    n as f64 * u / (1.0 - n as f64 * u)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn gated(lstm: bool) -> Cell {
    if lstm { Cell::Lstm } else { Cell::Gru }
}

/// `cases` random cases; failures are saved under `kernels/proptest-regressions/`.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/gated_reference.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// The flat indices of gate `gate`'s rows in every tensor before the head: `w_x`'s two
/// columns, `w_hh`'s rows, `b_ih` and `b_hh`.
fn gate_entries(p: &Params<f64>, gate: usize) -> Vec<usize> {
    let (hd, gh) = (p.hidden, p.layout().gate_rows());
    let [w_x, w_hh, b_ih, b_hh, ..] = p.layout().ranges();
    let rows = gate * hd..(gate + 1) * hd;
    let mut idx = Vec::new();
    for x in 0..2 {
        idx.extend(rows.clone().map(|r| w_x.0 + x * gh + r));
    }
    for r in rows.clone() {
        idx.extend((0..hd).map(|k| w_hh.0 + r * hd + k));
    }
    idx.extend(rows.clone().map(|r| b_ih.0 + r));
    idx.extend(rows.map(|r| b_hh.0 + r));
    idx
}

/// Gate `gate` saturated at `sigmoid(bias)`: its weights and hidden bias 0, its input bias
/// `bias`.
fn saturate(p: &mut Params<f64>, gate: usize, bias: f64) {
    let b_ih = p.layout().ranges()[2].0;
    for i in gate_entries(p, gate) {
        p.data[i] = 0.0;
    }
    for j in 0..p.hidden {
        p.data[b_ih + gate * p.hidden + j] = bias;
    }
}

// ---------------------------------------------------------------------------------------
// 0. The tanh RNN, unchanged.
// ---------------------------------------------------------------------------------------

/// FNV-1a over the bits of the loss, gradient and final state, in f64 and f32, of 64 RNN
/// cases of every shape up to H = 9, S = 5, T = 6 (weights 1.5).
fn rnn_fingerprint() -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bits: u64| {
        for b in bits.to_le_bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for seed in 0..64u64 {
        let hidden = 1 + (seed % 9) as usize;
        let streams = 1 + (seed % 5) as usize;
        let time_step = 1 + (seed % 6) as usize;
        let case = Case::random(hidden, streams, time_step, 1.5, seed);
        let (l, g, h) = case.run::<f64>();
        eat(l.to_bits());
        g.iter().chain(&h).for_each(|v| eat(v.to_bits()));
        let (l, g, h) = case.run::<f32>();
        eat(l.to_bits());
        g.iter().chain(&h).for_each(|v| eat(v.to_bits()));
    }
    hash
}

/// The RNN's results are bit for bit those of the reference before the gated cells (the
/// fingerprint was taken at commit 6e75077, whose reference had only the RNN), and
/// `Case::random_cell(Rnn, ..)` is `Case::random`.
#[test]
fn rnn_results_unchanged_bit_for_bit() {
    assert_eq!(rnn_fingerprint(), 0x6c30_dade_5538_77bf);
    let a = Case::random(4, 3, 5, 1.5, 99);
    let b = Case::random_cell(Cell::Rnn, 4, 3, 5, 1.5, 99);
    assert_eq!((a.params, a.h0, a.x, a.y), (b.params, b.h0, b.x, b.y));
}

// ---------------------------------------------------------------------------------------
// 1. The gradient against central differences of the loss.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1024))]

    /// Every gradient entry of small GRU and LSTM cases (H 1..=5, S 1..=3, T 1..=4, weights
    /// and biases U(-1, 1), `c` in (-2, 2)) against the central difference of the f64 loss.
    #[test]
    fn gradient_matches_central_differences(
        lstm in any::<bool>(),
        hidden in 1usize..=5,
        streams in 1usize..=3,
        time_step in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let case = Case::random_cell(gated(lstm), hidden, streams, time_step, 1.0, seed);
        let (loss, grad, _) = case.run::<f64>();
        prop_assert_eq!(grad.len(), case.params.data.len());
        let mut params = case.params.clone();
        for (i, &g) in grad.iter().enumerate() {
            let (fd, tol) = central_difference(&case, &mut params, i, loss, g);
            prop_assert!(
                (g - fd).abs() <= tol,
                "{:?} entry {i}: backward {g:e}, central difference {fd:e}, tolerance {tol:e}",
                case.cell()
            );
        }
    }
}

/// The measurement behind `bitrnn_kernels::testing::fd_floor`'s rounding term: with steps of 1e-8 the truncation
/// (`1.7e-17 |L'''|`) is negligible, so `|fd - g| e` is the loss's rounding `rho` (the
/// gradient `g` being right, which `gradient_matches_central_differences` checks).
#[test]
#[ignore = "a measurement, not a check"]
fn measure_loss_rounding() {
    let mut worst: f64 = 0.0;
    for seed in 0..2000u64 {
        let lstm = seed % 2 == 1;
        let case = Case::random_cell(
            gated(lstm),
            1 + (seed % 5) as usize,
            1 + (seed % 3) as usize,
            1 + (seed % 4) as usize,
            1.0,
            seed,
        );
        let (loss, grad, _) = case.run::<f64>();
        let mut params = case.params.clone();
        for (i, &g) in grad.iter().enumerate() {
            let (plus, e_plus) = loss_moved(&case, &mut params, i, 1e-8);
            let (minus, e_minus) = loss_moved(&case, &mut params, i, -1e-8);
            let fd = (plus - minus) / (e_plus - e_minus);
            let rho = (fd - g).abs() * 1e-8 / (f64::EPSILON * loss.abs().max(1.0));
            worst = worst.max(rho);
        }
    }
    println!("rho <= {worst:.1} eps max(|L|, 1)");
}

// ---------------------------------------------------------------------------------------
// 2. Identities.
// ---------------------------------------------------------------------------------------

/// The mean loss of the head alone applied to the states `hs[t][s * hd..]`: the oracle for
/// windows whose state is known independently.
fn head_loss(case: &Case, hs: &[Vec<f64>]) -> f64 {
    let p = &case.params;
    let (hd, s_n) = (case.hidden(), case.streams);
    let mut total = 0.0;
    for (t, h) in hs.iter().enumerate() {
        for s in 0..s_n {
            let l: Vec<f64> = (0..2)
                .map(|c| {
                    p.b_y()[c]
                        + (0..hd)
                            .map(|j| p.w_hy()[c * hd + j] * h[s * hd + j])
                            .sum::<f64>()
                })
                .collect();
            let y = usize::from(case.y[t * s_n + s]);
            let m = l[0].max(l[1]);
            total -= l[y] - m - ((l[0] - m).exp() + (l[1] - m).exp()).ln();
        }
    }
    total / case.samples() as f64
}

/// GRU with the update gate shut on the carried state (`z = sigmoid(60) = 1` exactly): `h_t =
/// (1 - 1) n + 1 h_{t-1} = h_{t-1}` exactly, so `h_last == h0` bit for bit, the loss is the
/// head's on `h0` at every step, and every gradient entry before the head is exactly 0 (`dn =
/// dh (1 - z) = 0`, `da_z = dz z (1 - z) = 0`, so `da_r = 0` too).
#[test]
fn gru_update_gate_at_one_carries_h() {
    for seed in 0..40u64 {
        let mut case = Case::random_cell(
            Cell::Gru,
            1 + (seed % 5) as usize,
            1 + (seed % 3) as usize,
            1 + (seed % 4) as usize,
            1.0,
            seed,
        );
        saturate(&mut case.params, 1, SATURATE);
        let (loss, grad, h_last) = case.run::<f64>();
        assert_eq!(h_last, case.h0, "h carried unchanged");
        let w_hy = case.params.layout().ranges()[4].0;
        assert!(
            grad[..w_hy].iter().all(|&g| g == 0.0),
            "gradient before the head"
        );
        let expected = head_loss(&case, &vec![case.h0.clone(); case.time_step]);
        // Both sides compute the same per-sample losses (the same h) with a few ulp between
        // them (different formulas for the log-sum-exp), then a mean of N <= 12.
        let tol = (gamma(case.samples() + 8, U64) + 8.0 * U64) * loss.abs().max(1.0);
        assert!((loss - expected).abs() <= tol, "loss {loss} vs {expected}");
        assert!(grad[w_hy..].iter().any(|&g| g != 0.0));
    }
}

/// GRU with the reset gate shut (`r = sigmoid(-60) = 8.8e-27`): `n = tanh(gi_n + r gh_n)` no
/// longer sees the hidden side of `n` (`W_hn h + b_hn`), so its gradient (`dah_n = da_n r`,
/// times `|h| <= 1` for `W_hn`) is at most `8.8e-27` times `|da_n| <= 1`, and replacing `W_hn`
/// and `b_hn` changes the loss by no more than rounding (`|r gh_n| <= 8.8e-27 (H + 1)` is far
/// below half an ulp of `gi_n` unless `|gi_n| < 1e-10`, and `tanh` is 1-Lipschitz). With `r`
/// open (bias 0) the same entries are not negligible: the check is not vacuous.
#[test]
fn gru_reset_gate_at_zero_cuts_the_hidden_n_term() {
    for seed in 0..40u64 {
        let mut case = Case::random_cell(
            Cell::Gru,
            1 + (seed % 5) as usize,
            1 + (seed % 3) as usize,
            2 + (seed % 3) as usize,
            1.0,
            seed,
        );
        let n_hidden: Vec<usize> = gate_entries(&case.params, 2)
            .into_iter()
            .filter(|&i| {
                let [_, w_hh, _, b_hh, ..] = case.params.layout().ranges();
                (w_hh.0..w_hh.1).contains(&i) || (b_hh.0..b_hh.1).contains(&i)
            })
            .collect();
        assert_eq!(n_hidden.len(), case.hidden() * (case.hidden() + 1));
        saturate(&mut case.params, 0, 0.0);
        let (_, open, _) = case.run::<f64>();
        assert!(
            n_hidden.iter().any(|&i| open[i].abs() > 1e-6),
            "r = 1/2: W_hn matters"
        );

        saturate(&mut case.params, 0, -SATURATE);
        let (loss, grad, h_last) = case.run::<f64>();
        for &i in &n_hidden {
            assert!(grad[i].abs() <= 1e-25, "entry {i}: {:e}", grad[i]);
        }
        let mut other = case.clone();
        for &i in &n_hidden {
            other.params.data[i] = 1.0 - other.params.data[i] * 0.5;
        }
        let (loss_other, _, h_other) = other.run::<f64>();
        // Through T <= 4 steps, every quantity within a few ulp: 1e-14 is far above that and
        // far below the change W_hn makes with r open (above 1e-6 per unit, times ~0.5).
        assert!((loss - loss_other).abs() <= 1e-14, "{loss} vs {loss_other}");
        assert!(max_abs_diff(&h_last, &h_other) <= 1e-14);
    }
}

/// LSTM with the forget gate open (`f = sigmoid(60) = 1` exactly) and the input gate shut (`i
/// = 8.8e-27`): `c_t = c_{t-1} + i g`, so `c` is carried unchanged up to `|i g| <= 8.8e-27`
/// and half an ulp per step, `h_T = o_T tanh(c_T)` with `o_T` computed here by hand from
/// `h_{T-1}` (from a window of the first `T-1` steps), the forget gate's rows get exactly 0
/// gradient (`f (1 - f) = 0`) and the cell input's rows `g` at most `|dc| i <= 1e-25`.
#[test]
fn lstm_forget_open_input_shut_carries_c() {
    for seed in 0..40u64 {
        let (hd, s_n, t_n) = (
            1 + (seed % 5) as usize,
            1 + (seed % 3) as usize,
            1 + (seed % 4) as usize,
        );
        let mut case = Case::random_cell(Cell::Lstm, hd, s_n, t_n, 1.0, seed);
        saturate(&mut case.params, 1, SATURATE);
        saturate(&mut case.params, 0, -SATURATE);
        let (_, grad, h_last) = case.run::<f64>();
        let h_prev = {
            let first = case.steps_subset(0..t_n - 1, case.h0.clone());
            let mut h = case.h0.clone();
            if t_n > 1 {
                forward(&first.params, &first.h0, &first.window(), &mut h);
            }
            h
        };
        let p = &case.params;
        let gh = p.layout().gate_rows();
        for s in 0..s_n {
            let x = usize::from(case.x[(t_n - 1) * s_n + s]);
            for j in 0..hd {
                let c0 = case.h0[s * 2 * hd + hd + j];
                let c = h_last[s * 2 * hd + hd + j];
                let tol = 2.0 * t_n as f64 * (1e-26 + U64 * c0.abs());
                assert!((c - c0).abs() <= tol, "c {c} vs {c0}");
                let r = 3 * hd + j;
                let mut a = p.w_x()[x * gh + r] + p.b_ih()[r] + p.b_hh()[r];
                for k in 0..hd {
                    a += p.w_hh()[r * hd + k] * h_prev[s * 2 * hd + k];
                }
                let o = 1.0 / (1.0 + (-a).exp());
                let h = o * c.tanh();
                // A handful of roundings of numbers of size <= 1 after the same inputs
                // (h_{T-1} bit for bit: the same operations).
                assert!(
                    (h_last[s * 2 * hd + j] - h).abs() <= 16.0 * U64,
                    "h {} vs {h}",
                    h_last[s * 2 * hd + j]
                );
            }
        }
        assert!(
            gate_entries(p, 1).iter().all(|&i| grad[i] == 0.0),
            "forget gate rows"
        );
        assert!(
            gate_entries(p, 2).iter().all(|&i| grad[i].abs() <= 1e-25),
            "cell input rows"
        );
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// `forward` and `forward_backward` agree bit for bit on the loss and the final state
    /// (`[h | c]` for the LSTM), the state has the layout's length, `|h| < 1`, and the gradient
    /// is overwritten (never accumulated into a poisoned buffer).
    #[test]
    fn forward_agrees_with_forward_backward(
        lstm in any::<bool>(),
        hidden in 1usize..=6,
        streams in 1usize..=4,
        time_step in 1usize..=5,
        seed in any::<u64>(),
    ) {
        let case = Case::random_cell(gated(lstm), hidden, streams, time_step, 1.5, seed);
        let len = case.params.layout().state_len(streams);
        prop_assert_eq!(case.h0.len(), len);
        let mut h_fwd = vec![f64::NAN; len];
        let loss_fwd = forward(&case.params, &case.h0, &case.window(), &mut h_fwd);
        let mut grad = Params::filled_as(case.params.layout(), f64::NAN);
        let mut h_fb = vec![f64::NAN; len];
        let loss_fb =
            forward_backward(&case.params, &case.h0, &case.window(), &mut grad, &mut h_fb);
        prop_assert_eq!(loss_fwd.to_bits(), loss_fb.to_bits());
        prop_assert_eq!(&h_fwd, &h_fb);
        let width = case.state_width();
        prop_assert!((0..streams).all(|s| h_fwd[s * width..s * width + hidden].iter().all(|h| h.abs() < 1.0)));
        prop_assert!(loss_fwd.is_finite() && loss_fwd > 0.0);
        prop_assert!(grad.data.iter().all(|g| g.is_finite()));
        let first = grad.clone();
        forward_backward(&case.params, &case.h0, &case.window(), &mut grad, &mut h_fb);
        prop_assert_eq!(first, grad);
    }

    /// Carried state: one window of `T` steps and the same steps as two windows of `T1` and
    /// `T2`, the second starting from the first's final state (`h`, and the LSTM's `c`), reach
    /// the same final state bit for bit (the same operations in the same order) and so compute
    /// the same per-sample losses bit for bit; the totals `T L` and `T1 L1 + T2 L2` differ only
    /// by the summation and scaling: each mean of `N` positive losses is within `gamma(N + 1) +
    /// u` of exact, `T L` adds one rounding and the sum of two another. The state matters: a
    /// different `h` or (LSTM) only a different `c` changes the loss.
    #[test]
    fn split_window_carries_state_and_loss(
        lstm in any::<bool>(),
        hidden in 1usize..=6,
        streams in 1usize..=4,
        time_step in 2usize..=6,
        split_at in 1usize..6,
        seed in any::<u64>(),
    ) {
        let t1 = 1 + (split_at - 1) % (time_step - 1);
        let long = Case::glorot_cell(gated(lstm), hidden, streams, time_step, seed);
        let (loss, _, h_last) = long.run::<f64>();
        let first = long.steps_subset(0..t1, long.h0.clone());
        let (loss1, _, h_mid) = first.run::<f64>();
        let second = long.steps_subset(t1..time_step, h_mid);
        let (loss2, _, h_end) = second.run::<f64>();
        prop_assert_eq!(&h_end, &h_last);

        let n = |t: usize| streams * t;
        let rel = |t: usize| gamma(n(t) + 1, U64) + U64;
        let total = t1 as f64 * loss1 + (time_step - t1) as f64 * loss2;
        let tol = (rel(time_step) + rel(t1) + rel(time_step - t1) + 4.0 * U64)
            * time_step as f64 * loss;
        prop_assert!((total - time_step as f64 * loss).abs() <= tol,
            "T1 L1 + T2 L2 = {total}, T L = {}, tolerance {tol:e}", time_step as f64 * loss);

        let width = long.state_width();
        for part in 0..long.cell().state_rows() {
            let mut other = long.clone();
            for s in 0..streams {
                for v in &mut other.h0[s * width + part * hidden..s * width + (part + 1) * hidden] {
                    *v = -*v * 0.5 + 0.25;
                }
            }
            let (loss_other, _, _) = other.run::<f64>();
            prop_assert!((loss_other - loss).abs() > 1e4 * tol,
                "state part {part} must change the loss: {loss} vs {loss_other}");
        }
    }

    /// Truncation: the gradient of a window treats its carried state as a constant. With
    /// every path from one step's state to the next cut (`W_hh = 0`, and the carry gate shut:
    /// the GRU's `z` or the LSTM's `f` at `sigmoid(-60) = 8.8e-27`), nothing crosses the split
    /// and `T g = T1 g1 + T2 g2` up to rounding (each side sums the same per-sample terms, of
    /// size at most `1 / N` times products of weights below 1 and gate derivatives below 1,
    /// at most `S T (H + 2)` of them per entry with relative error `gamma(N (H + 4))`), while
    /// with the weights as drawn the long window's gradient differs (the paths through the
    /// boundary are missing from the split).
    #[test]
    fn gradient_stops_at_window_boundary(
        lstm in any::<bool>(),
        hidden in 1usize..=6,
        streams in 1usize..=4,
        time_step in 2usize..=6,
        split_at in 1usize..6,
        seed in any::<u64>(),
    ) {
        let t1 = 1 + (split_at - 1) % (time_step - 1);
        let t2 = time_step - t1;
        let drawn = Case::glorot_cell(gated(lstm), hidden, streams, time_step, seed);
        let mut cut = drawn.clone();
        cut.params.w_hh_mut().fill(0.0);
        saturate(&mut cut.params, 1, -SATURATE);
        let mut tol = 0.0;
        for (case, is_cut) in [(&cut, true), (&drawn, false)] {
            let (_, grad, _) = case.run::<f64>();
            let (_, grad1, h_mid) = case.steps_subset(0..t1, case.h0.clone()).run::<f64>();
            let (_, grad2, _) = case.steps_subset(t1..time_step, h_mid).run::<f64>();
            let split: Vec<f64> = grad1
                .iter()
                .zip(&grad2)
                .map(|(g1, g2)| (t1 as f64 * g1 + t2 as f64 * g2) / time_step as f64)
                .collect();
            let diff = max_abs_diff(&grad, &split);
            if is_cut {
                let terms = streams * time_step * (hidden + 2);
                tol = 4.0 * gamma(terms * (hidden + 4), U64) * (1.0 + max_abs(&grad)) + 1e-24;
                prop_assert!(diff <= tol, "cut: split differs by {diff:e} > {tol:e}");
            } else {
                prop_assert!(diff > 1e3 * tol, "drawn: split differs by only {diff:e}");
            }
        }
    }

    /// The loss is a mean over streams and the streams never interact: for `S1 + S2 = S`,
    /// the final state is the concatenation bit for bit and the gradient is the
    /// stream-weighted mean `(S1 g1 + S2 g2) / S` up to summation order.
    #[test]
    fn gradient_is_stream_weighted_mean(
        lstm in any::<bool>(),
        hidden in 1usize..=6,
        streams in 2usize..=5,
        split_at in 1usize..5,
        time_step in 1usize..=5,
        seed in any::<u64>(),
    ) {
        let s1 = 1 + (split_at - 1) % (streams - 1);
        let s2 = streams - s1;
        let all = Case::glorot_cell(gated(lstm), hidden, streams, time_step, seed);
        let (_, grad, h_last) = all.run::<f64>();
        let (_, grad1, h1) = all.streams_subset(0..s1).run::<f64>();
        let (_, grad2, h2) = all.streams_subset(s1..streams).run::<f64>();
        prop_assert_eq!(h_last, [h1, h2].concat());
        let mean: Vec<f64> = grad1
            .iter()
            .zip(&grad2)
            .map(|(g1, g2)| (s1 as f64 * g1 + s2 as f64 * g2) / streams as f64)
            .collect();
        // Same per-sample terms (bit for bit but for the 1/N scale), summed in another order.
        let terms = streams * time_step * (hidden + 2);
        let tol = 4.0 * gamma(terms * (hidden + 4), U64) * (1.0 + max_abs(&grad));
        let diff = max_abs_diff(&grad, &mean);
        prop_assert!(diff <= tol, "gradient differs by {diff:e} > {tol:e}");
    }
}

// ---------------------------------------------------------------------------------------
// 3. f32 against f64.
// ---------------------------------------------------------------------------------------

/// A loose first-order bound on `|f32 - f64|` for a Glorot-sized gated case (`|w| <= 0.6 /
/// sqrt(H)`, so a gate row's weights sum to at most `0.6 (H + 3) / sqrt(H) <= 2.1` for
/// `H <= 5`, and `|c_0| < 2`).
///
/// Per step, every quantity is made of at most `K = H + 12` roundings (a pre-activation's
/// `H + 3` terms, the gate's `exp`/`tanh` and division, the state update's products and sums)
/// of numbers of size at most `M = 2 + T` (`|c_t| <= |c_0| + t`, everything else at most 2.1),
/// each with a relative error of `u` (transcendentals: within 2 ulp, counted 4 times over).
/// Errors from earlier steps come through the step's Jacobian, taken to amplify them by at
/// most `3.2` per step (the direct path `z h` or `f c`, at most 1, plus `w_hh`'s row sums,
/// at most 2.1, times gate slopes: below 1 on these weights, as the measurement confirms).
/// So the forward error after `T` steps is at most `4 K M u sum_{t<T} 3.2^t`. The backward
/// pass runs the same Jacobians transposed over the same steps, with the same kind of
/// per-step rounding, on terms at most `M` times as large: the gradient bound is `M` times
/// the forward one. The f64 run's error is 2^29 times smaller, covered by the factor 4.
/// Measured over 3000 cases (`measure_f32_differences`, with `--ignored`), the differences
/// reach 0.3% (loss), 0.8% (state) and 0.3% (gradient) of these bounds: loose, but at most
/// 7e-3 at `H = 5, T = 4`, so a lost term of the f32 path or a mis-rounded sigmoid in it
/// (errors of order 1e-2 to 1) still fails.
fn f32_bound(hidden: usize, time_step: usize) -> (f64, f64) {
    let k = (hidden + 12) as f64;
    let m = 2.0 + time_step as f64;
    let growth: f64 = (0..time_step).map(|t| 3.2f64.powi(t as i32)).sum();
    let state = 4.0 * k * m * U32 * growth;
    (state, m * state)
}

proptest! {
    #![proptest_config(config(512))]

    /// f32 and f64 agree within [`f32_bound`] on the loss, the final state and every
    /// gradient entry; the bound must be informative (below 1e-2).
    #[test]
    fn f32_agrees_with_f64_within_rounding_bound(
        lstm in any::<bool>(),
        hidden in 1usize..=5,
        streams in 1usize..=4,
        time_step in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let case = Case::glorot_cell(gated(lstm), hidden, streams, time_step, seed);
        let (state, grad_bound) = f32_bound(hidden, time_step);
        prop_assert!(state < 1e-2 && grad_bound < 1e-2, "{state:e} {grad_bound:e}");
        let (l32, g32, h32) = case.run::<f32>();
        let (l64, g64, h64) = case.run::<f64>();
        // A sample's loss is 2-Lipschitz in the logits (max norm), which are w_hy h + b_y
        // with row sums below 2.1 (plus their own H + 1 roundings): 5 times the state bound.
        prop_assert!((l32 - l64).abs() <= 5.0 * state, "loss: f32 {l32}, f64 {l64}");
        let dh = max_abs_diff(&h32, &h64);
        prop_assert!(dh <= state, "state differs by {dh:e} > {state:e}");
        let dg = max_abs_diff(&g32, &g64);
        prop_assert!(dg <= grad_bound, "gradient differs by {dg:e} > {grad_bound:e}");
    }
}

/// The measured ratios of the f32-f64 differences to [`f32_bound`] (run with `--ignored`).
#[test]
#[ignore = "a measurement, not a check"]
fn measure_f32_differences() {
    let mut worst = [0.0f64; 3];
    for seed in 0..3000u64 {
        let (hd, t_n) = (1 + (seed % 5) as usize, 1 + (seed % 4) as usize);
        let case = Case::glorot_cell(gated(seed % 2 == 1), hd, 1 + (seed % 4) as usize, t_n, seed);
        let (state, grad_bound) = f32_bound(hd, t_n);
        let (l32, g32, h32) = case.run::<f32>();
        let (l64, g64, h64) = case.run::<f64>();
        worst[0] = worst[0].max((l32 - l64).abs() / (5.0 * state));
        worst[1] = worst[1].max(max_abs_diff(&h32, &h64) / state);
        worst[2] = worst[2].max(max_abs_diff(&g32, &g64) / grad_bound);
    }
    println!(
        "worst fraction of the bound: loss {:.2e}, state {:.2e}, gradient {:.2e}",
        worst[0], worst[1], worst[2]
    );
}
