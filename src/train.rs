//! The trainer: the driver that owns time, memory, indexing, threads and randomness, and has
//! an engine ([`crate::engine`]) do the arithmetic.
//!
//! An epoch walks the `S = data_size / batch_size` streams in `batch_size / time_step` windows
//! of `time_step` steps. The hidden state is carried from one window to the next and zeroed at
//! the start of each epoch; gradients stop at the window boundary (truncated BPTT).
//!
//! # Data parallelism, deterministic
//!
//! The SIMD engine cuts the streams into shards of whole lane groups (8 streams). The
//! partition depends on the data shape only ([`crate::shards::shard_ranges`]), never on `--threads`. Each
//! shard owns its slice of the carried state and its activations for the whole run. Per
//! window the shards run forward + BPTT in parallel on a [`Team`] (this thread and
//! `--threads - 1` rayon workers, formed once per [`Trainer::run`]), each writing its own
//! gradient; the gradients are then summed element by element in a fixed pairwise tree over
//! the shard index ([`crate::reduce`]) and one optimizer update follows. The same shards do the same arithmetic
//! in the same order whatever thread runs them, so the weights are bit-for-bit identical for
//! any thread count.

use crate::config::{Engine, TrainConfig};
use crate::data::Dataset;
use crate::engine::{WindowEngine, new_engine};
use crate::error::{Error, Result};
use crate::model;
use crate::planes::{Feed, TrainData};
use crate::sequence::Sequence;
use crate::team::{self, Team, TeamStats};
use bitrnn_kernels::{Layout, Params};
use std::time::Instant;

pub use crate::engine::PhaseTimes;

/// Where the trainer stands: `epoch` and `window` of the next window to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub epoch: usize,
    pub window: usize,
}

