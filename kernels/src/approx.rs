//! Fast transcendentals on the build's vector [`Vf32`] (`f32x16` or `f32x8`) for the SIMD
//! kernels: [`tanh`] (the hidden activation), [`sigmoid`] and [`softplus`] (the two-class
//! softmax and its cross-entropy), and the [`exp`] and [`ln`] they are built from.
//!
//! `wide`'s own `tanh` and `exp` are accurate but slow: in a loop over independent vectors on
//! the x86-64-v3 build, about 9.7 and 6.4 ns per `f32x8`, against 2.0 and 2.4 ns for these
//! (`benches/approx.rs`). These have no branches and no tables, use FMA through `mul_add`, and
//! one true division where a quotient is needed (never the approximate `recip`).
//!
//! # Accuracy
//!
//! Errors are measured against `f64` `std` over every float of the useful range (the
//! `exhaustive_*` tests) and over a strided sweep in the ordinary tests, and are
//! asserted against the `*_MAX_*` constants below, whose docs give the measured values for the
//! x86-64-v3 (FMA) build and the portable (SSE2, separate multiply and add) build. An ulp is the
//! spacing of `f32` at the exact result.
//!
//! | function     | range                          | max error, FMA / portable build |
//! |--------------|--------------------------------|---------------------------------|
//! | [`tanh`]     | all finite                     | 5.13 / 6.29 ulp; 3.06e-7 / 3.75e-7 absolute |
//! | [`exp`]      | `[EXP_MIN_ARG, EXP_MAX_ARG]`   | 1.03 / 1.00 ulp                 |
//! | [`ln`]       | positive normal                | 0.84 / 0.84 ulp                 |
//! | [`softplus`] | `[EXP_MIN_ARG, +inf)`          | 1.99 / 1.99 ulp                 |
//! | [`sigmoid`]  | `[EXP_MIN_ARG, +inf)`          | 2.83 / (CI) ulp                 |
//!
//! The two builds round `mul_add` differently, so their results differ in the last bits: compare
//! a build's SIMD results with tolerances, never two builds bit for bit.
//!
//! # Domain: clamps instead of special cases
//!
//! Each function clamps its input to the range where its formula is valid, so every input that
//! is not NaN gives a finite, non-NaN result (softplus(+inf) = +inf excepted), and NaN gives
//! NaN on x86 and aarch64 (where `fast_clamp` propagates it). **No result is subnormal** unless
//! the input is (`tanh` of a subnormal is the input itself): bitrnn never lets subnormals
//! start, because they cost ~100x per operation on x86. Hence [`exp`] saturates at
//! `exp(EXP_MIN_ARG) ~ 1.18e-38` instead of underflowing, and `sigmoid` and `softplus` inherit
//! that floor for arguments below [`EXP_MIN_ARG`].

use crate::lanes::{Vf32, Vi32, Vu32};

/// `tanh(x)` is `±1` for `|x| >= TANH_CLAMP`.
///
/// tanh rounds to 1 in `f32` only above `13 ln 2 ~ 9.011` (where `1 - tanh x < 2^-25`), but the
/// rational's evaluation error (up to ~5 ulp) would push it above 1 before that; this is the
/// float at which both the FMA and the separate multiply-add evaluation give exactly 1.0 and
/// below which neither exceeds 1 (found by scanning every float of `[7.9, 8.2]`, checked by
/// `tanh_saturates_without_overshoot` in both builds). Cutting there costs at most
/// `1 - tanh(8.0327) = 2.1e-7`, within [`TANH_MAX_ABS`].
pub const TANH_CLAMP: f32 = 8.032_706;

/// Max [`tanh`] error in ulp of the exact result, all finite inputs. Measured 5.13 (FMA
/// build, at x = 7.4714) and 6.29 (portable, at 7.3710) by `exhaustive_tanh`; the strided
/// `tanh_error` sees 4.36 and 5.08.
pub const TANH_MAX_ULP: f32 = 6.5;

/// Max [`tanh`] absolute error, all finite inputs. Measured 3.06e-7 (FMA) and 3.75e-7
/// (portable) by `exhaustive_tanh`, at the same points as [`TANH_MAX_ULP`].
pub const TANH_MAX_ABS: f32 = 3.8e-7;

/// Below this, [`exp`] returns `exp(EXP_MIN_ARG) ~ 1.1832e-38`: the result stays a normal
/// float (`>= f32::MIN_POSITIVE = 2^-126 = exp(-87.3365)`), never subnormal or 0.
pub const EXP_MIN_ARG: f32 = -87.33;

