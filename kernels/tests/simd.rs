//! The fused SIMD kernels ([`simd`]) proven against the scalar reference ([`reference`]): the
//! acceptance tests of the SIMD engine.
//!
//! The SIMD engine computes the reference's math in another order (streams in lanes, FMA where
//! the build has it, blocked GEMMs, lane sums at the end), with the fast [`approx`] `tanh`,
//! `exp` and `ln`, the logit difference capped at 80 in the head, and `dl`, `dz` flushed to 0
//! below 2^-64. It is checked three ways (STYLE.md rule 6), in every build (the FMA build and
//! the portable one share the tolerances):
//!
//! 1. **Against the f64 reference with a derived tolerance**: random windows over hidden sizes
//!    1..=64 (and fixed ones at 128, 256, 512, and at 96 and 250 streams), stream counts
//!    1..=40 (every residue mod 8), 1..=12 steps and weights from Glorot-sized to `|w| <= 4`
//!    (saturated tanh); compared are the loss, the accuracy count, the carried state, every
//!    gradient entry and every parameter after one `adagrad_step` and one `sgd_step`, also
//!    over consecutive windows carrying state. The tolerance of every compared number is a
//!    rigorous running error bound computed along the case's own trajectory
//!    ([`window_bound`], from the crate's rounding model). Being rigorous, it grows with the
//!    recurrence's worst-case gain per step and says nothing on long windows with large
//!    weights (where even the plain f32 reference drifts from the f64 one by percents of the
//!    gradient: the dynamics are chaotic); it is
//!    informative on every Glorot-sized window and on about half of all windows, and the tests
//!    require at least 35% informative windows so that it cannot silently become vacuous.
//! 2. **Exactly**: the optimizer updates equal `reference::*_step::<f32>` bit for bit on any
//!    data (same operations, same order) and the f64 reference on dyadic data; and whole
//!    windows built so that every value is exact in f32 ([`exact_case`]: hidden units either
//!    saturated, `h = ±1`, or exactly 0) give the gradient, state and accuracy of the f32
//!    reference with `assert_eq!`.
//! 3. **Sweeps around every multiple of 8 with NaN-poisoned outputs**: every stream count
//!    1..=41 against hidden sizes 7..=9, 15..=17, 31..=33, 63..=65: every gradient entry is
//!    written, finite, independent of what the buffer held, and within the bound.
//!
//! And the structure the trainer relies on: padding lanes are inert (garbage in their state
//! or in their bits changes nothing, bit for bit), a shard split at a lane-group boundary
//! gives the same per-stream results bit for bit and the same gradient up to the summation
//! order (exactly, on exact data), and `forward` equals `forward_train` + `carry_state`.
//!
//! Run with `--nocapture` to see the largest observed `error / tolerance` of each quantity and
//! how many windows had informative tolerances.

use bitrnn_kernels::lanes::{LANE_BYTES, LANES};
use bitrnn_kernels::reference::Update;
use bitrnn_kernels::rounding::{
    StateError, U, WindowBound, gamma, head_cap, lane_sum_roundings, window_bound,
};
use bitrnn_kernels::simd::{self, Planes, Prepared, WindowStats, Workspace};
use bitrnn_kernels::{Layout, Params, reference};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::cell::RefCell;

// ---------------------------------------------------------------------------------------
// Cases: parameters, carried state and data, and their bit planes.
// ---------------------------------------------------------------------------------------

use bitrnn_kernels::testing::{Case, Lcg, weight_scale};

// ---------------------------------------------------------------------------------------
// Running the engines.
// ---------------------------------------------------------------------------------------

/// What one SIMD window produced.
#[derive(Clone, Debug, PartialEq)]
struct SimdOut {
    stats: WindowStats,
    grad: Vec<f32>,
    /// `[streams][hidden]`, from `store_state`.
    state: Vec<f32>,
}

fn prepared(p: &Params<f32>) -> Prepared {
    let mut w = Prepared::new(p.hidden);
    w.load(p);
    w
}

/// `forward_backward` on `ws` with `grad` pre-filled with `fill`, and the state it carries.
fn run_simd(w: &Prepared, ws: &mut Workspace, planes: &Planes, scale: f32, fill: f32) -> SimdOut {
    let mut grad = vec![fill; Layout::new(w.hidden()).len()];
    let stats = simd::forward_backward(w, ws, planes, scale, &mut grad);
    let mut state = vec![f32::NAN; ws.streams() * ws.hidden()];
    ws.store_state(&mut state);
    SimdOut { stats, grad, state }
}

/// One fresh workspace loaded with the case's state, one window, scale `1 / (S T)`.
fn simd_window(case: &Case) -> SimdOut {
    let (xp, yp) = case.planes();
    let mut ws = Workspace::new(case.hidden(), case.streams, case.time_step);
    ws.load_state(&case.h0_32());
    let planes = Planes {
        x: &xp,
        y: &yp,
        stride: simd::plane_bytes(ws.streams()),
    };
    let scale = 1.0 / case.samples() as f32;
    run_simd(
        &prepared(&case.params32()),
        &mut ws,
        &planes,
        scale,
        f32::NAN,
    )
}

