//! The dataset generator against the rule, the statistics it promises, a naive per-bit oracle,
//! and the time-major bit planes against direct indexing.

use bitrnn::data::{Dataset, Rule, r2rt_word};
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

/// The r2rt rule one bit at a time, from the documented RNG streams: X as for the seed rule,
/// two coin words per 64 samples from the jumped clone, `c1` then `c2`; the target is 1,
/// `c1 | c2`, `c1` or `c1 & c2` for `(X[i-a], X[i-b])` = (1,0), (1,1), (0,0), (0,1), and `c1`
/// (a fair coin) for the first `max(a, b)` samples.
fn r2rt_oracle(data_size: usize, (a, b): (usize, usize), seed: u64) -> (Vec<bool>, Vec<bool>) {
    let mut x_rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut coin_rng = x_rng.clone();
    coin_rng.jump();
    let n_words = data_size.div_ceil(64);
    let x_words: Vec<u64> = (0..n_words).map(|_| x_rng.next_u64()).collect();
    let coins: Vec<(u64, u64)> = (0..n_words)
        .map(|_| (coin_rng.next_u64(), coin_rng.next_u64()))
        .collect();
    let bit = |word: u64, i: usize| word >> (i % 64) & 1 == 1;
    let x: Vec<bool> = (0..data_size).map(|i| bit(x_words[i / 64], i)).collect();
    let y = (0..data_size)
        .map(|i| {
            let (c1, c2) = coins[i / 64];
            let (c1, c2) = (bit(c1, i), bit(c2, i));
            if i < a.max(b) {
                return c1;
            }
            match (x[i - a], x[i - b]) {
                (true, false) => true,
                (true, true) => c1 || c2,
                (false, false) => c1,
                (false, true) => c1 && c2,
            }
        })
        .collect();
    (x, y)
}

/// Asserts `ds` equals the oracle of its rule bit for bit, and that its padding bits are 0.
fn assert_matches_oracle(ds: &Dataset, seed: u64) {
    let n = ds.data_size();
    let (x, y) = match ds.rule() {
        Rule::Seed => oracle(n, ds.lags(), seed),
        Rule::R2rt => r2rt_oracle(n, ds.lags(), seed),
    };
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
        for lags in LAGS.into_iter().chain([(3, 8)]) {
            assert_matches_oracle(&Dataset::generate(n, lags, n as u64), n as u64);
            let r2rt = Dataset::generate_rule(Rule::R2rt, n, lags, n as u64);
            assert_eq!((r2rt.rule(), r2rt.lags()), (Rule::R2rt, lags));
            assert_matches_oracle(&r2rt, n as u64);
        }
    }
}

/// `generate` is the seed rule, and the r2rt rule draws the same X.
#[test]
fn generate_is_the_seed_rule_and_the_rules_share_x() {
    let seed = Dataset::generate(100_000, (1, 2), 5);
    assert_eq!(seed.rule(), Rule::Seed);
    assert_eq!(seed, Dataset::generate_rule(Rule::Seed, 100_000, (1, 2), 5));
    let r2rt = Dataset::generate_rule(Rule::R2rt, 100_000, (1, 2), 5);
    assert_eq!(r2rt.x_words(), seed.x_words());
    assert_ne!(r2rt.y_words(), seed.y_words());
}

/// The word-parallel r2rt logic against the rule's table, bit by bit: every one of the 16
/// combinations of (xa, xb, c1, c2) in bits 0..16 (repeated over the word), exactly.
#[test]
fn r2rt_word_is_the_table_for_every_bit_combination() {
    let pick = |k: usize| (0..64).fold(0u64, |w, j| w | (((j % 16) >> k & 1) as u64) << j);
    let (xa, xb, c1, c2) = (pick(0), pick(1), pick(2), pick(3));
    let y = r2rt_word(xa, xb, c1, c2);
    for j in 0..64 {
        let b = |w: u64| w >> j & 1 == 1;
        let want = match (b(xa), b(xb)) {
            (true, false) => true,
            (true, true) => b(c1) || b(c2),
            (false, false) => b(c1),
            (false, true) => b(c1) && b(c2),
        };
        assert_eq!(
            b(y),
            want,
            "bit {j}: xa {} xb {} c1 {} c2 {}",
            b(xa),
            b(xb),
            b(c1),
            b(c2)
        );
    }
}

proptest! {
    /// The same per-bit oracle on random words.
    #[test]
    fn r2rt_word_matches_the_per_bit_table(xa: u64, xb: u64, c1: u64, c2: u64) {
        let y = r2rt_word(xa, xb, c1, c2);
        for j in 0..64 {
            let b = |w: u64| w >> j & 1 == 1;
            let want = if b(xa) { !b(xb) || b(c1) || b(c2) } else { b(c1) && (!b(xb) || b(c2)) };
            prop_assert_eq!(b(y), want, "bit {}", j);
        }
    }
}

/// The 64 bits of sample positions `64w - lag ..` of `words` (before the start: 0).
fn lagged_word(words: &[u64], w: usize, lag: usize) -> u64 {
    let at = |i: isize| usize::try_from(i).map_or(0, |i| words[i]);
    let start = 64 * w as isize - lag as isize;
    let (q, r) = (start.div_euclid(64), start.rem_euclid(64) as u32);
    let lo = u128::from(at(q)) | u128::from(at(q + 1)) << 64;
    (lo >> r) as u64
}

