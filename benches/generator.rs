//! The dataset generator and the time-major bit planes, in samples per second.
//!
//! `cargo bench --bench generator -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bitrnn::data::{Dataset, Rule};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn generator(c: &mut Criterion) {
    let mut group = c.benchmark_group("generator");

    let data_size = 10_000_000;
    let lags = (1, 2);
    // Checked once before timing: the rule holds on a prefix, X is about half ones.
    let ds = Dataset::generate(data_size, lags, 1);
    assert!((2..100_000).all(|i| ds.x(i - 1) != ds.x(i - 2) || ds.y(i) != ds.x(i - 1)));
    let ones: u32 = ds.x_words().iter().map(|w| w.count_ones()).sum();
    assert!((f64::from(ones) / data_size as f64 - 0.5).abs() < 0.001);
    group.throughput(Throughput::Elements(data_size as u64));
    group.bench_function("generate 10M", |bch| {
        bch.iter(|| Dataset::generate(black_box(data_size), black_box(lags), black_box(1)));
    });
    // The r2rt rule: two coin words per Y word. Checked once: its (1, 0) cell is always 1.
    let r2rt_lags = Rule::R2rt.default_lags();
    let ds = Dataset::generate_rule(Rule::R2rt, data_size, r2rt_lags, 1);
    assert!((8..100_000).all(|i| !ds.x(i - 3) || ds.x(i - 8) || ds.y(i)));
    group.bench_function("generate 10M r2rt", |bch| {
        bch.iter(|| {
            Dataset::generate_rule(
                Rule::R2rt,
                black_box(data_size),
                black_box(r2rt_lags),
                black_box(1),
            )
        });
    });

    // One epoch of the seed shape: 250 streams x 2,000 steps, in calls of 64 steps.
    let (streams, stream_len): (usize, usize) = (250, 2000);
    let words_per_plane = streams.div_ceil(64);
    let ds = Dataset::generate(streams * stream_len, lags, 1);
    let mut x_out = vec![0u64; 64 * words_per_plane];
    let mut y_out = vec![0u64; 64 * words_per_plane];
    let epoch = |x_out: &mut [u64], y_out: &mut [u64]| {
        let mut acc = 0u64;
        for t0 in (0..stream_len).step_by(64) {
            let steps = (stream_len - t0).min(64);
            let n = steps * words_per_plane;
            ds.fill_planes(
                black_box(streams),
                stream_len,
                t0,
                steps,
                words_per_plane,
                &mut x_out[..n],
                &mut y_out[..n],
            );
            acc ^= x_out[n - 1] ^ y_out[0];
        }
        acc
    };
    epoch(&mut x_out, &mut y_out);
    // The buffers now hold the last call, whose plane 0 is time step t.
    let t = (stream_len - 1) / 64 * 64;
    for s in 0..streams {
        let bit = |out: &[u64]| out[s / 64] >> (s % 64) & 1 == 1;
        assert_eq!(bit(&x_out), ds.x(s * stream_len + t), "stream {s}");
        assert_eq!(bit(&y_out), ds.y(s * stream_len + t), "stream {s}");
    }
    group.throughput(Throughput::Elements((streams * stream_len) as u64));
    group.bench_function("fill_planes epoch 250x2000", |bch| {
        bch.iter(|| epoch(black_box(&mut x_out), black_box(&mut y_out)));
    });
    group.finish();
}

criterion_group!(benches, generator);
criterion_main!(benches);
