//! The f32 rounding-error model of the SIMD engine, the one every check of it uses: the
//! property tests (`kernels/tests/simd.rs`), the fuzz target (`bitrnn::fuzzing`) and
//! `bitrnn verify` (`bitrnn::verify`).
//!
//! Every f32 operation returns `op(a, b) (1 + d)` with `|d| <= u = 2^-24` ([`U`]); `k`
//! roundings in a row stay within [`gamma`]`(k)` (Higham, *Accuracy and Stability of
//! Numerical Algorithms*, 2nd ed., 3.1). On top of that model this module holds:
//!
//! - the head's relative errors, derived once from the arithmetic of `simd::head`
//!   ([`P1_REL`], [`LOSS_REL`]) and of the approximations it calls ([`EXP_REL`], [`LN_REL`]);
//! - the roundings of a sum the kernels accumulate per lane and then reduce across the
//!   [`LANES`] lanes ([`LANE_SUM_LEVELS`], [`lane_sum_roundings`]);
//! - the exact (f64) sigmoid and softplus of the logit difference;
//! - [`window_bound`]: a rigorous running error bound of one window of the SIMD engine,
//!   evaluated along the window's exact trajectory;
//! - [`Rounded`]: a number carrying replicas of its rounding error, for running the generic
//!   reference with tolerances (the gated cells' checks).
//!
//! `bitrnn verify` propagates the same roundings as random signs (a probabilistic model, far
//! tighter at large hidden sizes) in `bitrnn::verify`; only the propagation differs.
//!
//! Always compiled (unlike `crate::testing`): `bitrnn verify` ships with the binary.

mod rounded;
pub use rounded::{LAMBDA as ROUNDED_LAMBDA, REPLICAS as ROUNDED_REPLICAS, Rounded, RoundedWindow};

use crate::approx;
use crate::params::{Layout, Params};
use crate::reference;
use crate::simd::{self, LANES};

/// The f32 unit roundoff, `2^-24`.
pub const U: f64 = 1.0 / 16_777_216.0;

/// `gamma(k) = k u / (1 - k u)`: the relative error of `k` f32 roundings in a row.
#[must_use]
pub fn gamma(k: usize) -> f64 {
    let ku = k as f64 * U;
    ku / (1.0 - ku)
}

/// Relative errors of [`approx::exp`] and [`approx::ln`]: an f32 ulp is at most `2u` times
/// the (normal) value it is the ulp of.
pub const EXP_REL: f64 = 2.0 * U * approx::EXP_MAX_ULP as f64;
pub const LN_REL: f64 = 2.0 * U * approx::LN_MAX_ULP as f64;
/// Relative error of [`approx::tanh`] in ulps of its result, next to its absolute bound
/// [`approx::TANH_MAX_ABS`].
pub const TANH_REL: f64 = 2.0 * U * approx::TANH_MAX_ULP as f64;

/// Relative error of the head's probability `p1`: `q = 1/u` or `e q`, `e = exp(-|d|)`,
/// `u = fl(1 + e)`. `e`'s error ([`EXP_REL`]) passes through `1/(1 + e)` and `e/(1 + e)` at
/// most once (their relative condition numbers in `e` are `e/(1 + e) <= 1` and
/// `1/(1 + e) <= 1`); then 3 roundings (`1 + e`, the division, `e q`), and one spare `u`
/// for every product of two of these relative errors (`3 u EXP_REL + 3 u^2`, below
/// `u / 10^6`). The spare is what `(1 + u)^3 (1 + EXP_REL) - 1` needs beyond the first-order
/// sum, so no further `gamma`-style factor is due.
pub const P1_REL: f64 = EXP_REL + 4.0 * U;

