//! The machine's f32 FMA peak, measured: the roof of `bench`'s roofline figures.
//!
//! Two roofs, both measured the same way:
//! - [`Fma::Binary`]: the vector this binary's kernels compute on ([`Vf32`]: `f32x16` in an
//!   AVX-512 build, else `f32x8`), through the same `wide` `mul_add`; the roof of what *this
//!   build* can reach.
//! - [`Fma::Machine`]: the widest FMA the CPU has, detected at run time with
//!   `is_x86_feature_detected!` (512-bit `vfmadd` with AVX-512F, 256-bit with AVX2+FMA), so
//!   that an AVX2 build on an AVX-512 machine honestly shows about half the roof. `bench`'s
//!   `pct_of_peak` is against this one.
//!
//! Each thread runs independent multiply-add chains, `acc_i = acc_i * m + a`. A chain is
//! latency-bound (one FMA every 4 cycles on Zen 3/4 and on Intel cores since Skylake), so the
//! core's FMA pipes (2 on all of them) are only kept full with at least latency x pipes = 8
//! chains in flight: [`CHAINS`] = 12 leave a margin for a 5-cycle latency and fit, with `m`
//! and `a`, in the 16 ymm registers of AVX2; the AVX-512 machine roof runs 24 chains in its
//! 32 zmm registers (measured: 12 and 24 chains give the same rate on the 2-vCPU Xeon of
//! 2026-12-01). Each multiply-add counts as 2 FLOPs per lane, whether the build fuses it
//! (one `vfmadd`) or not (the portable build: a multiply and an add).
//!
//! `m = 1 - 2^-20` and `a = 2^-20` make `1` the fixed point of every chain, so the values
//! stay near 1, never overflow and never become subnormal (which would be ~100x slower).
//!
//! All threads start together behind a barrier and run for the same duration; the rate is
//! the FLOPs of all threads over the longest thread's wall time. One measurement is the
//! median of a few repeats, to shed the repeat a neighbour process disturbed. Disturbance only
//! ever lowers a repeat, so on a busy machine the median can fall below the true peak (and a
//! workload measured at a quieter moment can then exceed it); the range is reported too.

use bitrnn_kernels::lanes::{LANES, Vf32};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Independent FMA chains per thread of [`Fma::Binary`]; see the module docs.
pub const CHAINS: usize = 12;
/// FMA rounds per timed block: 4096 x 12 FMAs, about 10 µs on one core, so the clock read
/// after each block costs well under 0.1%.
const BLOCK: usize = 4096;

/// Default duration of one repeat and number of repeats of [`measure`].
pub const DEFAULT_REPEAT: Duration = Duration::from_millis(200);
pub const DEFAULT_REPEATS: usize = 5;

/// Which multiply-add a peak is measured with; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fma {
    /// The binary's own vector, [`Vf32`].
    Binary,
    /// The widest FMA this CPU executes, whatever the build.
    Machine,
}

impl Fma {
    /// `f32` lanes per multiply-add.
    #[must_use]
    pub fn lanes(self) -> usize {
        match self {
            Fma::Binary => LANES,
            Fma::Machine => machine::lanes(),
        }
    }
    /// What the multiply-add is, for reports: e.g. "AVX-512 f32x16".
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            Fma::Binary => format!("f32x{LANES} ({})", bitrnn_kernels::simd_level()),
            Fma::Machine => machine::describe(),
        }
    }
    /// One block of `BLOCK` rounds on every chain; returns the FLOPs done.
    fn block(self, state: &mut State) -> u64 {
        match self {
            Fma::Binary => {
                fma_block(&mut state.binary, state.m, state.a);
                (BLOCK * CHAINS * 2 * LANES) as u64
            }
            Fma::Machine => machine::block(state),
        }
    }
}

/// The result of [`measure`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// Threads that ran at once.
    pub threads: usize,
    /// Median of the repeats, GFLOP/s for all threads together.
    pub gflops: f64,
    pub min_gflops: f64,
    pub max_gflops: f64,
}

/// One thread's chains: the binary's vectors, and plain arrays for the machine roof (loaded
/// into registers inside its block).
struct State {
    binary: [Vf32; CHAINS],
    m: Vf32,
    a: Vf32,
    wide: [[f32; 16]; machine::CHAINS],
}

