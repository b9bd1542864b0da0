//! Test support shared by the kernels' tests (`kernels/tests/`), the fuzz targets
//! (`bitrnn::fuzzing`) and the root package's tests: a seeded random source, random windows
//! with their parameters and carried state, and the kernels' bit planes. Behind the
//! `testing` feature: none of it is part of the engine.

use crate::params::{Cell, Layout, Params};
use crate::real::Real;
use crate::reference::{self, forward, forward_backward};
use crate::simd;

/// Knuth's MMIX linear congruential generator: the tests' only source of randomness, so a
/// seed reproduces a case exactly. Only the high bits are used (the low bits of an LCG with a
/// power-of-two modulus have short periods).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
    /// Uniform in [0, 1), 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// Uniform in `[-a, a)`, rounded to f32 so that every engine and precision starts from
    /// the same number.
    pub fn symmetric_f32(&mut self, a: f64) -> f64 {
        f64::from(((2.0 * self.uniform() - 1.0) * a) as f32)
    }
    /// A fair bit, 0 or 1.
    pub fn bit(&mut self) -> u8 {
        u8::from(self.next_u64() >> 63 == 1)
    }
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32) as usize) % n
    }
    pub fn pick(&mut self, options: &[f64]) -> f64 {
        options[self.below(options.len())]
    }
}

/// The weight scale of each regime of the property tests: Glorot-sized, two saturating ones,
/// and `|w| <= 4` whatever the size (deep saturation, logit differences far beyond the head's
/// cap of 80, gates far beyond their clamp).
#[must_use]
pub fn weight_scale(regime: usize, hidden: usize) -> f64 {
    let root = (hidden as f64).sqrt();
    match regime {
        0 => 0.6 / root,
        1 => 1.5 / root,
        2 => 3.0 / root,
        _ => 4.0,
    }
}

