//! The gated cells' SIMD kernels ([`simd`], `--cell gru|lstm`) against the scalar reference
//! ([`reference`], PyTorch's formulas), in every build:
//!
//! 1. **Against the f64 reference with derived tolerances**: random windows over hidden sizes
//!    1..=20 and 31..=33, 64, stream counts 1..=40 (every residue mod the lane width), 1..=8
//!    steps, weights from Glorot-sized to `|w| <= 4` (saturated gates); compared are the loss,
//!    the carried state (`h`, and the LSTM's `c`) and every gradient entry, each within its
//!    own tolerance: the reference run on [`Rounded`] numbers, the probabilistic rounding
//!    model propagated through every operation (`bitrnn_kernels::rounding`), 10 standard
//!    deviations. The tests also require the tolerances to be informative (the worst error of
//!    each quantity above 1% of its tolerance), so that they cannot silently become vacuous.
//! 2. **Consecutive windows**: the state (with the LSTM's `c`) carried by the kernels from one
//!    window into the next gives the reference's second window from that state.
//! 3. **NaN-poisoned sweeps** around multiples of the lane width and the register tiles: every
//!    gradient entry is written, finite and independent of what the buffer held.
//! 4. **Padding lanes are inert**: garbage in their carried `h` changes nothing, bit for bit.
//!
//! The kernels' flush of the gated cells' `h` and `c` below 2^-64 adds that much per step to
//! the state's tolerance, and the flush of gradients that much per term of a gradient sum.
//!
//! 5. **No subnormal number** anywhere in the workspace or the gradient over long saturated
//!    runs (the flush and gate clamp of `simd::gated`), where the reference's gates reach
//!    `1e-30`.

use bitrnn_kernels::Cell;
use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::rounding::RoundedWindow;
use bitrnn_kernels::simd::{self, Planes, Prepared, Workspace};
use bitrnn_kernels::testing::{Case, Lcg, weight_scale};

const GATED: [Cell; 2] = [Cell::Gru, Cell::Lstm];

/// What one SIMD window produced.
#[derive(Clone, Debug, PartialEq)]
struct Out {
    loss_sum: f64,
    grad: Vec<f32>,
    state: Vec<f32>,
}

fn prepared(case: &Case) -> Prepared {
    let mut w = Prepared::with_cell(case.cell(), case.hidden());
    w.load(&case.params32());
    w
}

fn workspace(case: &Case) -> Workspace {
    let mut ws = Workspace::with_cell(case.cell(), case.hidden(), case.streams, case.time_step);
    ws.load_state(&case.h0_32());
    ws
}

/// One window of `case` on `ws` (scale `1 / (S T)`), the gradient buffer pre-filled with
/// `fill`.
fn run(case: &Case, w: &Prepared, ws: &mut Workspace, fill: f32) -> Out {
    let (xp, yp) = case.planes();
    let planes = Planes {
        x: &xp,
        y: &yp,
        stride: simd::plane_bytes(case.streams),
    };
    let mut grad = vec![fill; case.params.data.len()];
    let stats = simd::forward_backward(w, ws, &planes, 1.0 / case.samples() as f32, &mut grad);
    let mut state = vec![f32::NAN; case.h0.len()];
    ws.store_state(&mut state);
    Out {
        loss_sum: stats.loss_sum,
        grad,
        state,
    }
}

fn simd_window(case: &Case) -> Out {
    run(case, &prepared(case), &mut workspace(case), f32::NAN)
}

/// The reference on [`Rounded`] numbers: each result and its tolerance.
fn expected(case: &Case, seed: u64) -> RoundedWindow {
    RoundedWindow::new(&case.params, &case.h0, &case.window(), seed)
}

/// The worst `error / tolerance` of the loss, the gradient and the state.
#[derive(Clone, Copy, Debug, Default)]
struct Ratios {
    loss: f64,
    grad: f64,
    state: f64,
}

fn worst(got: &[f32], want: &[(f64, f64)], what: &str, label: &str) -> f64 {
    let mut ratio = 0.0f64;
    for (i, (&g, &(w, tol))) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= tol,
            "{label}: {what}[{i}] {g} vs {w}: error {err:e} > tolerance {tol:e}"
        );
        if err > 0.0 {
            ratio = ratio.max(err / tol);
        }
    }
    ratio
}

fn compare(case: &Case, seed: u64) -> Ratios {
    let label = format!(
        "{:?} hidden {} streams {} T {} seed {seed}",
        case.cell(),
        case.hidden(),
        case.streams,
        case.time_step
    );
    let got = simd_window(case);
    let want = expected(case, seed);
    let loss = got.loss_sum / case.samples() as f64;
    let (lw, lt) = want.loss;
    // The kernels' loss sum is in f64 across lanes and shards; its mean is rounded to f32 in
    // the trainer only.
    let loss_err = (loss - lw).abs();
    assert!(
        loss_err <= lt,
        "{label}: loss {loss} vs {lw}: {loss_err:e} > {lt:e}"
    );
    Ratios {
        loss: loss_err / lt,
        grad: worst(&got.grad, &want.grad, "grad", &label),
        state: worst(&got.state, &want.state, "state", &label),
    }
}

