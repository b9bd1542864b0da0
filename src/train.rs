//! The trainer: the driver that owns time, memory, indexing, threads and randomness, and calls
//! the kernels for the arithmetic.
//!
//! An epoch walks the `S = data_size / batch_size` streams in `batch_size / time_step` windows
//! of `time_step` steps. The hidden state is carried from one window to the next and zeroed at
//! the start of each epoch; gradients stop at the window boundary (truncated BPTT).
//!
//! # Data parallelism, deterministic
//!
//! The SIMD engine cuts the streams into shards of whole lane groups (8 streams). The
//! partition depends on the data shape only ([`shard_ranges`]), never on `--threads`. Each
//! shard owns its slice of the carried state and its activations for the whole run. Per
//! window the shards run forward + BPTT in parallel on a [`Team`] (this thread and
//! `--threads - 1` rayon workers, formed once per [`Trainer::run`]), each writing its own
//! gradient; the gradients are then summed element by element in a fixed pairwise tree over
//! the shard index and one optimizer update follows. The same shards do the same arithmetic
//! in the same order whatever thread runs them, so the weights are bit-for-bit identical for
//! any thread count.

use crate::config::{ADAGRAD_INITIAL_ACCUMULATOR, Engine, Optimizer, TrainConfig};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model;
use crate::team::{self, Team, TeamStats};
use bitrnn_kernels::lanes::{LANE_BYTES, LANES, Vf32};
use bitrnn_kernels::simd::{self, Planes, Prepared, WindowStats, Workspace};
use bitrnn_kernels::{Params, reference};
use std::ops::Add;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// At most this many shards: enough to balance 16 threads, and small enough shards that a
/// shard's activations stay in a core's L2 cache at hidden 256 with 4,096 streams (32 shards
/// of 16 lane groups ran 1.3x faster on one thread than 16 shards of 32 groups).
pub const MAX_SHARDS: usize = 64;

/// The fewest lane groups per shard (where there are enough groups) for a shape. Each shard
/// pays per window for reducing its gradient across lanes and shards, about `H^2` operations,
/// against `H^2 T G` multiply-adds of work for `G` groups: for the blocked kernels
/// (`hidden > SMALL_MAX`) `T G >= 64` keeps that below a few percent. The small kernels
/// reduce only `H^2 + 5H + 2 <= 106` numbers, so 4 groups (32 streams) suffice.
#[must_use]
pub fn min_shard_groups(hidden: usize, time_step: usize) -> usize {
    if hidden <= simd::SMALL_MAX {
        4
    } else {
        64usize.div_ceil(time_step).max(1)
    }
}

/// How many shards a shape gets: the largest power of two at most
/// `min(groups / min_shard_groups, MAX_SHARDS)` (at least 1). A power of two, so that 2, 4, 8
/// and 16 threads each get the same number of shards: 9 shards on 2 threads would cap the
/// speed-up at 9/5 = 1.8x.
#[must_use]
pub fn shard_count(groups: usize, hidden: usize, time_step: usize) -> usize {
    let most = (groups / min_shard_groups(hidden, time_step)).clamp(1, MAX_SHARDS);
    1 << most.ilog2()
}

/// Lane-group ranges `[start, end)` of the [`shard_count`] shards for `groups` lane groups,
/// as even as possible, the first ones one group larger. A function of the shape only, never
/// of the thread count.
#[must_use]
pub fn shard_ranges(groups: usize, hidden: usize, time_step: usize) -> Vec<(usize, usize)> {
    let n = shard_count(groups, hidden, time_step);
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

/// One shard of the SIMD engine: its streams' state and activations, and its gradient.
/// Aligned to 128 bytes, so that neighbouring shards (on different threads) never write to
/// one cache line pair (`stats`, `times`).
#[repr(align(128))]
struct Shard {
    first_group: usize,
    ws: Workspace,
    grad: Vec<f32>,
    stats: WindowStats,
    /// Seconds in forward and backward in the last window (when timing is on).
    times: (f64, f64),
}

/// Where the time of the windows went, accumulated while [`Trainer::set_timing`] is on.
/// `forward_s` and `backward_s` are thread-seconds summed over shards; `parallel_s`,
/// `reduction_s` and `update_s` are wall seconds of the parallel region, the gradient
/// reduction and the optimizer update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    pub forward_s: f64,
    pub backward_s: f64,
    pub parallel_s: f64,
    pub reduction_s: f64,
    pub update_s: f64,
}

