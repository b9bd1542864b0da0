//! The model behind `bitrnn verify` (its flags and table are `cmd::verify`): the SIMD engine
//! against the f64 reference, number by number, within tolerances derived from the
//! arithmetic; and the reference's gradient against central finite differences.
//!
//! # What is compared
//!
//! The real [`Trainer`] (engine simd, all cores) runs `--steps` windows of the training
//! layout from [`model::init_params`] and [`Dataset::generate`]: stream `s` is samples
//! `s * 2000 ..`, so with the seed's shape these are the first windows of `bitrnn train`.
//! Before each window the f64 reference ([`reference::forward_backward`],
//! [`reference::adagrad_step`]) is given the trainer's own weights, Adagrad accumulator and
//! carried state (f32 numbers, exact in f64) and the same window; the trainer steps; then the
//! window's loss, the gradient of each tensor, each updated tensor and the new carried state
//! are compared. Re-synchronising every window keeps each comparison to one window's
//! arithmetic; a free-running f64 run would drift from the f32 one by rounding amplified
//! through the training dynamics, which no tolerance can be derived for.
//!
//! # Tolerances
//!
//! Every compared number gets its own tolerance, from the standard probabilistic model of
//! rounding (Higham & Mary, *A new approach to probabilistic rounding error analysis*, SIAM
//! J. Sci. Comput. 41(5), 2019): each f32 operation returns `op(a, b) (1 + d)`, `|d| <= u =
//! 2^-24`, the `d` independent with mean zero; to first order the error of a result is then
//! `sum_i c_i d_i`, `c_i` its sensitivity to the `i`-th rounding, with standard deviation at
//! most `sigma = sqrt(sum_i c_i^2 b_i^2)`, `b_i` the bound on that rounding's error.
//!
//! A worst-case bound (`sum_i |c_i| b_i`, Higham's `gamma(k)`) was tried first and is sound,
//! but it assumes every error aligned with every weight's sign through the recurrence: at
//! hidden 64 it came out 10^4..10^7 times the observed errors and above the gradients
//! themselves, so it could not have caught a wrong gradient. The probabilistic model follows
//! the actual cancellations.
//!
//! `sigma` is measured by [`bound_window`]: it runs [`REPLICAS`] copies of the window's
//! linearised error propagation along the exact (f64) trajectory, with every rounding an
//! independent random sign times its bound `b_i` (the largest variance a rounding bounded by
//! `b_i` can have), and takes the root mean square of each result over the replicas. The
//! tolerance is `LAMBDA = 10` times that: for a result that is a sum of many independent
//! errors (Gaussian), `error / rms` over 16 replicas is Student's t with 16 degrees of
//! freedom, beyond 10 with probability 3e-8; a result dominated by one rounding has
//! `|error| <= b = rms`. Where the model's independence is doubtful, the bound is taken in the
//! worst case instead and added: the sums' roundings (the same accumulator, `gamma(k)` times
//! the sum of the terms' magnitudes, `k` = the terms per SIMD lane + a product rounding + the
//! levels of the lane sum + the levels of the shards' pairwise tree), the flush of `dl` and
//! `dz` below `FLUSH = 2^-64`, and the optimizer step's own roundings.
//!
//! The rounding sources and their bounds, per stream, step and hidden unit (`h` exact, `E`
//! the propagated error replicas):
//!
//! - `z = (w_xh[x] + b_h) + sum_k w_hh[j][k] h_k`: propagated `sum_k w_jk E_k`; roundings of
//!   `w_xh + b_h`, of each product (where there is no FMA) and of each partial sum `p_k`: one
//!   source of bound `u sqrt(zx^2 + sum_k (w_jk h_k)^2 + sum_k p_k^2)` (independent sources
//!   entering the same way add in variance).
//! - `h = tanh(z)`: `tanh'(z) = 1 - h^2` times `z`'s error, plus [`approx::tanh`]'s error,
//!   at most `TANH_MAX_ULP` ulp (an ulp is at most `2u |h|`) and `TANH_MAX_ABS`; it is the
//!   f32 rounding of a rational within 8e-9 of tanh, so it is modelled as rounding too.
//! - The logit difference `d = (b_y[1] - b_y[0]) + sum_j wy_j h_j`, `wy = w_hy[1] - w_hy[0]`:
//!   as `z`, with the roundings of `wy` and `b_y[1] - b_y[0]`.
//! - Loss `softplus(±d)`: `sigmoid(±d)` times `d`'s error, plus the head's formula
//!   ([`LOSS_REL`] of the loss: `exp` and `ln` within their ulp bounds, 6 roundings; derived
//!   in [`bitrnn_kernels::rounding`]). `p1 = sigmoid(d)`: `p1 (1 - p1)` times `d`'s error,
//!   plus [`P1_REL`] of `p1`; `dl = (p1 - y) fl(1/n)`: 3 more roundings of `|p1 - y| / n`.
//!   The loss sum adds `gamma(m + levels)` of the losses, `m` the terms per lane and
//!   `levels` those of the lane sum, and the mean one `u` for its rounding to f32.
//! - Backward, `dh = wy_j dl + sum_i w_hh[i][j] dz_{t+1}[i]`: as `z`; `g = 1 - h^2` carries
//!   `-2h` times `h`'s error and the roundings of `h^2` and the difference; `dz = dh g` one
//!   more rounding.
//! - Gradient entries sum `n = S T` products `a b` (`dz h_{t-1}`, `dz`, `dl h`, `dl`), each
//!   off by `e_a b + a e_b`; `b_h = dw_xh[0] + dw_xh[1]` adds one rounding.
//! - Weights after Adagrad, `a' = a + g^2`, `w' = w - lr g / sqrt(a')`, from a gradient
//!   within `e` (its tolerance) of the reference's: `e_a = (2|g| + e) e + gamma(2) (a + (|g| +
//!   e)^2)`, the step moves by at most `lr (e / sqrt(a'_lo) + (|g| + e) e_a / (2
//!   a'_lo^1.5))`, `a'_lo = max(a, a' - e_a)`, plus `gamma(4)` of itself (`lr g`, the
//!   division, the square root and half of its argument's rounding), and the subtraction
//!   rounds once, `u |w'|`: all worst case.
//!
//! Second-order terms (products of two errors, relative size `~1e-6`) are neglected, and so
//! is the f64 reference's own error (the same analysis with `u = 2^-53`, `2^-29` of these).
//! The unit tests check that [`bound_window`]'s own f64 trajectory is the reference's.
//!
//! # Finite differences
//!
//! At the last window, the reference's f64 gradient against central differences of the
//! reference's f64 loss (window and carried state fixed), on every entry when there are at
//! most [`FD_ALL_ENTRIES`], else on the largest-gradient entry and [`FD_RANDOM`] random ones of
//! each tensor. With `eps = 2^-13 max(1, |w|)`, `D1 = D(eps)`, `D2 = D(2 eps)`:
//! `D1 = g + c eps^2 + O(eps^4)` and `D2 = g + 4 c eps^2 + O(eps^4)`, so the Richardson value
//! `(4 D1 - D2) / 3 = g + O(eps^4)` is compared, and its correction `|D2 - D1| / 3` bounds what
//! is left while the `eps^2` term dominates. Each f64 loss evaluation is off by at most
//! `rho = 2^-29` times the f32 loss tolerance, which moves the Richardson value by at most
//! `1.5 rho / eps`; the analytic gradient is off by `2^-29` times its f32 tolerance `t_g`.
//! Tolerance, with a factor 2 for the `O(eps^4)` terms:
//! `tol = 2 (|D2 - D1| / 3 + 1.5 rho / eps) + 2^-29 t_g`.

