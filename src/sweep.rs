//! The model behind `bitrnn sweep`: a grid of independent training runs, their results as
//! CSV rows, and the per-cell aggregates the heatmap draws.
//!
//! A [`Grid`] is the product of its axes, in this order (outermost first): `hidden`, `cell`,
//! `lags`, `time_step`, `seed`. Every run is a plain [`Trainer`] on one thread, so a run's result is
//! the result of `bitrnn train --threads 1` (and of any `--threads`, see [`crate::train`])
//! with the same settings, bit for bit: [`run_one`] does what the train command does,
//! nothing else. The command runs many of them at once, one per core.
//!
//! # Learned
//!
//! A run *learned* when its `final_loss` is below the midpoint between the rule's
//! nothing-learned level and the level just below it ([`learned_below`]): for the seed rule
//! `(ln 2 / 2 + ln 2) / 2 = 0.5199`, for r2rt `(0.5192 + 0.6616) / 2 = 0.5904` (lag a at
//! least). The midpoint, because the losses of a run settle near one level or the other
//! (the README's figures); a run between the two has learned part of the rule at best.
//!
//! # Your own sequences
//!
//! On a file (`--text`, `--data`, `--inputs`/`--targets`: [`SweepData::File`]) the sequence is
//! read once and every run trains on views of the same storage (a [`Sequence`] clone is an
//! `Arc`), so a 100 MB text is held once whatever `--threads`. There is no rule and no lags
//! axis: the grid is hidden x cell x time_step x seed. The level of a model that learned
//! nothing is the unigram entropy of the training targets ([`crate::source::unigram_level`]),
//! and a run *learned* when its judged loss (the held-out loss with `--valid`, else
//! `final_loss`) is at most [`UNIGRAM_LEARNED_FRACTION`] of it: 10% below the loss of knowing
//! only the symbols' frequencies. A character model that uses any context at all passes that
//! early (the README's 1.1 MB of prose is 26% below after 20 epochs), while a model that has
//! only found the frequencies sits within a few percent of the level: its held-out loss is
//! the cross-entropy between the two parts' frequencies, at or just above the entropy.
//!
//! With `--valid` every run of either source is scored on the held-out tail after each epoch,
//! as `train` does, and the last score is the run's held-out loss and accuracy.

use crate::cmd::train::{FINAL_LOSS_STEPS, held_out_score, tail_mean};
use crate::config::{
    Engine, Init, MAX_HIDDEN, Optimizer, Rule, Source, TrainConfig, TrainSettings, check_lags,
    parse_cell,
};
use crate::data::ReferenceLevel;
use crate::error::{Error, Result};
use crate::model;
use crate::planes::TrainData;
use crate::sequence::Sequence;
use crate::source::{DataSource, RunData};
use crate::train::Trainer;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// The most runs a grid may have.
pub const MAX_RUNS: usize = 100_000;

/// The most values one axis may have before the product is even formed.
pub const MAX_AXIS: usize = MAX_RUNS;

/// A run on a file *learned* when its judged loss is at most this fraction of the unigram
/// entropy of the training targets (see the module docs).
pub const UNIGRAM_LEARNED_FRACTION: f64 = 0.9;

/// What the runs of a sweep train on.
#[derive(Clone, Debug)]
pub enum SweepData {
    /// The built-in generator: each run generates its own bits (they depend on its rule,
    /// lags and seed), as `train` does.
    Generator,
    /// One file's sequence, read once; every run trains on views of it.
    File(Box<FileData>),
}

/// A file's sequence as the runs of a sweep share it.
#[derive(Clone, Debug)]
pub struct FileData {
    /// What it is, as `summary.json`'s `data` says it ([`DataSource::describe`]), with the
    /// characters a CSV field cannot hold (`,`, `"`, line breaks) replaced by `_`.
    pub name: String,
    /// [`data_checksum`] of the whole sequence (training part and held-out tail).
    pub checksum: String,
    /// The training part and the held-out tail (`--valid`).
    pub train: TrainData,
    pub valid: Option<TrainData>,
    /// The unigram entropy of the training targets: the loss of knowing only the classes'
    /// frequencies.
    pub unigram: ReferenceLevel,
}

impl SweepData {
    /// The data of `source`, read by [`crate::source::load`] into `data`.
    #[must_use]
    pub fn file(source: &DataSource, data: RunData) -> Self {
        let parts: Vec<&Sequence> = [Some(&data.train), data.valid.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|d| match d {
                TrainData::Symbols(seq) => Some(seq),
                TrainData::Bits(_) => None,
            })
            .collect();
        Self::File(Box::new(FileData {
            name: csv_safe(&source.describe()),
            checksum: data_checksum(&parts),
            unigram: crate::source::unigram_level(&data.train),
            train: data.train,
            valid: data.valid,
        }))
    }

    /// The `data` column: `generator`, or the file's [`FileData::name`].
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Generator => "generator",
            Self::File(f) => &f.name,
        }
    }

    /// The `data_checksum` column: empty for the generator (its data are the settings').
    #[must_use]
    pub fn checksum(&self) -> &str {
        match self {
            Self::Generator => "",
            Self::File(f) => &f.checksum,
        }
    }

    /// The reference levels of a run of `settings` on these data: the rule's (lowest first,
    /// nothing learned last) for the generator, the unigram level for a file.
    #[must_use]
    pub fn levels(&self, settings: &TrainSettings) -> Vec<ReferenceLevel> {
        match self {
            Self::Generator => settings.rule.reference_levels(),
            Self::File(f) => vec![f.unigram],
        }
    }

    /// The judged loss below which a run of `settings` counts as having learned: the
    /// midpoint of [`learned_below`] for the generator, [`UNIGRAM_LEARNED_FRACTION`] of the
    /// unigram entropy for a file.
    #[must_use]
    pub fn learned_below(&self, settings: &TrainSettings) -> f64 {
        match self {
            Self::Generator => learned_below(&settings.rule.reference_levels()),
            Self::File(f) => UNIGRAM_LEARNED_FRACTION * f.unigram.loss,
        }
    }
}