impl State {
    fn new() -> Self {
        // Different starting values per chain, so no two chains are provably equal.
        Self {
            binary: black_box(core::array::from_fn(|i| Vf32::splat(1.0 + i as f32 / 64.0))),
            m: black_box(Vf32::splat(1.0 - 1.0 / 1_048_576.0)),
            a: black_box(Vf32::splat(1.0 / 1_048_576.0)),
            wide: black_box(core::array::from_fn(|i| [1.0 + i as f32 / 64.0; 16])),
        }
    }
}

/// `BLOCK` rounds of the chains. Not inlined, so that the loop is the same machine code in
/// every caller (and easy to find in `perf annotate`).
#[inline(never)]
fn fma_block(acc: &mut [Vf32; CHAINS], m: Vf32, a: Vf32) {
    let mut v = *acc;
    for _ in 0..BLOCK {
        for x in &mut v {
            *x = x.mul_add(m, a);
        }
    }
    *acc = v;
}

/// The machine roof: the widest FMA the CPU reports, through `core::arch` intrinsics in
/// functions compiled for that feature and called only after the feature was detected.
#[cfg(target_arch = "x86_64")]
mod machine {
    use super::{BLOCK, State};
    use std::arch::x86_64::{
        __m256, __m512, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_storeu_ps,
        _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };

    /// Chains of the 512-bit roof: 24 of the 32 zmm registers.
    pub const CHAINS: usize = 24;
    /// Chains of the 256-bit roof (16 ymm registers).
    const CHAINS_256: usize = 12;
    const M: f32 = 1.0 - 1.0 / 1_048_576.0;
    const A: f32 = 1.0 / 1_048_576.0;

    fn avx512() -> bool {
        is_x86_feature_detected!("avx512f")
    }
    fn avx2_fma() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    pub fn lanes() -> usize {
        if avx512() {
            16
        } else if avx2_fma() {
            8
        } else {
            super::LANES
        }
    }

    pub fn describe() -> String {
        if avx512() {
            "AVX-512 f32x16 FMA".into()
        } else if avx2_fma() {
            "AVX2 f32x8 FMA".into()
        } else {
            format!(
                "f32x{} (no FMA unit detected: the binary's own)",
                super::LANES
            )
        }
    }