/// The time-major bit planes of a run of consecutive steps (a chunk of whole windows).
struct PlaneChunk {
    words_per_plane: usize,
    /// First step of the chunk within the epoch, and its length in steps.
    start: usize,
    steps: usize,
    x: Vec<u64>,
    y: Vec<u64>,
}

enum EngineState {
    Simd {
        prepared: Prepared,
        shards: Vec<Shard>,
    },
    Scalar {
        h: Vec<f32>,
        h_next: Vec<f32>,
        grad: Params<f32>,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

/// Where the trainer stands: `epoch` and `window` of the next window to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub epoch: usize,
    pub window: usize,
}

/// A training run in progress.
pub struct Trainer {
    cfg: TrainConfig,
    data: Dataset,
    params: Params<f32>,
    /// Adagrad's accumulator (unused by SGD).
    accum: Params<f32>,
    /// The summed gradient of the current window.
    grad: Vec<f32>,
    engine: EngineState,
    planes: PlaneChunk,
    /// The `--threads - 1` workers that join the calling thread (`--threads` > 1, SIMD
    /// engine). Each [`Trainer::run`] of more than one window makes them a [`Team`] for its
    /// whole length, so a window's fork-join costs two barriers, not a pool entry or a
    /// wake-up (a seed-size window is ~14 us of work).
    pool: Option<rayon::ThreadPool>,
    /// The largest team: the available cores, unless [`Trainer::set_max_team`] says more.
    max_team: usize,
    progress: Progress,
    /// `Some` while phase timing is on.
    timing: Option<PhaseTimes>,
    /// The teams' rounds so far, by kind (all of this trainer's [`Trainer::run`] calls).
    team_stats: TeamStats,
}

impl Trainer {
    /// Generates the data and the initial weights and allocates every buffer of the run.
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        let cfg = cfg.validate()?;
        let data = Dataset::generate(cfg.data_size, cfg.lags, cfg.seed);
        let params = model::init_params(cfg.hidden, cfg.seed);
        Self::with_params(cfg, data, params)
    }