/// Above this, [`exp`] returns `exp(EXP_MAX_ARG) ~ 2.39e38`, never infinity: the scale `2^n`
/// with `n = round(x log2 e)` must keep a normal exponent, `n <= 127`, i.e.
/// `x < 127.5 ln 2 = 88.376`.
pub const EXP_MAX_ARG: f32 = 88.37;

/// Max [`exp`] error in ulp on `[EXP_MIN_ARG, EXP_MAX_ARG]`. Measured 1.03 (FMA, at
/// x = -38.455) and 1.00 (portable, at 70.372) by `exhaustive_exp`; `exp_error` sees 1.00 and
/// 0.97.
pub const EXP_MAX_ULP: f32 = 1.1;

/// Max [`ln`] error in ulp on the positive normal floats. Measured 0.84 in both builds, at
/// x = 0.7062, by `exhaustive_ln`; `ln_error` sees 0.83.
pub const LN_MAX_ULP: f32 = 0.9;

/// Max [`softplus`] error in ulp on `[EXP_MIN_ARG, +inf)`. Measured 1.99 in both builds, at
/// x = -2.0303, by `exhaustive_softplus_sigmoid`; `softplus_error` sees 1.82 and 1.79.
pub const SOFTPLUS_MAX_ULP: f32 = 2.1;

/// Max [`sigmoid`] error in ulp on `[EXP_MIN_ARG, +inf)`. Measured 2.83 on the AVX-512 build
/// (at x = -1.9542), by `exhaustive_softplus_sigmoid`, 2026-12-01: for `x < 0` the result is
/// `e (1/u)`, two roundings after `exp`'s, the form the kernels' head uses (one division
/// shared with the loss); the earlier `e / u` measured 2.40.
pub const SIGMOID_MAX_ULP: f32 = 3.0;

/// `tanh(x)`, odd, `|tanh(x)| <= 1`, `tanh(±0) = ±0`, `tanh(±inf) = ±1`; error
/// [`TANH_MAX_ULP`], [`TANH_MAX_ABS`].
///
/// `tanh x ~ x P(x²) / Q(x²)` with `P` of degree 6 and `Q` of degree 3 (a 13/6 rational, as
/// Eigen's `ptanh_float`), normalised to `P(0) = Q(0) = 1` so that for tiny `|x|` both round to
/// 1 and the result is `x` itself, exactly, without a separate small-argument branch. The
/// coefficients minimise the maximum relative error on `[0, 13 ln 2]` (Loeb's linearisation
/// with Lawson's reweighting, in f64, then rounded to `f32` one at a time, low degrees first,
/// refitting the rest): the rational itself is within 8.1e-9 of tanh and strictly increasing on
/// `[0, TANH_CLAMP]` (`tanh_rational_is_monotone`), so the error above is the `f32` evaluation's
/// rounding. That rounding makes the result non-decreasing only up to it: from one float to the
/// next the result can step back, by up to 8 ulp (FMA) or 10 ulp (portable) of the result in
/// the windows that `tanh_monotone_up_to_rounding` scans.
#[inline(always)]
#[must_use]
pub fn tanh(x: Vf32) -> Vf32 {
    let x = x.fast_clamp(Vf32::splat(-TANH_CLAMP), Vf32::splat(TANH_CLAMP));
    let s = x * x;
    let p = s.mul_add(Vf32::splat(-8.509_487e-14), Vf32::splat(5.291_188e-11));
    let p = s.mul_add(p, Vf32::splat(-2.026_470_4e-8));
    let p = s.mul_add(p, Vf32::splat(1.116_680_8e-5));
    let p = s.mul_add(p, Vf32::splat(3.105_331_4e-3));
    let p = s.mul_add(p, Vf32::splat(1.308_530_1e-1));
    let p = s.mul_add(p, Vf32::ONE);
    let q = s.mul_add(Vf32::splat(2.548_037_2e-4), Vf32::splat(2.450_084e-2));
    let q = s.mul_add(q, Vf32::splat(4.641_863e-1));
    let q = s.mul_add(q, Vf32::ONE);
    x * p / q
}

