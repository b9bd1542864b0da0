//! Data-parallel training across processes (and machines) under `mpirun`, bit-identical to
//! one process. The MPI part is compiled with the `mpi` feature only; without it (or when
//! the program was not started by an MPI launcher) this module is one process, rank 0 of 1,
//! and every function here is the identity.
//!
//! # The partition and the exchange
//!
//! The engine's shards ([`crate::shards::shard_ranges`], a power of two of them, a function of
//! the data shape only) are the leaves of the reduction tree ([`crate::reduce::tree_sum`]):
//! node `(start, size)`, `size` a power of two and `start` a multiple of it, is
//! `node(start, size / 2) + node(start + size / 2, size / 2)`, element by element. Rank `r`
//! of `N` owns the contiguous shards `[r S / N, (r + 1) S / N)`, cut into the fewest such
//! aligned nodes (one when `N` divides `S` as a power of two; a rank owns no shard when
//! `N > S`). Per window each rank runs each node's shards on its own thread team (a
//! [`SimdEngine`](crate::engine::SimdEngine) per node, whose own reduction is that node's subtree of the tree), the
//! ranks all-gather the nodes' sums (with each shard's loss and each rank's stop flag), and
//! every rank merges the nodes in the tree's order into the root. Every rank so holds the
//! single-process gradient bit for bit and applies the same update: the weights equal one
//! process's for any `N` and any `--threads` per rank.
//!
//! The generator draws its words in order (one xoshiro stream), so each rank generates the
//! whole sequence (2 bits per sample) and keeps only its streams ([`Dataset::slice`](crate::data::Dataset::slice)).

use crate::config::TrainConfig;
use crate::error::Result;
use crate::planes::TrainData;
use crate::train::Trainer;

/// Whether this binary was built with MPI (`--version` says it).
pub const COMPILED: bool = cfg!(feature = "mpi");