    /// A run from given data and initial weights (for `verify` and the tests).
    pub fn with_params(cfg: TrainConfig, data: Dataset, params: Params<f32>) -> Result<Self> {
        let cfg = cfg.validate()?;
        assert_eq!(params.hidden, cfg.hidden, "params do not match --hidden");
        let (s, h, t) = (cfg.streams(), cfg.hidden, cfg.time_step);
        let groups = simd::groups_for(s);
        let engine = match cfg.engine {
            Engine::Simd => {
                let shards = shard_ranges(groups, h, t)
                    .into_iter()
                    .map(|(g0, g1)| {
                        let streams = ((g1 * LANES).min(s)) - g0 * LANES;
                        Shard {
                            first_group: g0,
                            ws: Workspace::new(h, streams, t),
                            grad: vec![0.0; params.data.len()],
                            stats: WindowStats::default(),
                            times: (0.0, 0.0),
                        }
                    })
                    .collect();
                let mut prepared = Prepared::new(h);
                prepared.load(&params);
                EngineState::Simd { prepared, shards }
            }
            Engine::Scalar => EngineState::Scalar {
                h: vec![0.0; s * h],
                h_next: vec![0.0; s * h],
                grad: Params::zeros(h),
                x: vec![0; s * t],
                y: vec![0; s * t],
            },
        };
        let pool = match (cfg.engine, cfg.threads) {
            (Engine::Simd, n) if n > 1 => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n - 1)
                    .thread_name(|i| format!("bitrnn-worker-{}", i + 1))
                    .build()
                    .map_err(|e| Error::Usage(format!("--threads {n}: {e}")))?,
            ),
            _ => None,
        };
        // A chunk of whole windows covering up to 64 steps (one bit-matrix transpose).
        let chunk_windows = (64 / t).max(1);
        let chunk_steps = chunk_windows * t;
        let words_per_plane = s.div_ceil(64);
        Ok(Self {
            accum: Params::filled(h, ADAGRAD_INITIAL_ACCUMULATOR),
            grad: vec![0.0; params.data.len()],
            planes: PlaneChunk {
                words_per_plane,
                start: usize::MAX,
                steps: 0,
                x: vec![0; chunk_steps * words_per_plane],
                y: vec![0; chunk_steps * words_per_plane],
            },
            cfg,
            data,
            params,
            engine,
            pool,
            max_team: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: Progress::default(),
            timing: None,
            team_stats: TeamStats::default(),
        })
    }

    #[must_use]
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
    #[must_use]
    pub fn params(&self) -> &Params<f32> {
        &self.params
    }
    #[must_use]
    pub fn progress(&self) -> Progress {
        self.progress
    }
    /// The gradient of the last window (summed over shards).
    #[must_use]
    pub fn last_grad(&self) -> &[f32] {
        &self.grad
    }

    /// Makes sure the planes of steps `t0..t0 + time_step` of the epoch are in the chunk.
    fn load_planes(&mut self, t0: usize) {
        let t = self.cfg.time_step;
        let pc = &mut self.planes;
        if t0 >= pc.start && t0 + t <= pc.start + pc.steps {
            return;
        }
        let cap = pc.x.len() / pc.words_per_plane;
        let len = self.cfg.batch_size;
        let steps = cap.min(len - t0).max(t);
        let w = pc.words_per_plane;
        let mut done = 0;
        while done < steps {
            let n = (steps - done).min(64);
            self.data.fill_planes(
                self.cfg.streams(),
                len,
                t0 + done,
                n,
                w,
                &mut pc.x[done * w..(done + n) * w],
                &mut pc.y[done * w..(done + n) * w],
            );
            done += n;
        }
        pc.start = t0;
        pc.steps = steps;
    }

    /// Runs one training window (forward, BPTT, reduction, update) and returns its mean loss.
    pub fn step(&mut self) -> Result<f32> {
        let mut loss = f32::NAN;
        self.run(1, |l| {
            loss = l;
            true
        })?;
        Ok(loss)
    }

    /// Runs up to `windows` training windows, calling `on_window` (on this thread) with each
    /// window's mean loss; stops early when it returns `false`. Returns the number of windows
    /// run. With `--threads` > 1 the windows' shards are shared by a [`Team`] of this thread
    /// and the pool's workers, formed once for the whole call.
    pub fn run(&mut self, windows: usize, mut on_window: impl FnMut(f32) -> bool) -> Result<usize> {
        let members = self.team_size();
        let pool = self.pool.take();
        let result = match &pool {
            // A team pays for itself over many windows; a single window runs on this thread.
            Some(pool) if members > 1 && windows > 1 => team::with_team(pool, members, |team| {
                let result = self.run_windows(windows, &mut on_window, Some(team));
                let stats = team.stats();
                self.team_stats.team_rounds += stats.team_rounds;
                self.team_stats.solo_rounds += stats.solo_rounds;
                self.team_stats.units_by_others += stats.units_by_others;
                result
            }),
            _ => self.run_windows(windows, &mut on_window, None),
        };
        self.pool = pool;
        result
    }

    /// Members of a team: `--threads`, but no more than the shards (a member without a shard
    /// would only wait) nor the cores (members beyond them would wait for each other). The
    /// results do not depend on it: the shard partition is fixed.
    fn team_size(&self) -> usize {
        match &self.engine {
            EngineState::Simd { shards, .. } if self.pool.is_some() => {
                self.cfg.threads.min(shards.len()).min(self.max_team)
            }
            _ => 1,
        }
    }

    /// Lets teams grow to `members` (still at most `--threads` and the shard count) instead of
    /// the available cores: for tests that show larger teams give the same weights on a
    /// machine with fewer cores. Slow there (members wait for cores), never different.
    pub fn set_max_team(&mut self, members: usize) {
        self.max_team = members.max(1);
    }

    fn run_windows(
        &mut self,
        windows: usize,
        on_window: &mut impl FnMut(f32) -> bool,
        team: Option<&Team>,
    ) -> Result<usize> {
        for done in 1..=windows {
            let loss = self.window(team)?;
            if !on_window(loss) {
                return Ok(done);
            }
        }
        Ok(windows)
    }

    /// One window; its shards and its reduction shared by the team's members, if any.
    fn window(&mut self, team: Option<&Team>) -> Result<f32> {
        let t = self.cfg.time_step;
        let Progress { epoch, window } = self.progress;
        let step_index = epoch * self.cfg.windows_per_epoch() + window;
        if window == 0 {
            self.reset_state();
        }
        let t0 = window * t;
        self.load_planes(t0);
        let s = self.cfg.streams();
        let scale = 1.0 / (s * t) as f32;
        let off = (t0 - self.planes.start) * self.planes.words_per_plane;
        let xw = &self.planes.x[off..off + t * self.planes.words_per_plane];
        let yw = &self.planes.y[off..off + t * self.planes.words_per_plane];
        let (xb, yb): (&[u8], &[u8]) = (bytemuck::cast_slice(xw), bytemuck::cast_slice(yw));
        let stride = self.planes.words_per_plane * 8;

        let timed = self.timing.is_some();
        let clock = Instant::now();
        let mut reduction_s = 0.0;
        let loss_sum = match &mut self.engine {
            EngineState::Simd { prepared, shards } => {
                let prepared = &*prepared;
                let run = |sh: &mut Shard| {
                    let planes = Planes {
                        x: &xb[sh.first_group * LANE_BYTES..],
                        y: &yb[sh.first_group * LANE_BYTES..],
                        stride,
                    };
                    if timed {
                        let t0 = Instant::now();
                        sh.stats = simd::forward_train(prepared, &mut sh.ws, &planes, scale);
                        let t1 = Instant::now();
                        simd::backward(prepared, &mut sh.ws, &mut sh.grad);
                        simd::carry_state(&mut sh.ws);
                        sh.times = ((t1 - t0).as_secs_f64(), t1.elapsed().as_secs_f64());
                    } else {
                        sh.stats = simd::forward_backward(
                            prepared,
                            &mut sh.ws,
                            &planes,
                            scale,
                            &mut sh.grad,
                        );
                    }
                };
                let n = shards.len();
                // With a team, a small gradient's reduction starts inside the round: when
                // each member's block is a whole subtree of the reduction tree (a power of
                // two of shards, aligned), the member sums it while its shards' gradients
                // are still in its cache, and only the blocks' roots are left to add.
                let mut summed_below = 1;
                match team {
                    Some(team) => {
                        // Units of `per` contiguous shards, two per member (so that a member
                        // that falls behind leaves at most a unit to the others), claimed by
                        // whichever member is ready; the blocks are handed out through
                        // uncontended mutexes on the stack (no allocation).
                        let per = (n / (2 * team.size())).max(1);
                        let subtrees = per > 1
                            && per.is_power_of_two()
                            && n % per == 0
                            && !shared_reduction(self.grad.len(), n);
                        if subtrees {
                            summed_below = per;
                        }
                        let blocks = split_for_members(shards.chunks_mut(per));
                        team.run(n.div_ceil(per), &|unit| {
                            if let Some(block) = take_block(&blocks, unit) {
                                block.iter_mut().for_each(run);
                                if subtrees {
                                    sum_subtree(block);
                                }
                            }
                        });
                    }
                    None => shards.iter_mut().for_each(run),
                }
                let reduce_start = Instant::now();
                reduce_shards(shards, summed_below, &mut self.grad, team);
                if let Some(pt) = &mut self.timing {
                    reduction_s = reduce_start.elapsed().as_secs_f64();
                    pt.parallel_s += (reduce_start - clock).as_secs_f64();
                    for sh in shards.iter() {
                        pt.forward_s += sh.times.0;
                        pt.backward_s += sh.times.1;
                    }
                }
                shards.iter().map(|sh| sh.stats.loss_sum).sum::<f64>()
            }
            EngineState::Scalar {
                h,
                h_next,
                grad,
                x,
                y,
            } => {
                for tt in 0..t {
                    for st in 0..s {
                        let bit = |b: &[u8]| (b[tt * stride + st / 8] >> (st % 8)) & 1;
                        x[tt * s + st] = bit(xb);
                        y[tt * s + st] = bit(yb);
                    }
                }
                let win = reference::Window {
                    streams: s,
                    time_step: t,
                    x,
                    y,
                };
                let loss = reference::forward_backward(&self.params, h, &win, grad, h_next);
                core::mem::swap(h, h_next);
                self.grad.copy_from_slice(&grad.data);
                f64::from(loss) * (s * t) as f64
            }
        };
        let loss = (loss_sum / (s * t) as f64) as f32;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: step_index,
                what: format!("the loss is {loss}"),
            });
        }
        let update_start = Instant::now();
        self.update();
        if let Some(pt) = &mut self.timing {
            pt.reduction_s += reduction_s;
            pt.update_s += update_start.elapsed().as_secs_f64();
        }
        self.progress.window += 1;
        if self.progress.window == self.cfg.windows_per_epoch() {
            self.progress = Progress {
                epoch: epoch + 1,
                window: 0,
            };
        }
        Ok(loss)
    }

    /// One optimizer update with the summed gradient, then re-arrange the weights.
    fn update(&mut self) {
        let lr = self.cfg.lr;
        match (&mut self.engine, self.cfg.optimizer) {
            (EngineState::Simd { .. }, Optimizer::Adagrad) => {
                simd::adagrad_update(&mut self.params.data, &mut self.accum.data, &self.grad, lr);
            }
            (EngineState::Simd { .. }, Optimizer::Sgd) => {
                simd::sgd_update(&mut self.params.data, &self.grad, lr)
            }
            (EngineState::Scalar { .. }, Optimizer::Adagrad) => {
                reference::adagrad_step(
                    &mut self.params.data,
                    &mut self.accum.data,
                    &self.grad,
                    lr,
                );
            }
            (EngineState::Scalar { .. }, Optimizer::Sgd) => {
                reference::sgd_step(&mut self.params.data, &self.grad, lr)
            }
        }
        if let EngineState::Simd { prepared, .. } = &mut self.engine {
            prepared.load(&self.params);
        }
    }

    /// Zeroes the carried hidden state of every stream (start of an epoch).
    fn reset_state(&mut self) {
        match &mut self.engine {
            EngineState::Simd { shards, .. } => shards.iter_mut().for_each(|sh| sh.ws.reset()),
            EngineState::Scalar { h, .. } => h.fill(0.0),
        }
    }

    /// Turns phase timing on (from zero) or off; see [`PhaseTimes`]. Off by default: the
    /// clock reads cost about 2% at the seed size.
    pub fn set_timing(&mut self, on: bool) {
        self.timing = on.then(PhaseTimes::default);
    }

    /// The phase times accumulated since [`Trainer::set_timing`]`(true)`.
    #[must_use]
    pub fn team_stats(&self) -> TeamStats {
        self.team_stats
    }

    /// Threads that took part in the windows' work: the team's size, 1 without a team.
    #[must_use]
    pub fn team_members(&self) -> usize {
        self.team_size()
    }

    pub fn phase_times(&self) -> Option<PhaseTimes> {
        self.timing
    }

    /// Adagrad's accumulator (all 0.1 at the start; unused by SGD).
    #[must_use]
    pub fn accumulator(&self) -> &Params<f32> {
        &self.accum
    }

    /// The carried hidden state of every stream, `[streams][hidden]`.
    #[must_use]
    pub fn carried_state(&self) -> Vec<f32> {
        let (s, h) = (self.cfg.streams(), self.cfg.hidden);
        let mut out = vec![0.0; s * h];
        match &self.engine {
            EngineState::Simd { shards, .. } => {
                for sh in shards {
                    let first = sh.first_group * LANES;
                    let n = sh.ws.streams();
                    sh.ws.store_state(&mut out[first * h..(first + n) * h]);
                }
            }
            EngineState::Scalar { h: state, .. } => out.copy_from_slice(state),
        }
        out
    }

    /// Puts a run back where it stood (for `--resume`): weights, optimizer state, position
    /// and the carried hidden state (`[streams][hidden]`). The caller checks the shapes.
    pub fn restore(
        &mut self,
        params: Params<f32>,
        accum: Params<f32>,
        progress: Progress,
        state: &[f32],
    ) {
        let (s, h) = (self.cfg.streams(), self.cfg.hidden);
        assert_eq!(params.hidden, h, "restore: params shape");
        assert_eq!(accum.hidden, h, "restore: accumulator shape");
        assert_eq!(state.len(), s * h, "restore: state is [streams][hidden]");
        assert!(
            progress.window < self.cfg.windows_per_epoch(),
            "restore: window in range"
        );
        self.params = params;
        self.accum = accum;
        self.progress = progress;
        match &mut self.engine {
            EngineState::Simd {
                shards, prepared, ..
            } => {
                prepared.load(&self.params);
                for sh in shards {
                    let first = sh.first_group * LANES;
                    let n = sh.ws.streams();
                    sh.ws.load_state(&state[first * h..(first + n) * h]);
                }
            }
            EngineState::Scalar { h: st, .. } => st.copy_from_slice(state),
        }
    }

    /// Whether any weight is not finite.
    #[must_use]
    pub fn weights_finite(&self) -> bool {
        self.params.data.iter().all(|v| v.is_finite())
    }
}