/// The f64 reference: `(mean loss, gradient, h_last)`.
fn reference_window(case: &Case) -> (f64, Vec<f64>, Vec<f64>) {
    let mut grad = Params::zeros(case.hidden());
    let mut h_last = vec![0.0; case.h0.len()];
    let loss = reference::forward_backward(
        &case.params,
        &case.h0,
        &case.window(),
        &mut grad,
        &mut h_last,
    );
    (loss, grad.data, h_last)
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

// ---------------------------------------------------------------------------------------
// The tolerance: a running error bound along the case's own trajectory.
// ---------------------------------------------------------------------------------------

/// The bound is only a bound on the SIMD engine's distance from the reference if it was
/// computed along the reference's trajectory: this helper's f64 values must equal the
/// reference's to within a thousandth of the tolerance (both are f64 results, ~1e-16 apart).
fn check_bound_follows_reference(
    b: &WindowBound,
    loss: f64,
    grad: &[f64],
    h_last: &[f64],
    samples: usize,
) -> Result<(), TestCaseError> {
    let close = |a: f64, r: f64, tol: f64| (a - r).abs() <= 1e-3 * tol;
    prop_assert!(
        close(b.loss_sum, loss * samples as f64, b.loss_sum_tol),
        "bound helper loss {} vs reference {}",
        b.loss_sum,
        loss * samples as f64
    );
    for (i, ((&a, &r), &tol)) in b.grad.iter().zip(grad).zip(&b.grad_tol).enumerate() {
        prop_assert!(
            close(a, r, tol),
            "bound helper gradient[{i}] {a:e} vs reference {r:e}"
        );
    }
    for (i, ((&a, &r), &tol)) in b
        .state
        .iter()
        .zip(h_last)
        .zip(&b.state_tol.entry)
        .enumerate()
    {
        prop_assert!(
            close(a, r, tol),
            "bound helper state[{i}] {a:e} vs reference {r:e}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Comparisons and the observed error / tolerance ratios.
// ---------------------------------------------------------------------------------------

/// The largest `|error| / tolerance` seen per compared quantity.
#[derive(Clone, Copy, Debug, Default)]
struct Ratios {
    loss: f64,
    state: f64,
    grad: f64,
    adagrad_w: f64,
    adagrad_accum: f64,
    sgd_w: f64,
    shard_split: f64,
    /// Windows compared against the reference, and those whose tolerances are informative:
    /// every gradient tolerance below 1% of the largest `|gradient|`, every state tolerance
    /// below 0.01. (A rigorous bound must grow with the recurrence's worst-case gain per step,
    /// so it says nothing on long windows with large weights; see [`window_bound`].)
    windows: u32,
    informative: u32,
}

impl Ratios {
    fn merge(&mut self, o: &Ratios) {
        self.loss = self.loss.max(o.loss);
        self.state = self.state.max(o.state);
        self.grad = self.grad.max(o.grad);
        self.adagrad_w = self.adagrad_w.max(o.adagrad_w);
        self.adagrad_accum = self.adagrad_accum.max(o.adagrad_accum);
        self.sgd_w = self.sgd_w.max(o.sgd_w);
        self.shard_split = self.shard_split.max(o.shard_split);
        self.windows += o.windows;
        self.informative += o.informative;
    }
}

/// `|got - want| <= tol` entry by entry (and `got` finite); records the worst ratio.
fn within(
    what: &str,
    got: &[f64],
    want: &[f64],
    tol: &[f64],
    worst: &mut f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    prop_assert_eq!(got.len(), tol.len());
    for (i, ((&g, &w), &t)) in got.iter().zip(want).zip(tol).enumerate() {
        let err = (g - w).abs();
        prop_assert!(
            g.is_finite() && err <= t,
            "{what}[{i}]: simd {g:e}, reference {w:e}, error {err:e} > tolerance {t:e}"
        );
        if t > 0.0 {
            *worst = worst.max(err / t);
        }
    }
    Ok(())
}

/// The SIMD window `out` against the reference `(loss, grad, h_last)` and the bound `b`.
fn compare_window(
    out: &SimdOut,
    reference: (f64, &[f64], &[f64]),
    b: &WindowBound,
    samples: usize,
    ratios: &mut Ratios,
) -> Result<(), TestCaseError> {
    let (loss, grad, h_last) = reference;
    check_bound_follows_reference(b, loss, grad, h_last, samples)?;
    let n = samples as f64;
    within(
        "loss",
        &[out.stats.loss_sum / n],
        &[loss],
        &[b.loss_sum_tol / n],
        &mut ratios.loss,
    )?;
    prop_assert!(
        (out.stats.correct - b.correct).abs() <= b.ambiguous,
        "correct {} vs {} ({} too close to call)",
        out.stats.correct,
        b.correct,
        b.ambiguous
    );
    within(
        "state",
        &widen(&out.state),
        h_last,
        &b.state_tol.entry,
        &mut ratios.state,
    )?;
    within(
        "gradient",
        &widen(&out.grad),
        grad,
        &b.grad_tol,
        &mut ratios.grad,
    )?;
    let largest = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    ratios.windows += 1;
    if largest(&b.grad_tol) <= 0.01 * largest(grad) && largest(&b.state_tol.entry) <= 0.01 {
        ratios.informative += 1;
    }
    Ok(())
}

/// Learning rate and Adagrad's initial accumulator (TensorFlow's 0.1), both f32 numbers.
const LR: f32 = 0.05;
const ACCUM0: f32 = 0.1;

/// One `adagrad_step` and one `sgd_step` from the SIMD gradient against
/// `reference::adagrad_step` / `sgd_step` in f64 from the reference gradient `grad`, whose
/// SIMD counterpart is within `grad_tol`; without a clip, and clipped at half the largest
/// gradient entry (so that the largest entries are clipped).
///
/// Adagrad: `a = a0 + g^2`, `w' = w - lr f(g)` with `f(g) = g / sqrt(a0 + g^2)`, whose slope is
/// at most `1 / sqrt(a0)`; the f32 `f` adds `g^2`, the sum, the square root (half of `a`'s
/// error plus its own), `lr g` and the division: `gamma(5)`; the subtraction one `u`. The
/// accumulator: `e(a) = (2|g| + e) e + gamma(2) (a0 + (|g| + e)^2)`. SGD: `w' = w - lr g`,
/// `lr e + u lr (|g| + e)` and `u` for the subtraction. The clip is exact and 1-Lipschitz
/// (`|clip(x) - clip(y)| <= |x - y|`, `|clip(g)| <= |g|`), and every bound grows with `|g|`,
/// so the bounds of the unclipped `g` and `e` hold for the clipped step too.
fn compare_optimizers(
    params: &Params<f64>,
    simd_grad: &[f32],
    grad: &[f64],
    grad_tol: &[f64],
    ratios: &mut Ratios,
) -> Result<(), TestCaseError> {
    let len = params.data.len();
    let (lr, a0) = (f64::from(LR), f64::from(ACCUM0));
    let w32: Vec<f32> = params.data.iter().map(|&v| v as f32).collect();
    let half_largest = (grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) / 2.0) as f32;
    let mut clips = vec![None];
    if half_largest > 0.0 {
        clips.push(Some(half_largest));
    }
    // The steps' bounds, from the unclipped gradient (see above).
    let (mut step_tol, mut a_tol, mut sgd_step_tol) = (vec![], vec![], vec![]);
    for i in 0..len {
        let (g, e) = (grad[i].abs(), grad_tol[i]);
        let f = g / (a0 + g * g).sqrt();
        step_tol.push(lr * e / a0.sqrt() + gamma(5) * lr * (f + e / a0.sqrt()));
        a_tol.push((2.0 * g + e) * e + gamma(2) * (a0 + (g + e) * (g + e)));
        sgd_step_tol.push(lr * e + U * lr * (g + e));
    }
    // The subtraction's rounding, from the result.
    let w_tol = |w_ref: &[f64], step: &[f64]| -> Vec<f64> {
        (0..len)
            .map(|i| step[i] + U * (w_ref[i].abs() + step[i]))
            .collect()
    };
    for clip in clips {
        let update = Update {
            clip,
            ..Update::plain(LR)
        };
        let update64 = Update {
            clip: clip.map(f64::from),
            ..Update::plain(lr)
        };
        let (mut w_simd, mut a_simd) = (w32.clone(), vec![ACCUM0; len]);
        simd::adagrad_step(&mut w_simd, &mut a_simd, simd_grad, update);
        let (mut w_ref, mut a_ref) = (params.data.clone(), vec![a0; len]);
        reference::adagrad_step(&mut w_ref, &mut a_ref, grad, update64);
        within(
            "adagrad w",
            &widen(&w_simd),
            &w_ref,
            &w_tol(&w_ref, &step_tol),
            &mut ratios.adagrad_w,
        )?;
        within(
            "adagrad accum",
            &widen(&a_simd),
            &a_ref,
            &a_tol,
            &mut ratios.adagrad_accum,
        )?;

        let mut w_simd = w32.clone();
        simd::sgd_step(&mut w_simd, simd_grad, update);
        let mut w_ref = params.data.clone();
        reference::sgd_step(&mut w_ref, grad, update64);
        let tol = w_tol(&w_ref, &sgd_step_tol);
        within("sgd w", &widen(&w_simd), &w_ref, &tol, &mut ratios.sgd_w)?;
    }
    Ok(())
}

/// Runs `cases` random cases of `test` (failures persisted to
/// `proptest-regressions/simd.txt`), prints the worst ratios seen and returns them.
fn run_property<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value, &mut Ratios) -> Result<(), TestCaseError>,
) -> Ratios {
    let worst = RefCell::new(Ratios::default());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/simd.txt",
        ))),
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        let mut ratios = Ratios::default();
        test(value, &mut ratios)?;
        worst.borrow_mut().merge(&ratios);
        Ok(())
    });
    let worst = worst.into_inner();
    println!("{name}: max error/tolerance {worst:?}");
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    worst
}