/// `s` with `,`, `"` and line breaks replaced by `_`: a field of `sweep.csv`.
fn csv_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, ',' | '"' | '\n' | '\r') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// A fingerprint of a sequence given as consecutive `parts`: the input ids, then the target
/// ids, then `V` and `C`, hashed as 16-bit units by FNV-1a in four interleaved lanes (id `k`
/// into lane `k mod 4`, so that the multiplications of four ids overlap), the lanes folded at
/// the end; 16 hex digits. Equal for equal data however it is split (`--valid`), different
/// (but for a chance of about 2^-64) for any other: what `--resume` compares to refuse a
/// `sweep.csv` of other data.
#[must_use]
pub fn data_checksum(parts: &[&Sequence]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    let mut lanes = [OFFSET, OFFSET ^ 1, OFFSET ^ 2, OFFSET ^ 3];
    let mut k = 0usize;
    let mut eat = |v: u16| {
        let lane = &mut lanes[k & 3];
        *lane = (*lane ^ u64::from(v)).wrapping_mul(PRIME);
        k += 1;
    };
    let mut buf = vec![0u16; 1 << 16];
    for targets in [false, true] {
        for seq in parts {
            let ids = if targets { seq.targets() } else { seq.inputs() };
            let mut at = 0;
            while at < ids.len() {
                let n = buf.len().min(ids.len() - at);
                ids.copy_to(at, &mut buf[..n]);
                buf[..n].iter().for_each(|&v| eat(v));
                at += n;
            }
        }
    }
    if let Some(seq) = parts.first() {
        for n in [seq.vocab(), seq.classes()] {
            eat(n as u16);
            eat((n >> 16) as u16);
        }
    }
    let hash = lanes.iter().fold(OFFSET, |h, &lane| {
        lane.to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
    });
    format!("{hash:016x}")
}

/// A validated grid of runs: each axis non-empty, without duplicates, every run a valid
/// [`TrainConfig`], at most [`MAX_RUNS`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// The settings every run shares (`lags`, `time_step`, `hidden`, `cell`, `seed` are
    /// replaced by the axes; `threads` is 1; `cell` is the first of [`Grid::cells`]).
    base: TrainSettings,
    pub lags: Vec<(usize, usize)>,
    pub time_steps: Vec<usize>,
    pub hidden: Vec<usize>,
    /// The recurrent cells (`--cells`).
    pub cells: Vec<crate::config::Cell>,
    pub seeds: Vec<u64>,
}

