//! `approx`'s transcendentals next to `wide`'s, one criterion group per function. Throughput
//! is in `f32x8` vectors (8 values): criterion's "elem/s" is vectors per second, and the time
//! per iteration divided by `VECTORS` is the cost of one call, in a loop over independent
//! inputs (the kernels' case: a tile of hidden units at once).
//!
//! `cargo bench -p bitrnn-kernels --bench approx`

use bitrnn_kernels::approx;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wide::f32x8;

/// Inputs per iteration: 32 KiB, so inputs and outputs stay in L1.
const VECTORS: usize = 1024;

/// `VECTORS` vectors of values spread evenly over `[lo, hi]`.
fn inputs(lo: f32, hi: f32) -> Vec<f32x8> {
    let step = (hi - lo) / (VECTORS * 8) as f32;
    (0..VECTORS)
        .map(|i| f32x8::new(core::array::from_fn(|j| lo + (i * 8 + j) as f32 * step)))
        .collect()
}

/// Largest `|a - b| / max(|b|, floor)` over the inputs: the two implementations agree.
fn max_difference(a: fn(f32x8) -> f32x8, b: fn(f32x8) -> f32x8, xs: &[f32x8], floor: f32) -> f32 {
    xs.iter()
        .flat_map(|&x| a(x).to_array().into_iter().zip(b(x).to_array()))
        .map(|(p, q)| (p - q).abs() / q.abs().max(floor))
        .fold(0.0, f32::max)
}

fn group(c: &mut Criterion, name: &str, xs: &[f32x8], candidates: [(&str, fn(f32x8) -> f32x8); 2]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(VECTORS as u64));
    let mut out = vec![f32x8::ZERO; VECTORS];
    for (label, f) in candidates {
        group.bench_function(label, |b| {
            b.iter(|| {
                for (y, &x) in out.iter_mut().zip(black_box(xs)) {
                    *y = f(x);
                }
                black_box(&out);
            });
        });
    }
    group.finish();
}

fn wide_tanh(x: f32x8) -> f32x8 {
    x.tanh()
}
fn wide_exp(x: f32x8) -> f32x8 {
    x.exp()
}
fn wide_ln(x: f32x8) -> f32x8 {
    x.ln()
}
fn wide_sigmoid(x: f32x8) -> f32x8 {
    f32x8::ONE / (f32x8::ONE + (-x).exp())
}
fn wide_softplus(x: f32x8) -> f32x8 {
    x.max(f32x8::ZERO) + (f32x8::ONE + (-x.abs()).exp()).ln()
}

fn bench(c: &mut Criterion) {
    let cases: [(&str, Vec<f32x8>, [(&str, fn(f32x8) -> f32x8); 2], f32); 5] = [
        ("tanh", inputs(-5.0, 5.0), [("approx", approx::tanh), ("wide", wide_tanh)], 1.0),
        ("exp", inputs(-20.0, 20.0), [("approx", approx::exp), ("wide", wide_exp)], 0.0),
        ("ln", inputs(1e-3, 1e3), [("approx", approx::ln), ("wide", wide_ln)], 1.0),
        ("sigmoid", inputs(-20.0, 20.0), [("approx", approx::sigmoid), ("wide", wide_sigmoid)], 0.0),
        ("softplus", inputs(-20.0, 20.0), [("approx", approx::softplus), ("wide", wide_softplus)], 1.0),
    ];
    for (name, xs, candidates, floor) in cases {
        // Relative to the larger of |wide| and `floor`: absolute below `floor`, where wide's
        // `ln(1 + e)` for tiny `e` and its `ln` near 1 lose their relative accuracy.
        let difference = max_difference(candidates[0].1, candidates[1].1, &xs, floor.max(f32::MIN_POSITIVE));
        assert!(difference < 1e-6, "{name}: approx and wide differ by {difference}");
        group(c, name, &xs, candidates);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
