//! The machine's f32 FMA peak, measured: the roof of `bench`'s roofline figures.
//!
//! Each thread runs [`CHAINS`] independent `f32x8` multiply-add chains,
//! `acc_i = acc_i * m + a`. A chain is latency-bound (one FMA every 4 cycles on Zen 3 and
//! Skylake), so the core's FMA pipes (2 on both) are only kept full with at least
//! latency x pipes = 8 chains in flight; 12 leave a margin for a 5-cycle latency and still
//! fit, with `m` and `a`, in the 16 ymm registers of AVX2. Each `mul_add` counts as
//! 2 FLOPs per lane, 16 per `f32x8`, whether the build fuses it (x86-64-v3: one `vfmadd`) or
//! not (the portable build: a multiply and an add): the peak is what *this binary* can reach,
//! which is the right roof for its own throughput.
//!
//! `m = 1 - 2^-20` and `a = 2^-20` make `1` the fixed point of every chain, so the values
//! stay near 1, never overflow and never become subnormal (which would be ~100x slower).
//!
//! All threads start together behind a barrier and run for the same duration; the rate is
//! the FLOPs of all threads over the longest thread's wall time. One measurement is the
//! median of a few repeats, to shed the repeat a neighbour process disturbed. Disturbance only
//! ever lowers a repeat, so on a busy machine the median can fall below the true peak (and a
//! workload measured at a quieter moment can then exceed it); the range is reported too.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use wide::f32x8;

/// Independent FMA chains per thread; see the module docs.
pub const CHAINS: usize = 12;
/// FMA rounds per timed block: 4096 x 12 `f32x8` FMAs, about 10 µs on one Zen 3 core, so the
/// clock read after each block costs well under 0.1%.
const BLOCK: usize = 4096;
/// FLOPs of one `f32x8` multiply-add: a multiply and an add in each of 8 lanes.
const FLOPS_PER_FMA: f64 = 16.0;

/// Default duration of one repeat and number of repeats of [`measure`].
pub const DEFAULT_REPEAT: Duration = Duration::from_millis(200);
pub const DEFAULT_REPEATS: usize = 5;

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

/// `BLOCK` rounds of the chains. Not inlined, so that the loop is the same machine code in
/// every caller (and easy to find in `perf annotate`).
#[inline(never)]
fn fma_block(acc: &mut [f32x8; CHAINS], m: f32x8, a: f32x8) {
    let mut v = *acc;
    for _ in 0..BLOCK {
        for x in &mut v {
            *x = x.mul_add(m, a);
        }
    }
    *acc = v;
}

/// One thread's run: waits at `start`, then runs blocks until `duration` has passed. Returns
/// the `f32x8` FMAs done and the seconds taken.
fn run_thread(duration: Duration, start: &Barrier) -> (u64, f64) {
    let m = black_box(f32x8::splat(1.0 - 1.0 / 1_048_576.0));
    let a = black_box(f32x8::splat(1.0 / 1_048_576.0));
    // Different starting values per chain, so no two chains are provably equal.
    let mut acc: [f32x8; CHAINS] = black_box(core::array::from_fn(|i| {
        f32x8::splat(1.0 + i as f32 / 64.0)
    }));
    start.wait();
    let t0 = Instant::now();
    let mut blocks = 0u64;
    loop {
        fma_block(&mut acc, m, a);
        blocks += 1;
        if t0.elapsed() >= duration {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    black_box(acc);
    (blocks * (BLOCK * CHAINS) as u64, secs)
}

/// One repeat on `threads` threads at once: GFLOP/s of all of them together.
fn run_once(threads: usize, duration: Duration) -> f64 {
    let start = Barrier::new(threads);
    let results: Vec<(u64, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| run_thread(duration, &start)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the peak benchmark's threads do not panic"))
            .collect()
    });
    let fmas: u64 = results.iter().map(|r| r.0).sum();
    let wall = results.iter().map(|r| r.1).fold(0.0, f64::max);
    fmas as f64 * FLOPS_PER_FMA / wall / 1e9
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

/// Measures the f32 FMA peak of `threads` threads running at once: `repeats` runs of
/// `repeat` each, median and range in GFLOP/s.
///
/// # Panics
/// If `threads` or `repeats` is 0.
#[must_use]
pub fn measure(threads: usize, repeat: Duration, repeats: usize) -> Peak {
    assert!(threads >= 1 && repeats >= 1, "peak::measure: empty run");
    let runs: Vec<f64> = (0..repeats).map(|_| run_once(threads, repeat)).collect();
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
        let m = f32x8::splat(1.0 - 1.0 / 1_048_576.0);
        let a = f32x8::splat(1.0 / 1_048_576.0);
        let mut acc: [f32x8; CHAINS] = core::array::from_fn(|i| f32x8::splat(1.0 + i as f32));
        for _ in 0..4 {
            fma_block(&mut acc, m, a);
        }
        for v in acc {
            for x in v.to_array() {
                assert!(x.is_normal() && (0.5..20.0).contains(&x), "{x}");
            }
        }
    }

    #[test]
    fn measure_reports_a_positive_rate() {
        let p = measure(2, Duration::from_millis(5), 3);
        assert_eq!(p.threads, 2);
        assert!(p.gflops > 0.0 && p.min_gflops <= p.gflops && p.gflops <= p.max_gflops);
    }
}
