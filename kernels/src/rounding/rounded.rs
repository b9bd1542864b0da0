//! [`Rounded`]: a number that carries [`REPLICAS`] first-order replicas of the f32 rounding
//! error of the computation that produced it, each rounding an independent random sign times
//! its bound. Running the generic scalar reference ([`crate::reference`]) on it gives, for
//! every result, the exact value and an estimate of the standard deviation of an f32
//! evaluation's error: the probabilistic rounding model of `bitrnn verify` (Higham & Mary,
//! SIAM J. Sci. Comput. 41(5), 2019), applied operation by operation instead of by a
//! hand-derived propagation. The gated cells' checks use it; the tanh RNN keeps its
//! hand-derived [`super::window_bound`] and `bitrnn::verify::bound_window`.
//!
//! # The model
//!
//! Every input (weights, state, constants) is an f32, exact. Each operation returns its exact
//! (f64) value, and in each replica the operands' errors carried through its derivative plus
//! its own rounding, `±u |result|` with an independent random sign per replica (a sum of `n`
//! terms thus gets `n - 1` independent roundings of its partial sums, in whatever order the
//! reference adds; the kernels' order has the same count and partial sums of the same size):
//!
//! ```text
//! a + b:  d = da + db + s u |a + b|          a * b:  d = b da + a db + s u |a b|
//! a / b:  d = (da - (a / b) db) / b + s u |a / b|
//! f(a):   d = f'(a) da + s * (f's approximation error bound, crate::approx)
//! ```
//!
//! A product with an exact 0 or 1 (the one-hot input) or a sum with an exact 0 rounds
//! nothing. A fused multiply-add rounds once where the model rounds twice. The tolerance of a
//! result is [`LAMBDA`] times the replicas' root mean square ([`Rounded::tolerance`]): with 16
//! replicas, `error / rms` of a sum of many independent errors is Student's t with 16 degrees
//! of freedom, beyond 10 with probability 3e-8, and a result dominated by one rounding has
//! `|error| <= rms`.
//!
//! The kernels' head computes the two-class softmax from the logit difference with
//! `softplus` and `sigmoid`, the reference from the two logits with `exp`, `ln` and a
//! division: different roundings of the same size (compare [`super::LOSS_REL`] and
//! [`super::P1_REL`] with the `exp`, `ln` and division roundings here), which the factor 10
//! covers. The kernels' flush of gradients below 2^-64 and clamp of the gates at
//! [`crate::simd::GATE_CLAMP`] are added as roundings of their size where they can apply.

use super::{EXP_REL, LN_REL, TANH_REL, U};
use crate::approx;
use crate::params::Params;
use crate::real::Real;
use crate::reference;
use core::cell::Cell;
use core::cmp::Ordering;
use core::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};

/// Replicas of each error.
pub const REPLICAS: usize = 16;
/// The tolerance is this many times the replicas' root mean square (module docs).
pub const LAMBDA: f64 = 10.0;

/// A value with replicas of its rounding error (module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rounded {
    /// The exact value of the formulas (computed in f64).
    pub v: f64,
    d: [f64; REPLICAS],
}

std::thread_local! {
    static SIGNS: Cell<(u64, u64, u32)> = const { Cell::new((0x9e37_79b9_7f4a_7c15, 0, 0)) };
}

/// `x` times an independent random sign in each replica.
fn random_signs(x: f64) -> [f64; REPLICAS] {
    SIGNS.with(|cell| {
        let (mut state, mut bits, mut left) = cell.get();
        let out = core::array::from_fn(|_| {
            if left == 0 {
                // SplitMix64.
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                bits = z ^ (z >> 31);
                left = 64;
            }
            let bit = bits & 1;
            bits >>= 1;
            left -= 1;
            if bit == 1 { x } else { -x }
        });
        cell.set((state, bits, left));
        out
    })
}