use crate::config::{BATCH_SIZE, TrainConfig, TrainSettings, default_threads};
use crate::data::Dataset;
use crate::error::Result;
use crate::model;
use crate::shards::shard_ranges;
use crate::train::Trainer;
use bitrnn_kernels::approx;
use bitrnn_kernels::rounding::RoundedWindow;
use bitrnn_kernels::rounding::{
    LOSS_REL, P1_REL, TANH_REL, U, gamma, lane_sum_roundings, sigmoid, softplus,
};
use bitrnn_kernels::simd::{FLUSH, groups_for};
use bitrnn_kernels::{Cell, Layout, Params, reference};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use serde::Serialize;

/// `2^-29 = 2^-53 / 2^-24`: the f64 reference's error bounds relative to the f32 ones.
pub const F64_OVER_F32: f64 = 1.0 / 536_870_912.0;
/// Replicas of the error propagation, and the multiple of their standard deviation that is
/// the tolerance: see the module docs.
pub const REPLICAS: usize = 16;
pub const LAMBDA: f64 = 10.0;
/// Finite differences on every entry up to this many parameters.
pub const FD_ALL_ENTRIES: usize = 256;
/// Random entries per tensor above that (plus the largest-gradient one).
pub const FD_RANDOM: usize = 4;
/// Finite-difference step, relative: `2^-13`.
pub const FD_EPS: f64 = 1.0 / 8192.0;
/// One shape to check (the flags' limits and the default shapes are in `crate::cli`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shape {
    #[serde(with = "crate::config::cell_name")]
    pub cell: Cell,
    pub hidden: usize,
    pub streams: usize,
    pub time_step: usize,
}

/// One compared quantity over the windows: its largest errors, and the largest ratio of an
/// entry's error to its own tolerance, with that tolerance.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    /// Entries compared per window.
    pub entries: usize,
    pub max_abs_err: f64,
    /// Normwise: `max |err| / max |reference|` of a window, worst window.
    pub max_rel_err: f64,
    /// The tolerance of the entry with the worst `err / tol`.
    pub tol: f64,
    /// The worst `err / tol` (infinite when an error is NaN); the check passes when <= 1.
    pub ratio: f64,
    /// The window (0-based) of that ratio.
    pub window: usize,
    pub pass: bool,
}