/// Relative error of the head's per-sample loss `loss = max(s, 0) + (c q + ln(u))`,
/// `s = ±d`, `e = exp(-|d|)`, `u = fl(1 + e)`, `q = fl(1/u)`, `c = e - (u - 1)`, as
/// `simd::head` computes it. Counting its roundings:
///
/// - `u - 1` is exact (Sterbenz, `u` in `[1, 2]`) and so is `c`, the rounding error of `u`
///   (Fast2Sum, `1 >= e`); `u`'s rounding itself never reaches the loss, since
///   `ln(1 + e) = ln(u) + ln(1 + c/u)` exactly.
/// - Dropping `ln(1 + c/u) - c/u` (`|c/u| <= u`): at most `u/2` of the loss.
/// - `e`'s error passes on at most once (`e / ((1 + e) ln(1 + e)) <= 1`); `ln`'s error is
///   [`LN_REL`] of `ln(u)`.
/// - Roundings: `q` (1), `c q` (1 where the build has no FMA, fused otherwise), the addition
///   to `ln(u)` (1), the addition of `max(s, 0)` (1; exact when `s <= 0`).
///
/// With `c >= 0` (`u` rounded down, `ln(u) + c/u = ln(1 + e)` to first order) that is at
/// most `EXP_REL + LN_REL + 4.5 u` of the loss. Where `u` rounds up (`c < 0`, only for
/// `e > u`), `ln(u)` and `|c|/u` exceed `ln(1 + e)` by the ratio `r = |c| / (u ln(1 + e))
/// <= 1`: `ln`'s error and the roundings of `q` and `c q` and the dropped term then add
/// `r (LN_REL + 2.5 u)`. For `r > 1/2`, `ln(1 + e) < 2u`, so either `s <= 0` and the final
/// addition is exact, or `s > 15.9` and the whole `ln` term is below `u/7` of the loss:
/// at most `EXP_REL + 2 LN_REL + 3.5 u = EXP_REL + LN_REL + 5.3 u` (`LN_REL = 1.8 u`, at
/// `r = 1`); for `r <= 1/2` at most `EXP_REL + LN_REL + 4.2 u`. The products of two relative
/// errors stay below `u / 10^5`.
///
/// So `EXP_REL + LN_REL + 6 u` bounds every case with `0.7 u` to spare. The factor `1 + 8u`
/// that two earlier copies of this constant carried (`gamma(6) <= 6u (1 + 8u)`, six roundings
/// compounded) counted the second-order terms a second time: it loosened the bound by
/// `48 u^2` of the loss and is dropped.
pub const LOSS_REL: f64 = EXP_REL + LN_REL + 6.0 * U;

/// The head caps `|d|` at 80: beyond it `e = exp(-80)` instead of `exp(-|d|)`, which moves the
/// probability and `ln(1 + e)` by less than `e^-80 (1 + EXP_REL) ~ 1.80e-35`.
#[must_use]
pub fn head_cap() -> f64 {
    (-80f64).exp() * (1.0 + EXP_REL)
}

/// Largest `|sigmoid''|`, `1 / (6 sqrt 3) = 0.0962`: the slope of `sigmoid` on an interval of
/// radius `e` around `d` is at most `sigmoid'(d) + 0.1 e`.
pub const SIGMOID_CURVATURE: f64 = 0.1;

/// The flush threshold of `dl` and `dz` ([`simd::FLUSH`]): flushing moves a value by less.
pub const FLUSH: f64 = simd::FLUSH as f64;

/// Levels of the lane-sum tree ([`simd::hsum`]): `log2(LANES)`, 3 for 8 lanes.
pub const LANE_SUM_LEVELS: usize = {
    assert!(LANES.is_power_of_two(), "hsum is a balanced tree");
    LANES.trailing_zeros() as usize
};

/// Roundings in a row of a sum the kernels accumulate per lane (`per_lane` terms each) and
/// then reduce across the lanes: the accumulations, one product rounding (where the build has
/// no FMA; spare otherwise) and the [`LANE_SUM_LEVELS`] of the lane sum. A sum of plain values
/// (the loss) has one fewer.
#[must_use]
pub const fn lane_sum_roundings(per_lane: usize) -> usize {
    per_lane + 1 + LANE_SUM_LEVELS
}

/// `1 / (1 + e^-d)`, the probability of class 1 at logit difference `d`, without overflow.
#[must_use]
pub fn sigmoid(d: f64) -> f64 {
    if d >= 0.0 {
        1.0 / (1.0 + (-d).exp())
    } else {
        d.exp() / (1.0 + d.exp())
    }
}

/// `ln(1 + e^s)`, the two-class cross-entropy at logit difference `±s`, without overflow.
#[must_use]
pub fn softplus(s: f64) -> f64 {
    s.max(0.0) + (-s.abs()).exp().ln_1p()
}