impl Rounded {
    /// Restarts this thread's random signs from `seed`, so that a computation's tolerances
    /// are a function of the seed.
    pub fn reseed(seed: u64) {
        SIGNS.with(|cell| cell.set((seed, 0, 0)));
    }
    /// An exact input (every parameter, state and constant is an f32).
    #[must_use]
    pub const fn exact(v: f64) -> Self {
        Self {
            v,
            d: [0.0; REPLICAS],
        }
    }
    /// The replicas' root mean square: the estimated standard deviation of the error.
    #[must_use]
    pub fn rms(&self) -> f64 {
        (self.d.iter().map(|x| x * x).sum::<f64>() / REPLICAS as f64).sqrt()
    }
    /// The tolerance of an f32 evaluation of this value: [`LAMBDA`] times [`Rounded::rms`].
    #[must_use]
    pub fn tolerance(&self) -> f64 {
        LAMBDA * self.rms()
    }
    /// A result `v` with error replicas `slope * d + own * random sign`.
    fn through(self, v: f64, slope: f64, own: f64) -> Self {
        let noise = random_signs(own);
        Self {
            v,
            d: core::array::from_fn(|i| slope * self.d[i] + noise[i]),
        }
    }
    fn combine(v: f64, a: &Self, ca: f64, b: &Self, cb: f64, own: f64) -> Self {
        let noise = random_signs(own);
        Self {
            v,
            d: core::array::from_fn(|i| ca * a.d[i] + cb * b.d[i] + noise[i]),
        }
    }
    fn is_exact(&self) -> bool {
        self.d.iter().all(|&x| x == 0.0)
    }
}

impl PartialEq for Rounded {
    fn eq(&self, other: &Self) -> bool {
        self.v == other.v
    }
}

impl PartialOrd for Rounded {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.v.partial_cmp(&other.v)
    }
}

impl Add for Rounded {
    type Output = Self;
    fn add(self, b: Self) -> Self {
        let v = self.v + b.v;
        let own = if self.v == 0.0 || b.v == 0.0 {
            0.0
        } else {
            U * v.abs()
        };
        Self::combine(v, &self, 1.0, &b, 1.0, own)
    }
}

impl Sub for Rounded {
    type Output = Self;
    fn sub(self, b: Self) -> Self {
        self + (-b)
    }
}

impl Neg for Rounded {
    type Output = Self;
    fn neg(self) -> Self {
        Self {
            v: -self.v,
            d: self.d.map(|x| -x),
        }
    }
}

impl Mul for Rounded {
    type Output = Self;
    fn mul(self, b: Self) -> Self {
        let v = self.v * b.v;
        let exact_factor = |x: &Self| x.is_exact() && (x.v == 0.0 || x.v.abs() == 1.0);
        let own = if exact_factor(&self) || exact_factor(&b) {
            0.0
        } else {
            U * v.abs()
        };
        Self::combine(v, &self, b.v, &b, self.v, own)
    }
}

impl Div for Rounded {
    type Output = Self;
    fn div(self, b: Self) -> Self {
        let v = self.v / b.v;
        Self::combine(v, &self, 1.0 / b.v, &b, -v / b.v, U * v.abs())
    }
}

impl AddAssign for Rounded {
    fn add_assign(&mut self, b: Self) {
        *self = *self + b;
    }
}

impl SubAssign for Rounded {
    fn sub_assign(&mut self, b: Self) {
        *self = *self - b;
    }
}

