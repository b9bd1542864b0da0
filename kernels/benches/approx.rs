//! `approx`'s transcendentals next to `wide`'s, one criterion group per function. Throughput
//! is in `Vf32` vectors (`LANES` values): criterion's "elem/s" is vectors per second, and the time
//! per iteration divided by `VECTORS` is the cost of one call in a loop over independent
//! inputs (the kernels' case: a tile of hidden units at once). Each function is passed as its
//! own type, not as a `fn` pointer, so that it is inlined into the loop as in the kernels.
//!
//! `cargo bench -p bitrnn-kernels --bench approx`

use bitrnn_kernels::approx;
use bitrnn_kernels::lanes::{LANES, Vf32};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// Inputs per iteration: 32 or 64 KiB, so inputs and outputs stay in L1.
const VECTORS: usize = 1024;

/// `VECTORS` vectors of values spread evenly over `[lo, hi]`.
fn inputs(lo: f32, hi: f32) -> Vec<Vf32> {
    let step = (hi - lo) / (VECTORS * LANES) as f32;
    (0..VECTORS)
        .map(|i| Vf32::new(core::array::from_fn(|j| lo + (i * LANES + j) as f32 * step)))
        .collect()
}

/// Times `approx` and `wide` on `[lo, hi]`, after checking once that they agree to 1e-6
/// relative to the larger of `|wide|` and `floor` (absolute below `floor`, where wide's
/// `ln` near 1 and `ln(1 + e)` for tiny `e` lose their relative accuracy).
fn pair(
    c: &mut Criterion,
    name: &str,
    (lo, hi, floor): (f32, f32, f32),
    approx: impl Fn(Vf32) -> Vf32,
    wide: impl Fn(Vf32) -> Vf32,
) {
    let xs = inputs(lo, hi);
    let difference = xs
        .iter()
        .flat_map(|&x| approx(x).to_array().into_iter().zip(wide(x).to_array()))
        .map(|(a, w)| (a - w).abs() / w.abs().max(floor))
        .fold(0.0, f32::max);
    assert!(
        difference < 1e-6,
        "{name}: approx and wide differ by {difference}"
    );

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(VECTORS as u64));
    let mut out = vec![Vf32::ZERO; VECTORS];
    group.bench_function("approx", |b| {
        b.iter(|| {
            for (y, &x) in out.iter_mut().zip(black_box(&xs)) {
                *y = approx(x);
            }
            black_box(&out);
        });
    });
    group.bench_function("wide", |b| {
        b.iter(|| {
            for (y, &x) in out.iter_mut().zip(black_box(&xs)) {
                *y = wide(x);
            }
            black_box(&out);
        });
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let tiny = f32::MIN_POSITIVE;
    pair(c, "tanh", (-5.0, 5.0, 1.0), approx::tanh, Vf32::tanh);
    pair(c, "exp", (-20.0, 20.0, tiny), approx::exp, Vf32::exp);
    pair(c, "ln", (1e-3, 1e3, 1.0), approx::ln, Vf32::ln);
    pair(
        c,
        "sigmoid",
        (-20.0, 20.0, tiny),
        approx::sigmoid,
        |x: Vf32| Vf32::ONE / (Vf32::ONE + (-x).exp()),
    );
    pair(
        c,
        "softplus",
        (-20.0, 20.0, 1.0),
        approx::softplus,
        |x: Vf32| x.max(Vf32::ZERO) + (Vf32::ONE + (-x.abs()).exp()).ln(),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