/// A training run in progress.
pub struct Trainer {
    cfg: TrainConfig,
    params: Params<f32>,
    /// Adagrad's accumulator (unused by SGD).
    accum: Params<f32>,
    /// The summed gradient of the current window.
    grad: Vec<f32>,
    engine: Box<dyn WindowEngine>,
    /// The data and its windows.
    feed: Feed,
    /// The `--threads - 1` workers that join the calling thread (`--threads` > 1, SIMD
    /// engine). Each [`Trainer::run`] of more than one window makes them a [`Team`] for its
    /// whole length, so a window's fork-join costs a team round (publish, claim, wait for the
    /// last unit), not a pool entry or a wake-up (a seed-size window is under 10 us of work).
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
    ///
    /// # Errors
    /// [`Error::Usage`] when the worker threads cannot be started.
    ///
    /// # Panics
    /// If the config's data are not the generator's ([`Trainer::with_sequence`] takes the
    /// others).
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        assert!(
            !cfg.symbols(),
            "Trainer::new generates the data: use with_sequence"
        );
        let data = Dataset::generate_rule(cfg.rule, cfg.data_size, cfg.lags, cfg.seed);
        let params = model::init_params(cfg.init, cfg.layout(), cfg.seed);
        Self::with_params(cfg, data, params)
    }

    /// A run over a sequence of symbols (the config's `data_size` of its positions, cut
    /// into streams as the bits), from the initial weights of the config's seed.
    ///
    /// # Errors
    /// [`Error::Usage`] when the worker threads cannot be started.
    pub fn with_sequence(cfg: TrainConfig, seq: Sequence) -> Result<Self> {
        let params = model::init_params(cfg.init, cfg.layout(), cfg.seed);
        Self::with_params(cfg, seq, params)
    }

    /// A run from given data and initial weights (for `verify` and the tests).
    ///
    /// # Errors
    /// [`Error::Usage`] when the worker threads cannot be started.
    pub fn with_params(
        cfg: TrainConfig,
        data: impl Into<TrainData>,
        params: Params<f32>,
    ) -> Result<Self> {
        let engine = new_engine(&cfg, &params);
        let streams = cfg.streams();
        Self::with_engine(cfg, data.into(), params, engine, streams)
    }

    /// A run whose windows `engine` computes over the first `streams` streams of `data` (cut
    /// as the config cuts the whole data): for `crate::distributed`, where a rank holds only
    /// its own streams and its engine exchanges the gradients with the other ranks.
    ///
    /// # Errors
    /// [`Error::Usage`] when the worker threads cannot be started.
    pub fn with_engine(
        cfg: TrainConfig,
        data: TrainData,
        params: Params<f32>,
        engine: Box<dyn WindowEngine>,
        streams: usize,
    ) -> Result<Self> {
        assert!(
            params.layout() == cfg.layout(),
            "params do not match --hidden, --cell and the data's symbols"
        );
        assert_eq!(
            matches!(data, TrainData::Symbols(_)),
            cfg.symbols(),
            "the data are the config's kind"
        );
        let pool = match (cfg.engine, cfg.threads) {
            (Engine::Simd, n) if n > 1 => Some(team::workers(n)?),
            _ => None,
        };
        Ok(Self {
            accum: Params::filled_as(params.layout(), cfg.adagrad_init),
            grad: vec![0.0; params.data.len()],
            engine,
            feed: Feed::new(data, streams, cfg.batch_size, cfg.time_step),
            cfg,
            params,
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
    /// The gradient of the last window (summed over shards), as the engine computed it: before
    /// `--clip`, which the optimizer's step applies.
    #[must_use]
    pub fn last_grad(&self) -> &[f32] {
        &self.grad
    }

    /// Runs one training window (forward, BPTT, reduction, update) and returns its mean loss.
    ///
    /// # Errors
    /// [`Error::Diverged`] when the loss is not finite.
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
    ///
    /// # Errors
    /// [`Error::Diverged`] when a window's loss is not finite.
    pub fn run(&mut self, windows: usize, mut on_window: impl FnMut(f32) -> bool) -> Result<usize> {
        let members = self.team_size();
        let pool = self.pool.take();
        let result = match &pool {
            // A team pays for itself over many windows; a single window runs on this thread.
            Some(pool) if members > 1 && windows > 1 => team::with_team(pool, members, |team| {
                let result = self.run_windows(windows, &mut on_window, Some(team));
                self.team_stats += team.stats();
                result
            }),
            _ => self.run_windows(windows, &mut on_window, None),
        };
        self.pool = pool;
        result
    }

    /// Runs `body` with a team of this trainer's threads ([`Trainer::run`]'s), or none when it
    /// runs on one: for work between runs, such as the held-out score.
    pub fn with_team<R>(&self, body: impl FnOnce(Option<&Team>) -> R) -> R {
        match &self.pool {
            Some(pool) if self.cfg.threads > 1 => {
                team::with_team(pool, self.cfg.threads.min(self.max_team), |t| body(Some(t)))
            }
            _ => body(None),
        }
    }

    /// Members of a team: `--threads`, but no more than the shards (a member without a shard
    /// would only wait) nor the cores (members beyond them would wait for each other). The
    /// results do not depend on it: the shard partition is fixed.
    fn team_size(&self) -> usize {
        if self.pool.is_some() {
            self.cfg
                .threads
                .min(self.engine.shards())
                .min(self.max_team)
        } else {
            1
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

    /// One window: the engine's forward and BPTT (its work shared by the team's members, if
    /// any), then the update.
    fn window(&mut self, team: Option<&Team>) -> Result<f32> {
        let Progress { epoch, window } = self.progress;
        if window == 0 {
            self.engine.reset_state();
        }
        let inputs = self.feed.window(window * self.cfg.time_step);
        let loss_sum = self.engine.window(
            &self.params,
            &inputs,
            &mut self.grad,
            team,
            self.timing.as_mut(),
        );
        let loss = (loss_sum / self.cfg.sample_steps_per_window() as f64) as f32;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: epoch * self.cfg.windows_per_epoch() + window,
                what: format!("the loss is {loss}"),
            });
        }
        let update_start = Instant::now();
        self.engine.update(
            self.cfg.optimizer,
            self.cfg.update(),
            &mut self.params,
            &mut self.accum,
            &self.grad,
            team,
        );
        if let Some(pt) = &mut self.timing {
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

    /// The data the run trains on.
    #[must_use]
    pub fn data(&self) -> &TrainData {
        self.feed.data()
    }

    /// A text model's alphabet (the byte of each input symbol), `None` for other data.
    #[must_use]
    pub fn alphabet(&self) -> Option<&[u8]> {
        match self.feed.data() {
            TrainData::Symbols(seq) => seq.alphabet(),
            TrainData::Bits(_) => None,
        }
    }

    /// The parameters' layout: the config's cell and hidden size.
    #[must_use]
    pub fn layout(&self) -> Layout {
        self.cfg.layout()
    }

    /// Adagrad's accumulator (all `--adagrad-init` at the start; unused by SGD).
    #[must_use]
    pub fn accumulator(&self) -> &Params<f32> {
        &self.accum
    }

    /// The carried state of every stream, `[streams][state_rows * hidden]`: `h`, then the
    /// LSTM's `c` ([`bitrnn_kernels::Layout::state_len`]).
    #[must_use]
    pub fn carried_state(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.layout().state_len(self.cfg.streams())];
        self.engine.store_state(&mut out);
        out
    }

    /// Puts a run back where it stood (for `--resume`): weights, optimizer state, position
    /// and the carried state (`[streams][state_rows * hidden]`). The caller checks the shapes.
    ///
    /// # Panics
    /// If a shape does not match the config, or the window is out of range.
    pub fn restore(
        &mut self,
        params: Params<f32>,
        accum: Params<f32>,
        progress: Progress,
        state: &[f32],
    ) {
        let layout = self.layout();
        assert_eq!(params.layout(), layout, "restore: params shape");
        assert_eq!(accum.layout(), layout, "restore: accumulator shape");
        assert_eq!(
            state.len(),
            layout.state_len(self.cfg.streams()),
            "restore: state is [streams][state_rows * hidden]"
        );
        assert!(
            progress.window < self.cfg.windows_per_epoch(),
            "restore: window in range"
        );
        self.params = params;
        self.accum = accum;
        self.progress = progress;
        self.engine.restore(&self.params, state);
    }

    /// Whether any weight is not finite.
    #[must_use]
    pub fn weights_finite(&self) -> bool {
        self.params.data.iter().all(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainSettings;

    /// The clip bounds each gradient entry, not the step's size: with a learning rate far too
    /// large, a clipped run still diverges within a few windows (the weights grow huge, the
    /// loss becomes infinite or NaN), and says so, with either engine and optimizer.
    #[test]
    fn a_clipped_run_still_reports_divergence() {
        for (engine, optimizer) in [
            (Engine::Simd, crate::config::Optimizer::Adagrad),
            (Engine::Scalar, crate::config::Optimizer::Sgd),
        ] {
            let cfg = TrainConfig::new(TrainSettings {
                data_size: 4000,
                batch_size: 200,
                lr: 1e38,
                clip: Some(5.0),
                optimizer,
                engine,
                ..TrainSettings::SEED
            })
            .unwrap();
            let mut trainer = Trainer::new(cfg).unwrap();
            match trainer.run(20, |_| true) {
                Err(Error::Diverged { step, what }) => {
                    assert!((1..20).contains(&step), "{engine:?}: step {step}");
                    assert!(what.starts_with("the loss is"), "{what}");
                }
                other => panic!("{engine:?}: {other:?}"),
            }
        }
    }
}