/// The program's MPI session: initialized by [`init`] when an MPI launcher started the
/// process, finalized when dropped (keep it for the whole of `main`).
pub struct Session {
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

/// Starts MPI when the process was started by `mpirun` (or another launcher that sets
/// `OMPI_COMM_WORLD_SIZE`, `PMI_SIZE` or `PMIX_RANK`); otherwise, and without the `mpi`
/// feature, the process is rank 0 of 1 and MPI is never touched.
#[must_use]
pub fn init() -> Session {
    #[cfg(feature = "mpi")]
    {
        Session {
            _universe: imp::init(),
        }
    }
    #[cfg(not(feature = "mpi"))]
    Session {}
}

/// The number of processes in the job (1 without MPI).
#[must_use]
pub fn ranks() -> usize {
    #[cfg(feature = "mpi")]
    {
        imp::world().1
    }
    #[cfg(not(feature = "mpi"))]
    1
}

/// Whether this process writes the files, the progress bar and the report: rank 0.
#[must_use]
pub fn is_root() -> bool {
    #[cfg(feature = "mpi")]
    {
        imp::world().0 == 0
    }
    #[cfg(not(feature = "mpi"))]
    true
}

/// The trainer of `cfg` for this rank: over `data` (the generator's, or a sequence) in one
/// process, else one over this rank's shards of the regenerated bits that exchanges the
/// gradients with the others every window.
///
/// # Errors
/// As [`Trainer::new`]; [`crate::Error::Usage`] for `--engine scalar` under several ranks.
pub fn trainer(cfg: TrainConfig, data: TrainData) -> Result<Trainer> {
    #[cfg(feature = "mpi")]
    if ranks() > 1 {
        return imp::trainer(cfg);
    }
    let params = crate::model::init_params(cfg.init, cfg.layout(), cfg.seed);
    Trainer::with_params(cfg, data, params)
}

/// `result` on every rank if it is `Ok` on every rank; else the error of the lowest failing
/// rank, the same line (`rank R: ...`) and exit code on every rank. Collective: every rank
/// calls it at the same point.
///
/// # Errors
/// The lowest failing rank's error.
pub fn agree<T>(result: Result<T>) -> Result<T> {
    #[cfg(feature = "mpi")]
    if ranks() > 1 {
        return imp::agree(result);
    }
    result
}

/// Whether `flag` holds on any rank (collective).
#[must_use]
pub fn any(flag: bool) -> bool {
    #[cfg(feature = "mpi")]
    if ranks() > 1 {
        return imp::any(flag);
    }
    flag
}

/// Rank 0's `value`, on every rank (collective).
#[must_use]
pub fn from_root(value: usize) -> usize {
    #[cfg(feature = "mpi")]
    if ranks() > 1 {
        return imp::from_root(value);
    }
    value
}

/// Whether the run should stop after this window: SIGINT (or, under `mpirun`, which turns
/// its SIGINT into SIGTERM for the ranks, SIGTERM) on this process, or, in a distributed
/// run, on any rank, as agreed in the last window's exchange, so every rank stops after the
/// same window.
#[must_use]
pub fn interrupted() -> bool {
    #[cfg(feature = "mpi")]
    if let Some(stop) = imp::agreed_stop() {
        return stop;
    }
    crate::signal::interrupted()
}

/// Refuses `command` under several ranks: it runs in one process.
///
/// # Errors
/// [`crate::Error::Usage`] when there are several ranks.
pub fn single_process(command: &str) -> Result<()> {
    if ranks() > 1 {
        return Err(crate::Error::Usage(format!(
            "`bitrnn {command}` runs in one process (only `train` and `bench` run under \
             mpirun with -np > 1); run it without mpirun"
        )));
    }
    Ok(())
}

/// The aligned subtrees `(start, size)` of the reduction tree over `[a, b)`, in order: the
/// fewest nodes, each a power of two of shards starting at a multiple of its size.
#[must_use]
pub fn subtrees(a: usize, b: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = a;
    while start < b {
        let aligned = if start == 0 {
            usize::MAX
        } else {
            1 << start.trailing_zeros()
        };
        let size = aligned.min(1 << (b - start).ilog2());
        out.push((start, size));
        start += size;
    }
    out
}

/// Rank `rank` of `ranks`'s shards out of `shards`: `[rank S / N, (rank + 1) S / N)`.
#[must_use]
pub fn block(shards: usize, rank: usize, ranks: usize) -> (usize, usize) {
    (rank * shards / ranks, (rank + 1) * shards / ranks)
}

/// Merges the nodes `(start, size)` (in order, together an aligned partition of a power of
/// two of leaves) into the root, in the tree's order: node = left + right, element by
/// element, the sum written into the left one's slice of `sums` (`at` gives each node's
/// offset, `len` numbers). Returns the root's offset.
pub fn merge_subtrees(
    nodes: &[(usize, usize)],
    at: &[usize],
    len: usize,
    sums: &mut [f32],
) -> usize {
    let mut stack: Vec<(usize, usize, usize)> = Vec::with_capacity(nodes.len());
    for (&(start, size), &off) in nodes.iter().zip(at) {
        stack.push((start, size, off));
        while let [.., (ls, lsize, lo), (_, rsize, ro)] = stack[..] {
            if lsize != rsize || ls % (2 * lsize) != 0 {
                break;
            }
            let (left, right) = sums.split_at_mut(ro);
            for (a, b) in left[lo..lo + len].iter_mut().zip(&right[..len]) {
                *a += *b;
            }
            stack.truncate(stack.len() - 2);
            stack.push((ls, 2 * lsize, lo));
        }
    }
    assert_eq!(stack.len(), 1, "the nodes are an aligned partition");
    stack[0].2
}

#[cfg(feature = "mpi")]
mod imp {
    use super::{block, merge_subtrees, subtrees};
    use crate::config::{Engine, Optimizer, TrainConfig, Update};
    use crate::data::Dataset;
    use crate::engine::{PhaseTimes, SimdEngine, WindowEngine, simd_update};
    use crate::error::{Error, Result};
    use crate::model;
    use crate::shards::shard_ranges;
    use crate::team::Team;
    use crate::train::Trainer;
    use bitrnn_kernels::Params;
    use bitrnn_kernels::lanes::LANES;
    use bitrnn_kernels::simd::{self, Inputs};
    use mpi::datatype::PartitionMut;
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::{CommunicatorCollectives, Root};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    use std::time::Instant;

    /// `(rank, ranks)`, set once by [`init`].
    static WORLD: OnceLock<(usize, usize)> = OnceLock::new();
    /// SIGTERM seen (mpirun's relay of a Ctrl-C).
    static TERM: AtomicBool = AtomicBool::new(false);
    /// 0: no distributed run; 1: running; 2: some rank asked to stop.
    static STOP: AtomicU8 = AtomicU8::new(0);

    extern "C" fn on_term(_: libc::c_int) {
        TERM.store(true, Ordering::SeqCst);
    }