/// Refuses an empty axis or one with a repeated value.
fn check_axis<T: Eq + std::hash::Hash + std::fmt::Debug>(
    flag: &str,
    values: &[T],
    show: impl Fn(&T) -> String,
) -> Result<()> {
    if values.is_empty() {
        return Err(Error::Usage(format!(
            "{flag}: empty; give at least one value"
        )));
    }
    if values.len() > MAX_AXIS {
        return Err(Error::Usage(format!(
            "{flag}: {} values, more than the {MAX_AXIS} allowed",
            values.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    for v in values {
        if !seen.insert(v) {
            return Err(Error::Usage(format!(
                "{flag}: {} appears twice; each value may appear once",
                show(v)
            )));
        }
    }
    Ok(())
}

impl Grid {
    /// Checks the axes and every run they make.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the flag: an empty axis, a repeated value, a value out of
    /// range (a lag beyond `--data-size`, a time step beyond `--batch-size`), more than
    /// [`MAX_RUNS`] runs, or a shared setting out of range ([`TrainConfig::new`]).
    pub fn new(
        base: TrainSettings,
        lags: Vec<(usize, usize)>,
        time_steps: Vec<usize>,
        hidden: Vec<usize>,
        cells: Vec<crate::config::Cell>,
        seeds: Vec<u64>,
    ) -> Result<Self> {
        check_axis("--lags", &lags, |(a, b)| format!("{a},{b}"))?;
        check_axis("--time-steps", &time_steps, ToString::to_string)?;
        check_axis("--hidden", &hidden, ToString::to_string)?;
        check_axis("--cells", &cells, |c| c.name().to_string())?;
        if seeds.is_empty() {
            return Err(Error::Usage("--seeds 0: must be at least 1".into()));
        }
        check_axis("--seeds", &seeds, ToString::to_string)?;
        let axes = [
            lags.len(),
            time_steps.len(),
            hidden.len(),
            cells.len(),
            seeds.len(),
        ];
        let runs: u128 = axes.iter().map(|&n| n as u128).product();
        if runs > MAX_RUNS as u128 {
            return Err(Error::Usage(format!(
                "--lags x --time-steps x --hidden x --cells x --seeds: {} x {} x {} x {} x {} = \
                 {runs} runs, more than the {MAX_RUNS} allowed; shorten an axis",
                axes[0], axes[1], axes[2], axes[3], axes[4]
            )));
        }
        if !base.symbols() {
            for &lag in &lags {
                check_lags(lag, base.data_size)?;
            }
        }
        for &t in &time_steps {
            if t == 0 || t > base.batch_size {
                return Err(Error::Usage(format!(
                    "--time-steps {t}: each must be between 1 and --batch-size ({})",
                    base.batch_size
                )));
            }
        }
        for &h in &hidden {
            if h == 0 || h > MAX_HIDDEN {
                return Err(Error::Usage(format!(
                    "--hidden {h}: each must be between 1 and {MAX_HIDDEN}"
                )));
            }
        }
        let base = TrainSettings {
            threads: 1,
            cell: cells[0],
            ..base
        };
        let grid = Grid {
            base,
            lags,
            time_steps,
            hidden,
            cells,
            seeds,
        };
        // The axes are in range; what is left is shared (lr, epochs, data size) or the memory
        // of the largest run, which the shapes decide: check each shape once.
        for cfg in grid.shape_configs() {
            cfg?;
        }
        Ok(grid)
    }

    /// The validated config of each (hidden, cell, time_step) shape, with the first lags and
    /// seed: what the shapes decide (memory, windows) is the same for every run of the shape.
    fn shape_configs(&self) -> impl Iterator<Item = Result<TrainConfig>> + '_ {
        self.hidden.iter().flat_map(move |&hidden| {
            self.cells.iter().flat_map(move |&cell| {
                self.time_steps.iter().map(move |&time_step| {
                    TrainConfig::new(TrainSettings {
                        hidden,
                        cell,
                        time_step,
                        lags: self.lags[0],
                        seed: self.seeds[0],
                        ..self.base
                    })
                })
            })
        })
    }

    /// The shared settings (`threads` 1).
    #[must_use]
    pub fn base(&self) -> &TrainSettings {
        &self.base
    }

    /// Number of runs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lags.len()
            * self.time_steps.len()
            * self.hidden.len()
            * self.cells.len()
            * self.seeds.len()
    }

    /// Never: every axis has a value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every run's settings, in grid order: hidden, cell, lags, time_step, seed (outermost
    /// first).
    #[must_use]
    pub fn runs(&self) -> Vec<TrainSettings> {
        let mut out = Vec::with_capacity(self.len());
        for point in self.points() {
            for &seed in &self.seeds {
                out.push(TrainSettings { seed, ..point });
            }
        }
        out
    }

    /// The grid's points without the seed axis (the heatmap's cells), in grid order: hidden,
    /// cell, lags, time_step; each with the base's seed.
    fn points(&self) -> Vec<TrainSettings> {
        let mut out = Vec::with_capacity(self.len() / self.seeds.len());
        for &hidden in &self.hidden {
            for &cell in &self.cells {
                for &lags in &self.lags {
                    for &time_step in &self.time_steps {
                        out.push(TrainSettings {
                            hidden,
                            cell,
                            lags,
                            time_step,
                            ..self.base
                        });
                    }
                }
            }
        }
        out
    }

    /// A conservative estimate of the whole grid's training time on `threads` threads, in
    /// seconds ([`estimate_run_s`] per run).
    #[must_use]
    pub fn estimate_s(&self, threads: usize) -> f64 {
        self.runs().iter().map(estimate_run_s).sum::<f64>() / threads.max(1) as f64
    }
}

/// Estimated seconds of one run on one thread, on the safe side: per window 6 us of fixed
/// cost (planes, reduction, update, the callback), per sample-step 3 ns plus
/// `6 G H^2 + 10 G H` flops (the recurrent product forward, its transpose backward and the
/// gradient GEMM, 2 G H^2 each, with G the cell's gate blocks: 1 for rnn, 3 for gru, 4 for
/// lstm; the elementwise rest, per gate) at 20 GFLOP/s per thread. Measured on the 2-core VM
/// with 250 streams, hidden 6, one thread: 6.8 us per window at time_step 1, 17 us at 5,
/// 21 us at 12; the model says 10, 27 and 56 us (the default 720-run sweep: 41 s estimated,
/// 31 s measured with another job on the machine). The scalar engine measured 8 to 16 times
/// slower at that shape (1.0 to 1.1 s per run); the model takes 10 times. The gated cells
/// at hidden 6, time steps 1..=8 (same VM, with another job on it): 65 ns per sample-step
/// for gru and 90 ns for lstm against rnn's 14.5 ns; the model says 44 and 58 ns against
/// 16.8 (at this size the gates' elementwise work is most of the cost, hence `10 G H`).
#[must_use]
pub fn estimate_run_s(s: &TrainSettings) -> f64 {
    let windows = (s.epochs * s.windows_per_epoch()) as f64;
    let h = s.hidden as f64;
    let g = s.cell.gates() as f64;
    // The symbols' head: the output GEMM forward, its transpose and gradient (6 H C), and
    // the input rows' gather and scatter (2 G H).
    let head = if s.symbols() {
        6.0 * h * s.classes as f64 + 2.0 * g * h
    } else {
        0.0
    };
    let per_sample_step = 3e-9 + (6.0 * g * h * h + 10.0 * g * h + head) / 20e9;
    let simd = windows * (6e-6 + s.sample_steps_per_window() as f64 * per_sample_step);
    match s.engine {
        Engine::Simd => simd,
        Engine::Scalar => 10.0 * simd,
    }
}

/// The final loss below which a run counts as having learned (see the module docs): the
/// midpoint between the nothing-learned level (the last) and the one below it.
#[must_use]
pub fn learned_below(levels: &[ReferenceLevel]) -> f64 {
    match levels {
        [.., next, nothing] => (next.loss + nothing.loss) / 2.0,
        [only] => only.loss,
        [] => f64::NAN,
    }
}

/// One run's result: a row of `sweep.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// The run's settings (`threads` 1).
    pub settings: TrainSettings,
    /// What it trained on: [`SweepData::name`] and [`SweepData::checksum`].
    pub data: String,
    pub data_checksum: String,
    /// Mean loss of the last 100 steps (NaN when the run diverged).
    pub final_loss: f32,
    /// The held-out loss and accuracy after the last epoch (`--valid`; `None` without, or
    /// when the run diverged before its first epoch ended).
    pub held_out: Option<(f32, f32)>,
    /// The loss of a model that learned nothing: the rule's level for the generator, the
    /// unigram entropy of the training targets for a file.
    pub nothing_learned: f64,
    /// Mean loss of each complete epoch.
    pub epoch_loss: Vec<f32>,
    pub learned: bool,
    /// FNV-1a of the final weights' bits ([`model::checksum`]), as `train` reports it.
    pub weights_checksum: String,
    /// Seconds the run took (data, weights, training).
    pub wall_s: f64,
}

impl RunResult {
    /// The loss that decides `learned` and the heatmap: the held-out loss when the run held
    /// data out (`--valid`; NaN if it diverged), else `final_loss`.
    #[must_use]
    pub fn judged_loss(&self) -> f32 {
        if self.settings.valid > 0.0 {
            self.held_out.map_or(f32::NAN, |h| h.0)
        } else {
            self.final_loss
        }
    }
}

/// Refuses a sweep whose `at_once` concurrent runs would together need more than `limit`
/// bytes: each run's shapes are checked against the limit by [`Grid`]'s validation, but
/// `--threads` of them run at the same time.
///
/// # Errors
/// [`Error::Usage`] naming `--threads` and the memory it would take.
pub fn check_concurrent_memory(grid: &Grid, at_once: usize, limit: u64) -> Result<()> {
    // A file's sequence is held once, whatever the runs at once (they share it).
    let (mut largest, mut shared) = (0u64, 0u64);
    for cfg in grid.shape_configs() {
        let m = cfg?.memory_bytes();
        if grid.base.symbols() {
            shared = shared.max(m.data);
            largest = largest.max(m.total() - m.data);
        } else {
            largest = largest.max(m.total());
        }
    }
    let total = largest
        .saturating_mul(at_once as u64)
        .saturating_add(shared);
    if total <= limit {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "--threads {at_once}: {at_once} runs at once would need about {} (the largest run {} \
         each), more than the {} this machine allows; use fewer --threads, or a smaller \
         --hidden or --data-size",
        crate::config::human_bytes(total),
        crate::config::human_bytes(largest),
        crate::config::human_bytes(limit)
    )))
}