/// The tolerances must say something on most windows, or the comparison proves little: at
/// least `share` of them informative.
fn assert_informative(ratios: &Ratios, share: f64) {
    let seen = f64::from(ratios.informative) / f64::from(ratios.windows);
    assert!(
        seen >= share,
        "only {} of {} windows had informative tolerances",
        ratios.informative,
        ratios.windows
    );
}

/// One random window through both engines and the optimizers, all compared.
fn check_random_window(case: &Case, ratios: &mut Ratios) -> Result<(), TestCaseError> {
    let out = simd_window(case);
    let (loss, grad, h_last) = reference_window(case);
    let exact = StateError::exact(case.streams, case.hidden());
    let b = window_bound(&case.params, &case.h0, &exact, &case.window());
    compare_window(&out, (loss, &grad, &h_last), &b, case.samples(), ratios)?;
    compare_optimizers(&case.params, &out.grad, &grad, &b.grad_tol, ratios)
}

// ---------------------------------------------------------------------------------------
// 1. Property tests against the f64 reference.
// ---------------------------------------------------------------------------------------

#[test]
fn random_windows_match_reference() {
    let ratios = run_property(
        "random_windows_match_reference",
        1024,
        (
            1usize..=64,
            1usize..=40,
            1usize..=12,
            0usize..4,
            any::<u64>(),
        ),
        |(hidden, streams, time_step, regime, seed), ratios| {
            let weight = weight_scale(regime, hidden);
            check_random_window(
                &Case::random(hidden, streams, time_step, weight, seed),
                ratios,
            )
        },
    );
    assert_informative(&ratios, 0.35);
}

/// Large shapes, few of each: hidden sizes 128, 256 and 512 with few streams and steps, and
/// many lane groups (up to 32) with small hidden sizes.
#[test]
fn large_sizes_match_reference() {
    let mut ratios = Ratios::default();
    let shapes = [
        (128, 9, 3),
        (256, 5, 2),
        (512, 2, 2),
        (6, 250, 5),
        (40, 96, 3),
    ];
    for (hidden, streams, time_step) in shapes {
        for regime in 0..4 {
            let weight = weight_scale(regime, hidden);
            let case = Case::random(hidden, streams, time_step, weight, 7 + regime as u64);
            if let Err(e) = check_random_window(&case, &mut ratios) {
                panic!("hidden {hidden}, streams {streams}, regime {regime}: {e}");
            }
        }
    }
    println!("large_sizes_match_reference: max error/tolerance {ratios:?}");
    assert_informative(&ratios, 0.35);
}

/// Several windows in a row, the SIMD state carried inside its workspace and the reference's
/// in f64: each window's bound starts from the previous window's state error.
#[test]
fn consecutive_windows_carry_state() {
    let ratios = run_property(
        "consecutive_windows_carry_state",
        192,
        (
            1usize..=40,
            1usize..=24,
            1usize..=8,
            2usize..=4,
            0usize..4,
            any::<u64>(),
        ),
        |(hidden, streams, time_step, windows, regime, seed), ratios| {
            let weight = weight_scale(regime, hidden);
            let mut case = Case::random(hidden, streams, time_step, weight, seed);
            let mut rng = Lcg(seed ^ 0x5eed);
            let w = prepared(&case.params32());
            let mut ws = Workspace::new(hidden, streams, time_step);
            ws.load_state(&case.h0_32());
            let mut h0_err = StateError::exact(streams, hidden);
            for _ in 0..windows {
                let (xp, yp) = case.planes();
                let planes = Planes {
                    x: &xp,
                    y: &yp,
                    stride: simd::plane_bytes(ws.streams()),
                };
                let out = run_simd(&w, &mut ws, &planes, 1.0 / case.samples() as f32, f32::NAN);
                let (loss, grad, h_last) = reference_window(&case);
                let b = window_bound(&case.params, &case.h0, &h0_err, &case.window());
                compare_window(&out, (loss, &grad, &h_last), &b, case.samples(), ratios)?;
                case.h0 = h_last;
                h0_err = b.state_tol;
                case.new_data(&mut rng);
            }
            Ok(())
        },
    );
    assert_informative(&ratios, 0.35);
}

