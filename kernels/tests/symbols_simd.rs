//! The symbols' path of the SIMD kernels (`V` input symbols, `C` classes: a character model,
//! [`SymbolPlanes`]) against the scalar reference, for every cell:
//!
//! 1. **Against the f64 reference with derived tolerances** (as `gated_simd.rs`: the
//!    reference on [`RoundedWindow`] numbers gives each result's tolerance): random windows
//!    over `V` and `C` in {2, 3, 5, 67, 300} (67: a multiple of nothing convenient; 300: ids
//!    above a byte), hidden sizes 1..=20, 37, 64, stream counts 1..=40, 1..=6 steps; the loss,
//!    the carried state and every gradient entry, each within its tolerance, and the
//!    tolerances informative (the worst error above 1% of them).
//! 2. **The bits' kernels agree**: with `V = C = 2` the symbols' path and the bit-plane
//!    kernels compute the same model (to the same tolerances).
//! 3. **Consecutive windows** carry the state as the reference does.
//! 4. **Padding lanes are inert** and every gradient entry is written (NaN-poisoned buffer),
//!    and no subnormal number appears in the workspace over saturated runs.

use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::reference::Window;
use bitrnn_kernels::rounding::RoundedWindow;
use bitrnn_kernels::simd::{self, Planes, Prepared, SymbolPlanes, Workspace};
use bitrnn_kernels::testing::{Case, Lcg, weight_scale};
use bitrnn_kernels::{Cell, Layout, Params};

/// One window over symbols: weights, carried state, inputs and targets (`[t][streams]`).
#[derive(Clone, Debug)]
struct SymCase {
    streams: usize,
    time_step: usize,
    params: Params<f64>,
    h0: Vec<f64>,
    x: Vec<u16>,
    y: Vec<u16>,
}

impl SymCase {
    #[allow(clippy::too_many_arguments)]
    fn random(layout: Layout, streams: usize, time_step: usize, weight: f64, seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let mut params = Params::filled_as(layout, 0.0);
        for w in &mut params.data {
            *w = rng.symmetric_f32(weight);
        }
        let rows = layout.cell.state_rows();
        let h0 = (0..streams * rows * layout.hidden)
            .map(|i| {
                let row = (i / layout.hidden) % rows;
                rng.symmetric_f32(if row == 0 { 0.999 } else { 2.0 })
            })
            .collect();
        let mut case = Self {
            streams,
            time_step,
            params,
            h0,
            x: Vec::new(),
            y: Vec::new(),
        };
        case.new_data(&mut rng);
        case
    }
    fn new_data(&mut self, rng: &mut Lcg) {
        let n = self.streams * self.time_step;
        let (v, c) = (self.params.vocab, self.params.classes);
        self.x = (0..n).map(|_| rng.below(v) as u16).collect();
        self.y = (0..n).map(|_| rng.below(c) as u16).collect();
    }
    fn layout(&self) -> Layout {
        self.params.layout()
    }
    fn samples(&self) -> usize {
        self.streams * self.time_step
    }
    fn window(&self) -> Window<'_, u16> {
        Window {
            streams: self.streams,
            time_step: self.time_step,
            x: &self.x,
            y: &self.y,
        }
    }
    /// The planes with whole lane groups per step, padding entries 0.
    fn planes(&self) -> (Vec<u16>, Vec<u16>, usize) {
        let stride = simd::groups_for(self.streams) * LANES;
        let mut x = vec![0; stride * self.time_step];
        let mut y = vec![0; stride * self.time_step];
        for t in 0..self.time_step {
            for s in 0..self.streams {
                x[t * stride + s] = self.x[t * self.streams + s];
                y[t * stride + s] = self.y[t * self.streams + s];
            }
        }
        (x, y, stride)
    }
}

struct Out {
    loss_sum: f64,
    grad: Vec<f32>,
    state: Vec<f32>,
}

