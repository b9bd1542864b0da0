//! The engines that run a window's arithmetic for the [`crate::train::Trainer`]: the fused
//! SIMD kernels, sharded over a [`Team`] ([`SimdEngine`]), and the scalar reference, on one
//! thread ([`ScalarEngine`]). The trainer owns the weights, the optimizer state, the data and
//! the position in the run; an engine owns the carried hidden state and what it needs to run
//! a window (activations, the shards' gradients). [`new_engine`] picks one for `--engine`.

use crate::config::{Engine, Optimizer, TrainConfig};
use crate::handout::{split_for_members, take_block};
use crate::reduce::{ShardGradient, reduce_shards, shared_reduction, sum_subtree};
use crate::shards::MAX_SHARDS;
use crate::team::Team;
use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::reference::{self, Update};
use bitrnn_kernels::simd::{self, Inputs, Prepared, WindowStats, Workspace};
use bitrnn_kernels::{Layout, Params};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Where the time of the windows went, accumulated while
/// [`crate::train::Trainer::set_timing`] is on. `forward_s` and `backward_s` are
/// thread-seconds summed over shards; `parallel_s`, `reduction_s` and `update_s` are wall
/// seconds of the parallel region, the gradient reduction and the optimizer update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    pub forward_s: f64,
    pub backward_s: f64,
    pub parallel_s: f64,
    pub reduction_s: f64,
    pub update_s: f64,
}

/// What the trainer asks of an engine. Every method works on all streams at once; the state
/// layout at the interface is `[streams][hidden]`.
pub trait WindowEngine: Send {
    /// Forward and BPTT of one window over `inputs` from the carried state, which then moves
    /// on to the window's last step; writes the gradient (summed over the streams, scaled by
    /// `1 / (streams * time_step)`) into `grad` and returns the loss summed over the window's
    /// sample-steps. `team`, when given, shares the work; `timing`, when given, accumulates
    /// the phase times.
    fn window(
        &mut self,
        params: &Params<f32>,
        inputs: &Inputs<'_>,
        grad: &mut [f32],
        team: Option<&Team>,
        timing: Option<&mut PhaseTimes>,
    ) -> f64;

    /// One optimizer step of `params` (and Adagrad's `accum`) with `grad` (clipped by the
    /// step, `grad` itself unchanged), in this engine's arithmetic; the engine takes the new
    /// weights. Both engines' steps are the same arithmetic, bit for bit.
    /// With a `team`, the engine may share the step among its members (same arithmetic).
    fn update(
        &mut self,
        optimizer: Optimizer,
        update: Update<f32>,
        params: &mut Params<f32>,
        accum: &mut Params<f32>,
        grad: &[f32],
        team: Option<&Team>,
    );

    /// Zeroes the carried hidden state (start of an epoch).
    fn reset_state(&mut self);

    /// Writes the carried state into `out`, `[streams][state_rows * hidden]`.
    fn store_state(&self, out: &mut [f32]);

    /// Takes new weights and a carried state (`[streams][state_rows * hidden]`), for a
    /// resume.
    fn restore(&mut self, params: &Params<f32>, state: &[f32]);

    /// The units of work a team can share per window (1: the engine runs on one thread).
    fn shards(&self) -> usize;
}

