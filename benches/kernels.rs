//! The kernels side by side: the scalar reference and the SIMD engine on the same window,
//! forward, backward and the whole window, at hidden 6, 64 and 256. Throughput is in
//! sample-steps (one stream advancing one step).
//!
//! `cargo bench --bench kernels`

use bitrnn_kernels::simd::{self, Planes, Prepared, Workspace};
use bitrnn_kernels::{Params, reference};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// A window's worth of inputs: random weights, state and bits from a small LCG.
struct Case {
    streams: usize,
    time_step: usize,
    params: Params<f32>,
    h0: Vec<f32>,
    x: Vec<u8>,
    y: Vec<u8>,
    xp: Vec<u8>,
    yp: Vec<u8>,
}

impl Case {
    fn new(hidden: usize, streams: usize, time_step: usize) -> Self {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ hidden as u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let limit = (3.0 / hidden as f64).sqrt();
        let mut params = Params::<f32>::zeros(hidden);
        for v in &mut params.data {
            *v = ((next() as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) * limit) as f32;
        }
        let h0 = (0..streams * hidden)
            .map(|_| (next() as f64 / (1u64 << 31) as f64 - 0.5) as f32)
            .collect();
        let x: Vec<u8> = (0..streams * time_step)
            .map(|_| (next() & 1) as u8)
            .collect();
        let y: Vec<u8> = (0..streams * time_step)
            .map(|_| (next() & 1) as u8)
            .collect();
        let stride = simd::plane_bytes(streams);
        let (mut xp, mut yp) = (vec![0u8; time_step * stride], vec![0u8; time_step * stride]);
        for t in 0..time_step {
            for s in 0..streams {
                xp[t * stride + s / 8] |= x[t * streams + s] << (s % 8);
                yp[t * stride + s / 8] |= y[t * streams + s] << (s % 8);
            }
        }
        Self {
            streams,
            time_step,
            params,
            h0,
            x,
            y,
            xp,
            yp,
        }
    }
    fn planes(&self) -> Planes<'_> {
        Planes {
            x: &self.xp,
            y: &self.yp,
            stride: simd::plane_bytes(self.streams),
        }
    }
    fn sample_steps(&self) -> u64 {
        (self.streams * self.time_step) as u64
    }
}

fn bench_hidden(c: &mut Criterion, hidden: usize, streams: usize) {
    let case = Case::new(hidden, streams, 5);
    let scale = 1.0 / case.sample_steps() as f32;
    let mut prepared = Prepared::new(hidden);
    prepared.load(&case.params);
    let mut ws = Workspace::new(hidden, streams, case.time_step);
    let mut grad = vec![0.0f32; case.params.data.len()];

    // Check once before timing: the SIMD window agrees with the reference.
    ws.load_state(&case.h0);
    let stats = simd::forward_backward(&prepared, &mut ws, &case.planes(), scale, &mut grad);
    let win = reference::Window {
        streams,
        time_step: case.time_step,
        x: &case.x,
        y: &case.y,
    };
    let mut g_ref = Params::zeros(hidden);
    let mut h_ref = vec![0.0; streams * hidden];
    let loss_ref =
        reference::forward_backward(&case.params, &case.h0, &win, &mut g_ref, &mut h_ref);
    let loss = stats.loss_sum as f32 * scale;
    assert!(
        (loss - loss_ref).abs() < 1e-3,
        "simd loss {loss} vs reference {loss_ref}"
    );

    let mut group = c.benchmark_group(format!("window/hidden{hidden}"));
    group.throughput(Throughput::Elements(case.sample_steps()));
    if hidden >= 64 {
        group.sample_size(10);
    }
    let id = |name: &str| BenchmarkId::new(name, format!("{streams}x{}", case.time_step));
    group.bench_function(id("scalar/forward_backward"), |b| {
        b.iter(|| {
            reference::forward_backward(
                black_box(&case.params),
                &case.h0,
                &win,
                &mut g_ref,
                &mut h_ref,
            )
        });
    });
    group.bench_function(id("simd/forward"), |b| {
        b.iter(|| simd::forward_train(black_box(&prepared), &mut ws, &case.planes(), scale));
    });
    group.bench_function(id("simd/backward"), |b| {
        simd::forward_train(&prepared, &mut ws, &case.planes(), scale);
        b.iter(|| simd::backward(black_box(&prepared), &mut ws, &mut grad));
    });
    group.bench_function(id("simd/forward_backward"), |b| {
        b.iter(|| {
            simd::forward_backward(
                black_box(&prepared),
                &mut ws,
                &case.planes(),
                scale,
                &mut grad,
            )
        });
    });
    group.finish();
}

fn kernels(c: &mut Criterion) {
    bench_hidden(c, 6, 256);
    bench_hidden(c, 64, 256);
    bench_hidden(c, 256, 256);
}

criterion_group!(benches, kernels);
criterion_main!(benches);