// ---------------------------------------------------------------------------------------
// 2. Exact tests.
// ---------------------------------------------------------------------------------------

/// The optimizers do the reference's operations in the reference's order (the clip, `accum
/// += g * g`, `w -= (lr * g) / sqrt(accum + eps)`; `w -= lr * g`), with IEEE square root and
/// division, so they equal `reference::*_step::<f32>` bit for bit on any data, for every
/// length (the tails below a vector included), with and without a clip (gradients on both
/// sides of it, infinities and NaN among them), with and without an epsilon, and from
/// accumulators that start at 0 (`--adagrad-init 0`) as well as above.
#[test]
fn optimizers_match_f32_reference_bit_for_bit() {
    let mut rng = Lcg(1);
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        5.0,
        -5.0,
    ];
    for len in 0..=40 {
        for round in 0..24 {
            let scale = [1e-6, 1e-3, 1.0, 10.0, 1e4][round % 5];
            let w: Vec<f32> = (0..len).map(|_| rng.symmetric_f32(2.0) as f32).collect();
            let mut g: Vec<f32> = (0..len).map(|_| rng.symmetric_f32(scale) as f32).collect();
            if round % 3 == 2 && len > 0 {
                for (k, &v) in specials.iter().enumerate() {
                    g[(k * 7 + round) % len] = v;
                }
            }
            let a0 = [0.1, 0.0, 1e-8][round % 3];
            let a: Vec<f32> = (0..len)
                .map(|_| (a0 + rng.uniform() * scale * (round % 2) as f64) as f32)
                .collect();
            let update = Update {
                lr: [0.05f32, 0.5, 1e-3, 0.3][round % 4],
                clip: [None, Some(5.0), Some(scale as f32 / 2.0)][(round / 3) % 3],
                eps: [0.0, 1e-8, 0.5][(round / 9) % 3],
            };
            let what = format!("len {len}, {update:?}, accumulator from {a0}");

            let (mut w_simd, mut a_simd) = (w.clone(), a.clone());
            simd::adagrad_step(&mut w_simd, &mut a_simd, &g, update);
            let (mut w_ref, mut a_ref) = (w.clone(), a);
            reference::adagrad_step(&mut w_ref, &mut a_ref, &g, update);
            assert_eq!(bits(&w_simd), bits(&w_ref), "adagrad w, {what}");
            assert_eq!(bits(&a_simd), bits(&a_ref), "adagrad accum, {what}");

            let mut w_simd = w.clone();
            simd::sgd_step(&mut w_simd, &g, update);
            let mut w_ref = w;
            reference::sgd_step(&mut w_ref, &g, update);
            assert_eq!(bits(&w_simd), bits(&w_ref), "sgd, {what}");
        }
    }
}

/// The clip, on both engines: an entry beyond `±c` moves the weight as `±c` does, an entry
/// within is used as it is (bit for bit the unclipped step), an infinity becomes `±c`, and a
/// NaN stays NaN, so the weight becomes NaN and the next loss reports the divergence (the
/// clip does not hide it). The gradient itself is not written.
#[test]
fn the_clip_clamps_beyond_the_bound_and_keeps_nan() {
    let c = 5.0f32;
    let raw = [
        7.5,
        -6.0,
        4.5,
        -5.0,
        0.25,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
    ];
    let clipped = [5.0, -5.0, 4.5, -5.0, 0.25, 5.0, -5.0, f32::NAN, -0.0];
    let n = raw.len();
    for (&v, &want) in raw.iter().zip(&clipped) {
        assert_eq!(reference::clip(v, Some(c)).to_bits(), want.to_bits(), "{v}");
        assert_eq!(reference::clip(v, None).to_bits(), v.to_bits(), "{v}");
        assert_eq!(v.clamp(-c, c).to_bits(), want.to_bits(), "f32::clamp, {v}");
    }
    let clip = Update {
        clip: Some(c),
        ..Update::plain(0.1f32)
    };
    // Every length up to two vectors, so the entries land in the body and in the tail.
    for len in n..=2 * LANES + 3 {
        let g: Vec<f32> = (0..len).map(|i| raw[i % n]).collect();
        let want: Vec<f32> = (0..len).map(|i| clipped[i % n]).collect();
        let g_before = bits(&g);
        let w = vec![1.0f32; len];
        let a = vec![0.1f32; len];
        // With a clip: as the unclipped step from the clipped gradient.
        let (mut w_clip, mut a_clip) = (w.clone(), a.clone());
        simd::adagrad_step(&mut w_clip, &mut a_clip, &g, clip);
        let (mut w_want, mut a_want) = (w.clone(), a.clone());
        simd::adagrad_step(&mut w_want, &mut a_want, &want, Update::plain(0.1));
        assert_eq!(bits(&w_clip), bits(&w_want), "adagrad, len {len}");
        assert_eq!(bits(&a_clip), bits(&a_want), "adagrad accum, len {len}");
        let mut w_clip = w.clone();
        simd::sgd_step(&mut w_clip, &g, clip);
        let mut w_want = w.clone();
        simd::sgd_step(&mut w_want, &want, Update::plain(0.1));
        assert_eq!(bits(&w_clip), bits(&w_want), "sgd, len {len}");
        assert_eq!(bits(&g), g_before, "the gradient is not written");
        // The NaN entries poison their weights under both optimizers; no other does.
        for (i, &v) in w_clip.iter().enumerate() {
            assert_eq!(v.is_nan(), g[i].is_nan(), "sgd, entry {i} of {len}");
        }
        let (mut w_ada, mut a_ada) = (w.clone(), a);
        simd::adagrad_step(&mut w_ada, &mut a_ada, &g, clip);
        for (i, &v) in w_ada.iter().enumerate() {
            assert_eq!(v.is_nan(), g[i].is_nan(), "adagrad, entry {i} of {len}");
        }
        // Within the bound the clip changes no bit.
        let small: Vec<f32> = (0..len).map(|i| ((i % 21) as f32 - 10.0) / 2.0).collect();
        let (mut w1, mut a1) = (w.clone(), vec![0.1f32; len]);
        simd::adagrad_step(&mut w1, &mut a1, &small, clip);
        let (mut w2, mut a2) = (w.clone(), vec![0.1f32; len]);
        simd::adagrad_step(&mut w2, &mut a2, &small, Update::plain(0.1));
        assert_eq!((bits(&w1), bits(&a1)), (bits(&w2), bits(&a2)), "len {len}");
    }
}