/// `|count - n p| <= 5 sigma` for `count` successes of `n` draws with probability `p`
/// (exact when `p` is 0 or 1).
fn assert_rate(count: u64, n: u64, p: f64, what: &str) {
    let (n_f, count_f) = (n as f64, count as f64);
    let sigma = (n_f * p * (1.0 - p)).sqrt();
    let dev = (count_f - n_f * p).abs();
    assert!(
        dev <= 5.0 * sigma,
        "{what}: {count} of {n}, rate {:.5}, want {p} ({:.1} sigma)",
        count_f / n_f,
        dev / sigma
    );
}

/// The r2rt statistics on 10^7 samples: P(y = 1 | x[i-a], x[i-b]) within 5 sigma of 1/2, 1,
/// 1/4 and 3/4 (exactly 1 for (1, 0)), and X fair. Counted 64 samples at a time with
/// popcounts.
#[test]
fn r2rt_conditional_rates_hold_on_ten_million_samples() {
    let n = 10_000_000;
    for lags @ (a, b) in [(3, 8), (70, 5)] {
        let ds = Dataset::generate_rule(Rule::R2rt, n, lags, 2026);
        let (x, y) = (ds.x_words(), ds.y_words());
        let x_ones: u64 = x.iter().map(|w| u64::from(w.count_ones())).sum();
        assert_fair(x_ones as usize, n, "X ones");
        // Whole words whose every sample is ruled (i >= max(a, b)); the last may be partial.
        let first = a.max(b).div_ceil(64);
        let full = n / 64;
        let mut counts = [[(0u64, 0u64); 2]; 2];
        for (w, &y_word) in y.iter().enumerate().take(full).skip(first) {
            let (xa, xb) = (lagged_word(x, w, a), lagged_word(x, w, b));
            for (va, ma) in [(0, !xa), (1, xa)] {
                for (vb, mb) in [(0, !xb), (1, xb)] {
                    let m = ma & mb;
                    let c = &mut counts[va][vb];
                    c.0 += u64::from((y_word & m).count_ones());
                    c.1 += u64::from(m.count_ones());
                }
            }
        }
        for (va, vb, p) in [(0, 0, 0.5), (1, 0, 1.0), (0, 1, 0.25), (1, 1, 0.75)] {
            let (ones, of) = counts[va][vb];
            assert_rate(
                ones,
                of,
                p,
                &format!("P(y = 1 | x[i-a] = {va}, x[i-b] = {vb}), lags {lags:?}"),
            );
            assert_rate(of, ((full - first) * 64) as u64, 0.25, "cell share");
        }
    }
}

/// The reference levels are the losses of the Bayes predictors: the README's numbers, and
/// the rule's own table scored on generated data lands on the lowest level.
#[test]
fn reference_levels_are_the_bayes_losses() {
    let levels = |rule: Rule| -> Vec<(&str, f64, f64)> {
        rule.reference_levels()
            .iter()
            .map(|l| (l.name, l.loss, l.accuracy))
            .collect()
    };
    let ln2 = std::f64::consts::LN_2;
    let seed = levels(Rule::Seed);
    assert_eq!(seed.len(), 2);
    assert_eq!((seed[0].0, seed[1].0), ("rule_learned", "nothing_learned"));
    assert!((seed[0].1 - ln2 / 2.0).abs() < 1e-15 && (seed[1].1 - ln2).abs() < 1e-15);
    assert_eq!((seed[0].2, seed[1].2), (0.75, 0.5));
    let r2rt = levels(Rule::R2rt);
    let names: Vec<&str> = r2rt.iter().map(|l| l.0).collect();
    assert_eq!(names, ["both_lags", "lag_a_only", "nothing_learned"]);
    let rounded: Vec<String> = r2rt.iter().map(|l| format!("{:.4}", l.1)).collect();
    assert_eq!(rounded, ["0.4545", "0.5192", "0.6616"]);
    assert_eq!((r2rt[0].2, r2rt[1].2, r2rt[2].2), (0.75, 0.75, 0.625));

    // Score the Bayes predictor that knows both inputs on 10^6 generated samples.
    let n = 1_000_000;
    for rule in [Rule::Seed, Rule::R2rt] {
        let (a, b) = rule.default_lags();
        let ds = Dataset::generate_rule(rule, n, (a, b), 3);
        let start = a.max(b);
        let loss: f64 = (start..n)
            .map(|i| {
                let p = rule.p_one(ds.x(i - a), ds.x(i - b));
                let q = if ds.y(i) { p } else { 1.0 - p };
                if q == 1.0 { 0.0 } else { -q.ln() }
            })
            .sum::<f64>()
            / (n - start) as f64;
        let best = rule.reference_levels()[0].loss;
        // Per-sample losses are at most ln 4 (p = 1/4 missed), so the mean's sigma is below
        // ln 4 / sqrt(n) = 0.0014.
        assert!(
            (loss - best).abs() < 5.0 * 4f64.ln() / (n as f64).sqrt(),
            "{rule}: {loss} vs {best}"
        );
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