/// Runs one grid point to the end, as `bitrnn train --threads 1` does: the same data, the
/// same initial weights, the same windows, the same `final_loss` (and with `--valid` the
/// same held-out scores after each epoch). A run that diverges is a result with `final_loss`
/// NaN (it did not learn), not an error of the sweep.
///
/// # Errors
/// [`Error::Usage`] when the settings are not valid (a [`Grid`]'s always are).
pub fn run_one(settings: TrainSettings, data: &SweepData, learned_below: f64) -> Result<RunResult> {
    let start = Instant::now();
    let settings = TrainSettings {
        threads: 1,
        ..settings
    };
    let (cfg, run_data) = match data {
        // Generated and split as `train` does.
        SweepData::Generator => {
            let (s, d) =
                crate::source::load(settings, &DataSource::Generator, false, (None, None))?;
            (TrainConfig::new(s)?, d)
        }
        SweepData::File(f) => (
            TrainConfig::new(settings)?,
            RunData {
                train: f.train.clone(),
                valid: f.valid.clone(),
            },
        ),
    };
    let nothing_learned = data.levels(&cfg).last().map_or(f64::NAN, |l| l.loss);
    let wpe = cfg.windows_per_epoch();
    let total = cfg.epochs * wpe;
    let params = model::init_params(cfg.init, cfg.layout(), cfg.seed);
    let mut trainer = Trainer::with_params(cfg, run_data.train, params)?;
    let mut losses = Vec::with_capacity(total);
    let mut held_out = None;
    let finished = match &run_data.valid {
        None => trainer
            .run(total, |loss| {
                losses.push(loss);
                true
            })
            .map(drop),
        // One `run` per epoch, the held-out tail scored between them, as `train` does.
        Some(valid) => (0..trainer.config().epochs).try_for_each(|_| {
            trainer.run(wpe, |loss| {
                losses.push(loss);
                true
            })?;
            held_out = Some(held_out_score(&trainer, valid));
            Ok(())
        }),
    };
    let final_loss = match finished {
        Ok(()) if trainer.weights_finite() => tail_mean(&losses, FINAL_LOSS_STEPS),
        Ok(()) | Err(Error::Diverged { .. }) => f32::NAN,
        Err(e) => return Err(e),
    };
    let mut result = RunResult {
        settings: *trainer.config().settings(),
        data: data.name().to_string(),
        data_checksum: data.checksum().to_string(),
        final_loss,
        held_out: if final_loss.is_nan() { None } else { held_out },
        nothing_learned,
        epoch_loss: losses
            .chunks_exact(wpe)
            .map(|c| tail_mean(c, wpe))
            .collect(),
        learned: false,
        weights_checksum: model::checksum(trainer.params()),
        wall_s: 0.0,
    };
    result.learned = f64::from(result.judged_loss()) < learned_below;
    result.wall_s = start.elapsed().as_secs_f64();
    Ok(result)
}

/// The header of `sweep.csv`. The first twenty-two columns are the run's settings (what
/// `--resume` matches on, but the file's name in `data`: the data are matched by
/// `data_checksum`, so a file may move between a sweep and its resume); `epoch_loss` holds
/// the epochs' mean losses separated by `;`. A column that does not apply is empty: `rule`
/// and the lags for a file, `data_checksum` for the generator, the held-out scores without
/// `--valid`.
pub const CSV_HEADER: &str = "rule,lag_a,lag_b,time_step,hidden,cell,seed,epochs,data_size,\
batch_size,lr,optimizer,engine,clip,adagrad_eps,adagrad_init,init,data,data_checksum,vocab,\
classes,valid,final_loss,held_out_loss,held_out_accuracy,nothing_learned,learned,\
weights_checksum,wall_s,epoch_loss";

/// The header of a `sweep.csv` written before the data flags (every row is a generator run
/// without `--valid`).
pub const CSV_HEADER_BEFORE_DATA: &str = "rule,lag_a,lag_b,time_step,hidden,cell,seed,epochs,\
data_size,batch_size,lr,optimizer,engine,clip,adagrad_eps,adagrad_init,init,final_loss,learned,\
weights_checksum,wall_s,epoch_loss";

/// The header of a `sweep.csv` written before `--clip`, `--adagrad-eps`, `--adagrad-init` and
/// `--init` (every row is their defaults' run).
pub const CSV_HEADER_BEFORE_OPTIM: &str = "rule,lag_a,lag_b,time_step,hidden,cell,seed,epochs,\
data_size,batch_size,lr,optimizer,engine,final_loss,learned,weights_checksum,wall_s,epoch_loss";

/// The header of a `sweep.csv` written before `--cells` (no `cell` column: every row is the
/// rnn cell, and the optimizer settings' defaults).
pub const CSV_HEADER_BEFORE_CELLS: &str = "rule,lag_a,lag_b,time_step,hidden,seed,epochs,\
data_size,batch_size,lr,optimizer,engine,final_loss,learned,weights_checksum,wall_s,epoch_loss";

/// The headers [`read_csv`] reads, newest first; [`write_csv`] writes [`CSV_HEADER`].
const CSV_HEADERS: [&str; 4] = [
    CSV_HEADER,
    CSV_HEADER_BEFORE_DATA,
    CSV_HEADER_BEFORE_OPTIM,
    CSV_HEADER_BEFORE_CELLS,
];

/// The value of each column an older header lacks, as [`csv_row`] writes it for the runs
/// those files hold: the rnn cell, the optimizer's defaults, the generator's bits without
/// `--valid` (`nothing_learned` empty: the rule's level).
const COLUMN_DEFAULTS: [(&str, &str); 13] = [
    ("cell", "rnn"),
    ("clip", "off"),
    ("adagrad_eps", "0"),
    ("adagrad_init", "0.1"),
    ("init", "default"),
    ("data", "generator"),
    ("data_checksum", ""),
    ("vocab", "2"),
    ("classes", "2"),
    ("valid", "0"),
    ("held_out_loss", ""),
    ("held_out_accuracy", ""),
    ("nothing_learned", ""),
];