#[test]
fn random_windows_match_reference() {
    let mut rng = Lcg(2026);
    for cell in GATED {
        let mut all = Ratios::default();
        for i in 0..160u64 {
            let hidden = match i % 8 {
                6 => [31, 32, 33][rng.below(3)],
                7 => 64,
                _ => 1 + rng.below(20),
            };
            let streams = 1 + rng.below(40);
            let time_step = 1 + rng.below(8);
            let case = Case::random_cell(
                cell,
                hidden,
                streams,
                time_step,
                weight_scale(i as usize % 4, hidden),
                i,
            );
            let r = compare(&case, i);
            all.loss = all.loss.max(r.loss);
            all.grad = all.grad.max(r.grad);
            all.state = all.state.max(r.state);
        }
        println!("{cell:?}: worst error / tolerance {all:?}");
        for (what, r) in [("loss", all.loss), ("grad", all.grad), ("state", all.state)] {
            assert!(
                r > 0.01,
                "{cell:?}: the {what} tolerance is uninformative ({r})"
            );
        }
    }
}

#[test]
fn consecutive_windows_carry_state() {
    for cell in GATED {
        for (i, &(hidden, streams, t)) in [(5, 20, 4), (13, 37, 3), (33, 17, 5)].iter().enumerate()
        {
            let mut case = Case::glorot_cell(cell, hidden, streams, t, 40 + i as u64);
            let w = prepared(&case);
            let mut ws = workspace(&case);
            let _ = run(&case, &w, &mut ws, 0.0);
            let mut carried = vec![0.0; case.h0.len()];
            ws.store_state(&mut carried);
            // The reference's second window starts from the kernels' carried state.
            case.h0 = carried.iter().map(|&v| f64::from(v)).collect();
            let mut rng = Lcg(7 + i as u64);
            case.new_data(&mut rng);
            let got = run(&case, &w, &mut ws, f32::NAN);
            let want = expected(&case, i as u64);
            let label = format!("{cell:?} second window, hidden {hidden}");
            worst(&got.grad, &want.grad, "grad", &label);
            worst(&got.state, &want.state, "state", &label);
        }
    }
}

#[test]
fn sweep_sizes_with_poisoned_outputs() {
    for cell in GATED {
        for hidden in [1, 5, 6, 7, 11, 12, 13, 17] {
            for streams in (1..=2 * LANES + 1).step_by(3) {
                let case =
                    Case::glorot_cell(cell, hidden, streams, 3, (hidden * 100 + streams) as u64);
                let poisoned = simd_window(&case);
                let zeroed = run(&case, &prepared(&case), &mut workspace(&case), 0.0);
                assert_eq!(
                    poisoned, zeroed,
                    "{cell:?} hidden {hidden} streams {streams}"
                );
                assert!(poisoned.grad.iter().all(|g| g.is_finite()));
                compare(&case, streams as u64);
            }
        }
    }
}

#[test]
fn padding_lanes_are_inert() {
    for cell in GATED {
        for (hidden, streams) in [(3, 5), (8, LANES + 3), (13, 2 * LANES - 1)] {
            let case = Case::glorot_cell(cell, hidden, streams, 4, hidden as u64);
            let clean = simd_window(&case);
            let w = prepared(&case);
            let mut ws = workspace(&case);
            let groups = ws.groups();
            for (k, v) in ws.raw_state_mut().iter_mut().enumerate() {
                let mut a = v.to_array();
                for (lane, x) in a.iter_mut().enumerate() {
                    if (k % groups) * LANES + lane >= streams {
                        *x = if lane % 2 == 0 { 0.75 } else { -1.0 };
                    }
                }
                *v = a.into();
            }
            assert_eq!(
                run(&case, &w, &mut ws, f32::NAN),
                clean,
                "{cell:?} hidden {hidden}"
            );
        }
    }
}

#[test]
fn saturated_runs_stay_normal() {
    for cell in GATED {
        for hidden in [4, 13] {
            // Large weights and biases drive every gate into saturation (arguments far beyond
            // the clamp), where sigmoid' and the gradients through it would underflow.
            let mut case = Case::random_cell(cell, hidden, 2 * LANES + 3, 6, 12.0, hidden as u64);
            let w = prepared(&case);
            let mut ws = workspace(&case);
            let mut rng = Lcg(99);
            for window in 0..60 {
                let out = run(&case, &w, &mut ws, f32::NAN);
                assert!(
                    !ws.has_subnormal(),
                    "{cell:?} hidden {hidden}: a subnormal in the workspace at window {window}"
                );
                assert!(
                    out.grad
                        .iter()
                        .chain(&out.state)
                        .all(|v| v.is_finite() && !v.is_subnormal()),
                    "{cell:?} hidden {hidden}: window {window}"
                );
                case.new_data(&mut rng);
            }
        }
    }
}