/// `e^x` for `x` in `[EXP_MIN_ARG, EXP_MAX_ARG]`, error [`EXP_MAX_ULP`]; outside, the value at
/// the nearer end (`~1.18e-38` or `~2.39e38`): never subnormal, never 0, never infinite.
///
/// Cephes `expf`: `e^x = 2^n e^r` with `n = round(x log2 e)` and `r = x - n ln 2` in
/// `[-ln2/2, ln2/2]`. `n` comes from adding `1.5 * 2^23 + 127`: at that magnitude the float
/// grid is the integers, so the sum rounds `x log2 e` to the nearest integer (ties to even)
/// and leaves `n + 127`, the biased exponent of `2^n`, in the low mantissa bits, from where a
/// shift by 23 moves it into the exponent field. `r` is reduced in two steps (Cody-Waite):
/// `ln 2 = 0.693359375 - 2.12194440e-4`, whose first part has 9 significant bits, so `n * C1`
/// is exact for `|n| <= 2^15` and `x - n * C1` is exact (Sterbenz); `e^r = 1 + r + r^2 p(r)`
/// with Cephes' degree-5 minimax `p`, evaluated by Estrin's scheme (pairs, then powers `r^2`,
/// `r^4`): 2 FMA latencies after `r^2` instead of Horner's 5, which also lets independent
/// calls overlap more.
#[inline(always)]
#[must_use]
pub fn exp(x: Vf32) -> Vf32 {
    const ROUND_AND_BIAS: f32 = 12_583_039.0; // 1.5 * 2^23 + 127
    let x = x.fast_clamp(Vf32::splat(EXP_MIN_ARG), Vf32::splat(EXP_MAX_ARG));
    let biased = x.mul_add(
        Vf32::splat(core::f32::consts::LOG2_E),
        Vf32::splat(ROUND_AND_BIAS),
    );
    let n = biased - Vf32::splat(ROUND_AND_BIAS);
    let r = n.mul_neg_add(Vf32::splat(0.693_359_4), x);
    let r = n.mul_neg_add(Vf32::splat(-2.121_944_4e-4), r);
    let r2 = r * r;
    let p01 = r.mul_add(Vf32::splat(1.666_666_5e-1), Vf32::splat(0.5));
    let p23 = r.mul_add(Vf32::splat(8.333_452e-3), Vf32::splat(4.166_579_6e-2));
    let p45 = r.mul_add(Vf32::splat(1.987_569_1e-4), Vf32::splat(1.398_199_9e-3));
    let p = r2.mul_add(r2.mul_add(p45, p23), p01);
    let exp_r = p.mul_add(r2, r) + Vf32::ONE;
    exp_r * Vf32::from_bits(biased.to_bits() << 23)
}

/// `ln(x)` for positive normal `x`, error [`LN_MAX_ULP`]. Inputs are clamped to
/// `[f32::MIN_POSITIVE, f32::MAX]`: 0, negatives and subnormals give `ln(2^-126) = -87.34`,
/// `+inf` gives `ln(f32::MAX) = 88.72`.
///
/// `x = 2^k z` with `z` in `[sqrt(1/2), sqrt(2))`, by integer arithmetic on the bits (musl's
/// `logf` reduction): in `bits(x) - bits(sqrt(1/2))` the exponent fields subtract to
/// `E - 126` (`E` the biased exponent of `x`), less the borrow taken exactly when `x`'s
/// mantissa is below that of `sqrt(1/2) = 0x3F3504F3`, so its arithmetic shift right by 23 is
/// `k`, and subtracting `k << 23` from the bits of `x` leaves `z`. Then `f = z - 1` is exact
/// (Sterbenz) and `ln x = k ln 2 + f - f^2/2 + f^3 P(f)` with Cephes `logf`'s degree-8 minimax
/// `P` for `f` in `[sqrt(1/2) - 1, sqrt(2) - 1]`, by Estrin's scheme as in [`exp`], and
/// `ln 2` split as there.
#[inline(always)]
#[must_use]
pub fn ln(x: Vf32) -> Vf32 {
    let x = x.fast_clamp(Vf32::splat(f32::MIN_POSITIVE), Vf32::splat(f32::MAX));
    let bits = x.to_bits();
    let offset = bits - Vu32::splat(0x3F35_04F3);
    let k = (bytemuck::cast::<Vu32, Vi32>(offset) >> 23_u32).round_float();
    let z = Vf32::from_bits(bits - (offset & Vu32::splat(0xFF80_0000)));
    let f = z - Vf32::ONE;
    let f2 = f * f;
    let f4 = f2 * f2;
    let p01 = f.mul_add(Vf32::splat(-2.499_999_4e-1), Vf32::splat(3.333_333e-1));
    let p23 = f.mul_add(Vf32::splat(-1.666_805_8e-1), Vf32::splat(2.000_071_4e-1));
    let p45 = f.mul_add(Vf32::splat(-1.242_014_1e-1), Vf32::splat(1.424_932_3e-1));
    let p67 = f.mul_add(Vf32::splat(-1.151_461e-1), Vf32::splat(1.167_699_84e-1));
    let p03 = f2.mul_add(p23, p01);
    let p48 = f4.mul_add(Vf32::splat(7.037_683_6e-2), f2.mul_add(p67, p45));
    let p = f4.mul_add(p48, p03);
    // `x * 0` is 0 for every clamped (finite) x and NaN for NaN, which the bit arithmetic
    // above would have turned into a number.
    let tail = (p * f).mul_add(f2, x * Vf32::ZERO);
    let tail = k.mul_add(Vf32::splat(-2.121_944_4e-4), tail);
    let tail = f2.mul_neg_add(Vf32::splat(0.5), tail);
    k.mul_add(Vf32::splat(0.693_359_4), f + tail)
}