/// One window with its parameters and carried state, every number an f32 (held in f64), so
/// that the same case runs exactly in both precisions and in both engines.
#[derive(Clone, Debug)]
pub struct Case {
    pub streams: usize,
    pub time_step: usize,
    pub params: Params<f64>,
    /// The carried state, `[streams][state_rows * hidden]`: `h`, then the LSTM's `c`.
    pub h0: Vec<f64>,
    /// `[time_step][streams]`, 0 or 1.
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

impl Case {
    /// The tanh RNN: weights uniform in `[-weight, weight]`, `h0` in (-1, 1), fair-coin bits.
    pub fn random(hidden: usize, streams: usize, time_step: usize, weight: f64, seed: u64) -> Self {
        Self::random_cell(Cell::Rnn, hidden, streams, time_step, weight, seed)
    }
    /// Any cell: weights uniform in `[-weight, weight]`, fair-coin bits; each stream's state
    /// drawn in layout order, `h` in (-1, 1) and then the LSTM's `c` in (-2, 2) (a cell state
    /// is not bounded by 1: `|c_t| <= |c_{t-1}| + 1`). For [`Cell::Rnn`] the draws, and so the
    /// case, are those of [`Case::random`].
    pub fn random_cell(
        cell: Cell,
        hidden: usize,
        streams: usize,
        time_step: usize,
        weight: f64,
        seed: u64,
    ) -> Self {
        Self::random_layout(Layout::of(cell, hidden), streams, time_step, weight, seed)
    }
    /// [`Case::random_cell`] for any layout with `V, C <= 256` (the symbols held as `u8`):
    /// inputs uniform below `V`, targets below `C`. With `V = C = 2`, [`Case::random_cell`].
    pub fn random_layout(
        layout: Layout,
        streams: usize,
        time_step: usize,
        weight: f64,
        seed: u64,
    ) -> Self {
        assert!(layout.vocab <= 256 && layout.classes <= 256, "u8 symbols");
        let cell = layout.cell;
        let hidden = layout.hidden;
        let mut rng = Lcg(seed);
        let mut params = Params::filled_as(layout, 0.0);
        for w in &mut params.data {
            *w = rng.symmetric_f32(weight);
        }
        let h0 = (0..streams)
            .flat_map(|_| (0..cell.state_rows()).flat_map(|row| vec![row; hidden]))
            .map(|row| rng.symmetric_f32(if row == 0 { 0.999 } else { 2.0 }))
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
    /// Fresh data for the next window: fair bits, or symbols uniform below `V` and `C`.
    pub fn new_data(&mut self, rng: &mut Lcg) {
        let n = self.streams * self.time_step;
        let mut draw = |below: usize| -> u8 {
            if self.params.layout().is_bits() {
                rng.bit()
            } else {
                u8::try_from(rng.below(below)).expect("u8 symbols")
            }
        };
        let (v, c) = (self.params.vocab, self.params.classes);
        self.x = (0..n).map(|_| draw(v)).collect();
        self.y = (0..n).map(|_| draw(c)).collect();
    }
    pub fn hidden(&self) -> usize {
        self.params.hidden
    }
    pub fn cell(&self) -> Cell {
        self.params.cell
    }
    /// Numbers in one stream's carried state, `state_rows * hidden`.
    pub fn state_width(&self) -> usize {
        self.cell().state_rows() * self.hidden()
    }
    pub fn samples(&self) -> usize {
        self.streams * self.time_step
    }
    pub fn window(&self) -> reference::Window<'_> {
        reference::Window {
            streams: self.streams,
            time_step: self.time_step,
            x: &self.x,
            y: &self.y,
        }
    }
    /// Weights uniform in `+-0.6 / sqrt(H)`, the size of Glorot-initialised weights, where the
    /// a priori rounding bounds of `kernels/tests/reference.rs` are informative (f32: below 2e-4
    /// on every quantity); with weights of 1.5 the recurrence can amplify them by `(1.5 H)^T`.
    pub fn glorot(hidden: usize, streams: usize, time_step: usize, seed: u64) -> Self {
        Self::glorot_cell(Cell::Rnn, hidden, streams, time_step, seed)
    }
    /// [`Case::glorot`] for any cell: [`Case::random_cell`] with weights of `0.6 / sqrt(H)`.
    pub fn glorot_cell(
        cell: Cell,
        hidden: usize,
        streams: usize,
        time_step: usize,
        seed: u64,
    ) -> Self {
        Self::random_cell(
            cell,
            hidden,
            streams,
            time_step,
            0.6 / (hidden as f64).sqrt(),
            seed,
        )
    }
    /// `(loss, gradient, h_last)` in precision `F`.
    pub fn run<F: Real>(&self) -> (f64, Vec<f64>, Vec<f64>) {
        let params = self.params.cast::<F>();
        let h0: Vec<F> = self.h0.iter().map(|&v| F::from_f64(v)).collect();
        let mut grad = Params::filled_as(self.params.layout(), F::ZERO);
        let mut h_last = vec![F::ZERO; h0.len()];
        let loss = forward_backward(&params, &h0, &self.window(), &mut grad, &mut h_last);
        let widen = |v: &[F]| v.iter().map(|x| x.to_f64()).collect::<Vec<_>>();
        (loss.to_f64(), widen(&grad.data), widen(&h_last))
    }
    /// The loss of the forward pass alone, with parameters `params`.
    pub fn loss_with(&self, params: &Params<f64>) -> f64 {
        let mut h_last = vec![0.0; self.h0.len()];
        forward(params, &self.h0, &self.window(), &mut h_last)
    }
    /// The streams `range` of this window (time-major data, so a strided gather).
    pub fn streams_subset(&self, range: core::ops::Range<usize>) -> Self {
        let (width, s_n) = (self.state_width(), self.streams);
        let pick = |v: &[u8]| {
            (0..self.time_step)
                .flat_map(|t| v[t * s_n + range.start..t * s_n + range.end].to_vec())
                .collect::<Vec<_>>()
        };
        Self {
            streams: range.len(),
            time_step: self.time_step,
            params: self.params.clone(),
            h0: self.h0[range.start * width..range.end * width].to_vec(),
            x: pick(&self.x),
            y: pick(&self.y),
        }
    }
    /// Steps `range` of this window, starting from state `h0` (time-major: contiguous).
    pub fn steps_subset(&self, range: core::ops::Range<usize>, h0: Vec<f64>) -> Self {
        let s_n = self.streams;
        Self {
            streams: s_n,
            time_step: range.len(),
            params: self.params.clone(),
            h0,
            x: self.x[range.start * s_n..range.end * s_n].to_vec(),
            y: self.y[range.start * s_n..range.end * s_n].to_vec(),
        }
    }
    /// The parameters as f32 (exact: every number is an f32).
    #[must_use]
    pub fn params32(&self) -> Params<f32> {
        self.params.cast()
    }
    /// The carried state as f32 (exact).
    #[must_use]
    pub fn h0_32(&self) -> Vec<f32> {
        self.h0.iter().map(|&v| v as f32).collect()
    }
    /// The x and y bit planes of the kernels ([`planes`]).
    #[must_use]
    pub fn planes(&self) -> (Vec<u8>, Vec<u8>) {
        (
            planes(&self.x, self.streams, self.time_step),
            planes(&self.y, self.streams, self.time_step),
        )
    }
}

/// Time-major bits (`[time_step][streams]`, 0 or 1) as the kernels' bit planes
/// ([`simd::Planes`] with stride `simd::plane_bytes(streams)`): bit `s % 8` of byte
/// `t * stride + s / 8` is stream `s` at step `t`; padding bits are 0.
#[must_use]
pub fn planes(bits: &[u8], streams: usize, time_step: usize) -> Vec<u8> {
    assert_eq!(
        bits.len(),
        streams * time_step,
        "bits are [time_step][streams]"
    );
    let stride = simd::plane_bytes(streams);
    let mut plane = vec![0u8; time_step * stride];
    for t in 0..time_step {
        for s in 0..streams {
            plane[t * stride + s / 8] |= bits[t * streams + s] << (s % 8);
        }
    }
    plane
}

// ---------------------------------------------------------------------------------------
// The central difference of the loss, shared by the references' finite-difference tests.
// ---------------------------------------------------------------------------------------

/// Step of the central difference, in the unit of the weights.
pub const FD_STEP: f64 = 1e-5;
/// Relative part of the acceptance test.
pub const FD_REL: f64 = 1e-6;
/// Step of the five-point stencil that estimates `L'''` for the truncation term. Its own
/// rounding error, about `3 rho / h^3 ~ 3e-5 |L|`, is negligible next to `|L'''|`, and its
/// truncation (`h^2 L^(5) / 4`) moves it by about 1% between h = 1e-3 and 3e-4.
pub const STENCIL_STEP: f64 = 1e-3;

/// The absolute floor of the acceptance test for one gradient entry: the two error terms of
/// the central difference `(L(w + e) - L(w - e)) / 2e`, with `e = 1e-5`.
///
/// - Rounding: each f64 loss carries an error `rho`, so the quotient carries up to `rho / e`.
///   Measured over 3000 random tanh-RNN cases (steps of 1e-8, where rounding dominates),
///   `rho <= 43 eps |L|` (the gated cells: `1.3 eps max(|L|, 1)` over 2000 cases,
///   `measure_loss_rounding` in `kernels/tests/gated_reference.rs`); and however small `L` is, each sample's `ln(fl(1 + e^-d))` is off
///   by up to an absolute `eps`. The floor takes `64 eps max(|L|, 1)`: `1.4e-9` at `e = 1e-5`
///   for `|L| <= 1`.
/// - Truncation: `e^2 / 6 |L'''(xi)|`. `|L'''|` is heavy-tailed on this ensemble: mostly
///   below 10, but up to 2100 on recurrent weights of H = 10, T = 6 windows, and not always
///   where `|g|` is large (seen: `|g| = 1.5e-3` with `L''' = -324`, a truncation of 5.4e-9,
///   3.6e-6 relative, checked to scale as `e^2`). One constant floor covering the tail would
///   be `1.67e-11 * 2100 = 3.5e-8`, too coarse for the small entries, so the term is taken
///   per entry from a five-point stencil of `L'''`, doubled for the stencil's own error.
///
/// Both terms come from forward passes only, so a wrong backward pass cannot widen them.
/// Typical floors are 1.4e-9 (`|L| <= 1`, `|L'''| ~ 1`); the largest about 1e-8 (`|L| = 7`).
#[must_use]
pub fn fd_floor(loss: f64, third_derivative: f64) -> f64 {
    64.0 * f64::EPSILON * loss.abs().max(1.0) / FD_STEP
        + 2.0 * FD_STEP * FD_STEP / 6.0 * third_derivative.abs()
}

/// Entry `i` of `case`'s gradient, `g` (the backward pass's, at loss `loss`), against the
/// central difference of the loss: returns `(central difference, tolerance)`, the tolerance
/// `FD_REL |g| + fd_floor(loss, L3)` with the third derivative `L3` from a five-point
/// stencil. `params` is a scratch copy of `case.params`, left as it was.
pub fn central_difference(
    case: &Case,
    params: &mut Params<f64>,
    i: usize,
    loss: f64,
    g: f64,
) -> (f64, f64) {
    let mut loss_at = |step: f64| loss_moved(case, params, i, step);
    let ((plus, e_plus), (minus, e_minus)) = (loss_at(FD_STEP), loss_at(-FD_STEP));
    let fd = (plus - minus) / (e_plus - e_minus);
    let h = STENCIL_STEP;
    let l3 = (loss_at(2.0 * h).0 - 2.0 * loss_at(h).0 + 2.0 * loss_at(-h).0 - loss_at(-2.0 * h).0)
        / (2.0 * h * h * h);
    (fd, FD_REL * g.abs() + fd_floor(loss, l3))
}

/// The loss of `case` with entry `i` of its parameters moved by `step`, and the step actually
/// taken (`w + step` rounds); `params` is a scratch copy of `case.params`, left as it was.
pub fn loss_moved(case: &Case, params: &mut Params<f64>, i: usize, step: f64) -> (f64, f64) {
    let w = case.params.data[i];
    params.data[i] = w + step;
    let taken = params.data[i] - w;
    let l = case.loss_with(params);
    params.data[i] = w;
    (l, taken)
}