/// The word of the `data` column that names the kind of source.
fn source_word(source: Source) -> &'static str {
    match source {
        Source::Generator => "generator",
        Source::Text => "text",
        Source::Npy => "npy",
    }
}

/// The settings' columns of a run on `data` (the `data` column's text) with `data_checksum`.
/// Numbers are in Rust's shortest round-trip form, so columns read back ([`read_csv`]) are
/// the same.
fn settings_columns(s: &TrainSettings, data: &str, data_checksum: &str) -> String {
    let (rule, lag_a, lag_b) = if s.symbols() {
        (String::new(), String::new(), String::new())
    } else {
        (
            s.rule.to_string(),
            s.lags.0.to_string(),
            s.lags.1.to_string(),
        )
    };
    format!(
        "{rule},{lag_a},{lag_b},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{data},{data_checksum},{},{},{}",
        s.time_step,
        s.hidden,
        s.cell.name(),
        s.seed,
        s.epochs,
        s.data_size,
        s.batch_size,
        s.lr,
        match s.optimizer {
            Optimizer::Adagrad => "adagrad",
            Optimizer::Sgd => "sgd",
        },
        match s.engine {
            Engine::Simd => "simd",
            Engine::Scalar => "scalar",
        },
        s.clip.map_or_else(|| "off".to_string(), |c| c.to_string()),
        s.adagrad_eps,
        s.adagrad_init,
        s.init,
        s.vocab,
        s.classes,
        s.valid,
    )
}

/// The key of a run of `s` on the data of `data_checksum` for `--resume`: its settings'
/// columns with the kind of source in place of the file's name.
#[must_use]
pub fn settings_key(s: &TrainSettings, data_checksum: &str) -> String {
    settings_columns(s, source_word(s.source), data_checksum)
}

/// One CSV row (no newline). Floats are written in Rust's shortest round-trip form, so a
/// row read back ([`read_csv`]) gives the identical `f32`s.
#[must_use]
pub fn csv_row(r: &RunResult) -> String {
    let held = |f: fn((f32, f32)) -> f32| r.held_out.map_or(String::new(), |h| f(h).to_string());
    format!(
        "{},{},{},{},{},{},{},{:.3},{}",
        settings_columns(&r.settings, &r.data, &r.data_checksum),
        r.final_loss,
        held(|h| h.0),
        held(|h| h.1),
        r.nothing_learned,
        r.learned,
        r.weights_checksum,
        r.wall_s,
        r.epoch_loss
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";")
    )
}

/// Writes `sweep.csv` atomically: the header, then one row per result in the given order.
///
/// # Errors
/// [`Error::Io`] naming `path`.
pub fn write_csv(path: &Path, results: &[RunResult]) -> Result<()> {
    crate::output::write_atomic(path, |w| {
        writeln!(w, "{CSV_HEADER}")?;
        for r in results {
            writeln!(w, "{}", csv_row(r))?;
        }
        Ok(())
    })
}

/// Parses one row (`line`, without its newline) of a `sweep.csv` whose header is `header`
/// (one of [`CSV_HEADERS`]): the columns by name, those the header lacks from
/// [`COLUMN_DEFAULTS`].
fn parse_row(header: &str, line: &str) -> std::result::Result<RunResult, String> {
    let names: Vec<&str> = header.split(',').collect();
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() != names.len() {
        return Err(format!("{} fields, want {}", fields.len(), names.len()));
    }
    let get = |name: &str| -> &str {
        names.iter().position(|&n| n == name).map_or_else(
            || {
                COLUMN_DEFAULTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v)
                    .expect("every column is in each header or has a default")
            },
            |i| fields[i],
        )
    };
    fn num<T: std::str::FromStr>(name: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("{name} '{v}' is not a number"))
    }
    let data = get("data");
    let source = match data.split(' ').next() {
        Some("generator") => Source::Generator,
        Some("text") => Source::Text,
        Some("npy") => Source::Npy,
        _ => {
            return Err(format!(
                "data '{data}' is not generator, text FILE or npy FILES"
            ));
        }
    };
    let (rule, lags) = if source == Source::Generator {
        let rule = match get("rule") {
            "seed" => Rule::Seed,
            "r2rt" => Rule::R2rt,
            other => return Err(format!("rule '{other}' is not seed or r2rt")),
        };
        (
            rule,
            (num("lag_a", get("lag_a"))?, num("lag_b", get("lag_b"))?),
        )
    } else {
        // A file's runs have no rule: the settings' defaults, as the grid gives them.
        (TrainSettings::SEED.rule, TrainSettings::SEED.lags)
    };
    let optimizer = match get("optimizer") {
        "adagrad" => Optimizer::Adagrad,
        "sgd" => Optimizer::Sgd,
        other => return Err(format!("optimizer '{other}' is not adagrad or sgd")),
    };
    let engine = match get("engine") {
        "simd" => Engine::Simd,
        "scalar" => Engine::Scalar,
        other => return Err(format!("engine '{other}' is not simd or scalar")),
    };
    let settings = TrainSettings {
        rule,
        lags,
        time_step: num("time_step", get("time_step"))?,
        hidden: num("hidden", get("hidden"))?,
        cell: parse_cell(get("cell"))?,
        seed: num("seed", get("seed"))?,
        epochs: num("epochs", get("epochs"))?,
        data_size: num("data_size", get("data_size"))?,
        batch_size: num("batch_size", get("batch_size"))?,
        lr: num("lr", get("lr"))?,
        optimizer,
        engine,
        clip: match get("clip") {
            "off" => None,
            c => Some(num("clip", c)?),
        },
        adagrad_eps: num("adagrad_eps", get("adagrad_eps"))?,
        adagrad_init: num("adagrad_init", get("adagrad_init"))?,
        init: Init::parse(get("init"))?,
        threads: 1,
        source,
        vocab: num("vocab", get("vocab"))?,
        classes: num("classes", get("classes"))?,
        valid: num("valid", get("valid"))?,
    };
    let learned = match get("learned") {
        "true" => true,
        "false" => false,
        other => return Err(format!("learned '{other}' is not true or false")),
    };
    let hex = |name: &str, v: &str| {
        if v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(v.to_string())
        } else {
            Err(format!("{name} '{v}' is not a checksum"))
        }
    };
    let checksum = hex("weights_checksum", get("weights_checksum"))?;
    let data_checksum = hex("data_checksum", get("data_checksum"))?;
    if checksum.is_empty() || (source != Source::Generator) == data_checksum.is_empty() {
        return Err("a checksum is missing".into());
    }
    let held_out = match (get("held_out_loss"), get("held_out_accuracy")) {
        ("", "") => None,
        (l, a) => Some((num("held_out_loss", l)?, num("held_out_accuracy", a)?)),
    };
    let nothing_learned = match get("nothing_learned") {
        "" if source == Source::Generator => {
            rule.reference_levels().last().map_or(f64::NAN, |l| l.loss)
        }
        v => num("nothing_learned", v)?,
    };
    let epoch_loss = match get("epoch_loss") {
        "" => Vec::new(),
        v => v
            .split(';')
            .map(|v| num("epoch_loss", v))
            .collect::<std::result::Result<_, _>>()?,
    };
    Ok(RunResult {
        settings,
        data: data.to_string(),
        data_checksum,
        final_loss: num("final_loss", get("final_loss"))?,
        held_out,
        nothing_learned,
        epoch_loss,
        learned,
        weights_checksum: checksum,
        wall_s: num("wall_s", get("wall_s"))?,
    })
}