impl Check {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            entries: 0,
            max_abs_err: 0.0,
            max_rel_err: 0.0,
            tol: f64::NAN,
            ratio: f64::NEG_INFINITY,
            window: 0,
            pass: true,
        }
    }

    /// Adds one window's comparison of `got` against `want`, entry `i` within `tol[i]`. A
    /// NaN error is the largest error, with an infinite ratio.
    fn add(&mut self, window: usize, got: &[f64], want: &[f64], tol: &[f64]) {
        assert!(
            got.len() == want.len() && got.len() == tol.len(),
            "{}: lengths",
            self.name
        );
        let (mut err, mut scale) = (0.0f64, 0.0f64);
        for ((&g, &w), &t) in got.iter().zip(want).zip(tol) {
            let d = (g - w).abs();
            if exceeds(d, err) {
                err = d;
            }
            scale = scale.max(w.abs());
            let ratio = if d.is_nan() {
                f64::INFINITY
            } else if d == 0.0 {
                0.0
            } else {
                d / t
            };
            if ratio > self.ratio {
                self.ratio = ratio;
                self.tol = t;
                self.window = window;
            }
        }
        let rel = if scale > 0.0 { err / scale } else { err };
        self.entries = got.len();
        if exceeds(err, self.max_abs_err) {
            self.max_abs_err = err;
        }
        if exceeds(rel, self.max_rel_err) {
            self.max_rel_err = rel;
        }
        self.pass = self.ratio <= 1.0;
    }
}

/// Whether `x` should replace the running maximum `max`: larger, or the first NaN.
fn exceeds(x: f64, max: f64) -> bool {
    x > max || (x.is_nan() && !max.is_nan())
}

/// The report of one shape.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeReport {
    #[serde(flatten)]
    pub shape: Shape,
    pub steps: usize,
    pub seed: u64,
    pub lane_groups: usize,
    pub shards: usize,
    pub threads: usize,
    pub checks: Vec<Check>,
    /// The window (0-based) of the finite-difference check: the last one.
    pub fd_window: usize,
    /// Entries checked by finite differences.
    pub fd_entries: usize,
    pub fd_checks: Vec<Check>,
    pub pass: bool,
}

/// Everything `verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub pass: bool,
    pub simd_level: &'static str,
    pub unit_roundoff: f64,
    pub shapes: Vec<ShapeReport>,
}

/// How the SIMD engine sums over a window: `per_lane` terms accumulated in each lane (the
/// largest shard's lane groups times `T`) and `shards` partial gradients summed pairwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SumLayout {
    pub per_lane: usize,
    pub shards: usize,
}

impl SumLayout {
    /// The trainer's layout for hidden size `hidden`, `streams` x `time_step`
    /// ([`shard_ranges`]).
    #[must_use]
    pub fn new(hidden: usize, streams: usize, time_step: usize) -> Self {
        let ranges = shard_ranges(groups_for(streams), hidden, time_step);
        let groups = ranges.iter().map(|(a, b)| b - a).max().unwrap_or(1);
        Self {
            per_lane: groups * time_step,
            shards: ranges.len(),
        }
    }
    /// Levels of the pairwise tree over the shards.
    #[must_use]
    pub fn shard_levels(self) -> usize {
        self.shards.next_power_of_two().trailing_zeros() as usize
    }
    /// Roundings in a row of a gradient entry's sum: the lane's accumulations, a product
    /// rounding where the build has no FMA, the levels of the lane sum
    /// ([`lane_sum_roundings`]) and the tree.
    #[must_use]
    pub fn gradient_roundings(self) -> usize {
        lane_sum_roundings(self.per_lane) + self.shard_levels()
    }
    /// Roundings in a row of the loss sum: the lane's accumulations and the levels of the lane
    /// sum (the trainer adds the shards' sums in f64).
    #[must_use]
    pub fn loss_roundings(self) -> usize {
        lane_sum_roundings(self.per_lane) - 1
    }
}

/// One value per replica of the error propagation.
type Rep = [f64; REPLICAS];

/// Independent random signs, one per replica, 64 per draw of the generator.
struct Signs {
    rng: Xoshiro256PlusPlus,
    bits: u64,
    left: u32,
}

impl Signs {
    fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            bits: 0,
            left: 0,
        }
    }
    /// `x` times an independent random sign in each replica.
    fn times(&mut self, x: f64) -> Rep {
        core::array::from_fn(|_| {
            if self.left == 0 {
                self.bits = self.rng.next_u64();
                self.left = 64;
            }
            let bit = self.bits & 1;
            self.bits >>= 1;
            self.left -= 1;
            if bit == 1 { x } else { -x }
        })
    }
}

/// `sqrt(mean(v^2))`: the replicas' estimate of the standard deviation of an error.
fn rms(v: &Rep) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / REPLICAS as f64).sqrt()
}

/// `a * x + y` replica by replica.
#[inline]
fn axpy(a: f64, x: &Rep, y: &mut Rep) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// One window's exact values (f64, along the reference's trajectory) and the tolerance of the
/// SIMD engine's result for each; see the module docs.
#[derive(Clone, Debug)]
pub struct Bound {
    /// Mean loss, and the tolerance of the trainer's mean loss (an f32).
    pub loss: f64,
    pub loss_tol: f64,
    /// `h_{T-1}`, `[streams][hidden]`.
    pub state: Vec<f64>,
    pub state_tol: Vec<f64>,
    /// The [`Params`] layout.
    pub grad: Vec<f64>,
    pub grad_tol: Vec<f64>,
}