    pub fn block(state: &mut State) -> u64 {
        if avx512() {
            // SAFETY: the CPU reports AVX-512F (checked just above), the only feature
            // `block_512` is compiled for.
            unsafe { block_512(&mut state.wide) };
            (BLOCK * CHAINS * 2 * 16) as u64
        } else if avx2_fma() {
            // SAFETY: the CPU reports AVX2 and FMA, the features `block_256` is compiled for.
            unsafe { block_256(&mut state.wide) };
            (BLOCK * CHAINS_256 * 2 * 8) as u64
        } else {
            super::fma_block(&mut state.binary, state.m, state.a);
            (BLOCK * super::CHAINS * 2 * super::LANES) as u64
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    fn block_512(acc: &mut [[f32; 16]; CHAINS]) {
        let (m, a) = (_mm512_set1_ps(super::std_black_box(M)), _mm512_set1_ps(A));
        // SAFETY: each load and store touches one whole `[f32; 16]` (64 bytes, unaligned
        // access allowed).
        let mut v: [__m512; CHAINS] =
            core::array::from_fn(|i| unsafe { _mm512_loadu_ps(acc[i].as_ptr()) });
        for _ in 0..BLOCK {
            for x in &mut v {
                *x = _mm512_fmadd_ps(*x, m, a);
            }
        }
        for (out, x) in acc.iter_mut().zip(v) {
            // SAFETY: stores one whole `[f32; 16]` (64 bytes, unaligned access allowed).
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), x) };
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    fn block_256(acc: &mut [[f32; 16]; CHAINS]) {
        let (m, a) = (_mm256_set1_ps(super::std_black_box(M)), _mm256_set1_ps(A));
        // SAFETY: each load and store touches the first 8 floats of one `[f32; 16]`.
        let mut v: [__m256; CHAINS_256] =
            core::array::from_fn(|i| unsafe { _mm256_loadu_ps(acc[i].as_ptr()) });
        for _ in 0..BLOCK {
            for x in &mut v {
                *x = _mm256_fmadd_ps(*x, m, a);
            }
        }
        for (out, x) in acc.iter_mut().zip(v) {
            // SAFETY: stores the first 8 floats of one `[f32; 16]`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) };
        }
    }
}

/// Elsewhere the machine roof is the binary's own vector.
#[cfg(not(target_arch = "x86_64"))]
mod machine {
    use super::State;
    pub const CHAINS: usize = 1;
    pub fn lanes() -> usize {
        super::LANES
    }
    pub fn describe() -> String {
        format!("f32x{} (the binary's own)", super::LANES)
    }
    pub fn block(state: &mut State) -> u64 {
        super::fma_block(&mut state.binary, state.m, state.a);
        (super::BLOCK * super::CHAINS * 2 * super::LANES) as u64
    }
}

#[cfg(target_arch = "x86_64")]
fn std_black_box(x: f32) -> f32 {
    black_box(x)
}

/// One thread's run: waits at `start`, then runs blocks until `duration` has passed. Returns
/// the FLOPs done and the seconds taken.
fn run_thread(fma: Fma, duration: Duration, start: &Barrier) -> (u64, f64) {
    let mut state = State::new();
    start.wait();
    let t0 = Instant::now();
    let mut flops = 0u64;
    loop {
        flops += fma.block(&mut state);
        if t0.elapsed() >= duration {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    black_box(&state.binary);
    black_box(&state.wide);
    (flops, secs)
}

/// One repeat on `threads` threads at once: GFLOP/s of all of them together.
fn run_once(fma: Fma, threads: usize, duration: Duration) -> f64 {
    let start = Barrier::new(threads);
    let results: Vec<(u64, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| run_thread(fma, duration, &start)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the peak benchmark's threads do not panic"))
            .collect()
    });
    let flops: u64 = results.iter().map(|r| r.0).sum();
    let wall = results.iter().map(|r| r.1).fold(0.0, f64::max);
    flops as f64 / wall / 1e9
}

/// The median (mean of the middle two for an even count) of `v`, which must not be empty.
#[must_use]
pub fn median(v: &[f64]) -> f64 {
    assert!(!v.is_empty(), "median of nothing");
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Measures the f32 FMA peak of `threads` threads running at once with the multiply-add
/// `fma`: `repeats` runs of `repeat` each, median and range in GFLOP/s.
///
/// # Panics
/// If `threads` or `repeats` is 0.
#[must_use]
pub fn measure(fma: Fma, threads: usize, repeat: Duration, repeats: usize) -> Peak {
    assert!(threads >= 1 && repeats >= 1, "peak::measure: empty run");
    let runs: Vec<f64> = (0..repeats)
        .map(|_| run_once(fma, threads, repeat))
        .collect();
    Peak {
        threads,
        gflops: median(&runs),
        min_gflops: runs.iter().copied().fold(f64::INFINITY, f64::min),
        max_gflops: runs.iter().copied().fold(0.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn chains_stay_finite_and_normal() {
        for fma in [Fma::Binary, Fma::Machine] {
            let mut state = State::new();
            for _ in 0..4 {
                assert!(fma.block(&mut state) > 0);
            }
            let values = state
                .binary
                .iter()
                .flat_map(|v| v.to_array())
                .chain(state.wide.iter().flatten().copied());
            for x in values {
                assert!(x.is_normal() && (0.5..2.0).contains(&x), "{fma:?}: {x}");
            }
        }
    }

    #[test]
    fn the_machine_roof_is_at_least_as_wide_as_the_binary() {
        // A 16-lane build without AVX-512 (the `lanes16` test feature on an AVX2 CPU) is
        // wider than its machine's FMA; a build for the machine it runs on never is.
        let emulated_16 = LANES == 16 && !cfg!(target_feature = "avx512f");
        if !emulated_16 {
            assert!(Fma::Machine.lanes() >= Fma::Binary.lanes());
        }
        assert!(Fma::Machine.lanes() >= 8 || !cfg!(target_arch = "x86_64"));
        assert!(Fma::Binary.describe().contains(&format!("f32x{LANES}")));
    }

    #[test]
    fn measure_reports_a_positive_rate() {
        for fma in [Fma::Binary, Fma::Machine] {
            let p = measure(fma, 2, Duration::from_millis(5), 3);
            assert_eq!(p.threads, 2);
            assert!(p.gflops > 0.0 && p.min_gflops <= p.gflops && p.gflops <= p.max_gflops);
        }
    }
}