/// Bounds on the error of the SIMD engine's carried state: per entry (`[streams][hidden]`),
/// and on the 2-norm of each stream's error vector (`[streams]`).
#[derive(Clone, Debug)]
pub struct StateError {
    pub entry: Vec<f64>,
    pub norm: Vec<f64>,
}

impl StateError {
    /// A state loaded from the same f32 numbers in both engines.
    #[must_use]
    pub fn exact(streams: usize, hidden: usize) -> Self {
        Self {
            entry: vec![0.0; streams * hidden],
            norm: vec![0.0; streams],
        }
    }
}

/// The window's exact values (f64, along the reference's trajectory) with a bound on how far
/// the SIMD engine's f32 results can be from each.
#[derive(Clone, Debug)]
pub struct WindowBound {
    /// Sum of the per-sample losses, and the bound on the SIMD `loss_sum`'s error.
    pub loss_sum: f64,
    pub loss_sum_tol: f64,
    /// Sum of `|loss| + error` over the samples (the terms of `loss_sum`).
    pub loss_terms: f64,
    /// Samples whose more probable class is the target, and those too close to call
    /// (`|d|` within its error bound).
    pub correct: f64,
    pub ambiguous: f64,
    /// `h_{T-1}`, `[streams][hidden]`, and the bound on its error.
    pub state: Vec<f64>,
    pub state_tol: StateError,
    /// The gradient (the [`Params`] layout), the bound on each entry's error, and the sum over
    /// the entry's terms of their magnitudes (error included): what a summation order can
    /// change.
    pub grad: Vec<f64>,
    pub grad_tol: Vec<f64>,
    pub grad_terms: Vec<f64>,
    /// Per gradient entry, the sum of the magnitudes of what the f64 reference adds up for it
    /// (errors included): the scale of the reference's own rounding. Larger than `grad_terms`
    /// where the reference's `dz` is the sum of both classes' `w_hy[c][j] dl[c]`, whose f64
    /// rounding does not cancel where `w_hy[1][j] = w_hy[0][j]` makes the engine's exactly 0.
    pub ref_terms: Vec<f64>,
}

fn norm2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `a <- a b` for `n x n` row-major matrices, then `a / ||a||_inf`; returns `||a b||_inf`.
fn square_and_normalise(a: &mut [f64], n: usize) -> f64 {
    let mut r = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let v = a[i * n + k];
            for (rij, akj) in r[i * n..(i + 1) * n].iter_mut().zip(&a[k * n..(k + 1) * n]) {
                *rij += v * akj;
            }
        }
    }
    let scale = (0..n)
        .map(|i| r[i * n..(i + 1) * n].iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    if scale > 0.0 {
        r.iter_mut().for_each(|v| *v /= scale);
    }
    a.copy_from_slice(&r);
    scale
}

/// An upper bound on the spectral norm of the `n x n` row-major matrix `w`.
///
/// `||W||_2^2 = rho(W^T W) <= ||(W^T W)^k||_inf^(1/k)` for every `k` (an induced norm bounds
/// the spectral radius, and `rho(G)^k = rho(G^k)`); `k = 16` by four squarings, each
/// normalised to stay in range. The bound tends to `||W||_2` as `k` grows: `||M||_inf <=
/// sqrt(n) ||M||_2` puts it at most a factor `n^(1/(4k)) = n^(1/64)` above (7% at n = 64).
/// The f64 rounding of a squaring is below `n^2 u_64 < 3e-11` relative (`||M^2||_inf >=
/// ||M||_inf^2 / n` for the normalised symmetric `M`), covered by the factor `1 + 1e-9`.
fn spectral_norm_bound(w: &[f64], n: usize) -> f64 {
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for a in 0..n {
            let v = w[i * n + a];
            for (gab, wib) in g[a * n..(a + 1) * n].iter_mut().zip(&w[i * n..(i + 1) * n]) {
                *gab += v * wib;
            }
        }
    }
    let first = (0..n)
        .map(|i| g[i * n..(i + 1) * n].iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    if first == 0.0 {
        return 0.0;
    }
    g.iter_mut().for_each(|v| *v /= first);
    // ||G^k||_inf = exp(log_norm) with k doubling at each squaring.
    let (mut log_norm, mut k) = (first.ln(), 1.0);
    for _ in 0..4 {
        log_norm = 2.0 * log_norm + square_and_normalise(&mut g, n).ln();
        k *= 2.0;
    }
    (log_norm / (2.0 * k)).exp() * (1.0 + 1e-9)
}