/// The engine `cfg.engine` names, starting from `params`.
#[must_use]
pub fn new_engine(cfg: &TrainConfig, params: &Params<f32>) -> Box<dyn WindowEngine> {
    match cfg.engine {
        Engine::Simd => Box::new(SimdEngine::new(cfg, params)),
        Engine::Scalar => Box::new(ScalarEngine::new(cfg, params.layout())),
    }
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

impl ShardGradient for Shard {
    fn grad(&self) -> &[f32] {
        &self.grad
    }
    fn grad_mut(&mut self) -> &mut [f32] {
        &mut self.grad
    }
}

/// The fused SIMD kernels over the shards of [`shard_ranges`](crate::shards::shard_ranges).
pub struct SimdEngine {
    /// Numbers of one stream's carried state: `h` (and the LSTM's `c`).
    state_width: usize,
    prepared: Prepared,
    shards: Vec<Shard>,
    /// `1 / (streams * time_step)`: the loss is a mean over the window's sample-steps.
    scale: f32,
}

impl SimdEngine {
    fn new(cfg: &TrainConfig, params: &Params<f32>) -> Self {
        let ranges = crate::shards::run_shards(cfg);
        Self::for_shards(cfg, params, &ranges)
    }

    /// An engine over some of the run's shards: `ranges`, a contiguous run of
    /// [`shard_ranges`](crate::shards::shard_ranges)'s lane-group ranges (what one MPI rank owns, see
    /// `crate::distributed`). Its planes and carried state start at the first range's first
    /// lane group; the loss scale is the whole run's.
    ///
    /// # Panics
    /// If `ranges` is empty.
    #[must_use]
    pub fn for_shards(cfg: &TrainConfig, params: &Params<f32>, ranges: &[(usize, usize)]) -> Self {
        let (s, h, t) = (cfg.streams(), cfg.hidden, cfg.time_step);
        let base = ranges[0].0;
        let shards = ranges
            .iter()
            .map(|&(g0, g1)| {
                let streams = ((g1 * LANES).min(s)) - g0 * LANES;
                Shard {
                    first_group: g0 - base,
                    ws: Workspace::for_path(cfg.layout(), cfg.symbols(), streams, t),
                    grad: vec![0.0; params.data.len()],
                    stats: WindowStats::default(),
                    times: (0.0, 0.0),
                }
            })
            .collect();
        let mut prepared = Prepared::for_path(cfg.layout(), cfg.symbols());
        prepared.load(params);
        Self {
            state_width: cfg.cell.state_rows() * h,
            prepared,
            shards,
            scale: 1.0 / (s * t) as f32,
        }
    }

    /// Each shard's loss of the last window, summed over its sample-steps, in shard order.
    pub fn shard_losses(&self) -> impl Iterator<Item = f64> + '_ {
        self.shards.iter().map(|sh| sh.stats.loss_sum)
    }

    /// Takes new weights (after an update made elsewhere).
    pub fn load(&mut self, params: &Params<f32>) {
        self.prepared.load(params);
    }
}

/// Runs the job in `slot` if no one took it yet.
fn run_once(slot: &Mutex<Option<&mut (dyn FnMut() + Send + '_)>>) {
    if let Some(job) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
        job();
    }
}

/// Parameters from which the SIMD engine shares its optimizer step and the packing of the
/// weights among the team's members (an LSTM of hidden 256 has 266 k: alone, the step and
/// the packing were 3% of its CPU time and about twice that of the wall time on 2 threads,
/// the other member waiting; below this a team round costs more than it saves).
pub const PARALLEL_UPDATE: usize = 1 << 16;

/// One optimizer step of `params` (and Adagrad's `accum`) with `grad`, in the SIMD kernels'
/// arithmetic (the clip and the epsilon of `update` included).
pub fn simd_update(
    optimizer: Optimizer,
    update: Update<f32>,
    params: &mut Params<f32>,
    accum: &mut Params<f32>,
    grad: &[f32],
) {
    match optimizer {
        Optimizer::Adagrad => simd::adagrad_step(&mut params.data, &mut accum.data, grad, update),
        Optimizer::Sgd => simd::sgd_step(&mut params.data, grad, update),
    }
}

