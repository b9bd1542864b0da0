//! The shard partition of the SIMD engine: which lane groups (`LANES` streams each) each shard
//! owns. A function of the data shape only (streams, hidden, time_step), never of
//! `--threads`, which is what makes the weights identical for any thread count.
//!
//! Use [`shard_ranges`] to cut a run's lane groups (the trainer, and the memory estimate of
//! [`crate::config::TrainSettings::memory_bytes`], which counts one gradient per shard).

use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::simd;

/// At most this many shards: enough to balance 16 threads, and small enough shards that a
/// shard's activations stay in a core's L2 cache at hidden 256 with 4,096 streams (32 shards
/// of 16 lane groups ran 1.3x faster on one thread than 16 shards of 32 groups).
pub const MAX_SHARDS: usize = 64;

/// The fewest lane groups per shard (where there are enough groups) for a shape. Each shard
/// pays per window for reducing its gradient across lanes and shards, about `H^2` operations,
/// against `H^2 T S` multiply-adds of work for `S` streams: for the blocked kernels
/// (`hidden > SMALL_MAX`) `T S >= 512` keeps that below a few percent. The small kernels
/// reduce only `H^2 + 5H + 2 <= 106` numbers, so 32 streams suffice. Counted in streams and
/// converted to lane groups of the build's width ([`LANES`]), so that a 16-lane build cuts
/// the same streams into as many shards as an 8-lane one.
#[must_use]
pub fn min_shard_groups(hidden: usize, time_step: usize) -> usize {
    let streams = if hidden <= simd::SMALL_MAX {
        32
    } else {
        512usize.div_ceil(time_step)
    };
    streams.div_ceil(LANES).max(1)
}

/// How many shards a shape gets: the largest power of two at most
/// `min(groups / min_shard_groups, MAX_SHARDS)` (at least 1). A power of two, so that 2, 4, 8
/// and 16 threads each get the same number of shards: 9 shards on 2 threads would cap the
/// speed-up at 9/5 = 1.8x.
#[must_use]
pub fn shard_count(groups: usize, hidden: usize, time_step: usize) -> usize {
    count_for(groups, min_shard_groups(hidden, time_step))
}

/// The largest power of two at most `min(groups / min_groups, MAX_SHARDS)` (at least 1).
fn count_for(groups: usize, min_groups: usize) -> usize {
    let most = (groups / min_groups).clamp(1, MAX_SHARDS);
    1 << most.ilog2()
}

/// Streams per shard at least, on the symbols' path (`--text`, `.npy` data), for hidden size
/// `hidden`: `max(32, H / 4)`, at most 128. Small shards keep a window's activations closer
/// to the core (at hidden 128, 1000 streams of a 1 MB text, windows of 25: 16 shards of about
/// 64 streams ran 7% faster on 2 threads than 4 of 256, 2026-12-02); each shard reduces a
/// gradient of `V G H + C H + G H^2` numbers, so large models take larger shards (at hidden
/// 512 the 16 shards were 2% slower than 4).
#[must_use]
pub fn symbol_shard_streams(hidden: usize) -> usize {
    (hidden / 4).clamp(32, 128)
}

/// The shards of a run's settings: [`shard_ranges`], with shards of at least
/// [`symbol_shard_streams`] streams on the symbols' path. A function of the shape only.
#[must_use]
pub fn run_shards(settings: &crate::config::TrainSettings) -> Vec<(usize, usize)> {
    shape_shards(
        simd::groups_for(settings.streams()),
        settings.hidden,
        settings.time_step,
        settings.symbols(),
    )
}

/// The shards of `groups` lane groups for hidden size `hidden`, windows of `time_step`, on
/// the symbols' path or the bits' ([`run_shards`]'s rule, which training and `eval` share).
#[must_use]
pub fn shape_shards(
    groups: usize,
    hidden: usize,
    time_step: usize,
    symbols: bool,
) -> Vec<(usize, usize)> {
    let mut min = min_shard_groups(hidden, time_step);
    if symbols {
        min = min.max(symbol_shard_streams(hidden).div_ceil(LANES));
    }
    ranges_for(groups, count_for(groups, min))
}

/// Lane-group ranges `[start, end)` of the [`shard_count`] shards for `groups` lane groups,
/// as even as possible, the first ones one group larger. A function of the shape only, never
/// of the thread count.
#[must_use]
pub fn shard_ranges(groups: usize, hidden: usize, time_step: usize) -> Vec<(usize, usize)> {
    ranges_for(groups, shard_count(groups, hidden, time_step))
}

/// `n` even ranges of `groups` lane groups, the first ones one group larger.
fn ranges_for(groups: usize, n: usize) -> Vec<(usize, usize)> {
    let (base, extra) = (groups / n, groups % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = (start, start + len);
            start += len;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ranges_cover_the_groups_evenly() {
        for (groups, hidden, time_step) in (1..200).flat_map(|g| [(g, 6, 5), (g, 64, 5), (g, 9, 1)])
        {
            let r = shard_ranges(groups, hidden, time_step);
            let min = min_shard_groups(hidden, time_step);
            // The largest power of two within both limits.
            let most = (groups / min).clamp(1, MAX_SHARDS);
            assert_eq!(r.len(), shard_count(groups, hidden, time_step));
            assert!(r.len().is_power_of_two() && r.len() <= most && 2 * r.len() > most);
            assert_eq!(r[0].0, 0);
            assert_eq!(r.last().unwrap().1, groups);
            for w in r.windows(2) {
                assert_eq!(w[0].1, w[1].0);
            }
            let lens: Vec<_> = r.iter().map(|(a, b)| b - a).collect();
            assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1);
            assert!(lens.iter().all(|&l| l >= 1));
        }
    }
}