impl Real for Rounded {
    const ZERO: Self = Self::exact(0.0);
    const ONE: Self = Self::exact(1.0);
    fn from_f64(v: f64) -> Self {
        // Constants of the formulas are f32 numbers; others carry one rounding.
        if f64::from(v as f32) == v {
            Self::exact(v)
        } else {
            Self::exact(v).through(v, 1.0, U * v.abs())
        }
    }
    fn to_f64(self) -> f64 {
        self.v
    }
    fn tanh(self) -> Self {
        let t = self.v.tanh();
        let own = (TANH_REL * t.abs()).min(f64::from(approx::TANH_MAX_ABS));
        self.through(t, 1.0 - t * t, own)
    }
    fn exp(self) -> Self {
        let y = self.v.exp();
        self.through(y, y, EXP_REL * y)
    }
    fn ln(self) -> Self {
        let y = self.v.ln();
        self.through(y, 1.0 / self.v, LN_REL * y.abs())
    }
    fn sqrt(self) -> Self {
        let y = self.v.sqrt();
        self.through(y, 0.5 / y, U * y)
    }
    fn max(self, other: Self) -> Self {
        if self.v >= other.v { self } else { other }
    }
    fn sigmoid(self) -> Self {
        let y = if self.v >= 0.0 {
            1.0 / (1.0 + (-self.v).exp())
        } else {
            let e = self.v.exp();
            e / (1.0 + e)
        };
        // The kernels clamp a gate's argument at GATE_CLAMP: at most sigmoid(-30) off.
        let cut = f64::from(crate::simd::GATE_CLAMP);
        let clamp = if self.v.abs() > cut - 1.0 {
            1.0 / (1.0 + cut.exp())
        } else {
            0.0
        };
        let own = 2.0 * U * f64::from(approx::SIGMOID_MAX_ULP) * y + clamp;
        self.through(y, y * (1.0 - y), own)
    }
}

/// One window of the reference run on [`Rounded`] numbers: each result's exact value and the
/// tolerance of the SIMD kernels' f32 result ([`Rounded::tolerance`]), plus the kernels'
/// flushes below [`FLUSH`](crate::simd::FLUSH): of the gradients in every term of a gradient
/// sum (`S T` of them), and of the gated cells' `h` and `c` at every step (carried with a
/// gain below 1: the gates and `tanh'` are at most 1).
#[derive(Clone, Debug)]
pub struct RoundedWindow {
    /// The mean loss.
    pub loss: (f64, f64),
    /// The [`Params`] layout.
    pub grad: Vec<(f64, f64)>,
    /// `[streams][state_rows * hidden]`.
    pub state: Vec<(f64, f64)>,
}

impl RoundedWindow {
    /// The window `win` from weights `p` and carried state `state0` (f32 numbers held in
    /// f64); `seed` chooses the random signs.
    #[must_use]
    pub fn new<S: reference::Symbol>(
        p: &Params<f64>,
        state0: &[f64],
        win: &reference::Window<S>,
        seed: u64,
    ) -> Self {
        Rounded::reseed(seed);
        let pr = p.cast::<Rounded>();
        let s0: Vec<Rounded> = state0.iter().map(|&v| Rounded::exact(v)).collect();
        let mut grad = Params::filled_as(p.layout(), Rounded::exact(0.0));
        let mut last = vec![Rounded::exact(0.0); s0.len()];
        let loss = reference::forward_backward(&pr, &s0, win, &mut grad, &mut last);
        let flush = f64::from(crate::simd::FLUSH);
        let grad_flush = flush * (win.streams * win.time_step) as f64;
        let state_flush = flush * win.time_step as f64;
        let pair = |r: &Rounded, extra: f64| (r.v, r.tolerance() + extra);
        Self {
            loss: pair(&loss, 0.0),
            grad: grad.data.iter().map(|r| pair(r, grad_flush)).collect(),
            state: last.iter().map(|r| pair(r, state_flush)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 evaluations of random dot products and their tanh stay within the tolerance, and
    /// the tolerance is informative (the worst error is more than 1% of it).
    #[test]
    fn dot_products_within_tolerance() {
        Rounded::reseed(7);
        let mut state = 12_345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let mut worst = 0.0f64;
        for _ in 0..200 {
            let n = 64;
            let a: Vec<f32> = (0..n).map(|_| next() as f32).collect();
            let b: Vec<f32> = (0..n).map(|_| next() as f32).collect();
            let mut r = Rounded::ZERO;
            let mut f = 0.0f32;
            for i in 0..n {
                r += Rounded::exact(f64::from(a[i])) * Rounded::exact(f64::from(b[i]));
                f += a[i] * b[i];
            }
            let err = (f64::from(f) - r.v).abs();
            assert!(err <= r.tolerance(), "{err} > {}", r.tolerance());
            worst = worst.max(err / r.tolerance());
        }
        assert!(worst > 0.01, "tolerance uninformative: worst ratio {worst}");
    }
}