/// The tolerances of one window from weights `p` and carried state `h0` (f32 numbers, exact
/// in both engines): [`REPLICAS`] first-order propagations of random rounding errors along the
/// exact trajectory, `seed` choosing their signs; see the module docs for each line.
#[must_use]
pub fn bound_window(
    p: &Params<f64>,
    h0: &[f64],
    win: &reference::Window,
    sums: SumLayout,
    seed: u64,
) -> Bound {
    let (hd, s_n, t_n) = (p.hidden, win.streams, win.time_step);
    assert_eq!(h0.len(), s_n * hd, "h0 is [streams][hidden]");
    let n = s_n * t_n;
    let inv_n = 1.0 / n as f64;
    let (w_xh, w_hh, b_h, w_hy, b_y) = (p.w_xh(), p.w_hh(), p.b_h(), p.w_hy(), p.b_y());
    let wy: Vec<f64> = (0..hd).map(|j| w_hy[hd + j] - w_hy[j]).collect();
    let by = b_y[1] - b_y[0];
    let tanh_abs = f64::from(approx::TANH_MAX_ABS);
    let mut sign = Signs::new(seed);
    let zero: Rep = [0.0; REPLICAS];

    let layout = p.layout();
    let [r_xh, r_hh, r_bh, _, r_hy, r_by] = layout.ranges();
    let len = layout.len();
    let (mut grad, mut g_err, mut g_terms) = (vec![0.0; len], vec![zero; len], vec![0.0; len]);
    let mut add = |i: usize, a: f64, e_a: &Rep, b: f64, e_b: &Rep| {
        grad[i] += a * b;
        g_terms[i] += (a * b).abs();
        for r in 0..REPLICAS {
            g_err[i][r] += e_a[r] * b + a * e_b[r];
        }
    };
    let (mut state, mut state_tol) = (vec![0.0; s_n * hd], vec![0.0; s_n * hd]);
    let (mut loss_sum, mut loss_err) = (0.0, zero);

    // One stream at a time: h[t * hd + j] is h_{t-1}, t = 0 the carried state (no error).
    let mut h = vec![0.0; (t_n + 1) * hd];
    let mut e_h = vec![zero; (t_n + 1) * hd];
    let (mut dl, mut e_dl) = (vec![0.0; t_n], vec![zero; t_n]);
    let (mut dz, mut e_dz) = (vec![0.0; hd], vec![zero; hd]);
    let (mut dz_next, mut e_next) = (vec![0.0; hd], vec![zero; hd]);
    for s in 0..s_n {
        h[..hd].copy_from_slice(&h0[s * hd..(s + 1) * hd]);
        for t in 0..t_n {
            let sample = t * s_n + s;
            let x = usize::from(win.x[sample]);
            let y = f64::from(win.y[sample]);
            let (prev, cur) = h.split_at_mut((t + 1) * hd);
            let (e_prev, e_cur) = e_h.split_at_mut((t + 1) * hd);
            let (prev, e_prev) = (&prev[t * hd..], &e_prev[t * hd..]);
            for j in 0..hd {
                // z and the variance of its rounding: zx, each product, each partial sum.
                let zx = w_xh[x * hd + j] + b_h[j];
                let (mut z, mut var) = (zx, zx * zx);
                let mut e_z = zero;
                for k in 0..hd {
                    let w = w_hh[j * hd + k];
                    let prod = w * prev[k];
                    z += prod;
                    var += prod * prod + z * z;
                    axpy(w, &e_prev[k], &mut e_z);
                }
                let round = sign.times(U * var.sqrt());
                let hv = z.tanh();
                let slope = 1.0 - hv * hv;
                let e_tanh = sign.times((TANH_REL * hv.abs()).min(tanh_abs));
                cur[j] = hv;
                e_cur[j] = core::array::from_fn(|r| slope * (e_z[r] + round[r]) + e_tanh[r]);
            }
            let (hc, e_hc) = (&cur[..hd], &e_cur[..hd]);
            // d: the rounded wy and by, each product, each partial sum.
            let (mut d, mut var) = (by, by * by);
            let mut e_d = zero;
            for j in 0..hd {
                let prod = wy[j] * hc[j];
                d += prod;
                var += 2.0 * prod * prod + d * d;
                axpy(wy[j], &e_hc[j], &mut e_d);
            }
            let round = sign.times(U * var.sqrt());
            (0..REPLICAS).for_each(|r| e_d[r] += round[r]);

            let (arg, dir) = if y == 1.0 { (-d, -1.0) } else { (d, 1.0) };
            let loss = softplus(arg);
            loss_sum += loss;
            let head = sign.times(LOSS_REL * loss);
            for r in 0..REPLICAS {
                loss_err[r] += sigmoid(arg) * dir * e_d[r] + head[r];
            }
            let p1 = sigmoid(d);
            let head = sign.times(P1_REL * p1);
            let diff = p1 - y;
            let scaled = sign.times(gamma(3) * diff.abs());
            dl[t] = diff * inv_n;
            e_dl[t] =
                core::array::from_fn(|r| (p1 * (1.0 - p1) * e_d[r] + head[r] + scaled[r]) * inv_n);
        }
        state[s * hd..(s + 1) * hd].copy_from_slice(&h[t_n * hd..]);
        for j in 0..hd {
            state_tol[s * hd + j] = LAMBDA * rms(&e_h[t_n * hd + j]);
        }

        for t in (0..t_n).rev() {
            let x = usize::from(win.x[t * s_n + s]);
            for j in 0..hd {
                let mut dh = wy[j] * dl[t];
                let mut var = 2.0 * dh * dh;
                let mut e_dh = zero;
                axpy(wy[j], &e_dl[t], &mut e_dh);
                if t + 1 < t_n {
                    for i in 0..hd {
                        let w = w_hh[i * hd + j];
                        let prod = w * dz_next[i];
                        dh += prod;
                        var += prod * prod + dh * dh;
                        axpy(w, &e_next[i], &mut e_dh);
                    }
                }
                let round = sign.times(U * var.sqrt());
                let (hv, e_hv) = (h[(t + 1) * hd + j], &e_h[(t + 1) * hd + j]);
                let g = 1.0 - hv * hv;
                let g_round = sign.times(U * (g * g + hv.powi(4)).sqrt());
                dz[j] = dh * g;
                let prod_round = sign.times(U * dz[j].abs());
                e_dz[j] = core::array::from_fn(|r| {
                    (e_dh[r] + round[r]) * g
                        + dh * (g_round[r] - 2.0 * hv * e_hv[r])
                        + prod_round[r]
                });
            }
            for j in 0..hd {
                for k in 0..hd {
                    add(
                        r_hh.0 + j * hd + k,
                        dz[j],
                        &e_dz[j],
                        h[t * hd + k],
                        &e_h[t * hd + k],
                    );
                }
                add(r_xh.0 + x * hd + j, dz[j], &e_dz[j], 1.0, &zero);
                let k = (t + 1) * hd + j;
                add(r_hy.0 + hd + j, dl[t], &e_dl[t], h[k], &e_h[k]);
            }
            add(r_by.0 + 1, dl[t], &e_dl[t], 1.0, &zero);
            core::mem::swap(&mut dz, &mut dz_next);
            core::mem::swap(&mut e_dz, &mut e_next);
        }
    }

    // Coherent parts: the sums' roundings, worst case, and the flush of each dl and dz.
    let summation = gamma(sums.gradient_roundings());
    let flush = n as f64 * f64::from(FLUSH);
    let mut grad_tol: Vec<f64> = (0..len)
        .map(|i| LAMBDA * rms(&g_err[i]) + summation * g_terms[i] + flush)
        .collect();
    for j in 0..hd {
        let (x0, x1, b) = (r_xh.0 + j, r_xh.0 + hd + j, r_bh.0 + j);
        grad[b] = grad[x0] + grad[x1];
        let e: Rep = core::array::from_fn(|r| g_err[x0][r] + g_err[x1][r]);
        let terms = g_terms[x0] + g_terms[x1];
        grad_tol[b] = LAMBDA * rms(&e) + summation * terms + U * (terms + 2.0 * flush);
        let (hy0, hy1) = (r_hy.0 + j, r_hy.0 + hd + j);
        (grad[hy0], grad_tol[hy0]) = (-grad[hy1], grad_tol[hy1]);
    }
    let (by0, by1) = (r_by.0, r_by.0 + 1);
    (grad[by0], grad_tol[by0]) = (-grad[by1], grad_tol[by1]);

    let loss = loss_sum * inv_n;
    let loss_tol = (LAMBDA * rms(&loss_err) + gamma(sums.loss_roundings()) * loss_sum) * inv_n;
    Bound {
        loss,
        loss_tol: loss_tol + U * (loss + loss_tol),
        state,
        state_tol,
        grad,
        grad_tol,
    }
}

