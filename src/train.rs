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
use crate::handout::{split_for_members, take_block};
use crate::model;
use crate::reduce::{ShardGradient, reduce_shards, shared_reduction, sum_subtree};
use crate::shards::shard_ranges;
use crate::team::{self, Team};
use bitrnn_kernels::simd::{self, LANES, Planes, Prepared, WindowStats, Workspace};
use bitrnn_kernels::{Params, reference};
use std::time::Instant;

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

impl ShardGradient for Shard {
    fn grad(&self) -> &[f32] {
        &self.grad
    }
    fn grad_mut(&mut self) -> &mut [f32] {
        &mut self.grad
    }
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
}

impl Trainer {
    /// Generates the data and the initial weights and allocates every buffer of the run.
    ///
    /// # Errors
    /// [`Error::Usage`] when the worker threads cannot be started.
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        let data = Dataset::generate(cfg.data_size, cfg.lags, cfg.seed);
        let params = model::init_params(cfg.hidden, cfg.seed);
        Self::with_params(cfg, data, params)
    }

    /// A run from given data and initial weights (for `verify` and the tests).
    ///
    /// # Errors
    /// [`Error::Usage`] when the worker threads cannot be started.
    pub fn with_params(cfg: TrainConfig, data: Dataset, params: Params<f32>) -> Result<Self> {
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
                self.run_windows(windows, &mut on_window, Some(team))
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
                        x: &xb[sh.first_group..],
                        y: &yb[sh.first_group..],
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
                        // Member k runs the k-th contiguous block of shards; the blocks are
                        // handed out through uncontended mutexes on the stack (no allocation).
                        let per = n.div_ceil(team.size());
                        let subtrees = per > 1
                            && per.is_power_of_two()
                            && n % per == 0
                            && !shared_reduction(self.grad.len(), n);
                        if subtrees {
                            summed_below = per;
                        }
                        let blocks = split_for_members(shards.chunks_mut(per));
                        team.run(&|member| {
                            if let Some(block) = take_block(&blocks, member) {
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
