//! The dataset generator against the rule, the statistics it promises, a naive per-bit oracle,
//! and the time-major bit planes against direct indexing.

use bitrnn::data::Dataset;
use proptest::prelude::*;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

const LAGS: [(usize, usize); 7] = [(1, 2), (2, 1), (5, 6), (3, 70), (64, 1), (1, 128), (63, 65)];

/// The rule of SEED.md, one bit at a time, from the documented RNG streams: X from
/// `seed_from_u64(seed)`, the coins from a clone advanced by `jump()`, one `next_u64` per 64
/// samples each.
fn oracle(data_size: usize, (a, b): (usize, usize), seed: u64) -> (Vec<bool>, Vec<bool>) {
    let mut x_rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut coin_rng = x_rng.clone();
    coin_rng.jump();
    let n_words = data_size.div_ceil(64);
    let x_words: Vec<u64> = (0..n_words).map(|_| x_rng.next_u64()).collect();
    let coin_words: Vec<u64> = (0..n_words).map(|_| coin_rng.next_u64()).collect();
    let bit = |words: &[u64], i: usize| words[i / 64] >> (i % 64) & 1 == 1;
    let x: Vec<bool> = (0..data_size).map(|i| bit(&x_words, i)).collect();
    let y = (0..data_size)
        .map(|i| {
            if i >= a.max(b) && x[i - a] == x[i - b] {
                !x[i - a]
            } else {
                bit(&coin_words, i)
            }
        })
        .collect();
    (x, y)
}

/// Asserts `ds` equals the oracle bit for bit, and that its padding bits are 0.
fn assert_matches_oracle(ds: &Dataset, seed: u64) {
    let n = ds.data_size();
    let (x, y) = oracle(n, ds.lags(), seed);
    assert_eq!(ds.x_words().len(), n.div_ceil(64));
    assert_eq!(ds.y_words().len(), n.div_ceil(64));
    for i in 0..n {
        assert_eq!(ds.x(i), x[i], "X[{i}], n {n}, lags {:?}", ds.lags());
        assert_eq!(ds.y(i), y[i], "Y[{i}], n {n}, lags {:?}", ds.lags());
    }
    if !n.is_multiple_of(64) {
        let pad = !0u64 << (n % 64);
        assert_eq!(ds.x_words().last().unwrap() & pad, 0, "X padding, n {n}");
        assert_eq!(ds.y_words().last().unwrap() & pad, 0, "Y padding, n {n}");
    }
}

/// `|count - n/2| <= 5 sigma` for `count` successes of `n` fair coins.
fn assert_fair(count: usize, n: usize, what: &str) {
    let sigma = (n as f64 / 4.0).sqrt();
    let dev = (count as f64 - n as f64 / 2.0).abs();
    assert!(
        dev <= 5.0 * sigma,
        "{what}: {count} of {n}, {:.1} sigma from half",
        dev / sigma
    );
}

#[test]
fn forced_targets_follow_the_rule() {
    let n = 1_000_000;
    for lags @ (a, b) in LAGS {
        let ds = Dataset::generate(n, lags, 7);
        assert_eq!(ds.data_size(), n);
        assert_eq!(ds.lags(), lags);
        let mut forced = 0;
        for i in a.max(b)..n {
            if ds.x(i - a) == ds.x(i - b) {
                forced += 1;
                assert_eq!(ds.y(i), !ds.x(i - a), "Y[{i}], lags {lags:?}");
            }
        }
        assert_fair(forced, n - a.max(b), "forced positions");
    }
}

#[test]
fn inputs_and_coins_are_fair_and_independent() {
    let n = 1_000_000;
    for lags @ (a, b) in LAGS {
        let ds = Dataset::generate(n, lags, 11);
        let x_ones = (0..n).filter(|&i| ds.x(i)).count();
        assert_fair(x_ones, n, "X ones");
        let is_coin = |i: usize| i < a.max(b) || ds.x(i - a) != ds.x(i - b);
        let coins: Vec<usize> = (0..n).filter(|&i| is_coin(i)).collect();
        let coin_ones = coins.iter().filter(|&&i| ds.y(i)).count();
        assert_fair(coin_ones, coins.len(), "Y coin ones");
        // Coins drawn from the X stream itself would agree with X far from half the time.
        let agree = coins.iter().filter(|&&i| ds.y(i) == ds.x(i)).count();
        assert_fair(agree, coins.len(), "Y coin == X");
        let forced_ones = (a.max(b)..n).filter(|&i| !is_coin(i) && ds.y(i)).count();
        assert_fair(forced_ones, n - coins.len(), "forced Y ones");
    }
}