/// A running error bound for the SIMD engine on one window: forward error analysis in Higham's
/// `gamma` model, evaluated along the case's exact trajectory (f64) instead of with a priori
/// norms, so that saturated units (`tanh' ~ 0`) stop the propagation as they do in the
/// arithmetic. `h0` is the carried state (f32 numbers, exact in f64), `h0_err` bounds the SIMD
/// engine's error in it ([`StateError::exact`] for a state both engines load from the same
/// numbers; the previous window's `state_tol` across windows). Every magnitude
/// below is `|exact value| + its error bound`, so the bound holds to all orders, not just the
/// first.
///
/// Forward, per stream, step and hidden unit (`E` bounds the error vector `eps` of `h`,
/// entry by entry, and `nu` its 2-norm; primes for the previous step):
/// - `z = (w_xh[x] + b_h) + sum_k w_hh[j][k] h_k`: `H + 1` terms, one rounding for the
///   prepared `w_xh + b_h`, at most one per product and one per addition, so
///   `e(z) = gamma(H + 3) (|zx| + sum_k |w_hh[j][k]| (|h_k| + E'_k)) + |(W eps')_j|` with the
///   propagated `|(W eps')_j| <= min(sum_k |w_hh[j][k]| E'_k, ||w_hh[j]||_2 nu')` (entrywise,
///   or Cauchy-Schwarz: the second is what keeps the bound from growing like `||W||_inf^T`
///   when the weights' signs cancel).
/// - `h = tanh(z)`: the slope of tanh on `[z - e, z + e]` is at most
///   `s = min(1, 1 - h^2 + 2 |h| e)`, and approx's tanh adds `TANH_MAX_ULP` ulp (`<= 2u |h|`
///   each), at most `TANH_MAX_ABS`: `E = s e(z) + tanh error`. The error vector is
///   `eps = S (W eps' + rho) + tau` with `0 <= S <= diag(s)`, so also
///   `nu <= max(s) ||W||_2 nu' + ||s |rho| + |tau| ||_2` (`spectral_norm_bound`), and
///   `nu <= ||E||_2`; the smaller is kept.
/// - The logit difference `d = (b_y[1] - b_y[0]) + sum_j (w_hy[1][j] - w_hy[0][j]) h_j`: as
///   `z`, `e(d) = gamma(H + 3) (|b| + sum |w| (|h| + E)) + min(sum |w| E, ||w||_2 nu)`.
/// - Loss `softplus(±d)`: slope `sigmoid(±d) + e(d) / 4` (at most 1), plus `LOSS_REL` and the
///   cap. `p1 = sigmoid(d)`: slope `min(1/4, p1 (1 - p1) + 0.1 e(d))`, plus `P1_REL` and the
///   cap. `dl = (p1 - y) * fl(1/N)`: 3 more roundings, and the flush (`< 2^-64`).
///
/// Backward, per stream, step (descending) and unit (`Z`, `mu`: entrywise and 2-norm bounds
/// on the error `zeta` of `dz`):
/// - `dh = wy_j dl + sum_i w_hh[i][j] dz_{t+1}[i]`: `H + 1` terms,
///   `e(dh) = gamma(H + 3) sum |terms| + |wy_j| e(dl) + min(sum_i |w_hh[i][j]| Z'_i,
///   ||w_hh[.][j]||_2 mu')`.
/// - `g = 1 - h^2`: `e(g) = (2|h| + E) E + 2u` (one rounding with FMA, two of at most
///   `u h^2` and `u (1 - h^2)` without); `dz = dh g` rounded once, then flushed:
///   `e(dz) = e(dh) (g + e(g)) (1 + u) + |dh| e(g) + u |dh| (g + e(g)) + 2^-64`; and as
///   forward, `mu <= max(g + e(g)) (1 + u) ||W||_2 mu' + ||own terms||_2`.
///
/// Gradients: an entry is a sum over `(t, s)` of `dz h_{t-1}`, `dz`, `dl h` or `dl`; each
/// term carries `e(a) (|b| + E_b) + |a| E_b`, and the sum adds
/// `gamma(lane_sum_roundings(G T)) sum |terms|` (per lane `G T` accumulations over the groups
/// and steps, one product rounding, the [`LANE_SUM_LEVELS`] of the lane sum).
/// `b_h = dw_xh[0] + dw_xh[1]` adds one rounding. The loss sum likewise adds one rounding
/// fewer (no product).
///
/// The property tests (`kernels/tests/simd.rs`) check this bound over hidden sizes up to 512
/// and saturating weights; the fuzz target (`bitrnn::fuzzing`) on any small window.
///
/// The flush of `dl` and `dz` below 2^-64 enters as the `+ 2^-64` per value above: it reaches a
/// gradient entry as at most `N 2^-64` times a weight or state magnitude, negligible next to
/// every other term. The f64 reference's own rounding is the same analysis with
/// `u = 2^-53`: 2^-29 of the bound, and the tests check that this helper's f64 trajectory and
/// the reference agree to far below the bound.
#[must_use]
pub fn window_bound(
    p: &Params<f64>,
    h0: &[f64],
    h0_err: &StateError,
    win: &reference::Window,
) -> WindowBound {
    let (hd, s_n, t_n) = (p.hidden, win.streams, win.time_step);
    assert_eq!(h0.len(), s_n * hd);
    assert_eq!(h0_err.entry.len(), s_n * hd);
    let n = s_n * t_n;
    let inv_n = 1.0 / n as f64;
    let groups = simd::groups_for(s_n);
    let (w_xh, w_hh, b_h, w_hy, b_y) = (p.w_xh(), p.w_hh(), p.b_h(), p.w_hy(), p.b_y());
    let wy: Vec<f64> = (0..hd).map(|j| w_hy[hd + j] - w_hy[j]).collect();
    let by = b_y[1] - b_y[0];
    let dot = gamma(hd + 3);
    let tanh_ulp = f64::from(approx::TANH_MAX_ULP);
    let tanh_abs = f64::from(approx::TANH_MAX_ABS);
    let cap = head_cap();
    // The smallest f32 ulp (subnormal results).
    let tiny = f64::from(f32::from_bits(1));
    let w_norm = spectral_norm_bound(w_hh, hd);
    let row_norm: Vec<f64> = (0..hd)
        .map(|j| norm2(&w_hh[j * hd..(j + 1) * hd]))
        .collect();
    let col_norm: Vec<f64> = (0..hd)
        .map(|j| {
            (0..hd)
                .map(|i| w_hh[i * hd + j].powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let wy_norm = norm2(&wy);
    let mut own = vec![0.0; hd];

    // Forward. h[t + 1], e[t + 1], nu[t + 1] hold h_t and its error bounds; [0] the carried
    // state.
    let mut h = vec![vec![0.0; s_n * hd]; t_n + 1];
    let mut e = vec![vec![0.0; s_n * hd]; t_n + 1];
    let mut nu = vec![vec![0.0; s_n]; t_n + 1];
    h[0].copy_from_slice(h0);
    e[0].copy_from_slice(&h0_err.entry);
    nu[0].copy_from_slice(&h0_err.norm);
    let (mut dl, mut e_dl) = (vec![0.0; n], vec![0.0; n]);
    let (mut loss_sum, mut loss_err, mut correct, mut ambiguous) = (0.0, 0.0, 0.0, 0.0);
    for t in 0..t_n {
        let (past, future) = h.split_at_mut(t + 1);
        let (e_past, e_future) = e.split_at_mut(t + 1);
        let (prev, prev_e) = (&past[t], &e_past[t]);
        let (cur, cur_e) = (&mut future[0], &mut e_future[0]);
        for s in 0..s_n {
            let sample = t * s_n + s;
            let x = usize::from(win.x[sample]);
            let y = f64::from(win.y[sample]);
            let nu_prev = nu[t][s];
            let (hp, ep) = (&prev[s * hd..(s + 1) * hd], &prev_e[s * hd..(s + 1) * hd]);
            let mut max_slope = 0.0f64;
            for j in 0..hd {
                let zx = w_xh[x * hd + j] + b_h[j];
                let (mut z, mut terms, mut entrywise) = (zx, zx.abs(), 0.0);
                for k in 0..hd {
                    let w = w_hh[j * hd + k];
                    z += w * hp[k];
                    terms += w.abs() * (hp[k].abs() + ep[k]);
                    entrywise += w.abs() * ep[k];
                }
                let carried = entrywise.min(row_norm[j] * nu_prev);
                let e_z = dot * terms + carried;
                let hv = z.tanh();
                let slope = (1.0 - hv * hv + 2.0 * hv.abs() * e_z).min(1.0);
                let reach = hv.abs() + slope * e_z;
                let e_tanh = (tanh_ulp * (2.0 * U * reach + tiny)).min(tanh_abs);
                own[j] = slope * dot * terms + e_tanh;
                max_slope = max_slope.max(slope);
                cur[s * hd + j] = hv;
                cur_e[s * hd + j] = slope * carried + own[j];
            }
            let (hc, ec) = (&cur[s * hd..(s + 1) * hd], &cur_e[s * hd..(s + 1) * hd]);
            let nu_cur = norm2(ec).min(max_slope * w_norm * nu_prev + norm2(&own));
            nu[t + 1][s] = nu_cur;
            let (mut d, mut terms, mut entrywise) = (by, by.abs(), 0.0);
            for j in 0..hd {
                d += wy[j] * hc[j];
                terms += wy[j].abs() * (hc[j].abs() + ec[j]);
                entrywise += wy[j].abs() * ec[j];
            }
            let e_d = dot * terms + entrywise.min(wy_norm * nu_cur);

            let arg = if y == 1.0 { -d } else { d };
            let loss = softplus(arg);
            loss_sum += loss;
            loss_err += (sigmoid(arg) + 0.25 * e_d).min(1.0) * e_d + LOSS_REL * loss + cap;

            let p1 = sigmoid(d);
            let slope = (p1 * (1.0 - p1) + SIGMOID_CURVATURE * e_d).min(0.25);
            let e_p1 = slope * e_d + P1_REL * (p1 + slope * e_d) + cap;
            let r = p1 - y;
            dl[sample] = r * inv_n;
            e_dl[sample] = (e_p1 + gamma(3) * (r.abs() + e_p1)) * inv_n + FLUSH;

            if (d >= 0.0) == (y == 1.0) {
                correct += 1.0;
            }
            if d.abs() <= e_d {
                ambiguous += 1.0;
            }
        }
    }

    // Backward, with the gradient's exact value, error and term magnitudes.
    let layout = Layout::new(hd);
    let [r_xh, r_hh, r_bh, _, r_hy, r_by] = layout.ranges();
    let mut grad = vec![0.0; layout.len()];
    let mut g_err = vec![0.0; layout.len()];
    let mut g_terms = vec![0.0; layout.len()];
    let mut r_terms = vec![0.0; layout.len()];
    // `a_ref` is the magnitude the reference adds up for `a` beyond `|a| + e_a` (`ref_terms`).
    let mut add = |i: usize, (a, e_a, a_ref): (f64, f64, f64), b: f64, e_b: f64| {
        grad[i] += a * b;
        g_err[i] += e_a * (b.abs() + e_b) + a.abs() * e_b;
        g_terms[i] += (a.abs() + e_a) * (b.abs() + e_b);
        r_terms[i] += (a.abs() + e_a + a_ref) * (b.abs() + e_b);
    };
    // The reference's `dl` of each class is at most `1/N`.
    let dl_ref = 2.0 * inv_n;
    let (mut dz, mut e_dz, mut mu) = (vec![0.0; s_n * hd], vec![0.0; s_n * hd], vec![0.0; s_n]);
    let (mut dz_next, mut e_next, mut mu_next) =
        (vec![0.0; s_n * hd], vec![0.0; s_n * hd], vec![0.0; s_n]);
    let (mut dz_ref, mut ref_next) = (vec![0.0; s_n * hd], vec![0.0; s_n * hd]);
    for t in (0..t_n).rev() {
        for s in 0..s_n {
            let sample = t * s_n + s;
            let x = usize::from(win.x[sample]);
            let (dlv, e_dlv) = (dl[sample], e_dl[sample]);
            let mut max_gain = 0.0f64;
            for j in 0..hd {
                let mut dh = wy[j] * dlv;
                let mut terms = wy[j].abs() * (dlv.abs() + e_dlv);
                let mut carried = 0.0;
                let mut magnitude = (w_hy[j].abs() + w_hy[hd + j].abs()) * dl_ref;
                if t + 1 < t_n {
                    let mut entrywise = 0.0;
                    for i in 0..hd {
                        let (w, v, ev) =
                            (w_hh[i * hd + j], dz_next[s * hd + i], e_next[s * hd + i]);
                        dh += w * v;
                        terms += w.abs() * (v.abs() + ev);
                        entrywise += w.abs() * ev;
                        magnitude += w.abs() * ref_next[s * hd + i];
                    }
                    carried = entrywise.min(col_norm[j] * mu_next[s]);
                }
                let own_dh = dot * terms + wy[j].abs() * e_dlv;
                let (hv, eh) = (h[t + 1][s * hd + j], e[t + 1][s * hd + j]);
                let g = 1.0 - hv * hv;
                let e_g = (2.0 * hv.abs() + eh) * eh + 2.0 * U;
                let gain = (g + e_g) * (1.0 + U);
                own[j] = gain * own_dh + dh.abs() * e_g + U * dh.abs() * (g + e_g) + FLUSH;
                max_gain = max_gain.max(gain);
                dz[s * hd + j] = dh * g;
                dz_ref[s * hd + j] = magnitude;
                e_dz[s * hd + j] = gain * carried + own[j];
            }
            mu[s] = norm2(&e_dz[s * hd..(s + 1) * hd])
                .min(max_gain * w_norm * mu_next[s] + norm2(&own));
            for j in 0..hd {
                let dzv = (dz[s * hd + j], e_dz[s * hd + j], dz_ref[s * hd + j]);
                for k in 0..hd {
                    let (hk, ek) = (h[t][s * hd + k], e[t][s * hd + k]);
                    add(r_hh.0 + j * hd + k, dzv, hk, ek);
                }
                add(r_xh.0 + x * hd + j, dzv, 1.0, 0.0);
                let (hv, eh) = (h[t + 1][s * hd + j], e[t + 1][s * hd + j]);
                add(r_hy.0 + hd + j, (dlv, e_dlv, dl_ref), hv, eh);
            }
            add(r_by.0 + 1, (dlv, e_dlv, dl_ref), 1.0, 0.0);
        }
        core::mem::swap(&mut dz, &mut dz_next);
        core::mem::swap(&mut e_dz, &mut e_next);
        core::mem::swap(&mut mu, &mut mu_next);
        core::mem::swap(&mut dz_ref, &mut ref_next);
    }
    let per_lane = groups * t_n;
    let summation = gamma(lane_sum_roundings(per_lane));
    for (err, terms) in g_err.iter_mut().zip(&g_terms) {
        *err += summation * terms;
    }
    for j in 0..hd {
        let (x0, x1, b) = (r_xh.0 + j, r_xh.0 + hd + j, r_bh.0 + j);
        grad[b] = grad[x0] + grad[x1];
        g_terms[b] = g_terms[x0] + g_terms[x1];
        g_err[b] = g_err[x0] + g_err[x1] + U * g_terms[b];
        r_terms[b] = r_terms[x0] + r_terms[x1];
        let (hy0, hy1) = (r_hy.0 + j, r_hy.0 + hd + j);
        (grad[hy0], g_err[hy0], g_terms[hy0]) = (-grad[hy1], g_err[hy1], g_terms[hy1]);
        r_terms[hy0] = r_terms[hy1];
    }
    let (by0, by1) = (r_by.0, r_by.0 + 1);
    (grad[by0], g_err[by0], g_terms[by0]) = (-grad[by1], g_err[by1], g_terms[by1]);
    r_terms[by0] = r_terms[by1];

    let loss_terms = loss_sum + loss_err;
    WindowBound {
        loss_sum,
        loss_sum_tol: loss_err + gamma(lane_sum_roundings(per_lane) - 1) * loss_terms,
        loss_terms,
        correct,
        ambiguous,
        state: h[t_n].clone(),
        state_tol: StateError {
            entry: e[t_n].clone(),
            norm: nu[t_n].clone(),
        },
        grad,
        grad_tol: g_err,
        grad_terms: g_terms,
        ref_terms: r_terms,
    }
}