impl WindowEngine for SimdEngine {
    fn window(
        &mut self,
        _params: &Params<f32>,
        inputs: &Inputs<'_>,
        grad: &mut [f32],
        team: Option<&Team>,
        timing: Option<&mut PhaseTimes>,
    ) -> f64 {
        let (prepared, shards, scale) = (&self.prepared, &mut self.shards, self.scale);
        let timed = timing.is_some();
        let clock = Instant::now();
        let run = |sh: &mut Shard| {
            let planes = inputs.offset(sh.first_group);
            if timed {
                let t0 = Instant::now();
                sh.stats = simd::forward_train(prepared, &mut sh.ws, planes, scale);
                let t1 = Instant::now();
                simd::backward(prepared, &mut sh.ws, &mut sh.grad);
                simd::carry_state(&mut sh.ws);
                sh.times = ((t1 - t0).as_secs_f64(), t1.elapsed().as_secs_f64());
            } else {
                sh.stats =
                    simd::forward_backward(prepared, &mut sh.ws, planes, scale, &mut sh.grad);
            }
        };
        let n = shards.len();
        // With a team, a small gradient's reduction starts inside the round: when each
        // member's block is a whole subtree of the reduction tree (a power of two of shards,
        // aligned), the member sums it while its shards' gradients are still in its cache,
        // and only the blocks' roots are left to add.
        let mut summed_below = 1;
        match team {
            Some(team) => {
                // Units of `per` contiguous shards, two per member (so that a member that
                // falls behind holds up at most one unit), claimed by whichever member is
                // ready; the blocks are handed out through uncontended mutexes on the stack
                // (no allocation).
                let per = (n / (2 * team.size())).max(1);
                let subtrees = per > 1
                    && per.is_power_of_two()
                    && n % per == 0
                    && !shared_reduction(grad.len(), n);
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
        reduce_shards(shards, summed_below, grad, team);
        if let Some(pt) = timing {
            pt.reduction_s += reduce_start.elapsed().as_secs_f64();
            pt.parallel_s += (reduce_start - clock).as_secs_f64();
            for sh in shards.iter() {
                pt.forward_s += sh.times.0;
                pt.backward_s += sh.times.1;
            }
        }
        self.shard_losses().sum::<f64>()
    }

    fn update(
        &mut self,
        optimizer: Optimizer,
        update: Update<f32>,
        params: &mut Params<f32>,
        accum: &mut Params<f32>,
        grad: &[f32],
        team: Option<&Team>,
    ) {
        let Some(team) = team.filter(|_| params.data.len() >= PARALLEL_UPDATE) else {
            simd_update(optimizer, update, params, accum, grad);
            // The kernels read the weights re-arranged (w_hh and its transpose).
            self.prepared.load(params);
            return;
        };
        // The step is elementwise: blocks of whole vectors, two per member, give the bits of
        // one call.
        let len = params.data.len();
        let units = (2 * team.size()).min(MAX_SHARDS);
        let per = len.div_ceil(units).next_multiple_of(LANES);
        let weights = split_for_members(params.data.chunks_mut(per));
        let sums = split_for_members(accum.data.chunks_mut(per));
        team.run(len.div_ceil(per), &|unit| {
            let Some(w) = take_block(&weights, unit) else {
                return;
            };
            let g = &grad[unit * per..][..w.len()];
            match optimizer {
                Optimizer::Adagrad => {
                    let a = take_block(&sums, unit).expect("the accumulator's block");
                    simd::adagrad_step(w, a, g, update);
                }
                Optimizer::Sgd => simd::sgd_step(w, g, update),
            }
        });
        // The two packings of w_hh, one per member.
        self.prepared.load_with(params, |a, b| {
            let (a, b) = (Mutex::new(Some(a)), Mutex::new(Some(b)));
            team.run(2, &|unit| {
                if unit == 0 {
                    run_once(&a);
                } else {
                    run_once(&b);
                }
            });
        });
    }

    fn reset_state(&mut self) {
        self.shards.iter_mut().for_each(|sh| sh.ws.reset());
    }

    fn store_state(&self, out: &mut [f32]) {
        let h = self.state_width;
        for sh in &self.shards {
            let first = sh.first_group * LANES;
            let n = sh.ws.streams();
            sh.ws.store_state(&mut out[first * h..(first + n) * h]);
        }
    }

    fn restore(&mut self, params: &Params<f32>, state: &[f32]) {
        self.prepared.load(params);
        let h = self.state_width;
        for sh in &mut self.shards {
            let first = sh.first_group * LANES;
            let n = sh.ws.streams();
            sh.ws.load_state(&state[first * h..(first + n) * h]);
        }
    }

    fn shards(&self) -> usize {
        self.shards.len()
    }
}

/// The scalar reference ([`reference::forward_backward`]) in f32, single-threaded: plain
/// loops over the window's bits unpacked to bytes.
pub struct ScalarEngine {
    streams: usize,
    time_step: usize,
    /// The carried state and the next one, `[streams][hidden]`.
    h: Vec<f32>,
    h_next: Vec<f32>,
    grad: Params<f32>,
    /// The window's inputs and targets, one symbol per sample, `[time_step][streams]`.
    x: Vec<u16>,
    y: Vec<u16>,
}

impl ScalarEngine {
    fn new(cfg: &TrainConfig, layout: Layout) -> Self {
        let (s, t) = (cfg.streams(), cfg.time_step);
        Self {
            streams: s,
            time_step: t,
            h: vec![0.0; layout.state_len(s)],
            h_next: vec![0.0; layout.state_len(s)],
            grad: Params::filled_as(layout, 0.0),
            x: vec![0; s * t],
            y: vec![0; s * t],
        }
    }
}

impl WindowEngine for ScalarEngine {
    fn window(
        &mut self,
        params: &Params<f32>,
        inputs: &Inputs<'_>,
        grad: &mut [f32],
        _team: Option<&Team>,
        _timing: Option<&mut PhaseTimes>,
    ) -> f64 {
        let (s, t) = (self.streams, self.time_step);
        for tt in 0..t {
            for st in 0..s {
                let i = tt * s + st;
                (self.x[i], self.y[i]) = match inputs {
                    Inputs::Bits(p) => {
                        let bit = |b: &[u8]| u16::from((b[tt * p.stride + st / 8] >> (st % 8)) & 1);
                        (bit(p.x), bit(p.y))
                    }
                    Inputs::Symbols(p) => (p.x[tt * p.stride + st], p.y[tt * p.stride + st]),
                };
            }
        }
        let win = reference::Window {
            streams: s,
            time_step: t,
            x: &self.x,
            y: &self.y,
        };
        let loss =
            reference::forward_backward(params, &self.h, &win, &mut self.grad, &mut self.h_next);
        core::mem::swap(&mut self.h, &mut self.h_next);
        grad.copy_from_slice(&self.grad.data);
        f64::from(loss) * (s * t) as f64
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
        match optimizer {
            Optimizer::Adagrad => {
                reference::adagrad_step(&mut params.data, &mut accum.data, grad, update);
            }
            Optimizer::Sgd => reference::sgd_step(&mut params.data, grad, update),
        }
    }

    fn reset_state(&mut self) {
        self.h.fill(0.0);
    }

    fn store_state(&self, out: &mut [f32]) {
        out.copy_from_slice(&self.h);
    }

    fn restore(&mut self, _params: &Params<f32>, state: &[f32]) {
        self.h.copy_from_slice(state);
    }

    fn shards(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cell, Init, TrainSettings};
    use crate::model::init_params;

    /// Both engines (and so MPI's ranks, which step with [`simd_update`]) apply the same
    /// update bit for bit, with every optimizer setting: the clip (gradients beyond it, an
    /// infinity, a NaN among them), Adagrad's epsilon and an accumulator from 0; a NaN
    /// gradient entry makes its weight NaN under the clip too, so the run's divergence is
    /// seen.
    #[test]
    fn both_engines_step_alike_with_every_setting() {
        for cell in Cell::ALL {
            let cfg = TrainConfig::new(TrainSettings {
                data_size: 4000,
                batch_size: 200,
                hidden: 5,
                cell,
                clip: Some(0.5),
                adagrad_eps: 1e-8,
                adagrad_init: 0.0,
                init: Init::Normal { std: 0.1 },
                ..TrainSettings::SEED
            })
            .unwrap();
            let params = init_params(cfg.init, cfg.layout(), 1);
            let n = params.data.len();
            let mut grad: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
                .collect();
            grad[3] = f32::INFINITY;
            grad[n - 1] = f32::NAN;
            let mut simd = new_engine(&cfg, &params);
            let scalar_cfg = TrainConfig::new(TrainSettings {
                engine: Engine::Scalar,
                ..*cfg.settings()
            })
            .unwrap();
            let mut scalar = new_engine(&scalar_cfg, &params);
            for optimizer in [Optimizer::Adagrad, Optimizer::Sgd] {
                let mut results = Vec::new();
                for engine in [&mut simd, &mut scalar] {
                    let mut p = params.clone();
                    let mut accum = Params::filled_as(p.layout(), cfg.adagrad_init);
                    // Two steps, so that the second starts from a grown accumulator.
                    for _ in 0..2 {
                        engine.update(optimizer, cfg.update(), &mut p, &mut accum, &grad, None);
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    results.push((bits(&p.data), bits(&accum.data)));
                    assert!(p.data[n - 1].is_nan(), "{cell:?} {optimizer:?}");
                    assert!(p.data[..n - 1].iter().all(|v| v.is_finite()));
                }
                assert_eq!(results[0], results[1], "{cell:?} {optimizer:?}");
            }
        }
    }
}