/// The tolerances of one window of a gated cell: the reference run on
/// [`bitrnn_kernels::rounding::Rounded`] numbers ([`RoundedWindow`]: the same probabilistic
/// model as [`bound_window`], propagated operation by operation through the reference's
/// formulas, with the kernels' flushes; `seed` chooses the signs).
#[must_use]
pub fn gated_bound(p: &Params<f64>, h0: &[f64], win: &reference::Window, seed: u64) -> Bound {
    let r = RoundedWindow::new(p, h0, win, seed);
    let split = |v: &[(f64, f64)]| -> (Vec<f64>, Vec<f64>) { v.iter().copied().unzip() };
    let (grad, grad_tol) = split(&r.grad);
    let (state, state_tol) = split(&r.state);
    Bound {
        loss: r.loss.0,
        loss_tol: r.loss.1,
        state,
        state_tol,
        grad,
        grad_tol,
    }
}

/// Tolerances of the weights after one Adagrad step with learning rate `lr` from weights `w`
/// and accumulator `a` (exact) and a gradient within `g_tol` of `g`; see the module docs.
#[must_use]
pub fn adagrad_tol(w: &[f64], a: &[f64], g: &[f64], g_tol: &[f64], lr: f64) -> Vec<f64> {
    (0..w.len())
        .map(|i| {
            let (gi, e) = (g[i].abs(), g_tol[i]);
            let a_new = a[i] + gi * gi;
            let e_a = (2.0 * gi + e) * e + gamma(2) * (a[i] + (gi + e) * (gi + e));
            let a_lo = a[i].max(a_new - e_a);
            let step = lr * gi / a_new.sqrt();
            let e_step = lr * (e / a_lo.sqrt() + (gi + e) * e_a / (2.0 * a_lo.powf(1.5)));
            let e_step = e_step + gamma(4) * (step + e_step);
            let w_new = (w[i] - lr * g[i] / a_new.sqrt()).abs();
            e_step + U * (w_new + e_step)
        })
        .collect()
}