    pub fn init() -> Option<mpi::environment::Universe> {
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if !launched {
            return None;
        }
        let universe = mpi::initialize()?;
        let world = universe.world();
        let _ = WORLD.set((world.rank() as usize, world.size() as usize));
        if world.size() > 1 {
            // SAFETY: the handler only stores to an atomic.
            unsafe {
                libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
            }
        }
        Some(universe)
    }

    pub fn world() -> (usize, usize) {
        *WORLD.get().unwrap_or(&(0, 1))
    }

    pub fn agreed_stop() -> Option<bool> {
        match STOP.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s == 2),
        }
    }

    fn comm() -> SimpleCommunicator {
        SimpleCommunicator::world()
    }

    pub fn any(flag: bool) -> bool {
        let mut out = 0u8;
        comm().all_reduce_into(
            &u8::from(flag),
            &mut out,
            mpi::collective::SystemOperation::max(),
        );
        out == 1
    }

    pub fn from_root(value: usize) -> usize {
        let mut v = value as u64;
        comm().process_at_rank(0).broadcast_into(&mut v);
        v as usize
    }

    pub fn agree<T>(result: Result<T>) -> Result<T> {
        let world = comm();
        let code = result.as_ref().err().map_or(0, Error::exit_code);
        let mut codes = vec![0i32; world.size() as usize];
        world.all_gather_into(&code, &mut codes[..]);
        let Some(first) = codes.iter().position(|&c| c != 0) else {
            return result;
        };
        let mut msg = match &result {
            Err(e) if world.rank() as usize == first => e.to_string().into_bytes(),
            _ => Vec::new(),
        };
        let root = world.process_at_rank(first as i32);
        let mut len = msg.len() as u64;
        root.broadcast_into(&mut len);
        msg.resize(len as usize, 0);
        root.broadcast_into(&mut msg[..]);
        Err(Error::Rank {
            code: codes[first],
            message: format!("rank {first}: {}", String::from_utf8_lossy(&msg)),
        })
    }

    pub fn trainer(cfg: TrainConfig) -> Result<Trainer> {
        if cfg.engine != Engine::Simd {
            return Err(Error::Usage(
                "--engine scalar runs in one process; run it without mpirun".into(),
            ));
        }
        if cfg.symbols() {
            return Err(Error::Usage(
                "--text, --data and --inputs train in one process (under mpirun only the \
                 generator's data are split across ranks); run it without mpirun"
                    .into(),
            ));
        }
        let data = Dataset::generate_rule(cfg.rule, cfg.data_size, cfg.lags, cfg.seed);
        let params = model::init_params(cfg.init, cfg.layout(), cfg.seed);
        let engine = RankEngine::new(&cfg, &params);
        // A rank without shards still walks the planes of one stream (which it never reads).
        let (first, streams) = match engine.streams {
            0 => (0, 1),
            n => (engine.first_stream, n),
        };
        let data = data.slice(first * cfg.batch_size, streams * cfg.batch_size);
        STOP.store(1, Ordering::SeqCst);
        Trainer::with_engine(cfg, data.into(), params, Box::new(engine), streams)
    }

    /// One aligned subtree of the reduction tree that this rank computes.
    struct Node {
        engine: SimdEngine,
        /// First lane group, relative to the rank's first.
        group: usize,
        /// First stream in the whole run, and the streams.
        first_stream: usize,
        streams: usize,
    }

    /// The engine of one rank: its nodes' [`SimdEngine`]s and the exchange of their sums.
    struct RankEngine {
        /// Numbers of one stream's carried state: `h` (and the LSTM's `c`).
        hidden: usize,
        /// Numbers per gradient.
        len: usize,
        nodes: Vec<Node>,
        /// Every rank's nodes, in shard order.
        all_nodes: Vec<(usize, usize)>,
        /// The offset of each of `all_nodes`' sums in `recv`, and of each rank's shard
        /// losses, and each rank's stop flag.
        node_at: Vec<usize>,
        loss_at: Vec<(usize, usize)>,
        stop_at: Vec<usize>,
        /// What this rank sends: its nodes' sums, its shards' losses (f64 as two u32),
        /// its stop flag; what all send, rank after rank.
        send: Vec<u32>,
        recv: Vec<u32>,
        counts: Vec<i32>,
        displs: Vec<i32>,
        first_stream: usize,
        streams: usize,
        /// Every rank's first stream and stream count (for the carried state).
        rank_streams: Vec<(usize, usize)>,
        shards: usize,
        /// With `BITRNN_MPI_STATS` set: each exchange's seconds (after a barrier, so that
        /// they are the transfer's, not the wait for the slowest rank), reported on drop.
        stats: Option<Vec<f64>>,
    }

    impl Drop for RankEngine {
        fn drop(&mut self) {
            let Some(times) = self.stats.as_mut() else {
                return;
            };
            if times.is_empty() || world().0 != 0 {
                return;
            }
            times.sort_by(f64::total_cmp);
            let bytes = 4 * self.send.len();
            eprintln!(
                "bitrnn mpi: {} ranks, {} exchanges, {bytes} bytes sent and {} received per \
                 rank per window, median {:.1} us per exchange (min {:.1}, max {:.1})",
                world().1,
                times.len(),
                4 * self.recv.len() - bytes,
                1e6 * times[times.len() / 2],
                1e6 * times[0],
                1e6 * times[times.len() - 1]
            );
        }
    }

    impl RankEngine {
        fn new(cfg: &TrainConfig, params: &Params<f32>) -> Self {
            let world = comm();
            let (rank, n) = (world.rank() as usize, world.size() as usize);
            let s = cfg.streams();
            let ranges = shard_ranges(simd::groups_for(s), cfg.hidden, cfg.time_step);
            let stream_of = |group: usize| (group * LANES).min(s);
            let len = params.data.len();
            let (mut all_nodes, mut node_at, mut loss_at, mut stop_at) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut counts, mut displs, mut rank_streams) = (Vec::new(), Vec::new(), Vec::new());
            let mut at = 0;
            for r in 0..n {
                let (a, b) = block(ranges.len(), r, n);
                let nodes = subtrees(a, b);
                displs.push(at as i32);
                let start = at;
                for &node in &nodes {
                    all_nodes.push(node);
                    node_at.push(at);
                    at += len;
                }
                loss_at.push((at, b - a));
                at += 2 * (b - a);
                stop_at.push(at);
                at += 1;
                counts.push((at - start) as i32);
                rank_streams.push(if a == b {
                    (0, 0)
                } else {
                    let first = stream_of(ranges[a].0);
                    (first, stream_of(ranges[b - 1].1) - first)
                });
            }
            let (a, b) = block(ranges.len(), rank, n);
            let (first_stream, streams) = rank_streams[rank];
            let nodes = subtrees(a, b)
                .into_iter()
                .map(|(start, size)| {
                    let r = &ranges[start..start + size];
                    let first = stream_of(r[0].0);
                    Node {
                        engine: SimdEngine::for_shards(cfg, params, r),
                        group: r[0].0 - ranges[a].0,
                        first_stream: first,
                        streams: stream_of(r[size - 1].1) - first,
                    }
                })
                .collect();
            Self {
                hidden: cfg.cell.state_rows() * cfg.hidden,
                len,
                nodes,
                all_nodes,
                node_at,
                loss_at,
                stop_at,
                send: vec![0; counts[rank] as usize],
                recv: vec![0; at],
                counts,
                displs,
                first_stream,
                streams,
                rank_streams,
                shards: b - a,
                stats: std::env::var_os("BITRNN_MPI_STATS").map(|_| Vec::new()),
            }
        }
    }

    impl WindowEngine for RankEngine {
        fn window(
            &mut self,
            params: &Params<f32>,
            inputs: &Inputs<'_>,
            grad: &mut [f32],
            team: Option<&Team>,
            mut timing: Option<&mut PhaseTimes>,
        ) -> f64 {
            let len = self.len;
            let (sums, rest) = self.send.split_at_mut(self.nodes.len() * len);
            let sums: &mut [f32] = bytemuck::cast_slice_mut(sums);
            for (node, out) in self.nodes.iter_mut().zip(sums.chunks_exact_mut(len)) {
                let inputs = inputs.offset(node.group);
                node.engine
                    .window(params, &inputs, out, team, timing.as_deref_mut());
            }
            let losses = self.nodes.iter().flat_map(|n| n.engine.shard_losses());
            for (pair, loss) in rest.chunks_exact_mut(2).zip(losses) {
                let bits = loss.to_bits();
                pair[0] = bits as u32;
                pair[1] = (bits >> 32) as u32;
            }
            let stop = crate::signal::interrupted() || TERM.load(Ordering::SeqCst);
            *rest.last_mut().expect("the stop flag") = u32::from(stop);

            if self.stats.is_some() {
                comm().barrier();
            }
            let clock = Instant::now();
            let mut parts =
                PartitionMut::new(&mut self.recv[..], &self.counts[..], &self.displs[..]);
            comm().all_gather_varcount_into(&self.send[..], &mut parts);
            let recv: &mut [f32] = bytemuck::cast_slice_mut(&mut self.recv[..]);
            let root = merge_subtrees(&self.all_nodes, &self.node_at, len, recv);
            grad.copy_from_slice(&recv[root..root + len]);
            let exchange_s = clock.elapsed().as_secs_f64();
            if let Some(times) = &mut self.stats {
                times.push(exchange_s);
            }
            if let Some(pt) = timing {
                pt.reduction_s += exchange_s;
            }
            let recv = &self.recv;
            if self.stop_at.iter().any(|&at| recv[at] != 0) {
                STOP.store(2, Ordering::SeqCst);
            }
            self.loss_at
                .iter()
                .flat_map(|&(at, n)| {
                    recv[at..at + 2 * n]
                        .chunks_exact(2)
                        .map(|p| f64::from_bits(u64::from(p[0]) | u64::from(p[1]) << 32))
                })
                .sum::<f64>()
        }

        fn update(
            &mut self,
            optimizer: Optimizer,
            update: Update<f32>,
            params: &mut Params<f32>,
            accum: &mut Params<f32>,
            grad: &[f32],
            _team: Option<&Team>,
        ) {
            simd_update(optimizer, update, params, accum, grad);
            for node in &mut self.nodes {
                node.engine.load(params);
            }
        }

        fn reset_state(&mut self) {
            for node in &mut self.nodes {
                node.engine.reset_state();
            }
        }

        /// Collective: every rank's streams are gathered.
        fn store_state(&self, out: &mut [f32]) {
            let h = self.hidden;
            let mut mine = vec![0.0f32; self.streams * h];
            for node in &self.nodes {
                let at = (node.first_stream - self.first_stream) * h;
                node.engine
                    .store_state(&mut mine[at..at + node.streams * h]);
            }
            let counts: Vec<i32> = self
                .rank_streams
                .iter()
                .map(|&(_, n)| (n * h) as i32)
                .collect();
            let displs: Vec<i32> = self
                .rank_streams
                .iter()
                .map(|&(f, _)| (f * h) as i32)
                .collect();
            let mut parts = PartitionMut::new(out, &counts[..], &displs[..]);
            comm().all_gather_varcount_into(&mine[..], &mut parts);
        }

        fn restore(&mut self, params: &Params<f32>, state: &[f32]) {
            let h = self.hidden;
            for node in &mut self.nodes {
                let at = node.first_stream * h;
                node.engine
                    .restore(params, &state[at..at + node.streams * h]);
            }
        }

        fn shards(&self) -> usize {
            self.shards.max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reduce::tree_sum;

    #[test]
    fn blocks_merge_to_the_single_process_tree() {
        for shards in [1usize, 2, 4, 8, 16, 32, 64] {
            let leaves: Vec<f32> = (0..shards).map(|i| 1.0 / (3.0 + i as f32)).collect();
            let want = tree_sum(&mut leaves.clone());
            for ranks in 1..=9 {
                let nodes: Vec<_> = (0..ranks)
                    .flat_map(|r| {
                        let (a, b) = block(shards, r, ranks);
                        subtrees(a, b)
                    })
                    .collect();
                let mut sums: Vec<f32> = nodes
                    .iter()
                    .map(|&(s, n)| tree_sum(&mut leaves[s..s + n].to_vec()))
                    .collect();
                let at: Vec<usize> = (0..nodes.len()).collect();
                let root = merge_subtrees(&nodes, &at, 1, &mut sums);
                assert_eq!(
                    sums[root].to_bits(),
                    want.to_bits(),
                    "{shards} shards, {ranks} ranks"
                );
            }
        }
    }

    #[test]
    fn subtrees_are_aligned_and_cover() {
        assert_eq!(subtrees(0, 8), vec![(0, 8)]);
        assert_eq!(subtrees(2, 8), vec![(2, 2), (4, 4)]);
        assert_eq!(subtrees(5, 11), vec![(5, 1), (6, 2), (8, 2), (10, 1)]);
        assert!(subtrees(3, 3).is_empty());
    }
}