/// The two halves of the two-class head, from one `exp`: `ln(1 + e^-|x|)` (so that
/// `softplus(x) = max(x, 0) + ln(1 + e^-|x|)`) and `sigmoid(x)`. [`softplus`], [`sigmoid`] and
/// the SIMD kernels' head all call this one function, so the exhaustive tests of the first two
/// test the arithmetic the kernels run.
///
/// With `e = e^-|x|` in `(0, 1]` nothing overflows. `u = fl(1 + e)` and `q = 1/u` (one
/// division, shared): the class `x` favours has probability `q`, the other `e q`, so small
/// probabilities keep their relative accuracy. `ln(1 + e)` keeps its relative accuracy for tiny
/// `e` (where `1 + e` rounds to 1): with the exact rounding error `c = e - (u - 1)` of `u`
/// (Fast2Sum, as `1 >= e`), `ln(1 + e) = ln(u) + ln(1 + c/u) = ln(u) + c q` to far below an ulp,
/// one fused multiply-add.
#[inline(always)]
#[must_use]
pub fn ln1p_exp_and_sigmoid(x: Vf32) -> (Vf32, Vf32) {
    let e = exp(-x.abs());
    let u = Vf32::ONE + e;
    let q = Vf32::ONE / u;
    let c = e - (u - Vf32::ONE);
    let sigmoid = x.simd_ge(Vf32::ZERO).select(q, e * q);
    (c.mul_add(q, ln(u)), sigmoid)
}

/// `softplus(x) = ln(1 + e^x)`, the two-class cross-entropy of logit difference `x`; error
/// [`SOFTPLUS_MAX_ULP`] on `[EXP_MIN_ARG, +inf)`, about `1.18e-38` below (never subnormal);
/// `softplus(+inf) = +inf`. `max(x, 0) + ln(1 + e^-|x|)` by [`ln1p_exp_and_sigmoid`].
#[inline(always)]
#[must_use]
pub fn softplus(x: Vf32) -> Vf32 {
    x.fast_max(Vf32::ZERO) + ln1p_exp_and_sigmoid(x).0
}