/// The inputs and targets of window `window` of the epoch, time-major, as training lays them
/// out: stream `s` is samples `s * batch_size ..`, step `t` of the window is sample
/// `window * time_step + t` of the stream.
#[must_use]
pub fn window_bits(data: &Dataset, cfg: &TrainConfig, window: usize) -> (Vec<u8>, Vec<u8>) {
    let (s_n, t_n) = (cfg.streams(), cfg.time_step);
    let mut x = vec![0; s_n * t_n];
    let mut y = vec![0; s_n * t_n];
    for t in 0..t_n {
        for s in 0..s_n {
            let i = s * cfg.batch_size + window * t_n + t;
            x[t * s_n + s] = u8::from(data.x(i));
            y[t * s_n + s] = u8::from(data.y(i));
        }
    }
    (x, y)
}

/// The entries of each tensor to check by finite differences: all of them for small models,
/// else the largest-gradient entry and [`FD_RANDOM`] random ones of each tensor.
fn fd_entries(grad: &Params<f64>, seed: u64) -> Vec<Vec<usize>> {
    let all = grad.data.len() <= FD_ALL_ENTRIES;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xfd);
    grad.layout()
        .tensors()
        .map(|(_, (a, b))| {
            if all {
                return (a..b).collect();
            }
            let mut v = vec![
                (a..b)
                    .max_by(|&i, &j| grad.data[i].abs().total_cmp(&grad.data[j].abs()))
                    .expect("tensors are not empty"),
            ];
            for _ in 0..FD_RANDOM.min(b - a - 1) {
                loop {
                    let i = a + (rng.next_u64() % (b - a) as u64) as usize;
                    if !v.contains(&i) {
                        v.push(i);
                        break;
                    }
                }
            }
            v
        })
        .collect()
}

/// The finite-difference check of the reference's gradient `grad` (whose f32 bounds are
/// `grad_tol`) at weights `p`, state `h0` and window `win`, the f32 loss bound being
/// `loss_tol`; one [`Check`] per tensor and the number of entries checked.
#[allow(clippy::too_many_arguments)]
fn finite_differences(
    p: &Params<f64>,
    h0: &[f64],
    win: &reference::Window,
    grad: &Params<f64>,
    grad_tol: &[f64],
    loss_tol: f64,
    seed: u64,
    window: usize,
) -> (Vec<Check>, usize) {
    let rho = F64_OVER_F32 * loss_tol;
    let mut q = p.clone();
    let mut h_last = vec![0.0; h0.len()];
    let mut f = |q: &Params<f64>| reference::forward(q, h0, win, &mut h_last);
    let mut out = Vec::new();
    let mut count = 0;
    for ((name, _), idx) in p.layout().tensors().zip(fd_entries(grad, seed)) {
        let mut check = Check::new(format!("fd {name}"));
        let (mut got, mut want, mut tol) = (vec![], vec![], vec![]);
        for i in idx {
            let w = p.data[i];
            let eps = FD_EPS * w.abs().max(1.0);
            let mut diff = |e: f64| {
                q.data[i] = w + e;
                let (up, wu) = (f(&q), q.data[i]);
                q.data[i] = w - e;
                let (down, wd) = (f(&q), q.data[i]);
                q.data[i] = w;
                (up - down) / (wu - wd)
            };
            let (d1, d2) = (diff(eps), diff(2.0 * eps));
            got.push(grad.data[i]);
            // Richardson: (4 D1 - D2) / 3 cancels the eps^2 term; the correction
            // |D2 - D1| / 3 bounds what is left while eps^2 dominates.
            want.push((4.0 * d1 - d2) / 3.0);
            tol.push(2.0 * ((d2 - d1).abs() / 3.0 + 1.5 * rho / eps) + F64_OVER_F32 * grad_tol[i]);
        }
        count += got.len();
        check.add(window, &got, &want, &tol);
        out.push(check);
    }
    (out, count)
}