#[test]
fn matches_oracle_around_every_word_boundary() {
    for n in (0..=260).chain([1000, 4095, 4096, 4097]) {
        for lags in LAGS {
            assert_matches_oracle(&Dataset::generate(n, lags, n as u64), n as u64);
        }
    }
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = Dataset::generate(100_000, (1, 2), 42);
    assert_eq!(a, Dataset::generate(100_000, (1, 2), 42));
    let b = Dataset::generate(100_000, (1, 2), 43);
    // Independent streams: each of the 1563 words differs with probability 1 - 2^-64.
    assert!(a.x_words().iter().zip(b.x_words()).all(|(p, q)| p != q));
    assert!(a.y_words().iter().zip(b.y_words()).all(|(p, q)| p != q));
    // The lags change Y only.
    let c = Dataset::generate(100_000, (5, 6), 42);
    assert_eq!(a.x_words(), c.x_words());
    assert_ne!(a.y_words(), c.y_words());
}

/// Runs `fill_planes` into NaN-like poisoned buffers and checks every output word against
/// direct indexing, padding streams included.
fn check_planes(
    ds: &Dataset,
    streams: usize,
    stream_len: usize,
    t0: usize,
    steps: usize,
    wpp: usize,
) {
    const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;
    let mut x_out = vec![POISON; steps * wpp];
    let mut y_out = vec![POISON; steps * wpp];
    ds.fill_planes(streams, stream_len, t0, steps, wpp, &mut x_out, &mut y_out);
    for t in 0..steps {
        for w in 0..wpp {
            let (mut want_x, mut want_y) = (0u64, 0u64);
            for b in 0..64 {
                let s = 64 * w + b;
                if s < streams {
                    want_x |= u64::from(ds.x(s * stream_len + t0 + t)) << b;
                    want_y |= u64::from(ds.y(s * stream_len + t0 + t)) << b;
                }
            }
            let at = format!("streams {streams} x {stream_len}, t0 {t0} t {t}, word {w} of {wpp}");
            assert_eq!(x_out[t * wpp + w], want_x, "X plane, {at}");
            assert_eq!(y_out[t * wpp + w], want_y, "Y plane, {at}");
        }
    }
}

#[test]
fn planes_cover_the_seed_epoch() {
    // The tutorial's shape: 250 streams of 2,000 steps, walked in calls of 64 steps.
    let ds = Dataset::generate(500_000, (1, 2), 3);
    let mut t0 = 0;
    while t0 < 2000 {
        let steps = (2000 - t0).min(64);
        check_planes(&ds, 250, 2000, t0, steps, 4);
        t0 += steps;
    }
}

#[test]
fn planes_around_multiples_of_8_and_64_streams() {
    let ds = Dataset::generate(200 * 37 + 5, (1, 2), 9);
    for streams in (1..=200).filter(|s| [0, 1, 7].contains(&(s % 8)) || s % 64 > 60) {
        for t0 in [0, 1, 36 - 1] {
            let steps = 37 - t0;
            check_planes(&ds, streams, 37, t0, steps, streams.div_ceil(64));
        }
    }
}

#[test]
fn planes_byte_g_is_streams_8g_to_8g_plus_8() {
    let ds = Dataset::generate(1000, (1, 2), 5);
    let mut x_out = [0u64; 2];
    let mut y_out = [0u64; 2];
    ds.fill_planes(100, 10, 4, 1, 2, &mut x_out, &mut y_out);
    let bytes: &[u8] = bytemuck::cast_slice(&x_out);
    for s in 0..100 {
        assert_eq!(
            bytes[s / 8] >> (s % 8) & 1 == 1,
            ds.x(s * 10 + 4),
            "stream {s}"
        );
    }
}

#[test]
#[should_panic(expected = "steps 65 > 64")]
fn planes_refuse_more_than_64_steps() {
    let ds = Dataset::generate(1000, (1, 2), 5);
    let mut out = vec![0u64; 65];
    let mut out2 = vec![0u64; 65];
    ds.fill_planes(10, 100, 0, 65, 1, &mut out, &mut out2);
}

#[test]
#[should_panic(expected = "data_size")]
fn planes_refuse_streams_past_the_data() {
    let ds = Dataset::generate(1000, (1, 2), 5);
    let mut out = vec![0u64; 4];
    let mut out2 = vec![0u64; 4];
    ds.fill_planes(11, 100, 0, 4, 1, &mut out, &mut out2);
}

proptest! {
    #[test]
    fn generate_equals_oracle(
        n in (0usize..3000).prop_filter("not a multiple of 64", |n| !n.is_multiple_of(64)),
        a in 1usize..200,
        b in 1usize..200,
        seed in any::<u64>(),
    ) {
        let b = if b == a { a + 1 } else { b };
        assert_matches_oracle(&Dataset::generate(n, (a, b), seed), seed);
    }

    #[test]
    fn planes_equal_direct_indexing(
        streams in 1usize..200,
        stream_len in 1usize..150,
        extra in 0usize..100,
        t0_frac in 0.0f64..1.0,
        steps_max in 0usize..=64,
        extra_words in 0usize..3,
        seed in any::<u64>(),
    ) {
        let ds = Dataset::generate(streams * stream_len + extra, (1, 2), seed);
        let t0 = ((stream_len as f64 * t0_frac) as usize).min(stream_len - 1);
        let steps = steps_max.min(stream_len - t0);
        check_planes(&ds, streams, stream_len, t0, steps, streams.div_ceil(64) + extra_words);
    }
}
