//! The bit-packed dataset generator and its time-major bit planes.
//!
//! Two rules ([`Rule`]) make the targets: `seed` (the tutorial's, below) and `r2rt`.
//!
//! # The seed rule
//!
//! The tutorial's data: inputs `X[i]` are independent fair coins. With lags `(a, b)`
//! (default `(1, 2)`), the target is
//!
//! ```text
//! Y[i] = !X[i-a]    if i >= max(a, b) and X[i-a] == X[i-b]   (forced: both 1 -> 0, both 0 -> 1)
//! Y[i] = C[i]       otherwise                                (a fresh fair coin)
//! ```
//!
//! so about half the targets are forced and predictable and half are coins: a model that has
//! learned the rule reaches a loss of (ln 2) / 2, one that has not stays at ln 2.
//!
//! # The r2rt rule
//!
//! The rule of r2rt.com's "RNNs in Tensorflow" post: X the same fair coins, and with lags
//! `(a, b)` (default `(3, 8)`) each target a fresh draw with
//!
//! ```text
//! P(Y[i] = 1) = 0.5 + 0.5 X[i-a] - 0.25 X[i-b]      if i >= max(a, b)
//!             = 0.5                                  otherwise (no history: a fair coin)
//! ```
//!
//! i.e. 1 for `(X[i-a], X[i-b]) = (1, 0)`, 3/4 for `(1, 1)`, 1/2 for `(0, 0)`, 1/4 for `(0, 1)`.
//! [`Rule::reference_levels`] derives the losses of the best predictors from this table.
//!
//! # Layout
//!
//! X and Y are each stored as 64 samples per `u64`, sample `i` at word `i / 64`, bit `i % 64`
//! (bit 0 = least significant):
//!
//! ```text
//! word:      0                  1                     n_words-1
//! bit:   [0 1 2 ... 63]  [64 65 ... 127]  ...  [.. data_size-1 | 0 0 0]
//!                                                              padding bits are 0
//! ```
//!
//! Memory: `2 * ceil(data_size / 64)` words, i.e. 2 bits per sample plus a constant
//! (500,000 samples take 125 KB).
//!
//! # Randomness
//!
//! `Xoshiro256PlusPlus::seed_from_u64(seed)` draws X, one `next_u64` per word. The coins `C`
//! come from a second stream: a clone of the X generator advanced by `jump()` (2^128 draws),
//! so the two never overlap. One coin word is drawn per Y word, forced or not, so the coins
//! of sample `i` do not depend on the lags. The r2rt rule draws two coin words per Y word from
//! the same stream, `c1` then `c2`.
//!
//! # Word-parallel generation
//!
//! For word `w` (samples `64w .. 64w+64`), the window `xa` whose bit `j` is `X[64w + j - a]` is
//! a funnel shift of two X words (words before 0 read as 0; those bits are masked below), and
//! likewise `xb`. Then, for all 64 samples at once:
//!
//! ```text
//! eq     = !(xa ^ xb) & ruled      ruled: bits with 64w + j >= max(a, b)
//! Y word = (eq & !xa) | (!eq & coin)
//! ```
//!
//! The r2rt rule's probabilities are ANDs and ORs of the two independent fair coin words: a
//! bit of `c1` is 1 with probability 1/2, of `c1 & c2` with 1/4, of `c1 | c2` with 3/4, so
//! ([`r2rt_word`], with `xa` and `xb` masked by `ruled`, so unruled bits read `(0, 0)` and are
//! the coin `c1`):
//!
//! ```text
//! Y word = (xa & (!xb | c1 | c2)) | (!xa & c1 & (!xb | c2))
//!           xa = 1: 1 where xb = 0,         xa = 0: c1 where xb = 0,
//!                   c1 | c2 where xb = 1            c1 & c2 where xb = 1
//! ```
//!
//! # Time-major bit planes
//!
//! The trainer reshapes the sequence into `streams = data_size / stream_len` parallel streams
//! (stream `s` is samples `[s * stream_len, (s + 1) * stream_len)`; the leftover samples are
//! unused) and needs, per time step, one bit per stream: [`Dataset::fill_planes`].
//!
//! ```text
//! plane t (words_per_plane words):   word w, bit b  =  X[(64w + b) * stream_len + t0 + t]
//!   word 0: streams 0..64   word 1: streams 64..128  ...   bits of streams >= `streams` are 0
//! ```

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Which rule makes the targets (`--rule`); see the module documentation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// The tutorial's: where x[i-A] == x[i-B] the target is !x[i-A], else a coin.
    #[default]
    Seed,
    /// r2rt's: `P(y[i] = 1) = 0.5 + 0.5 x[i-A] - 0.25 x[i-B]`, a fresh draw each step.
    R2rt,
}

