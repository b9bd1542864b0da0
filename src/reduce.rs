//! The gradient reduction: the shards' gradients summed element by element in one fixed
//! pairwise tree over the shard index ([`tree_sum`]), so that the sum's bits do not depend
//! on which thread adds what. Use [`reduce_shards`] once per window; [`sum_subtree`] lets a
//! team member sum its own block of shards inside the round, while its gradients are still
//! in its cache.

use crate::handout::{split_for_members, take_block};
use crate::shards::MAX_SHARDS;
use crate::team::Team;
use bitrnn_kernels::lanes::{LANES, Vf32};
use std::ops::Add;

/// What the reduction reads and writes of a shard: its gradient, one number per parameter.
pub trait ShardGradient {
    fn grad(&self) -> &[f32];
    fn grad_mut(&mut self) -> &mut [f32];
}

/// Below this many additions a gradient reduction runs on one thread: splitting it costs a
/// team round (publishing, claiming, waiting for the last unit: about a microsecond), a few
/// thousand additions' worth.
const PARALLEL_REDUCTION_ADDS: usize = 1 << 15;

/// Whether a team shares the reduction of a gradient of `len` numbers from `shards` shards
/// by element (else one thread does it).
pub fn shared_reduction(len: usize, shards: usize) -> bool {
    len * shards.saturating_sub(1) >= PARALLEL_REDUCTION_ADDS
}

/// The lower levels of the reduction tree ([`tree_sum`]) over one member's block of shards,
/// in place: afterwards `block[0].grad` holds the block's sum. `block.len()` is a power of
/// two and the block starts at a multiple of it, so these are exactly the tree's additions
/// below stride `block.len()`, in the same order.
pub fn sum_subtree<S: ShardGradient>(block: &mut [S]) {
    let n = block.len();
    let mut stride = 1;
    while stride < n {
        for pair in block.chunks_exact_mut(2 * stride) {
            let (lo, hi) = pair.split_at_mut(stride);
            for (a, b) in lo[0].grad_mut().iter_mut().zip(hi[0].grad()) {
                *a += *b;
            }
        }
        stride *= 2;
    }
}

/// Sums the shards' gradients into `out`, each element in the same fixed pairwise tree over
/// the shard index ([`tree_sum`]): which thread sums which elements does not change a bit.
/// The levels below stride `summed_below` are already done ([`sum_subtree`]): the tree goes
/// on over shards `0, summed_below, 2 summed_below, ...`. Large reductions are split over the
/// team's members by element.
pub fn reduce_shards<S: ShardGradient>(
    shards: &[S],
    summed_below: usize,
    out: &mut [f32],
    team: Option<&Team>,
) {
    let n = shards.len().div_ceil(summed_below);
    let mut roots = shards.iter().step_by(summed_below).map(ShardGradient::grad);
    let grads: [&[f32]; MAX_SHARDS] = std::array::from_fn(|_| roots.next().unwrap_or(&[]));
    let grads = &grads[..n];
    match team {
        Some(team) if shared_reduction(out.len(), n) => {
            // Blocks of whole vectors, two per member, claimed by whoever is ready.
            let units = (2 * team.size()).min(MAX_SHARDS);
            let per = out.len().div_ceil(units).next_multiple_of(LANES);
            let count = out.len().div_ceil(per);
            let blocks = split_for_members(out.chunks_mut(per));
            team.run(count, &|unit| {
                if let Some(block) = take_block(&blocks, unit) {
                    reduce_range(grads, unit * per, block);
                }
            });
        }
        _ => reduce_range(grads, 0, out),
    }
}

/// `out[i] = tree_sum(grads[..][first + i])` for every `i`, `LANES` elements at a time.
fn reduce_range(grads: &[&[f32]], first: usize, out: &mut [f32]) {
    let n = grads.len();
    let (vectors, tail) = out.as_chunks_mut::<LANES>();
    // Scratch for the tree, filled afresh (its first `n` entries) for every vector.
    let mut v = [Vf32::ZERO; MAX_SHARDS];
    for (k, o) in vectors.iter_mut().enumerate() {
        let at = first + k * LANES;
        for (v, g) in v.iter_mut().zip(grads) {
            let lanes: &[f32; LANES] = g[at..at + LANES].try_into().expect("a whole vector");
            *v = Vf32::new(*lanes);
        }
        *o = tree_sum(&mut v[..n]).to_array();
    }
    let at = first + vectors.len() * LANES;
    let mut v = [0.0f32; MAX_SHARDS];
    for (k, o) in tail.iter_mut().enumerate() {
        for (v, g) in v.iter_mut().zip(grads) {
            *v = g[at + k];
        }
        *o = tree_sum(&mut v[..n]);
    }
}

/// The fixed pairwise tree over `v`'s index: level 1 adds `v[2i+1]` into `v[2i]`, level 2
/// adds `v[4i+2]` into `v[4i]`, and so on; the sum ends in `v[0]`. Lane-wise for vectors, so
/// a vector lane sums exactly as a scalar would.
pub fn tree_sum<T: Copy + Add<Output = T>>(v: &mut [T]) -> T {
    let n = v.len();
    let mut stride = 1;
    while stride < n {
        let mut i = 0;
        while i + stride < n {
            v[i] = v[i] + v[i + stride];
            i += 2 * stride;
        }
        stride *= 2;
    }
    v[0]
}