/// `sigmoid(x) = 1 / (1 + e^-x)`; error [`SIGMOID_MAX_ULP`] on `[EXP_MIN_ARG, +inf)`, about
/// `1.18e-38` below (never subnormal); `sigmoid(0) = 0.5` exactly. By
/// [`ln1p_exp_and_sigmoid`]: `1 / (1 + e)` for `x >= 0` and `e (1 / (1 + e))` for `x < 0`,
/// `e = e^-|x|`.
#[inline(always)]
#[must_use]
pub fn sigmoid(x: Vf32) -> Vf32 {
    ln1p_exp_and_sigmoid(x).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::LANES;

    type Simd = fn(Vf32) -> Vf32;

    /// The `f32` sample points `lo, lo + stride, ...` counted in representable floats, `hi`
    /// included (floats ordered as on the real line, `-0.0` and `+0.0` both present).
    #[derive(Clone, Copy)]
    struct Grid {
        lo: i64,
        hi: i64,
        stride: i64,
    }

    impl Grid {
        fn new(lo: f32, hi: f32, stride: i64) -> Self {
            assert!(lo <= hi && stride > 0);
            Grid {
                lo: order(lo),
                hi: order(hi),
                stride,
            }
        }
        fn len(self) -> i64 {
            (self.hi - self.lo) / self.stride + 1
        }
        fn point(self, i: i64) -> f32 {
            unorder((self.lo + i * self.stride).min(self.hi))
        }
        /// Runs `visit(inputs, outputs)` over the grid, `LANES` points per call, on all cores; each
        /// thread folds into its own `T`, merged with `merge`. The last call repeats `hi`.
        fn fold<T: Send + Default>(
            self,
            f: Simd,
            visit: impl Fn(&mut T, [f32; LANES], [f32; LANES]) + Sync,
            merge: impl Fn(&mut T, T),
        ) -> T {
            let calls = (self.len() + LANES as i64 - 1) / LANES as i64;
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get() as i64)
                .min(calls);
            let per_thread = (calls + threads - 1) / threads;
            let parts: Vec<T> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let visit = &visit;
                        scope.spawn(move || {
                            let mut acc = T::default();
                            for call in t * per_thread..((t + 1) * per_thread).min(calls) {
                                let xs: [f32; LANES] = core::array::from_fn(|j| {
                                    self.point(call * LANES as i64 + j as i64)
                                });
                                visit(&mut acc, xs, f(Vf32::new(xs)).to_array());
                            }
                            acc
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut total = T::default();
            for part in parts {
                merge(&mut total, part);
            }
            total
        }
    }

    /// Position of `x` among the floats: consecutive floats have consecutive keys.
    fn order(x: f32) -> i64 {
        let bits = x.to_bits();
        let magnitude = i64::from(bits & 0x7FFF_FFFF);
        if bits >> 31 == 1 {
            -magnitude - 1
        } else {
            magnitude
        }
    }

    fn unorder(key: i64) -> f32 {
        if key < 0 {
            -f32::from_bits(u32::try_from(-key - 1).unwrap())
        } else {
            f32::from_bits(u32::try_from(key).unwrap())
        }
    }

    /// Spacing of `f32` at `v` (that of the binade holding `|v|`; `2^-149` below `2^-126`).
    fn ulp(v: f64) -> f64 {
        let exponent = i32::try_from((v.abs().to_bits() >> 52) & 0x7FF).unwrap() - 1023;
        2f64.powi(exponent.max(-126) - 23)
    }

    #[derive(Default, Debug)]
    struct Errors {
        max_ulp: f64,
        at_ulp: f32,
        max_abs: f64,
        at_abs: f32,
        points: u64,
    }

    impl Errors {
        fn add(&mut self, x: f32, got: f32, exact: f64) {
            let abs = (f64::from(got) - exact).abs();
            let ulps = abs / ulp(exact);
            // A NaN result is recorded as the worst error.
            if ulps.is_nan() || ulps > self.max_ulp {
                (self.max_ulp, self.at_ulp) = (ulps, x);
            }
            if abs.is_nan() || abs > self.max_abs {
                (self.max_abs, self.at_abs) = (abs, x);
            }
            self.points += 1;
        }
        fn merge(&mut self, other: Errors) {
            if other.max_ulp.is_nan() || other.max_ulp > self.max_ulp {
                (self.max_ulp, self.at_ulp) = (other.max_ulp, other.at_ulp);
            }
            if other.max_abs.is_nan() || other.max_abs > self.max_abs {
                (self.max_abs, self.at_abs) = (other.max_abs, other.at_abs);
            }
            self.points += other.points;
        }
    }

    fn errors(name: &str, f: Simd, exact: fn(f64) -> f64, grid: Grid) -> Errors {
        let errors = grid.fold(
            f,
            |acc: &mut Errors, xs, ys| {
                for (x, y) in xs.into_iter().zip(ys) {
                    acc.add(x, y, exact(f64::from(x)));
                }
            },
            Errors::merge,
        );
        let (lo, hi) = (grid.point(0), grid.point(grid.len() - 1));
        println!(
            "{name} on [{lo:e}, {hi:e}] every {}th float: {errors:?}",
            grid.stride
        );
        errors
    }

    fn softplus_exact(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    fn sigmoid_exact(x: f64) -> f64 {
        let e = (-x.abs()).exp();
        if x < 0.0 {
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + e)
        }
    }

    fn scalar(f: Simd, x: f32) -> f32 {
        f(Vf32::splat(x)).to_array()[0]
    }

    /// Every stride-th float of `[lo, hi]`, stride chosen for about 4 million points.
    fn dense(lo: f32, hi: f32) -> Grid {
        Grid::new(lo, hi, ((order(hi) - order(lo)) / (1 << 22)).max(1))
    }

    #[test]
    fn tanh_error() {
        // Every 512th float of [-10, 10] (mostly small magnitudes, where the floats are) and
        // every 16th of [1e-3, 10] (where the approximation is hardest).
        for grid in [Grid::new(-10.0, 10.0, 512), Grid::new(1e-3, 10.0, 16)] {
            let e = errors("tanh", tanh, f64::tanh, grid);
            assert!(e.max_ulp <= f64::from(TANH_MAX_ULP), "{e:?}");
            assert!(e.max_abs <= f64::from(TANH_MAX_ABS), "{e:?}");
        }
    }

    #[test]
    fn exp_error() {
        let e = errors("exp", exp, f64::exp, dense(EXP_MIN_ARG, EXP_MAX_ARG));
        assert!(e.max_ulp <= f64::from(EXP_MAX_ULP), "{e:?}");
        // Near 0 every float: the reduction and the polynomial at their most exact.
        let e = errors("exp", exp, f64::exp, Grid::new(-1e-3, 1e-3, 64));
        assert!(e.max_ulp <= f64::from(EXP_MAX_ULP), "{e:?}");
    }

    #[test]
    fn ln_error() {
        let e = errors("ln", ln, f64::ln, dense(f32::MIN_POSITIVE, f32::MAX));
        assert!(e.max_ulp <= f64::from(LN_MAX_ULP), "{e:?}");
        // Every float around 1, where ln is small and cancellation would show.
        let e = errors("ln", ln, f64::ln, Grid::new(0.5, 2.0, 4));
        assert!(e.max_ulp <= f64::from(LN_MAX_ULP), "{e:?}");
    }

    #[test]
    fn softplus_error() {
        for grid in [
            dense(EXP_MIN_ARG, 100.0),
            dense(-20.0, 20.0),
            dense(100.0, f32::MAX),
        ] {
            let e = errors("softplus", softplus, softplus_exact, grid);
            assert!(e.max_ulp <= f64::from(SOFTPLUS_MAX_ULP), "{e:?}");
        }
    }

    #[test]
    fn sigmoid_error() {
        for grid in [
            dense(EXP_MIN_ARG, 100.0),
            dense(-20.0, 20.0),
            dense(100.0, f32::MAX),
        ] {
            let e = errors("sigmoid", sigmoid, sigmoid_exact, grid);
            assert!(e.max_ulp <= f64::from(SIGMOID_MAX_ULP), "{e:?}");
        }
    }

    #[test]
    fn tanh_is_odd_and_bounded() {
        let grid = Grid::new(0.0, f32::INFINITY, 1 << 10);
        grid.fold(
            tanh,
            |(): &mut (), xs, ys| {
                let negated = tanh(-Vf32::new(xs)).to_array();
                for ((x, y), minus_y) in xs.into_iter().zip(ys).zip(negated) {
                    assert_eq!(
                        (-y).to_bits(),
                        minus_y.to_bits(),
                        "tanh(-{x}) != -tanh({x})"
                    );
                    assert!((0.0..=1.0).contains(&y), "tanh({x}) = {y}");
                }
            },
            |(), ()| {},
        );
    }

    #[test]
    fn tanh_special_values() {
        assert_eq!(scalar(tanh, 0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(scalar(tanh, -0.0).to_bits(), (-0.0f32).to_bits());
        for (x, y) in [
            (f32::INFINITY, 1.0),
            (f32::NEG_INFINITY, -1.0),
            (f32::MAX, 1.0),
            (f32::MIN, -1.0),
            (TANH_CLAMP, 1.0),
            (-TANH_CLAMP, -1.0),
            (9.0, 1.0),
            (f32::MIN_POSITIVE, f32::MIN_POSITIVE),
            (1e-20, 1e-20),
            (-1e-5, -1e-5),
        ] {
            assert_eq!(scalar(tanh, x), y, "tanh({x})");
        }
        assert!(scalar(tanh, f32::NAN).is_nan());
    }

    /// The bound `|tanh| <= 1` without a clamp of the output: every float of
    /// `[7, TANH_CLAMP]` evaluates to at most 1 (smaller ones are far from it), and
    /// `TANH_CLAMP` itself to exactly 1.
    #[test]
    fn tanh_saturates_without_overshoot() {
        assert_eq!(scalar(tanh, TANH_CLAMP), 1.0);
        let largest = Grid::new(7.0, TANH_CLAMP, 1).fold(
            tanh,
            |max: &mut f32, _, ys| *max = ys.into_iter().fold(*max, f32::max),
            |max, other| *max = max.max(other),
        );
        assert!(largest <= 1.0, "{largest}");
    }

    /// The exact rational (its `f32` coefficients in f64 arithmetic) is strictly increasing on
    /// `[0, TANH_CLAMP]`, so any decrease of the `f32` result is rounding.
    #[test]
    fn tanh_rational_is_monotone() {
        let p = [
            1.0,
            1.308_530_1e-1,
            3.105_331_4e-3,
            1.116_680_8e-5,
            -2.026_470_4e-8,
            5.291_188e-11,
            -8.509_487e-14,
        ];
        let q = [1.0, 4.641_863e-1, 2.450_084e-2, 2.548_037_2e-4];
        let horner = |c: &[f32], s: f64| c.iter().rev().fold(0.0, |a, &c| a * s + f64::from(c));
        let rational = |x: f64| x * horner(&p, x * x) / horner(&q, x * x);
        let steps = 1_000_000;
        let mut previous = 0.0;
        for i in 1..=steps {
            let x = f64::from(TANH_CLAMP) * f64::from(i) / f64::from(steps);
            let y = rational(x);
            assert!(y > previous, "rational decreases at {x}");
            assert!(
                (y / x.tanh() - 1.0).abs() < 8.2e-9,
                "rational's own error at {x}"
            );
            previous = y;
        }
    }

    /// Largest step back between neighbouring floats, in ulp of the result, over windows of
    /// 2^18 consecutive floats: the `f32` evaluation is non-decreasing up to its rounding.
    #[test]
    fn tanh_monotone_up_to_rounding() {
        let mut worst = 0f64;
        for start in [1e-4f32, 1e-2, 0.3, 1.0, 2.5, 5.0, 7.5] {
            let mut running_max = scalar(tanh, start);
            for call in 0..(1 << 18) / LANES as i64 {
                let xs: [f32; LANES] = core::array::from_fn(|j| {
                    unorder(order(start) + call * LANES as i64 + j as i64)
                });
                for y in tanh(Vf32::new(xs)).to_array() {
                    if y < running_max {
                        worst = worst.max(f64::from(running_max - y) / ulp(f64::from(y)));
                    }
                    running_max = running_max.max(y);
                }
            }
        }
        println!("largest step back: {worst:.2} ulp");
        assert!(worst <= 2.0 * f64::from(TANH_MAX_ULP));
    }

    #[test]
    fn exp_special_values_and_clamps() {
        assert_eq!(scalar(exp, 0.0), 1.0);
        assert_eq!(scalar(exp, -0.0), 1.0);
        let floor = scalar(exp, EXP_MIN_ARG);
        let ceiling = scalar(exp, EXP_MAX_ARG);
        assert!((f32::MIN_POSITIVE..1.19e-38).contains(&floor), "{floor}");
        assert!(ceiling.is_finite() && ceiling > 2.3e38, "{ceiling}");
        for x in [
            f32::NEG_INFINITY,
            f32::MIN,
            -1e6,
            -100.0,
            -87.34,
            EXP_MIN_ARG,
        ] {
            assert_eq!(scalar(exp, x), floor, "exp({x})");
        }
        for x in [f32::INFINITY, f32::MAX, 1e6, 100.0, 88.73, EXP_MAX_ARG] {
            assert_eq!(scalar(exp, x), ceiling, "exp({x})");
        }
        assert!(scalar(exp, f32::NAN).is_nan());
    }

    /// Every result for a non-NaN input is a normal float: the no-subnormal rule, and no
    /// NaN from the extremes.
    #[test]
    fn results_are_normal_and_never_nan() {
        let every_float = Grid::new(f32::NEG_INFINITY, f32::INFINITY, 1 << 12);
        for (name, f) in [
            ("exp", exp as Simd),
            ("ln", ln),
            ("softplus", softplus),
            ("sigmoid", sigmoid),
            ("tanh", tanh),
        ] {
            every_float.fold(
                f,
                |(): &mut (), xs, ys| {
                    for (x, y) in xs.into_iter().zip(ys) {
                        let ok = y.is_normal()
                            || (y == 0.0 && x == 0.0 && name == "tanh")
                            || (y == f32::INFINITY && x == f32::INFINITY && name == "softplus")
                            || (name == "tanh" && y == x)
                            || (name == "ln" && y == 0.0 && x == 1.0);
                        assert!(ok, "{name}({x:e}) = {y:e}");
                    }
                },
                |(), ()| {},
            );
        }
    }

    #[test]
    fn ln_special_values_and_clamps() {
        assert_eq!(scalar(ln, 1.0), 0.0);
        let bottom = scalar(ln, f32::MIN_POSITIVE);
        assert!((f64::from(bottom) - f64::from(f32::MIN_POSITIVE).ln()).abs() < 1e-5);
        for x in [0.0, -0.0, 1e-40, -1.0, f32::NEG_INFINITY] {
            assert_eq!(scalar(ln, x), bottom, "ln({x})");
        }
        assert_eq!(scalar(ln, f32::INFINITY), scalar(ln, f32::MAX));
        assert!(scalar(ln, f32::NAN).is_nan());
    }

    #[test]
    fn softplus_and_sigmoid_special_values() {
        assert_eq!(scalar(sigmoid, 0.0), 0.5);
        assert_eq!(scalar(sigmoid, -0.0), 0.5);
        assert_eq!(scalar(sigmoid, f32::INFINITY), 1.0);
        assert_eq!(scalar(sigmoid, f32::NEG_INFINITY), scalar(exp, EXP_MIN_ARG));
        assert_eq!(scalar(softplus, f32::INFINITY), f32::INFINITY);
        assert_eq!(
            scalar(softplus, f32::NEG_INFINITY),
            scalar(exp, EXP_MIN_ARG)
        );
        assert_eq!(scalar(softplus, 1e30), 1e30);
        assert!((scalar(softplus, 0.0) - core::f32::consts::LN_2).abs() <= f32::EPSILON);
        // softplus(x) - softplus(-x) = x and sigmoid(x) + sigmoid(-x) = 1, to rounding.
        for x in [0.1f32, 1.0, 3.0, 10.0, 30.0] {
            let sum = scalar(sigmoid, x) + scalar(sigmoid, -x);
            assert!((sum - 1.0).abs() <= f32::EPSILON, "sigmoid({x})");
            let difference = scalar(softplus, x) - scalar(softplus, -x);
            assert!(
                (difference - x).abs() <= 2.0 * f32::EPSILON * x.max(1.0),
                "softplus({x})"
            );
        }
        assert!(scalar(softplus, f32::NAN).is_nan());
        assert!(scalar(sigmoid, f32::NAN).is_nan());
    }

    /// A lane's result depends on that lane only: each lane of a mixed vector (extremes, NaN,
    /// infinities among them) equals the same input evaluated alone, bit for bit.
    #[test]
    fn lanes_are_independent() {
        let values = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            0.0,
            -0.0,
            1e-40,
            f32::MIN_POSITIVE,
            1e-3,
            -0.5,
            1.0,
            2.0,
            -7.0,
            20.0,
            -90.0,
            89.0,
            1e30,
        ];
        for (name, f) in [
            ("tanh", tanh as Simd),
            ("exp", exp),
            ("ln", ln),
            ("softplus", softplus),
            ("sigmoid", sigmoid),
        ] {
            for start in 0..values.len() {
                let lanes: [f32; LANES] =
                    core::array::from_fn(|j| values[(start + 3 * j) % values.len()]);
                let together = f(Vf32::new(lanes)).to_array();
                for (x, y) in lanes.into_iter().zip(together) {
                    assert_eq!(
                        y.to_bits(),
                        scalar(f, x).to_bits(),
                        "{name}({x}) in {lanes:?}"
                    );
                }
            }
        }
    }

    // Every float of each function's range, each test on all cores. Part of the ordinary test
    // run, so CI checks them in both builds: measured on the 2-core VM (2026-11-27, `cargo test
    // -p bitrnn-kernels --lib approx::tests::exhaustive`), 105 s for the four with the test
    // profile, 112 s in the portable build (`RUSTFLAGS=""`). `--nocapture` prints the errors.

    #[test]
    fn exhaustive_tanh() {
        let e = errors("tanh", tanh, f64::tanh, Grid::new(0.0, 10.0, 1));
        assert!(e.max_ulp <= f64::from(TANH_MAX_ULP), "{e:?}");
        assert!(e.max_abs <= f64::from(TANH_MAX_ABS), "{e:?}");
    }

    #[test]
    fn exhaustive_exp() {
        let e = errors("exp", exp, f64::exp, Grid::new(EXP_MIN_ARG, EXP_MAX_ARG, 1));
        assert!(e.max_ulp <= f64::from(EXP_MAX_ULP), "{e:?}");
    }

    #[test]
    fn exhaustive_ln() {
        let e = errors("ln", ln, f64::ln, Grid::new(f32::MIN_POSITIVE, f32::MAX, 1));
        assert!(e.max_ulp <= f64::from(LN_MAX_ULP), "{e:?}");
    }

    #[test]
    fn exhaustive_softplus_sigmoid() {
        let grid = Grid::new(EXP_MIN_ARG, f32::MAX, 1);
        let e = errors("softplus", softplus, softplus_exact, grid);
        assert!(e.max_ulp <= f64::from(SOFTPLUS_MAX_ULP), "{e:?}");
        let e = errors("sigmoid", sigmoid, sigmoid_exact, grid);
        assert!(e.max_ulp <= f64::from(SIGMOID_MAX_ULP), "{e:?}");
    }
}