/// Reads a `sweep.csv` written by [`write_csv`] (for `--resume`); one written before the
/// data flags is read as generator rows, one written before `--clip`, `--adagrad-eps`,
/// `--adagrad-init` and `--init` as rows of their defaults, one written before `--cells`
/// (without the `cell` column) as rows of the rnn cell too.
///
/// # Errors
/// [`Error::BadFile`] naming the file and the first bad line; [`Error::Io`] when it cannot
/// be read.
pub fn read_csv(path: &Path) -> Result<Vec<RunResult>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    let Some(header) = lines.next().filter(|h| CSV_HEADERS.contains(h)) else {
        return Err(Error::bad_file(
            path,
            "not a sweep.csv: the first line is not its header (remove the file or drop \
             --resume)",
        ));
    };
    lines
        .enumerate()
        .map(|(i, line)| {
            parse_row(header, line).map_err(|why| {
                Error::bad_file(
                    path,
                    format!("line {}: {why} (remove the file or drop --resume)", i + 2),
                )
            })
        })
        .collect()
}

/// One heatmap cell: the runs of one (hidden, cell, lags, time_step) over the seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub hidden: usize,
    /// The recurrent cell of the runs (`--cells`).
    pub cell: crate::config::Cell,
    pub lags: (usize, usize),
    pub time_step: usize,
    /// Runs done (seeds), of [`Grid::seeds`].
    pub runs: usize,
    /// Median `final_loss` over the runs done (a diverged run's NaN counts as the largest),
    /// NaN when none is done.
    pub median_final_loss: f64,
    /// Median held-out loss likewise (`--valid`; NaN without).
    pub median_held_out_loss: f64,
    /// Runs that learned ([`learned_below`], [`SweepData::learned_below`]).
    pub learned: usize,
}

impl Cell {
    /// The median of the runs' [`RunResult::judged_loss`]: held-out with `--valid`.
    #[must_use]
    pub fn median_judged_loss(&self) -> f64 {
        if self.median_held_out_loss.is_nan() {
            self.median_final_loss
        } else {
            self.median_held_out_loss
        }
    }
}