/// Runs one shape for `steps` windows; see the module docs.
pub fn verify_shape(shape: Shape, steps: usize, seed: u64) -> Result<ShapeReport> {
    let batch_size = BATCH_SIZE.max(shape.time_step);
    let cfg = TrainConfig::new(TrainSettings {
        data_size: shape.streams * batch_size,
        batch_size,
        time_step: shape.time_step,
        hidden: shape.hidden,
        cell: shape.cell,
        seed,
        threads: default_threads(),
        ..TrainSettings::SEED
    })?;
    let (s_n, t_n, h) = (cfg.streams(), cfg.time_step, cfg.hidden);
    let lr = f64::from(cfg.lr);
    let sums = SumLayout::new(h, s_n, t_n);
    let data = Dataset::generate(cfg.data_size, cfg.lags, seed);
    let mut trainer = Trainer::with_params(
        cfg.clone(),
        data.clone(),
        model::init_params(cfg.init, cfg.layout(), seed),
    )?;

    let mut checks = vec![Check::new("loss")];
    let layout = Layout::of(cfg.cell, h);
    let tensors: Vec<_> = layout.tensors().collect();
    checks.extend(tensors.iter().map(|(t, _)| Check::new(format!("grad {t}"))));
    checks.extend(
        tensors
            .iter()
            .map(|(t, _)| Check::new(format!("param {t}"))),
    );
    checks.push(Check::new(if cfg.cell == Cell::Lstm {
        "state h, c"
    } else {
        "state h"
    }));
    let (mut fd_checks, mut fd_count) = (Vec::new(), 0);
    let as_f64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();

    for k in 0..steps {
        let window = trainer.progress().window;
        let p = trainer.params().cast::<f64>();
        let accum = as_f64(&trainer.accumulator().data);
        let h0 = if window == 0 {
            vec![0.0; layout.state_len(s_n)]
        } else {
            as_f64(&trainer.carried_state())
        };
        let (x, y) = window_bits(&data, &cfg, window);
        let win = reference::Window {
            streams: s_n,
            time_step: t_n,
            x: &x,
            y: &y,
        };
        let mut grad = Params::<f64>::filled_as(layout, 0.0);
        let mut h_last = vec![0.0; h0.len()];
        let loss = reference::forward_backward(&p, &h0, &win, &mut grad, &mut h_last);
        let mut new_params = p.data.clone();
        // The seed's optimizer settings (no clip, no epsilon), which `adagrad_tol` assumes.
        let update = reference::Update::plain(lr);
        reference::adagrad_step(&mut new_params, &mut accum.clone(), &grad.data, update);
        let sign_seed = seed ^ ((k as u64) << 32);
        let b = match cfg.cell {
            Cell::Rnn => bound_window(&p, &h0, &win, sums, sign_seed),
            Cell::Gru | Cell::Lstm => gated_bound(&p, &h0, &win, sign_seed),
        };
        let param_tol = adagrad_tol(&p.data, &accum, &grad.data, &b.grad_tol, lr);

        let got_loss = f64::from(trainer.step()?);
        let got_grad = as_f64(trainer.last_grad());
        let got_params = as_f64(&trainer.params().data);
        let got_state = as_f64(&trainer.carried_state());

        checks[0].add(k, &[got_loss], &[loss], &[b.loss_tol]);
        for (i, &(_, (lo, hi))) in tensors.iter().enumerate() {
            let r = lo..hi;
            checks[1 + i].add(
                k,
                &got_grad[r.clone()],
                &grad.data[r.clone()],
                &b.grad_tol[r.clone()],
            );
            checks[1 + tensors.len() + i].add(
                k,
                &got_params[r.clone()],
                &new_params[r.clone()],
                &param_tol[r],
            );
        }
        checks[1 + 2 * tensors.len()].add(k, &got_state, &h_last, &b.state_tol);
        if k + 1 == steps {
            (fd_checks, fd_count) =
                finite_differences(&p, &h0, &win, &grad, &b.grad_tol, b.loss_tol, seed, k);
        }
    }
    let pass = checks.iter().chain(&fd_checks).all(|c| c.pass);
    Ok(ShapeReport {
        shape,
        steps,
        seed,
        lane_groups: groups_for(s_n),
        shards: sums.shards,
        threads: cfg.threads,
        checks,
        fd_window: steps - 1,
        fd_entries: fd_count,
        fd_checks,
        pass,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrnn_kernels::testing::Case;

    #[test]
    fn check_flags_errors_above_tolerance_and_nan() {
        let mut c = Check::new("x");
        c.add(0, &[1.0, 2.0], &[1.0, 2.0 + 1e-9], &[1e-8, 1e-8]);
        assert!(c.pass && (c.ratio - 0.1).abs() < 1e-6 && c.tol == 1e-8);
        c.add(1, &[1.0, 2.0], &[1.0, 2.125], &[1e-8, 0.5]);
        assert!(
            c.pass && c.window == 1 && c.tol == 0.5 && c.ratio == 0.25,
            "{c:?}"
        );
        c.add(2, &[1.5], &[1.0], &[0.25]);
        assert!(!c.pass && c.window == 2 && c.ratio == 2.0);
        let mut c = Check::new("nan");
        c.add(0, &[f64::NAN], &[1.0], &[1.0]);
        assert!(!c.pass && c.ratio.is_infinite() && c.max_abs_err.is_nan());
    }

    /// The bound is a bound on the distance from the reference only if its own f64 trajectory
    /// is the reference's: they agree to a millionth of the tolerance.
    #[test]
    fn bound_follows_the_reference() {
        for (hidden, streams, t, scale) in [(6, 20, 5, 1.0), (13, 9, 3, 3.0), (1, 3, 7, 1.0)] {
            // Glorot-sized weights (`scale` 1) or larger, a carried state in (-1, 1).
            let limit = scale * (3.0 / hidden as f64).sqrt();
            let c = Case::random(hidden, streams, t, limit, hidden as u64);
            let win = c.window();
            let mut grad = Params::<f64>::zeros(hidden);
            let mut h_last = vec![0.0; c.h0.len()];
            let loss = reference::forward_backward(&c.params, &c.h0, &win, &mut grad, &mut h_last);
            let b = bound_window(
                &c.params,
                &c.h0,
                &win,
                SumLayout::new(hidden, streams, t),
                7,
            );
            assert!((b.loss - loss).abs() <= 1e-6 * b.loss_tol);
            for ((a, r), tol) in b.grad.iter().zip(&grad.data).zip(&b.grad_tol) {
                assert!((a - r).abs() <= 1e-6 * tol, "{a} vs {r} ({tol})");
            }
            for ((a, r), tol) in b.state.iter().zip(&h_last).zip(&b.state_tol) {
                assert!((a - r).abs() <= 1e-6 * tol, "{a} vs {r} ({tol})");
            }
        }
    }

    /// The gated cells pass with informative tolerances (some error above 1% of its
    /// tolerance), at a small-kernel size and one that is a multiple of nothing convenient.
    #[test]
    fn gated_cells_pass_with_informative_tolerances() {
        for cell in [Cell::Gru, Cell::Lstm] {
            for (hidden, streams) in [(6, 40), (13, 21)] {
                let shape = Shape {
                    cell,
                    hidden,
                    streams,
                    time_step: 3,
                };
                let report = verify_shape(shape, 2, 0).unwrap();
                assert!(report.pass, "{report:#?}");
                let grad = report.checks.iter().filter(|c| c.name.starts_with("grad"));
                assert!(grad.clone().any(|c| c.ratio > 0.01), "{report:#?}");
            }
        }
    }

    /// The tolerances are tight enough to mean something: at the seed's shape an error of
    /// 1e-4 of the largest gradient entry is above every gradient tolerance, and the whole
    /// run passes.
    #[test]
    fn seed_shape_passes_with_tight_tolerances() {
        let seed = Shape {
            cell: Cell::Rnn,
            hidden: 6,
            streams: 250,
            time_step: 5,
        };
        let report = verify_shape(seed, 3, 0).unwrap();
        assert!(report.pass, "{report:#?}");
        for c in report.checks.iter().chain(&report.fd_checks) {
            // The weights' final rounding to f32 is taken worst case, and can come near it.
            if !c.name.starts_with("param") {
                assert!(c.ratio < 0.5, "{c:?}");
            }
            if c.name.starts_with("grad") {
                let largest = c.max_abs_err / c.max_rel_err;
                assert!(c.tol < 1e-4 * largest, "{c:?}");
            }
        }
        assert_eq!(report.fd_entries, 6 * 6 + 5 * 6 + 2);
    }

    /// The SIMD Adagrad update from a gradient off by up to `e` (here: exactly `e`, either
    /// sign) stays within [`adagrad_tol`] of the f64 step from the exact gradient.
    #[test]
    fn adagrad_tolerance_covers_the_f32_update() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let mut uniform = |lo: f64, hi: f64| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            f64::from((lo + (hi - lo) * u) as f32)
        };
        let n = 4096;
        let w: Vec<f64> = (0..n).map(|_| uniform(-2.0, 2.0)).collect();
        let a: Vec<f64> = (0..n).map(|_| uniform(0.1, 3.0)).collect();
        let g: Vec<f64> = (0..n).map(|_| uniform(-1.0, 1.0)).collect();
        let lr = f64::from(0.1f32);
        for rel in [0.0, 1e-6, 1e-3] {
            let e: Vec<f64> = g.iter().map(|v| (v.abs() * rel) as f32 as f64).collect();
            let tol = adagrad_tol(&w, &a, &g, &e, lr);
            let (mut w64, mut a64) = (w.clone(), a.clone());
            reference::adagrad_step(&mut w64, &mut a64, &g, reference::Update::plain(lr));
            let mut w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let mut a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            let g32: Vec<f32> = (0..n)
                .map(|i| (g[i] + if i % 2 == 0 { e[i] } else { -e[i] }) as f32)
                .collect();
            bitrnn_kernels::simd::adagrad_step(
                &mut w32,
                &mut a32,
                &g32,
                reference::Update::plain(0.1),
            );
            for i in 0..n {
                let err = (f64::from(w32[i]) - w64[i]).abs();
                assert!(
                    err <= tol[i],
                    "rel {rel}, entry {i}: {err:e} > {:e}",
                    tol[i]
                );
            }
        }
    }

    #[test]
    fn sum_layout_follows_the_shards() {
        // 250 streams: 32 lane groups of 8 or 16 of 16, the largest shard's groups times T
        // per lane.
        let groups = groups_for(250);
        assert_eq!(groups, 250usize.div_ceil(bitrnn_kernels::lanes::LANES));
        let s = SumLayout::new(6, 250, 5);
        let shards = shard_ranges(groups, 6, 5).len();
        assert_eq!(s.shards, shards);
        assert_eq!(s.per_lane, groups.div_ceil(shards) * 5);
        assert_eq!(
            s.shard_levels(),
            shards.next_power_of_two().trailing_zeros() as usize
        );
        assert_eq!(
            SumLayout {
                per_lane: 1,
                shards: 3
            }
            .shard_levels(),
            2
        );
        assert_eq!(
            SumLayout {
                per_lane: 1,
                shards: 1
            }
            .shard_levels(),
            0
        );
    }
}