/// Hands out blocks (of shards, of gradient elements) to team members: block k to whoever
/// claims unit k.
/// On the stack, so that a window allocates nothing.
type Blocks<'a, T> = [Mutex<Option<&'a mut [T]>>; MAX_SHARDS];

fn split_for_members<'a, T>(mut chunks: impl Iterator<Item = &'a mut [T]>) -> Blocks<'a, T> {
    std::array::from_fn(|_| Mutex::new(chunks.next()))
}

/// Block `unit` (once; `None` past the last block).
fn take_block<'a, T>(blocks: &Blocks<'a, T>, unit: usize) -> Option<&'a mut [T]> {
    let slot = blocks.get(unit)?;
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// Below this many additions a gradient reduction runs on one thread: splitting it costs two
/// barriers (about a microsecond), a few thousand additions' worth.
const PARALLEL_REDUCTION_ADDS: usize = 1 << 15;

/// Whether a team shares the reduction of a gradient of `len` numbers from `shards` shards
/// by element (else one thread does it).
fn shared_reduction(len: usize, shards: usize) -> bool {
    len * shards.saturating_sub(1) >= PARALLEL_REDUCTION_ADDS
}

/// The lower levels of the reduction tree ([`tree_sum`]) over one member's block of shards,
/// in place: afterwards `block[0].grad` holds the block's sum. `block.len()` is a power of
/// two and the block starts at a multiple of it, so these are exactly the tree's additions
/// below stride `block.len()`, in the same order.
fn sum_subtree(block: &mut [Shard]) {
    let n = block.len();
    let mut stride = 1;
    while stride < n {
        for pair in block.chunks_exact_mut(2 * stride) {
            let (lo, hi) = pair.split_at_mut(stride);
            for (a, b) in lo[0].grad.iter_mut().zip(&hi[0].grad) {
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
fn reduce_shards(shards: &[Shard], summed_below: usize, out: &mut [f32], team: Option<&Team>) {
    let n = shards.len().div_ceil(summed_below);
    let mut roots = shards.iter().step_by(summed_below).map(|s| &s.grad[..]);
    let grads: [&[f32]; MAX_SHARDS] = std::array::from_fn(|_| roots.next().unwrap_or(&[]));
    let grads = &grads[..n];
    match team {
        Some(team) if shared_reduction(out.len(), n) => {
            // Blocks of whole vectors.
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

/// `out[i] = tree_sum(grads[..][first + i])` for every `i`, a vector of elements at a time.
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
/// adds `v[4i+2]` into `v[4i]`, and so on; the sum ends in `v[0]`. Lane-wise for `Vf32`, so
/// a vector lane sums exactly as a scalar would.
fn tree_sum<T: Copy + Add<Output = T>>(v: &mut [T]) -> T {
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