/// With the defaults (no clip, `eps = 0`) the step is TensorFlow's `w -= lr g / sqrt(accum)`
/// bit for bit: the formula written out without the clip and without the epsilon.
#[test]
fn the_default_update_is_the_plain_adagrad_formula() {
    let mut rng = Lcg(3);
    for len in 0..=40 {
        let w: Vec<f32> = (0..len).map(|_| rng.symmetric_f32(2.0) as f32).collect();
        let g: Vec<f32> = (0..len).map(|_| rng.symmetric_f32(3.0) as f32).collect();
        let a: Vec<f32> = (0..len).map(|_| (0.1 + rng.uniform()) as f32).collect();
        let (mut w_simd, mut a_simd) = (w.clone(), a.clone());
        simd::adagrad_step(&mut w_simd, &mut a_simd, &g, Update::plain(0.1));
        let (mut w_tf, mut a_tf) = (w, a);
        for i in 0..len {
            a_tf[i] += g[i] * g[i];
            w_tf[i] -= 0.1 * g[i] / a_tf[i].sqrt();
        }
        assert_eq!(bits(&w_simd), bits(&w_tf), "len {len}");
        assert_eq!(bits(&a_simd), bits(&a_tf), "len {len}");
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// On dyadic data every operation of the updates is exact, so the f32 kernels equal the f64
/// reference with `assert_eq!`: SGD with `lr = 0.5` and gradients `k 2^-e`, clipped at 64 or
/// not; Adagrad with integer gradients clipped at 512 or not, an integer `eps` and `a0 = c^2
/// - clip(g)^2 - eps` for integers `c > |g|` (so `sqrt(a0 + g^2 + eps) = c`) and `lr` a power
/// of two, `w` and `lr g / c` dyadic when `c` is a power of two.
#[test]
fn optimizers_exact_on_dyadic_values() {
    let mut rng = Lcg(2);
    for len in 0..=40 {
        let w: Vec<f32> = (0..len)
            .map(|_| (rng.below(2001) as f32 - 1000.0) / 64.0)
            .collect();
        let g: Vec<f32> = (0..len)
            .map(|_| (rng.below(513) as f32 - 256.0) * 2f32.powi(-(rng.below(12) as i32)))
            .collect();
        for clip in [None, Some(64.0f32)] {
            let update = Update {
                clip,
                ..Update::plain(0.5f32)
            };
            let mut w_simd = w.clone();
            simd::sgd_step(&mut w_simd, &g, update);
            let mut w_ref = widen(&w);
            let update64 = Update {
                clip: clip.map(f64::from),
                ..Update::plain(0.5)
            };
            reference::sgd_step(&mut w_ref, &widen(&g), update64);
            assert_eq!(widen(&w_simd), w_ref, "sgd, len {len}, clip {clip:?}");
        }

        // Integer gradients below c = 2^10, so a0 = c^2 - g^2 - eps >= 2c - 1 - eps > 0.
        let c = 1024.0f32;
        let g: Vec<f32> = (0..len).map(|_| rng.below(2047) as f32 - 1023.0).collect();
        for (clip, eps) in [(None, 0.0f32), (Some(512.0f32), 0.0), (Some(512.0), 3.0)] {
            let update = Update {
                lr: 0.25f32,
                clip,
                eps,
            };
            let a: Vec<f32> = g
                .iter()
                .map(|&g| {
                    let g = reference::clip(g, clip);
                    c * c - g * g - eps
                })
                .collect();
            let (mut w_simd, mut a_simd) = (w.clone(), a.clone());
            simd::adagrad_step(&mut w_simd, &mut a_simd, &g, update);
            let (mut w_ref, mut a_ref) = (widen(&w), widen(&a));
            let update64 = Update {
                lr: 0.25,
                clip: clip.map(f64::from),
                eps: f64::from(eps),
            };
            reference::adagrad_step(&mut w_ref, &mut a_ref, &widen(&g), update64);
            assert!(a_simd.iter().all(|&a| a + eps == c * c));
            let what = format!("len {len}, {update:?}");
            assert_eq!(widen(&a_simd), a_ref, "adagrad accum, {what}");
            assert_eq!(widen(&w_simd), w_ref, "adagrad w, {what}");
        }
    }
}

/// A window on which both engines compute exactly: every hidden unit is either **zero** (its
/// input weights, bias, carried state and the recurrent weights from saturated units are 0,
/// so `z = 0`, `h = tanh(0) = 0` and `tanh' = 1` exactly) or **saturated** (`|z| >= 24` for
/// every input and state, so `h = ±1` in f32 and f64, `tanh' = 1 - 1 = 0`), and the logit
/// difference has `|d| >= 152` (one saturated unit with `w_hy[1] - w_hy[0] = ±256`, every
/// other `|w_hy[1][j] - w_hy[0][j]| <= 1`), so the f32 reference's softmax gives probabilities
/// exactly 0 and 1 (`exp(-152)` underflows to 0) and so does the SIMD head (`exp(-80)` is
/// below half an ulp of 1; `e^-80 / N` is flushed). Then:
/// - `dl` is `0` or `±scale`, with `scale` a power of two;
/// - a zero unit's `dz = dh = wy dl + sum_i w_hh[i][j] dz_{t+1}[i]`, the sum over zero units
///   `i` with `w_hh` in `{0, ±1/2}`, at most two per column, so `|dz| <= T |dl|` with at most
///   `2 + T` more fraction bits than `dl`; a saturated unit's `dz` is exactly 0;
/// - every gradient entry sums at most `N` such terms times `h` in `{0, ±1/4, ±1/2, ±3/4,
///   ±1}`: at most `log2(N) + log2(T) + T + 4 <= 24` significant bits for `N <= 512`,
///   `T <= 8`, so exact in any order, FMA or not.
///
/// This covers, exactly: the bit planes and input selection, the head's probabilities and
/// `dl`, BPTT through `w_hh^T` (zero units), `tanh'` at 0 and 1, every gradient reduction
/// (`dw_hh`, `dw_xh`, `b_h`, `dw_hy`, `b_y`) and the carried state. Not covered exactly: `tanh`
/// and `exp`/`ln` away from these points, and the loss (the SIMD head adds
/// `ln(1 + e^-80) ~ e^-80` per correctly classified sample).
fn exact_case(hidden: usize, streams: usize, time_step: usize, seed: u64) -> Case {
    let mut rng = Lcg(seed);
    let hd = hidden;
    // At least one unit of each kind when there are two units or more.
    let zero: Vec<bool> = (0..hd)
        .map(|j| match (hd, j) {
            (1, _) => seed.is_multiple_of(2),
            (_, 0) => true,
            (_, 1) => false,
            _ => rng.bit() == 1,
        })
        .collect();
    let dominant = zero.iter().position(|&z| !z);
    let mut p = Params::<f64>::zeros(hd);
    let [r_xh, r_hh, r_bh, _, r_hy, r_by] = p.layout().ranges();
    let zero_units: Vec<usize> = (0..hd).filter(|&j| zero[j]).collect();
    for (j, &is_zero) in zero.iter().enumerate() {
        if is_zero {
            // Column j of w_hh among zero rows: at most two entries of ±1/2.
            for _ in 0..2 {
                let i = zero_units[rng.below(zero_units.len())];
                p.data[r_hh.0 + i * hd + j] = rng.pick(&[0.0, 0.5, -0.5]);
            }
        } else {
            // |w_xh + b_h| >= 62 and sum_k |w_hh[j][k]| <= H / 2 <= 38: |z| >= 24.
            for x in 0..2 {
                p.data[r_xh.0 + x * hd + j] = rng.pick(&[64.0, -64.0]);
            }
            p.data[r_bh.0 + j] = rng.pick(&[0.0, 1.0, -1.0, 2.0, -2.0]);
            for k in 0..hd {
                p.data[r_hh.0 + j * hd + k] = rng.pick(&[0.0, 0.25, -0.25, 0.5, -0.5]);
            }
        }
        for c in 0..2 {
            p.data[r_hy.0 + c * hd + j] = rng.pick(&[0.0, 0.25, -0.25, 0.5, -0.5]);
        }
    }
    let sign = rng.pick(&[1.0, -1.0]);
    match dominant {
        Some(j) => {
            p.data[r_hy.0 + hd + j] = 128.0 * sign;
            p.data[r_hy.0 + j] = -128.0 * sign;
            p.data[r_by.0] = rng.pick(&[0.0, 1.0, -2.0]);
            p.data[r_by.0 + 1] = rng.pick(&[0.0, -1.0, 2.0]);
        }
        None => {
            p.data[r_by.0] = -100.0 * sign;
            p.data[r_by.0 + 1] = 100.0 * sign;
        }
    }
    let h0 = (0..streams * hd)
        .map(|i| {
            if zero[i % hd] {
                0.0
            } else {
                rng.pick(&[0.0, 0.25, -0.25, 0.5, -0.5, 0.75, -0.75, 1.0, -1.0])
            }
        })
        .collect();
    let mut case = Case {
        streams,
        time_step,
        params: p,
        h0,
        x: Vec::new(),
        y: Vec::new(),
    };
    case.new_data(&mut rng);
    case
}

#[test]
fn saturated_windows_are_exact() {
    let e80 = head_cap();
    let (mut cases, mut nontrivial) = (0u32, 0u32);
    for hidden in [1, 2, 3, 5, 8, 9, 12, 17, 33, 64] {
        // N = S T a power of two (so 1/N is exact), T <= 8; S = 1, 2, 4 leave padding lanes.
        for (streams, time_step) in [
            (1, 1),
            (1, 8),
            (2, 4),
            (4, 2),
            (4, 8),
            (8, 8),
            (16, 4),
            (32, 2),
            (64, 4),
        ] {
            for seed in 0..3u64 {
                let case = exact_case(hidden, streams, time_step, seed + 10 * hidden as u64);
                let what = format!(
                    "hidden {hidden}, streams {streams}, time_step {time_step}, seed {seed}"
                );
                let out = simd_window(&case);

                let p32 = case.params32();
                let mut grad = Params::<f32>::zeros(hidden);
                let mut h_last = vec![0f32; case.h0.len()];
                let loss = reference::forward_backward(
                    &p32,
                    &case.h0_32(),
                    &case.window(),
                    &mut grad,
                    &mut h_last,
                );
                assert_eq!(out.grad, grad.data, "gradient, {what}");
                assert_eq!(out.state, h_last, "state, {what}");
                assert!(
                    h_last.iter().all(|&h| h == 0.0 || h.abs() == 1.0),
                    "{what}: not an exact case"
                );
                // Each sample's loss is 0 or |d| exactly in the reference; the SIMD head adds
                // at most e^-80 to each.
                let n = case.samples() as f64;
                let excess = out.stats.loss_sum - f64::from(loss) * n;
                assert!(
                    (0.0..=n * e80).contains(&excess),
                    "loss sum off by {excess:e}, {what}"
                );
                let b = window_bound(
                    &case.params,
                    &case.h0,
                    &StateError::exact(case.streams, case.hidden()),
                    &case.window(),
                );
                assert_eq!(b.ambiguous, 0.0);
                assert_eq!(out.stats.correct, b.correct, "correct, {what}");
                // Not trivial: BPTT reached w_hh (zero-unit rows) and w_xh.
                let [r_xh, r_hh, ..] = Layout::new(hidden).ranges();
                let reached = |r: (usize, usize)| out.grad[r.0..r.1].iter().any(|&g| g != 0.0);
                cases += u32::from(hidden > 1 && time_step > 1);
                if reached(r_xh) && reached(r_hh) && time_step > 1 {
                    nontrivial += 1;
                }
            }
        }
    }
    println!("saturated_windows_are_exact: {nontrivial} of {cases} cases reach w_hh and w_xh");
    assert!(2 * nontrivial >= cases, "too few exact cases exercise BPTT");
}

// ---------------------------------------------------------------------------------------
// 3. Sweeps around every multiple of 8 with NaN-poisoned outputs.
// ---------------------------------------------------------------------------------------

/// Every stream count 1..=41 (every residue mod 8 and mod 16, one to six lane groups of 8 or
/// one to three of 16, odd and even
/// tile counts) against hidden sizes around 8, 16, 32 and 64 (small kernels, blocked tiles
/// with every remainder mod 4): the gradient buffer pre-filled with NaN comes back entirely
/// written and finite, the result is the same bit for bit whatever the buffer held, and it is
/// within the bound of the reference.
#[test]
fn sweep_sizes_with_poisoned_outputs() {
    let mut ratios = Ratios::default();
    for hidden in [7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65] {
        for streams in 1..=41 {
            let time_step = 1 + streams % 3;
            let seed = (hidden * 100 + streams) as u64;
            let case = Case::random(
                hidden,
                streams,
                time_step,
                weight_scale(streams % 4, hidden),
                seed,
            );
            let (xp, yp) = case.planes();
            let w = prepared(&case.params32());
            let planes = Planes {
                x: &xp,
                y: &yp,
                stride: simd::plane_bytes(streams),
            };
            let scale = 1.0 / case.samples() as f32;
            let run = |fill: f32| {
                let mut ws = Workspace::new(hidden, streams, time_step);
                ws.load_state(&case.h0_32());
                run_simd(&w, &mut ws, &planes, scale, fill)
            };
            let out = run(f32::NAN);
            let what = format!("hidden {hidden}, streams {streams}");
            assert!(
                out.grad.iter().all(|g| g.is_finite()),
                "{what}: gradient entry not written"
            );
            assert!(
                out.state.iter().all(|h| h.is_finite()),
                "{what}: state entry not written"
            );
            for fill in [0.0, -1e30, f32::INFINITY, f32::MIN_POSITIVE] {
                let other = run(fill);
                assert_eq!(
                    bits(&other.grad),
                    bits(&out.grad),
                    "{what}: depends on the buffer ({fill})"
                );
                assert_eq!(other.stats, out.stats, "{what}");
            }
            let (loss, grad, h_last) = reference_window(&case);
            let b = window_bound(
                &case.params,
                &case.h0,
                &StateError::exact(case.streams, case.hidden()),
                &case.window(),
            );
            if let Err(e) = compare_window(
                &out,
                (loss, &grad, &h_last),
                &b,
                case.samples(),
                &mut ratios,
            ) {
                panic!("{what}: {e}");
            }
        }
    }
    println!("sweep_sizes_with_poisoned_outputs: max error/tolerance {ratios:?}");
    assert_informative(&ratios, 0.35);
}

// ---------------------------------------------------------------------------------------
// 4. Padding lanes are inert.
// ---------------------------------------------------------------------------------------

/// For stream counts that leave padding lanes, arbitrary finite garbage in the padding lanes
/// of the carried state and in the padding bits of both planes changes nothing: loss,
/// accuracy, gradient and the real streams' state are bit for bit those of a clean run, over
/// two windows, and the padding lanes stay finite. The garbage stays within `±1e30`, so that
/// `z = sum_k w_hh[j][k] h_k` stays finite; see
/// [`padding_lanes_inert_with_extreme_garbage`] for `±f32::MAX`.
#[test]
fn padding_lanes_are_inert() {
    for hidden in [1, 3, 8, 9, 17, 33] {
        for streams in (1..=41).filter(|s| s % LANES != 0) {
            let time_step = 1 + streams % 4;
            let seed = (hidden * 1000 + streams) as u64;
            let case = Case::random(
                hidden,
                streams,
                time_step,
                weight_scale(streams % 4, hidden),
                seed,
            );
            let w = prepared(&case.params32());
            let groups = simd::groups_for(streams);
            let stride = simd::plane_bytes(streams);
            let (xp, yp) = case.planes();
            let scale = 1.0 / case.samples() as f32;
            let used = streams % LANES;
            let mut rng = Lcg(seed);

            let mut clean = Workspace::new(hidden, streams, time_step);
            clean.load_state(&case.h0_32());
            assert!(
                padding_lanes(&clean, used).iter().all(|&v| v == 0.0),
                "load_state zeroes the padding"
            );
            let mut dirty = clean.clone();
            let (mut xg, mut yg) = (xp.clone(), yp.clone());
            for t in 0..time_step {
                // Bits `used..LANES` of the last group of each step are padding.
                for lane in used..LANES {
                    let byte = t * stride + (groups - 1) * LANE_BYTES + lane / 8;
                    let r = rng.next_u64();
                    xg[byte] |= ((r & 1) as u8) << (lane % 8);
                    yg[byte] |= ((r >> 1 & 1) as u8) << (lane % 8);
                }
            }
            let clean_planes = Planes {
                x: &xp,
                y: &yp,
                stride,
            };
            let dirty_planes = Planes {
                x: &xg,
                y: &yg,
                stride,
            };
            for window in 0..2 {
                for j in 0..hidden {
                    let v = &mut dirty.raw_state_mut()[j * groups + groups - 1];
                    for lane in used..LANES {
                        v.as_mut_array()[lane] =
                            rng.symmetric_f32(1e30) as f32 * [1.0, 1e-30, 1e-3][lane % 3];
                    }
                }
                let a = run_simd(&w, &mut clean, &clean_planes, scale, f32::NAN);
                let b = run_simd(&w, &mut dirty, &dirty_planes, scale, f32::NAN);
                let what = format!("hidden {hidden}, streams {streams}, window {window}");
                assert_eq!(a.stats, b.stats, "{what}");
                assert_eq!(bits(&a.grad), bits(&b.grad), "{what}");
                assert_eq!(bits(&a.state), bits(&b.state), "{what}");
                assert!(
                    padding_lanes(&dirty, used).iter().all(|v| v.is_finite()),
                    "{what}"
                );
            }
        }
    }
}

/// The padding lanes (`used..LANES` of the last group) of every hidden row of the carried state.
fn padding_lanes(ws: &Workspace, used: usize) -> Vec<f32> {
    let groups = ws.groups();
    (0..ws.hidden())
        .flat_map(|j| ws.raw_state()[j * groups + groups - 1].to_array()[used..].to_vec())
        .collect()
}

// ---------------------------------------------------------------------------------------
// 5. The shard split.
// ---------------------------------------------------------------------------------------

/// The streams of `case` as one workspace and as two shards split at stream `LANES k` (the
/// second shard's planes start `k LANE_BYTES` bytes in, stride the whole batch's), all with the
/// batch's scale.
/// Returns (whole, first shard, second shard).
fn split_runs(case: &Case, split: usize, scale: f32) -> (SimdOut, SimdOut, SimdOut) {
    assert!(split.is_multiple_of(LANES) && split > 0 && split < case.streams);
    let (hd, t_n) = (case.hidden(), case.time_step);
    let w = prepared(&case.params32());
    let (xp, yp) = case.planes();
    let stride = simd::plane_bytes(case.streams);
    let h0 = case.h0_32();
    let run = |first: usize, streams: usize| {
        let mut ws = Workspace::new(hd, streams, t_n);
        ws.load_state(&h0[first * hd..(first + streams) * hd]);
        let g0 = first / LANES;
        let planes = Planes {
            x: &xp[g0 * LANE_BYTES..],
            y: &yp[g0 * LANE_BYTES..],
            stride,
        };
        run_simd(&w, &mut ws, &planes, scale, f32::NAN)
    };
    (
        run(0, case.streams),
        run(0, split),
        run(split, case.streams - split),
    )
}

/// Per-stream results (the carried state) are bit for bit the same in one workspace or two:
/// each lane's arithmetic does not depend on the other groups. The gradient and the loss sum
/// differ only by the order of their sums: the two shards' sums and the whole one each round
/// within `gamma(lane_sum_roundings(G T))` of the sum of the terms' magnitudes (see
/// [`window_bound`]).
#[test]
fn shard_split_at_lane_groups() {
    run_property(
        "shard_split_at_lane_groups",
        192,
        (
            1usize..=40,
            LANES + 1..=5 * LANES,
            1usize..=8,
            0usize..4,
            any::<u64>(),
        ),
        |(hidden, streams, time_step, regime, seed), ratios| {
            let case = Case::random(
                hidden,
                streams,
                time_step,
                weight_scale(regime, hidden),
                seed,
            );
            let split = LANES * (1 + (seed as usize) % ((streams - 1) / LANES));
            let (whole, a, b) = split_runs(&case, split, 1.0 / case.samples() as f32);
            let joined: Vec<f32> = a.state.iter().chain(&b.state).copied().collect();
            prop_assert_eq!(bits(&whole.state), bits(&joined));
            prop_assert_eq!(whole.stats.correct, a.stats.correct + b.stats.correct);

            let bd = window_bound(
                &case.params,
                &case.h0,
                &StateError::exact(case.streams, case.hidden()),
                &case.window(),
            );
            let sum = gamma(lane_sum_roundings(simd::groups_for(streams) * time_step));
            let tol: Vec<f64> = bd
                .grad_terms
                .iter()
                .map(|m| (2.0 * sum + 2.0 * U) * m)
                .collect();
            let parts: Vec<f64> = a
                .grad
                .iter()
                .zip(&b.grad)
                .map(|(&x, &y)| f64::from(x) + f64::from(y))
                .collect();
            within(
                "split gradient",
                &widen(&whole.grad),
                &parts,
                &tol,
                &mut ratios.shard_split,
            )?;
            within(
                "split loss",
                &[whole.stats.loss_sum],
                &[a.stats.loss_sum + b.stats.loss_sum],
                &[2.0 * sum * bd.loss_terms],
                &mut ratios.shard_split,
            )
        },
    );
}

/// On an exact case ([`exact_case`]) every sum is exact in any order, so the whole batch's
/// gradient equals the sum of its shards' exactly, for any stream count (the scale is a power
/// of two whatever `S T`).
#[test]
fn shard_split_exact() {
    for hidden in [1, 2, 5, 8, 9, 13, 33] {
        for streams in LANES + 1..=5 * LANES + 1 {
            let time_step = 1 + streams % 8;
            let case = exact_case(hidden, streams, time_step, (hidden * 100 + streams) as u64);
            for split in (LANES..streams).step_by(LANES) {
                let (whole, a, b) = split_runs(&case, split, 1.0 / 512.0);
                for (i, (g, (x, y))) in whole
                    .grad
                    .iter()
                    .zip(a.grad.iter().zip(&b.grad))
                    .enumerate()
                {
                    assert_eq!(
                        f64::from(*g),
                        f64::from(*x) + f64::from(*y),
                        "hidden {hidden}, streams {streams}, split {split}, entry {i}"
                    );
                }
                assert_eq!(whole.stats.correct, a.stats.correct + b.stats.correct);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. Evaluation forward against the training forward.
// ---------------------------------------------------------------------------------------

/// `forward` (evaluation) gives the loss, accuracy and carried state (padding lanes included)
/// of `forward_train` + `carry_state`, bit for bit, over consecutive windows; and
/// `forward_train` + `backward` + `carry_state` is `forward_backward`.
#[test]
fn eval_forward_matches_train_forward() {
    for (hidden, streams, time_step) in [
        (1, 1, 1),
        (3, 13, 5),
        (8, 8, 3),
        (9, 17, 4),
        (33, 40, 6),
        (64, 3, 12),
    ] {
        let case = Case::random(
            hidden,
            streams,
            time_step,
            weight_scale(hidden % 4, hidden),
            hidden as u64,
        );
        let w = prepared(&case.params32());
        let (xp, yp) = case.planes();
        let planes = Planes {
            x: &xp,
            y: &yp,
            stride: simd::plane_bytes(streams),
        };
        let scale = 1.0 / case.samples() as f32;
        let mut eval = Workspace::new(hidden, streams, time_step);
        eval.load_state(&case.h0_32());
        let mut train = eval.clone();
        let mut fused = eval.clone();
        for window in 0..3 {
            let stats = simd::forward(&w, &mut eval, &planes);
            let train_stats = simd::forward_train(&w, &mut train, &planes, scale);
            let mut grad = vec![f32::NAN; Layout::new(hidden).len()];
            simd::backward(&w, &mut train, &mut grad);
            simd::carry_state(&mut train);
            let fused_out = run_simd(&w, &mut fused, &planes, scale, f32::NAN);
            let what = format!("hidden {hidden}, streams {streams}, window {window}");
            assert_eq!(stats, train_stats, "{what}");
            assert_eq!(fused_out.stats, train_stats, "{what}");
            assert_eq!(bits(&fused_out.grad), bits(&grad), "{what}");
            let raw = |ws: &Workspace| {
                ws.raw_state()
                    .iter()
                    .flat_map(|v| bits(&v.to_array()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(raw(&eval), raw(&train), "{what}");
            assert_eq!(raw(&fused), raw(&train), "{what}");
        }
    }
}