fn kernels(case: &SymCase) -> (Prepared, Workspace) {
    let mut w = Prepared::for_symbols(case.layout());
    w.load(&case.params.cast());
    let mut ws = Workspace::for_symbols(case.layout(), case.streams, case.time_step);
    let h0: Vec<f32> = case.h0.iter().map(|&v| v as f32).collect();
    ws.load_state(&h0);
    (w, ws)
}

fn run(case: &SymCase, w: &Prepared, ws: &mut Workspace, fill: f32) -> Out {
    let (x, y, stride) = case.planes();
    let planes = SymbolPlanes {
        x: &x,
        y: &y,
        stride,
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

fn simd_window(case: &SymCase) -> Out {
    let (w, mut ws) = kernels(case);
    run(case, &w, &mut ws, f32::NAN)
}

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

fn check(got: &Out, want: &RoundedWindow, samples: usize, label: &str) -> Ratios {
    let loss = got.loss_sum / samples as f64;
    let (lw, lt) = want.loss;
    let loss_err = (loss - lw).abs();
    assert!(
        loss_err <= lt,
        "{label}: loss {loss} vs {lw}: {loss_err:e} > {lt:e}"
    );
    Ratios {
        loss: loss_err / lt,
        grad: worst(&got.grad, &want.grad, "grad", label),
        state: worst(&got.state, &want.state, "state", label),
    }
}

fn compare(case: &SymCase, seed: u64) -> Ratios {
    let l = case.layout();
    let label = format!(
        "{:?} hidden {} V {} C {} streams {} T {} seed {seed}",
        l.cell, l.hidden, l.vocab, l.classes, case.streams, case.time_step
    );
    let want = RoundedWindow::new(&case.params, &case.h0, &case.window(), seed);
    check(&simd_window(case), &want, case.samples(), &label)
}

const SIZES: [usize; 5] = [2, 3, 5, 67, 300];

#[test]
fn random_windows_match_reference() {
    let mut rng = Lcg(14);
    for cell in Cell::ALL {
        let mut all = Ratios::default();
        for i in 0..60u64 {
            let hidden = match i % 6 {
                4 => 37,
                5 => 64,
                _ => 1 + rng.below(20),
            };
            let vocab = SIZES[rng.below(SIZES.len())];
            let classes = SIZES[rng.below(SIZES.len())];
            let streams = 1 + rng.below(40);
            let time_step = 1 + rng.below(6);
            let weight = weight_scale(i as usize, hidden);
            let layout = Layout::with_symbols(cell, hidden, vocab, classes);
            let case = SymCase::random(layout, streams, time_step, weight, 500 + i);
            let r = compare(&case, i);
            all.loss = all.loss.max(r.loss);
            all.grad = all.grad.max(r.grad);
            all.state = all.state.max(r.state);
        }
        for (what, r) in [("loss", all.loss), ("grad", all.grad), ("state", all.state)] {
            assert!(
                r > 0.01,
                "{cell:?}: the {what} tolerance is vacuous (worst error {r:.3e} of it)"
            );
        }
        eprintln!("{cell:?}: worst error / tolerance {all:?}");
    }
}

/// With `V = C = 2` the symbols' path and the bits' kernels compute the same model: both
/// within the reference's tolerances, and close to each other.
#[test]
fn two_symbols_agree_with_the_bits_kernels() {
    for cell in Cell::ALL {
        for (hidden, streams, time_step) in [(4, 19, 5), (37, 40, 3), (64, 16, 2)] {
            let bits = Case::glorot_cell(cell, hidden, streams, time_step, 77);
            let case = SymCase {
                streams,
                time_step,
                params: bits.params.clone(),
                h0: bits.h0.clone(),
                x: bits.x.iter().map(|&v| u16::from(v)).collect(),
                y: bits.y.iter().map(|&v| u16::from(v)).collect(),
            };
            let label = format!("{cell:?} hidden {hidden}");
            let want = RoundedWindow::new(&case.params, &case.h0, &case.window(), 3);
            let sym = simd_window(&case);
            check(&sym, &want, case.samples(), &label);
            let mut w = Prepared::with_cell(cell, hidden);
            w.load(&bits.params32());
            let mut ws = Workspace::with_cell(cell, hidden, streams, time_step);
            ws.load_state(&bits.h0_32());
            let (xp, yp) = bits.planes();
            let planes = Planes {
                x: &xp,
                y: &yp,
                stride: simd::plane_bytes(streams),
            };
            let mut grad = vec![f32::NAN; bits.params.data.len()];
            let stats = simd::forward_backward(
                &w,
                &mut ws,
                &planes,
                1.0 / case.samples() as f32,
                &mut grad,
            );
            let mut state = vec![f32::NAN; case.h0.len()];
            ws.store_state(&mut state);
            let out = Out {
                loss_sum: stats.loss_sum,
                grad,
                state,
            };
            check(&out, &want, case.samples(), &label);
        }
    }
}

/// Two consecutive windows: the kernels' carried state (with the LSTM's `c`) gives the
/// reference's second window from that state.
#[test]
fn consecutive_windows_carry_the_state() {
    let mut rng = Lcg(9);
    for cell in Cell::ALL {
        let layout = Layout::with_symbols(cell, 23, 67, 41);
        let mut case = SymCase::random(layout, 21, 4, 0.6 / 23f64.sqrt(), 31);
        let (w, mut ws) = kernels(&case);
        run(&case, &w, &mut ws, 0.0);
        let mut carried = vec![0.0f32; case.h0.len()];
        ws.store_state(&mut carried);
        case.h0 = carried.iter().map(|&v| f64::from(v)).collect();
        case.new_data(&mut rng);
        let got = run(&case, &w, &mut ws, f32::NAN);
        let want = RoundedWindow::new(&case.params, &case.h0, &case.window(), 5);
        check(
            &got,
            &want,
            case.samples(),
            &format!("{cell:?} second window"),
        );
    }
}

/// Garbage in the padding lanes' carried state changes nothing, bit for bit; every gradient
/// entry is written whatever the buffer held.
#[test]
fn padding_lanes_are_inert_and_every_entry_written() {
    for cell in Cell::ALL {
        for streams in [1, LANES - 1, LANES + 3, 2 * LANES] {
            let layout = Layout::with_symbols(cell, 9, 70, 67);
            let case = SymCase::random(layout, streams, 3, 0.3, 8);
            let (w, mut clean) = kernels(&case);
            let mut dirty = clean.clone();
            let groups = simd::groups_for(streams);
            for row in dirty.raw_state_mut().chunks_exact_mut(groups) {
                let v = &mut row[groups - 1];
                let mut a = v.to_array();
                for x in &mut a[(streams - 1) % LANES + 1..] {
                    *x = 0.75;
                }
                *v = bitrnn_kernels::lanes::Vf32::new(a);
            }
            let a = run(&case, &w, &mut clean, f32::NAN);
            let b = run(&case, &w, &mut dirty, 0.0);
            assert_eq!(
                a.loss_sum.to_bits(),
                b.loss_sum.to_bits(),
                "{cell:?} {streams}"
            );
            assert!(
                a.grad
                    .iter()
                    .zip(&b.grad)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{cell:?} streams {streams}: padding lanes changed the gradient"
            );
            assert!(
                a.grad.iter().all(|v| v.is_finite()),
                "{cell:?}: an entry unwritten"
            );
        }
    }
}

/// Large weights saturate the softmax and the gates for many windows: no subnormal number
/// anywhere in the workspace.
#[test]
fn saturated_runs_stay_normal() {
    let mut rng = Lcg(3);
    for cell in Cell::ALL {
        let layout = Layout::with_symbols(cell, 12, 30, 30);
        let mut case = SymCase::random(layout, 20, 5, 6.0, 12);
        let (w, mut ws) = kernels(&case);
        for _ in 0..40 {
            case.new_data(&mut rng);
            let out = run(&case, &w, &mut ws, 0.0);
            assert!(out.loss_sum.is_finite());
            assert!(
                !ws.has_subnormal(),
                "{cell:?}: a subnormal in the workspace"
            );
            assert!(
                !out.grad.iter().any(|v| v.is_subnormal()),
                "{cell:?}: a subnormal gradient"
            );
        }
    }
}