/// The loss (and accuracy) of the best predictor that knows a given part of the rule's inputs:
/// a level the training loss can settle at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReferenceLevel {
    /// The key in summary.json (`nothing_learned`, ...).
    pub name: &'static str,
    /// What a model at this level has learned, for the report and the plot's legend.
    pub label: &'static str,
    /// Expected cross-entropy (natural log) per sample of the Bayes predictor.
    pub loss: f64,
    /// Expected accuracy of the Bayes predictor (argmax of its probability).
    pub accuracy: f64,
}

/// Binary entropy in nats, `-p ln p - (1 - p) ln(1 - p)`, with `0 ln 0 = 0`.
fn entropy(p: f64) -> f64 {
    let term = |q: f64| if q > 0.0 { -q * q.ln() } else { 0.0 };
    term(p) + term(1.0 - p)
}

impl Rule {
    /// The name as the flag and the JSON spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Rule::Seed => "seed",
            Rule::R2rt => "r2rt",
        }
    }

    /// The lags when `--lags` is not given: `(1, 2)` for the seed rule, `(3, 8)` for r2rt.
    #[must_use]
    pub fn default_lags(self) -> (usize, usize) {
        match self {
            Rule::Seed => (1, 2),
            Rule::R2rt => (3, 8),
        }
    }

    /// `P(Y[i] = 1 | X[i-a] = xa, X[i-b] = xb)` for `i >= max(a, b)`.
    #[must_use]
    pub fn p_one(self, xa: bool, xb: bool) -> f64 {
        match self {
            Rule::Seed if xa == xb => f64::from(u8::from(!xa)),
            Rule::Seed => 0.5,
            Rule::R2rt => 0.5 + 0.5 * f64::from(u8::from(xa)) - 0.25 * f64::from(u8::from(xb)),
        }
    }

    /// The levels the loss can settle at, lowest loss first, derived from [`Rule::p_one`]
    /// with `X[i-a]`, `X[i-b]` independent fair coins (the first `max(a, b)` targets, fair coins
    /// for both rules, are a vanishing share and left out). A predictor that knows a set of
    /// inputs predicts `p` = P(y = 1 | those inputs) and pays the binary entropy `H(p)` on
    /// average over the rest:
    ///
    /// ```text
    /// nothing learned:  H(mean of the four p)                          seed ln 2,      r2rt H(5/8) = 0.6616
    /// lag a only:       mean over xa of H(mean over xb of p)           (r2rt) (H(7/8) + H(3/8)) / 2 = 0.5192
    /// rule learned:     mean of the four H(p)                          seed ln 2 / 2,  r2rt (0 + H(3/4) + H(1/2) + H(1/4)) / 4 = 0.4545
    /// ```
    ///
    /// The seed rule's lag-a level (H(1/4) = 0.5623) is left out: its story is two levels.
    #[must_use]
    pub fn reference_levels(self) -> Vec<ReferenceLevel> {
        let cells = [(false, false), (false, true), (true, false), (true, true)];
        let p = |(xa, xb): (bool, bool)| self.p_one(xa, xb);
        // The Bayes predictor's accuracy where it predicts p: max(p, 1 - p).
        let sure = |p: f64| p.max(1.0 - p);
        let marginal = cells.iter().map(|&c| p(c)).sum::<f64>() / 4.0;
        let nothing = ReferenceLevel {
            name: "nothing_learned",
            label: "nothing learned",
            loss: entropy(marginal),
            accuracy: sure(marginal),
        };
        let both = |name, label| ReferenceLevel {
            name,
            label,
            loss: cells.iter().map(|&c| entropy(p(c))).sum::<f64>() / 4.0,
            accuracy: cells.iter().map(|&c| sure(p(c))).sum::<f64>() / 4.0,
        };
        match self {
            Rule::Seed => vec![both("rule_learned", "rule learned"), nothing],
            Rule::R2rt => {
                let given_a = [false, true].map(|xa| (p((xa, false)) + p((xa, true))) / 2.0);
                let lag_a = ReferenceLevel {
                    name: "lag_a_only",
                    label: "lag a only",
                    loss: given_a.iter().map(|&q| entropy(q)).sum::<f64>() / 2.0,
                    accuracy: given_a.iter().map(|&q| sure(q)).sum::<f64>() / 2.0,
                };
                vec![both("both_lags", "both lags learned"), lag_a, nothing]
            }
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The r2rt rule on 64 samples at once: bit `j` of the result is 1 where bit `j` of `xa` is 1
/// and of `xb` is 0, bit `j` of `c1 | c2` where both are 1, of `c1` where both are 0, and of
/// `c1 & c2` where `xa` is 0 and `xb` is 1. With `c1`, `c2` independent fair coin words these
/// are 1 with probability 1, 3/4, 1/2 and 1/4.
#[must_use]
#[inline(always)]
pub fn r2rt_word(xa: u64, xb: u64, c1: u64, c2: u64) -> u64 {
    (xa & (!xb | c1 | c2)) | (!xa & c1 & (!xb | c2))
}

/// X and Y bit-packed, 64 samples per word; see the module documentation for the rules and
/// the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    x: Vec<u64>,
    y: Vec<u64>,
    data_size: usize,
    rule: Rule,
    lags: (usize, usize),
}

/// The top 64 bits of the 128-bit `hi:lo` shifted left by `shift` (0..64): bit `j` of the
/// result is bit `j - shift` of `hi`, or bit `64 + j - shift` of `lo` where `j < shift`.
#[inline(always)]
fn funnel(hi: u64, lo: u64, shift: u32) -> u64 {
    debug_assert!(shift < 64);
    // `lo >> (64 - shift)` would overflow at shift 0; two shifts give 0 there, with no branch.
    hi << shift | (lo >> 1) >> (63 - shift)
}

/// The 64 bits of `words` starting at bit position `pos`: bit `j` of the result is bit
/// `pos + j` of the sequence; positions past the end read as 0.
#[inline(always)]
fn bits_at(words: &[u64], pos: usize) -> u64 {
    let q = pos / 64;
    let r = (pos % 64) as u32;
    let lo = words.get(q).copied().unwrap_or(0);
    let hi = words.get(q + 1).copied().unwrap_or(0);
    // bits pos.. = (hi:lo) >> r = top 64 bits of (hi:lo) << (64 - r); r = 0 is just `lo`.
    if r == 0 { lo } else { funnel(hi, lo, 64 - r) }
}

/// 64x64 bit-matrix transpose in place: afterwards bit `j` of `m[i]` is what bit `i` of
/// `m[j]` was. Six rounds; round `j` (32, 16, ..., 1) swaps, in every 2j x 2j block, the
/// top-right j x j block (rows k, bits j..2j) with the bottom-left one (rows k+j, bits 0..j).
#[inline]
fn transpose64(m: &mut [u64; 64]) {
    let mut j = 32;
    let mut mask: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((m[k] >> j) ^ m[k + j]) & mask;
            m[k] ^= t << j;
            m[k + j] ^= t;
            // Next row with bit j clear.
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

/// Mask of the bits of word `w` whose sample index is `>= from`.
#[inline(always)]
fn bits_from(w: usize, from: usize) -> u64 {
    let start = 64 * w;
    if start >= from {
        !0
    } else if from - start >= 64 {
        0
    } else {
        !0 << (from - start)
    }
}

/// The Y words of `x` (`x.len()` words) with lags `(a, b)`: word `w` is
/// `target(xa, xb, ruled)`, called once per word in order, where bit `j` of `xa` is
/// `X[64w + j - a]` (0 before the start), likewise `xb`, and `ruled` has the bits with
/// `64w + j >= max(a, b)` set.
#[inline(always)]
fn y_words(
    x: &[u64],
    (a, b): (usize, usize),
    mut target: impl FnMut(u64, u64, u64) -> u64,
) -> Vec<u64> {
    let n_words = x.len();
    // Lag = 64 q + r: the window for word w is funnel(X[w - q], X[w - q - 1], r).
    let (qa, ra) = (a / 64, (a % 64) as u32);
    let (qb, rb) = (b / 64, (b % 64) as u32);
    let word = |i: usize, back: usize| if i >= back { x[i - back] } else { 0 };
    let warmup = a.max(b);
    // From this word on, every word read lies at index >= 0 and every bit is ruled.
    let body = (warmup.div_ceil(64) + 1).min(n_words);

    let mut y = Vec::with_capacity(n_words);
    for w in 0..body {
        let xa = funnel(word(w, qa), word(w, qa + 1), ra);
        let xb = funnel(word(w, qb), word(w, qb + 1), rb);
        y.push(target(xa, xb, bits_from(w, warmup)));
    }
    if body < n_words {
        // Word w reads X[w - q - 1] and X[w - q]: the pairs of `windows(2)` from
        // X[body - q - 1], written as iterators so the hot loop has no bounds checks.
        let pairs = |q: usize| x[body - q - 1..n_words - q].windows(2);
        y.extend(pairs(qa).zip(pairs(qb)).map(move |(wa, wb)| {
            let xa = funnel(wa[1], wa[0], ra);
            let xb = funnel(wb[1], wb[0], rb);
            target(xa, xb, !0)
        }));
    }
    y
}

impl Dataset {
    /// Generates `data_size` samples with the seed rule ([`Rule::Seed`]); see
    /// [`Dataset::generate_rule`].
    #[must_use]
    pub fn generate(data_size: usize, lags: (usize, usize), seed: u64) -> Dataset {
        Self::generate_rule(Rule::Seed, data_size, lags, seed)
    }

    /// Generates `data_size` samples with `rule` (the module documentation has both).
    ///
    /// X is drawn from `Xoshiro256PlusPlus::seed_from_u64(seed)`, one `next_u64` per word; the
    /// coins of Y from a clone of that generator advanced by `jump()`, one `next_u64` per word
    /// for the seed rule, two (`c1`, then `c2`) for r2rt. Lags are validated by the caller:
    /// `a != b`, both `>= 1`, any size (lags beyond `data_size` just make every target a
    /// coin).
    #[must_use]
    pub fn generate_rule(rule: Rule, data_size: usize, lags: (usize, usize), seed: u64) -> Dataset {
        let (a, b) = lags;
        debug_assert!(a >= 1 && b >= 1 && a != b, "bad lags {lags:?}");
        let n_words = data_size.div_ceil(64);
        let mut x_rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut coin_rng = x_rng.clone();
        coin_rng.jump();

        // Bits of the last word that hold samples (all of them when data_size % 64 == 0).
        let tail = !0u64 >> ((64 - data_size % 64) % 64);
        let mut x: Vec<u64> = (0..n_words).map(|_| x_rng.next_u64()).collect();
        if let Some(last) = x.last_mut() {
            *last &= tail;
        }
        // `move`: the generator's state stays in registers instead of round-tripping through
        // memory every word.
        let mut y = match rule {
            Rule::Seed => y_words(&x, lags, move |xa, xb, ruled| {
                let eq = !(xa ^ xb) & ruled;
                (eq & !xa) | (!eq & coin_rng.next_u64())
            }),
            Rule::R2rt => y_words(&x, lags, move |xa, xb, ruled| {
                let c1 = coin_rng.next_u64();
                let c2 = coin_rng.next_u64();
                r2rt_word(xa & ruled, xb & ruled, c1, c2)
            }),
        };
        if let Some(last) = y.last_mut() {
            *last &= tail;
        }
        Dataset {
            x,
            y,
            data_size,
            rule,
            lags,
        }
    }

    /// Samples `start .. start + len` as a dataset of their own (sample `i` of it is sample
    /// `start + i` of this one, targets included): the streams one MPI rank trains on. The
    /// generator draws every word in order, so a rank generates the whole sequence and keeps
    /// this part.
    ///
    /// # Panics
    /// If `start + len > data_size`.
    #[must_use]
    pub fn slice(&self, start: usize, len: usize) -> Dataset {
        assert!(start + len <= self.data_size, "slice past the data");
        let tail = !0u64 >> ((64 - len % 64) % 64);
        let part = |words: &[u64]| {
            let mut v: Vec<u64> = (0..len.div_ceil(64))
                .map(|w| bits_at(words, start + 64 * w))
                .collect();
            if let Some(last) = v.last_mut() {
                *last &= tail;
            }
            v
        };
        Dataset {
            x: part(&self.x),
            y: part(&self.y),
            data_size: len,
            rule: self.rule,
            lags: self.lags,
        }
    }

    /// Number of samples.
    #[must_use]
    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// The rule the targets follow.
    #[must_use]
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// The lags `(a, b)` of the rule.
    #[must_use]
    pub fn lags(&self) -> (usize, usize) {
        self.lags
    }

    /// X, 64 samples per word (sample `i` at word `i / 64`, bit `i % 64`); padding bits are 0.
    #[must_use]
    pub fn x_words(&self) -> &[u64] {
        &self.x
    }

    /// Y, laid out as [`Dataset::x_words`].
    #[must_use]
    pub fn y_words(&self) -> &[u64] {
        &self.y
    }

    /// Input sample `i`. Panics if `i >= data_size`.
    #[must_use]
    pub fn x(&self, i: usize) -> bool {
        assert!(
            i < self.data_size,
            "sample {i} out of 0..{}",
            self.data_size
        );
        self.x[i / 64] >> (i % 64) & 1 == 1
    }

    /// Target sample `i`. Panics if `i >= data_size`.
    #[must_use]
    pub fn y(&self, i: usize) -> bool {
        assert!(
            i < self.data_size,
            "sample {i} out of 0..{}",
            self.data_size
        );
        self.y[i / 64] >> (i % 64) & 1 == 1
    }

    /// Writes time steps `t0 .. t0 + steps` of `streams` parallel streams of `stream_len`
    /// samples each as time-major bit planes:
    ///
    /// ```text
    /// x_out[t * words_per_plane + w] bit b = X[(64w + b) * stream_len + t0 + t]   if 64w + b < streams
    ///                                      = 0                                    otherwise
    /// ```
    ///
    /// for `t` in `0..steps`, and the same for `y_out` from Y. On little-endian targets,
    /// `bytemuck::cast_slice::<u64, u8>` of one plane gives byte `g` = streams `8g .. 8g + 8`
    /// (bit `k` = stream `8g + k`), the order the SIMD kernel reads them in.
    ///
    /// Per block of 64 streams: each stream's next 64 samples are one funnel-shifted word
    /// (row = stream, bit = time), and a 64x64 bit transpose turns the rows into planes
    /// (row = time, bit = stream). No byte per sample is ever materialised.
    ///
    /// # Panics
    /// If `steps > 64`, `t0 + steps > stream_len`, `streams * stream_len > data_size`,
    /// `words_per_plane * 64 < streams`, or an output's length is not
    /// `steps * words_per_plane`.
    #[allow(clippy::too_many_arguments)]
    pub fn fill_planes(
        &self,
        streams: usize,
        stream_len: usize,
        t0: usize,
        steps: usize,
        words_per_plane: usize,
        x_out: &mut [u64],
        y_out: &mut [u64],
    ) {
        assert!(steps <= 64, "steps {steps} > 64 per call");
        assert!(
            t0 + steps <= stream_len,
            "steps {t0}..{} out of stream_len {stream_len}",
            t0 + steps
        );
        assert!(
            streams * stream_len <= self.data_size,
            "{streams} streams x {stream_len} > data_size {}",
            self.data_size
        );
        assert!(
            words_per_plane * 64 >= streams,
            "words_per_plane {words_per_plane} too small for {streams} streams"
        );
        assert_eq!(x_out.len(), steps * words_per_plane, "x_out length");
        assert_eq!(y_out.len(), steps * words_per_plane, "y_out length");
        if steps == 0 {
            return;
        }

        for w in 0..words_per_plane {
            let first = 64 * w;
            let rows = streams.saturating_sub(first).min(64);
            let mut mx = [0u64; 64];
            let mut my = [0u64; 64];
            for r in 0..rows {
                let pos = (first + r) * stream_len + t0;
                mx[r] = bits_at(&self.x, pos);
                my[r] = bits_at(&self.y, pos);
            }
            if rows > 0 {
                transpose64(&mut mx);
                transpose64(&mut my);
            }
            for t in 0..steps {
                x_out[t * words_per_plane + w] = mx[t];
                y_out[t * words_per_plane + w] = my[t];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose64_moves_every_bit() {
        for (i, j) in [(0, 0), (0, 63), (63, 0), (5, 40), (33, 7), (63, 63)] {
            let mut m = [0u64; 64];
            m[i] = 1 << j;
            transpose64(&mut m);
            let mut want = [0u64; 64];
            want[j] = 1 << i;
            assert_eq!(m, want, "bit ({i}, {j})");
        }
    }

    #[test]
    fn bits_at_reads_across_words_and_past_the_end() {
        let words = [0x8000_0000_0000_0001u64, 0x3];
        assert_eq!(bits_at(&words, 0), words[0]);
        assert_eq!(bits_at(&words, 63), 0b111);
        assert_eq!(bits_at(&words, 64), 0x3);
        assert_eq!(bits_at(&words, 65), 0x1);
        assert_eq!(bits_at(&words, 200), 0);
    }

    #[test]
    fn funnel_shift_zero_is_hi() {
        assert_eq!(funnel(7, !0, 0), 7);
        assert_eq!(funnel(0, 1 << 63, 1), 1);
    }

    #[test]
    fn bits_from_masks() {
        assert_eq!(bits_from(0, 0), !0);
        assert_eq!(bits_from(0, 2), !0b11);
        assert_eq!(bits_from(0, 64), 0);
        assert_eq!(bits_from(1, 64), !0);
        assert_eq!(bits_from(1, 200), 0);
    }
}