/// Median of `v` (the mean of the two middle values for an even count; NaN sorts last).
#[must_use]
pub fn median(v: &[f32]) -> f64 {
    let mut s: Vec<f64> = v
        .iter()
        .map(|&x| {
            if x.is_nan() {
                f64::INFINITY
            } else {
                f64::from(x)
            }
        })
        .collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The cells of `grid` in grid order (hidden, cell, lags, time_step), from the `results`
/// that belong to it (others are ignored): its runs on the data of `data_checksum`.
#[must_use]
pub fn cells(grid: &Grid, data_checksum: &str, results: &[RunResult]) -> Vec<Cell> {
    use std::collections::{HashMap, HashSet};
    let seeds: HashSet<u64> = grid.seeds.iter().copied().collect();
    // The results by their settings with the seed set to the base's: one entry per cell.
    let mut by_cell: HashMap<String, Vec<&RunResult>> = HashMap::new();
    for r in results.iter().filter(|r| seeds.contains(&r.settings.seed)) {
        let key = settings_key(
            &TrainSettings {
                seed: grid.base.seed,
                ..r.settings
            },
            &r.data_checksum,
        );
        by_cell.entry(key).or_default().push(r);
    }
    grid.points()
        .iter()
        .map(|point| {
            let mine = by_cell
                .get(&settings_key(point, data_checksum))
                .map_or(&[][..], Vec::as_slice);
            let losses: Vec<f32> = mine.iter().map(|r| r.final_loss).collect();
            let held: Vec<f32> = mine
                .iter()
                .filter(|r| r.settings.valid > 0.0)
                .map(|r| r.judged_loss())
                .collect();
            Cell {
                hidden: point.hidden,
                cell: point.cell,
                lags: point.lags,
                time_step: point.time_step,
                runs: mine.len(),
                median_final_loss: median(&losses),
                median_held_out_loss: median(&held),
                learned: mine.iter().filter(|r| r.learned).count(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cell as Rnn;

    const RNN: fn() -> Vec<Rnn> = || vec![Rnn::Rnn];

    fn tiny() -> TrainSettings {
        TrainSettings {
            data_size: 4_000,
            batch_size: 200,
            epochs: 2,
            ..TrainSettings::SEED
        }
    }

    fn usage(r: Result<Grid>) -> String {
        match r {
            Err(Error::Usage(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_grid_is_the_product_in_order() {
        let g = Grid::new(
            tiny(),
            vec![(1, 2), (3, 4)],
            vec![5, 1],
            vec![6],
            RNN(),
            vec![0, 1],
        )
        .unwrap();
        assert_eq!(g.len(), 8);
        let keys: Vec<_> = g
            .runs()
            .iter()
            .map(|s| (s.lags, s.time_step, s.seed, s.threads))
            .collect();
        assert_eq!(
            keys,
            [
                ((1, 2), 5, 0, 1),
                ((1, 2), 5, 1, 1),
                ((1, 2), 1, 0, 1),
                ((1, 2), 1, 1, 1),
                ((3, 4), 5, 0, 1),
                ((3, 4), 5, 1, 1),
                ((3, 4), 1, 0, 1),
                ((3, 4), 1, 1, 1),
            ]
        );
    }

    #[test]
    fn bad_grids_are_refused_naming_the_flag() {
        let g = |lags: Vec<(usize, usize)>, ts: Vec<usize>, h: Vec<usize>, seeds: u64| {
            usage(Grid::new(tiny(), lags, ts, h, RNN(), (0..seeds).collect()))
        };
        let cases = [
            (g(vec![], vec![5], vec![6], 1), "--lags: empty"),
            (g(vec![(1, 2)], vec![], vec![6], 1), "--time-steps: empty"),
            (g(vec![(1, 2)], vec![5], vec![], 1), "--hidden: empty"),
            (g(vec![(1, 2)], vec![5], vec![6], 0), "--seeds 0"),
            (
                g(vec![(1, 2), (1, 2)], vec![5], vec![6], 1),
                "--lags: 1,2 appears twice",
            ),
            (
                g(vec![(1, 2)], vec![5, 3, 5], vec![6], 1),
                "--time-steps: 5 appears twice",
            ),
            (
                g(vec![(1, 4000)], vec![5], vec![6], 1),
                "--lags 1,4000: must be two distinct positive integers below --data-size (4000)",
            ),
            (
                g(vec![(1, 2)], vec![201], vec![6], 1),
                "--time-steps 201: each must be between 1 and --batch-size (200)",
            ),
            (g(vec![(1, 2)], vec![5], vec![0], 1), "--hidden 0"),
            (
                g(
                    (1..=100).map(|a| (a, a + 1)).collect(),
                    (1..=100).collect(),
                    vec![6],
                    100,
                ),
                "100 x 100 x 1 x 1 x 100 = 1000000 runs, more than the 100000 allowed",
            ),
        ];
        for (m, want) in cases {
            assert!(m.starts_with(want) || m.contains(want), "{m} / {want}");
            assert!(!m.contains('\n'));
        }
        let epochs = usage(Grid::new(
            TrainSettings {
                epochs: 0,
                ..tiny()
            },
            vec![(1, 2)],
            vec![5],
            vec![6],
            RNN(),
            vec![0],
        ));
        assert!(epochs.starts_with("--epochs 0"), "{epochs}");
        let cells = |c: Vec<Rnn>| {
            usage(Grid::new(
                tiny(),
                vec![(1, 2)],
                vec![5],
                vec![6],
                c,
                vec![0],
            ))
        };
        assert_eq!(cells(vec![]), "--cells: empty; give at least one value");
        assert_eq!(
            cells(vec![Rnn::Gru, Rnn::Lstm, Rnn::Gru]),
            "--cells: gru appears twice; each value may appear once"
        );
    }

    #[test]
    fn learned_is_below_the_midpoint_under_nothing_learned() {
        let seed = learned_below(&Rule::Seed.reference_levels());
        assert!((seed - 0.75 * std::f64::consts::LN_2).abs() < 1e-12);
        let r2rt = learned_below(&Rule::R2rt.reference_levels());
        assert!((r2rt - 0.5904).abs() < 1e-4, "{r2rt}");
    }

    #[test]
    fn median_handles_even_odd_and_nan() {
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f32::NAN, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn rows_round_trip_and_bad_rows_are_named() {
        let r = run_one(
            TrainSettings {
                threads: 1,
                ..tiny()
            },
            &SweepData::Generator,
            0.5,
        )
        .unwrap();
        let row = csv_row(&r);
        let back = parse_row(CSV_HEADER, &row).unwrap();
        assert_eq!(back.settings, r.settings);
        assert_eq!(back.final_loss.to_bits(), r.final_loss.to_bits());
        assert_eq!(back.epoch_loss, r.epoch_loss);
        assert_eq!(back.weights_checksum, r.weights_checksum);
        assert_eq!(csv_row(&back), row);
        // The defaults' key has the values a row from before the columns gets.
        let names: Vec<&str> = CSV_HEADER.split(',').collect();
        let key: Vec<String> = settings_key(&tiny(), "")
            .split(',')
            .map(String::from)
            .collect();
        for (name, default) in COLUMN_DEFAULTS {
            if let Some(i) = names
                .iter()
                .position(|&n| n == name)
                .filter(|&i| i < key.len())
            {
                assert_eq!(key[i], default, "{name}");
            }
        }
        // Rows of other settings round-trip too.
        let min_char = TrainSettings {
            clip: Some(5.0),
            adagrad_eps: 1e-8,
            adagrad_init: 0.0,
            init: Init::Normal { std: 0.01 },
            ..r.settings
        };
        let row = csv_row(&RunResult {
            settings: min_char,
            ..r.clone()
        });
        assert!(row.contains(",5,0.00000001,0,normal:0.01,"), "{row}");
        assert_eq!(parse_row(CSV_HEADER, &row).unwrap().settings, min_char);
        let bad = row.replace("normal:0.01", "glorot");
        assert!(
            parse_row(CSV_HEADER, &bad)
                .unwrap_err()
                .contains("'glorot'")
        );
        let bad = row.replace(",5,0.00000001,", ",five,0.00000001,");
        assert!(
            parse_row(CSV_HEADER, &bad)
                .unwrap_err()
                .contains("clip 'five'")
        );
        assert!(
            parse_row(CSV_HEADER, "seed,1,2")
                .unwrap_err()
                .contains("3 fields, want 30")
        );
        let bad = row.replacen("seed", "tree", 1);
        assert!(
            parse_row(CSV_HEADER, &bad)
                .unwrap_err()
                .contains("rule 'tree'")
        );
    }

    #[test]
    fn cells_aggregate_over_seeds() {
        let g = Grid::new(
            tiny(),
            vec![(1, 2)],
            vec![5, 1],
            vec![6],
            RNN(),
            vec![0, 1, 2],
        )
        .unwrap();
        let mut results: Vec<RunResult> = g
            .runs()
            .into_iter()
            .map(|s| RunResult {
                settings: s,
                data: "generator".into(),
                data_checksum: String::new(),
                final_loss: s.seed as f32,
                held_out: None,
                nothing_learned: std::f64::consts::LN_2,
                epoch_loss: vec![],
                learned: s.seed < 2,
                weights_checksum: "0".into(),
                wall_s: 0.0,
            })
            .collect();
        results.remove(5); // time_step 1, seed 2
        let c = cells(&g, "", &results);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].time_step, c[0].runs, c[0].learned), (5, 3, 2));
        assert_eq!(c[0].median_final_loss, 1.0);
        assert_eq!((c[1].time_step, c[1].runs, c[1].learned), (1, 2, 2));
        assert_eq!(c[1].median_final_loss, 0.5);
    }

    #[test]
    fn the_estimate_is_on_the_safe_side_of_the_measured_seed_runs_within_three_times() {
        let s = |time_step| TrainSettings {
            time_step,
            ..TrainSettings::SEED
        };
        // Measured: 0.135 s, 0.069 s, 0.035 s of training (2-core VM, one thread).
        for (t, measured) in [(1, 0.135), (5, 0.069), (12, 0.035)] {
            let e = estimate_run_s(&s(t));
            assert!(e > measured * 0.7 && e < measured * 3.0, "{t}: {e}");
        }
    }

    #[test]
    fn concurrent_runs_must_fit_in_memory_together() {
        let grid = Grid::new(
            TrainSettings::SEED,
            vec![(1, 2)],
            vec![5],
            vec![6],
            RNN(),
            vec![0],
        )
        .expect("a valid grid");
        let one = TrainConfig::new(TrainSettings {
            threads: 1,
            ..TrainSettings::SEED
        })
        .unwrap()
        .memory_bytes()
        .total();
        assert!(check_concurrent_memory(&grid, 2, 2 * one).is_ok());
        match check_concurrent_memory(&grid, 3, 2 * one) {
            Err(Error::Usage(m)) => assert!(m.starts_with("--threads 3:"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_cell_axis_is_inside_hidden_and_outside_lags() {
        let g = Grid::new(
            tiny(),
            vec![(1, 2), (3, 4)],
            vec![5],
            vec![4, 6],
            vec![Rnn::Lstm, Rnn::Rnn],
            vec![0],
        )
        .unwrap();
        assert_eq!(g.len(), 8);
        assert_eq!(g.base().cell, Rnn::Lstm);
        let keys: Vec<_> = g
            .runs()
            .iter()
            .map(|s| (s.hidden, s.cell.name(), s.lags.0))
            .collect();
        assert_eq!(
            keys,
            [
                (4, "lstm", 1),
                (4, "lstm", 3),
                (4, "rnn", 1),
                (4, "rnn", 3),
                (6, "lstm", 1),
                (6, "lstm", 3),
                (6, "rnn", 1),
                (6, "rnn", 3),
            ]
        );
        let c = cells(&g, "", &[]);
        assert_eq!(c.len(), 8);
        assert_eq!((c[2].hidden, c[2].cell, c[2].lags), (4, Rnn::Rnn, (1, 2)));
    }

    #[test]
    fn gated_cells_scale_the_recurrent_flops_of_the_estimate() {
        let at = |cell, hidden| {
            estimate_run_s(&TrainSettings {
                cell,
                hidden,
                ..TrainSettings::SEED
            })
        };
        // The H^2 term is G times the rnn's; the fixed and elementwise costs are not.
        let h2 = |cell| at(cell, 48) - at(cell, 32) * 2.0 + at(cell, 16);
        for (cell, g) in [(Rnn::Gru, 3.0), (Rnn::Lstm, 4.0)] {
            let ratio = h2(cell) / h2(Rnn::Rnn);
            assert!((ratio - g).abs() < 1e-9, "{cell:?}: {ratio}");
            assert!(at(cell, 6) > at(Rnn::Rnn, 6));
        }
    }

    #[test]
    fn the_cell_column_round_trips_and_old_csvs_read_as_their_defaults() {
        let r = run_one(
            TrainSettings {
                cell: Rnn::Gru,
                ..tiny()
            },
            &SweepData::Generator,
            0.5,
        )
        .unwrap();
        let row = csv_row(&r);
        assert_eq!(row.split(',').nth(5), Some("gru"));
        assert_eq!(parse_row(CSV_HEADER, &row).unwrap().settings.cell, Rnn::Gru);
        assert!(
            parse_row(CSV_HEADER, &row.replacen(",gru,", ",tree,", 1))
                .unwrap_err()
                .contains("unknown cell 'tree'")
        );
        // The columns of an older header, taken by name from a row of today's.
        let project = |header: &str, line: &str| {
            let names: Vec<&str> = CSV_HEADER.split(',').collect();
            let fields: Vec<&str> = line.split(',').collect();
            header
                .split(',')
                .map(|h| fields[names.iter().position(|n| *n == h).unwrap()])
                .collect::<Vec<_>>()
                .join(",")
        };
        let rnn = run_one(tiny(), &SweepData::Generator, 0.5).unwrap();
        let dir = std::env::temp_dir().join(format!("bitrnn-old-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sweep.csv");
        for header in &CSV_HEADERS[1..] {
            assert!(
                header
                    .split(',')
                    .all(|h| CSV_HEADER.split(',').any(|n| n == h))
            );
            std::fs::write(
                &path,
                format!("{header}\n{}\n", project(header, &csv_row(&rnn))),
            )
            .unwrap();
            let back = read_csv(&path).unwrap();
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].settings, rnn.settings);
            assert_eq!(csv_row(&back[0]), csv_row(&rnn));
        }
        std::fs::write(&path, format!("{CSV_HEADER_BEFORE_CELLS}\n{row}\n")).unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: 30 fields, want 17"), "{err}");
        std::fs::write(&path, format!("{CSV_HEADER_BEFORE_OPTIM}\n{row}\n")).unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: 30 fields, want 18"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
