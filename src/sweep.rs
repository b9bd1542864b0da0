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

use crate::cmd::train::{FINAL_LOSS_STEPS, tail_mean};
use crate::config::{
    Engine, Init, MAX_HIDDEN, Optimizer, Rule, TrainConfig, TrainSettings, check_lags, parse_cell,
};
use crate::data::ReferenceLevel;
use crate::error::{Error, Result};
use crate::model;
use crate::train::Trainer;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// The most runs a grid may have.
pub const MAX_RUNS: usize = 100_000;

/// The most values one axis may have before the product is even formed.
pub const MAX_AXIS: usize = MAX_RUNS;

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
        for &lag in &lags {
            check_lags(lag, base.data_size)?;
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
    let per_sample_step = 3e-9 + (6.0 * g * h * h + 10.0 * g * h) / 20e9;
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
    /// Mean loss of the last 100 steps (NaN when the run diverged).
    pub final_loss: f32,
    /// Mean loss of each complete epoch.
    pub epoch_loss: Vec<f32>,
    pub learned: bool,
    /// FNV-1a of the final weights' bits ([`model::checksum`]), as `train` reports it.
    pub weights_checksum: String,
    /// Seconds the run took (data, weights, training).
    pub wall_s: f64,
}

/// Refuses a sweep whose `at_once` concurrent runs would together need more than `limit`
/// bytes: each run's shapes are checked against the limit by [`Grid`]'s validation, but
/// `--threads` of them run at the same time.
///
/// # Errors
/// [`Error::Usage`] naming `--threads` and the memory it would take.
pub fn check_concurrent_memory(grid: &Grid, at_once: usize, limit: u64) -> Result<()> {
    let mut largest = 0u64;
    for cfg in grid.shape_configs() {
        largest = largest.max(cfg?.memory_bytes().total());
    }
    let total = largest.saturating_mul(at_once as u64);
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
/// same initial weights, the same windows, the same `final_loss`. A run that diverges is a
/// result with `final_loss` NaN (it did not learn), not an error of the sweep.
///
/// # Errors
/// [`Error::Usage`] when the settings are not valid (a [`Grid`]'s always are).
pub fn run_one(settings: TrainSettings, learned_below: f64) -> Result<RunResult> {
    let start = Instant::now();
    let cfg = TrainConfig::new(TrainSettings {
        threads: 1,
        ..settings
    })?;
    let wpe = cfg.windows_per_epoch();
    let total = cfg.epochs * wpe;
    let mut trainer = Trainer::new(cfg)?;
    let mut losses = Vec::with_capacity(total);
    let finished = trainer.run(total, |loss| {
        losses.push(loss);
        true
    });
    let final_loss = match finished {
        Ok(_) if trainer.weights_finite() => tail_mean(&losses, FINAL_LOSS_STEPS),
        Ok(_) | Err(Error::Diverged { .. }) => f32::NAN,
        Err(e) => return Err(e),
    };
    Ok(RunResult {
        settings: *trainer.config().settings(),
        final_loss,
        epoch_loss: losses
            .chunks_exact(wpe)
            .map(|c| tail_mean(c, wpe))
            .collect(),
        learned: f64::from(final_loss) < learned_below,
        weights_checksum: model::checksum(trainer.params()),
        wall_s: start.elapsed().as_secs_f64(),
    })
}

/// The header of `sweep.csv`. The first seventeen columns are the run's settings (what
/// `--resume` matches on); `epoch_loss` holds the epochs' mean losses separated by `;`.
pub const CSV_HEADER: &str = "rule,lag_a,lag_b,time_step,hidden,cell,seed,epochs,data_size,\
batch_size,lr,optimizer,engine,clip,adagrad_eps,adagrad_init,init,final_loss,learned,\
weights_checksum,wall_s,epoch_loss";

/// The header of a `sweep.csv` written before `--clip`, `--adagrad-eps`, `--adagrad-init` and
/// `--init` (every row is their defaults' run). [`read_csv`] reads it; [`write_csv`] writes
/// [`CSV_HEADER`].
pub const CSV_HEADER_BEFORE_OPTIM: &str = "rule,lag_a,lag_b,time_step,hidden,cell,seed,epochs,\
data_size,batch_size,lr,optimizer,engine,final_loss,learned,weights_checksum,wall_s,epoch_loss";

/// The header of a `sweep.csv` written before `--cells` (no `cell` column: every row is the
/// rnn cell, and the optimizer settings' defaults).
pub const CSV_HEADER_BEFORE_CELLS: &str = "rule,lag_a,lag_b,time_step,hidden,seed,epochs,\
data_size,batch_size,lr,optimizer,engine,final_loss,learned,weights_checksum,wall_s,epoch_loss";

/// Columns of the header.
const CSV_COLUMNS: usize = 22;

/// The index of the `cell` column.
const CELL_COLUMN: usize = 5;

/// The index of the `clip` column, the first of the four optimizer settings'.
const OPTIM_COLUMN: usize = 13;

/// The optimizer settings' columns in a row written before they existed: their defaults, as
/// [`settings_key`] writes them.
const OPTIM_DEFAULTS: [&str; 4] = ["off", "0", "0.1", "default"];

/// The run's settings as the first columns of its row (also its key for `--resume`). Numbers
/// are in Rust's shortest round-trip form, so a key read back ([`read_csv`]) is the same.
#[must_use]
pub fn settings_key(s: &TrainSettings) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        s.rule,
        s.lags.0,
        s.lags.1,
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
    )
}

/// One CSV row (no newline). Floats are written in Rust's shortest round-trip form, so a
/// row read back ([`read_csv`]) gives the identical `f32`s.
#[must_use]
pub fn csv_row(r: &RunResult) -> String {
    format!(
        "{},{},{},{},{:.3},{}",
        settings_key(&r.settings),
        r.final_loss,
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

/// Parses one row of `sweep.csv` (`line` without its newline).
fn parse_row(line: &str) -> std::result::Result<RunResult, String> {
    parse_fields(&line.split(',').collect::<Vec<_>>())
}

/// Parses one row of a `sweep.csv` written before the optimizer settings: their defaults.
fn parse_row_before_optim(line: &str) -> std::result::Result<RunResult, String> {
    let mut f = fields(line, CSV_COLUMNS - OPTIM_DEFAULTS.len())?;
    f.splice(OPTIM_COLUMN..OPTIM_COLUMN, OPTIM_DEFAULTS);
    parse_fields(&f)
}

/// Parses one row of a `sweep.csv` written before `--cells`: the rnn cell, and the optimizer
/// settings' defaults.
fn parse_row_before_cells(line: &str) -> std::result::Result<RunResult, String> {
    let mut f = fields(line, CSV_COLUMNS - OPTIM_DEFAULTS.len() - 1)?;
    f.insert(CELL_COLUMN, "rnn");
    f.splice(OPTIM_COLUMN..OPTIM_COLUMN, OPTIM_DEFAULTS);
    parse_fields(&f)
}

/// The fields of `line`, which must have `want` of them.
fn fields(line: &str, want: usize) -> std::result::Result<Vec<&str>, String> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() == want {
        Ok(f)
    } else {
        Err(format!("{} fields, want {want}", f.len()))
    }
}

/// Parses the fields of one row.
fn parse_fields(f: &[&str]) -> std::result::Result<RunResult, String> {
    if f.len() != CSV_COLUMNS {
        return Err(format!("{} fields, want {CSV_COLUMNS}", f.len()));
    }
    fn num<T: std::str::FromStr>(name: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("{name} '{v}' is not a number"))
    }
    let rule = match f[0] {
        "seed" => Rule::Seed,
        "r2rt" => Rule::R2rt,
        other => return Err(format!("rule '{other}' is not seed or r2rt")),
    };
    let optimizer = match f[11] {
        "adagrad" => Optimizer::Adagrad,
        "sgd" => Optimizer::Sgd,
        other => return Err(format!("optimizer '{other}' is not adagrad or sgd")),
    };
    let engine = match f[12] {
        "simd" => Engine::Simd,
        "scalar" => Engine::Scalar,
        other => return Err(format!("engine '{other}' is not simd or scalar")),
    };
    let o = OPTIM_COLUMN;
    let settings = TrainSettings {
        rule,
        lags: (num("lag_a", f[1])?, num("lag_b", f[2])?),
        time_step: num("time_step", f[3])?,
        hidden: num("hidden", f[4])?,
        cell: parse_cell(f[CELL_COLUMN])?,
        seed: num("seed", f[6])?,
        epochs: num("epochs", f[7])?,
        data_size: num("data_size", f[8])?,
        batch_size: num("batch_size", f[9])?,
        lr: num("lr", f[10])?,
        optimizer,
        engine,
        clip: match f[o] {
            "off" => None,
            c => Some(num("clip", c)?),
        },
        adagrad_eps: num("adagrad_eps", f[o + 1])?,
        adagrad_init: num("adagrad_init", f[o + 2])?,
        init: Init::parse(f[o + 3])?,
        threads: 1,
        // The data source's settings: a sweep's runs train on generated data.
        ..TrainSettings::SEED
    };
    let learned = match f[o + 5] {
        "true" => true,
        "false" => false,
        other => return Err(format!("learned '{other}' is not true or false")),
    };
    let checksum = f[o + 6];
    if checksum.is_empty() || !checksum.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("weights_checksum '{checksum}' is not a checksum"));
    }
    let epoch_loss = if f[o + 8].is_empty() {
        Vec::new()
    } else {
        f[o + 8]
            .split(';')
            .map(|v| num("epoch_loss", v))
            .collect::<std::result::Result<_, _>>()?
    };
    Ok(RunResult {
        settings,
        final_loss: num("final_loss", f[o + 4])?,
        epoch_loss,
        learned,
        weights_checksum: checksum.to_string(),
        wall_s: num("wall_s", f[o + 7])?,
    })
}

/// Reads a `sweep.csv` written by [`write_csv`] (for `--resume`); one written before
/// `--clip`, `--adagrad-eps`, `--adagrad-init` and `--init` is read as rows of their
/// defaults, one written before `--cells` (without the `cell` column) as rows of the rnn
/// cell too.
///
/// # Errors
/// [`Error::BadFile`] naming the file and the first bad line; [`Error::Io`] when it cannot
/// be read.
pub fn read_csv(path: &Path) -> Result<Vec<RunResult>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    let parse = match lines.next() {
        Some(CSV_HEADER) => parse_row,
        Some(CSV_HEADER_BEFORE_OPTIM) => parse_row_before_optim,
        Some(CSV_HEADER_BEFORE_CELLS) => parse_row_before_cells,
        _ => {
            return Err(Error::bad_file(
                path,
                "not a sweep.csv: the first line is not its header (remove the file or drop \
                 --resume)",
            ));
        }
    };
    lines
        .enumerate()
        .map(|(i, line)| {
            parse(line).map_err(|why| {
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
    /// Runs that learned ([`learned_below`]).
    pub learned: usize,
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
/// that belong to it (others are ignored).
#[must_use]
pub fn cells(grid: &Grid, results: &[RunResult]) -> Vec<Cell> {
    use std::collections::{HashMap, HashSet};
    let seeds: HashSet<u64> = grid.seeds.iter().copied().collect();
    // The results by their settings with the seed set to the base's: one entry per cell.
    let mut by_cell: HashMap<String, Vec<&RunResult>> = HashMap::new();
    for r in results.iter().filter(|r| seeds.contains(&r.settings.seed)) {
        let key = settings_key(&TrainSettings {
            seed: grid.base.seed,
            ..r.settings
        });
        by_cell.entry(key).or_default().push(r);
    }
    grid.points()
        .iter()
        .map(|point| {
            let mine = by_cell
                .get(&settings_key(point))
                .map_or(&[][..], Vec::as_slice);
            let losses: Vec<f32> = mine.iter().map(|r| r.final_loss).collect();
            Cell {
                hidden: point.hidden,
                cell: point.cell,
                lags: point.lags,
                time_step: point.time_step,
                runs: mine.len(),
                median_final_loss: median(&losses),
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
            0.5,
        )
        .unwrap();
        let row = csv_row(&r);
        let back = parse_row(&row).unwrap();
        assert_eq!(back.settings, r.settings);
        assert_eq!(back.final_loss.to_bits(), r.final_loss.to_bits());
        assert_eq!(back.epoch_loss, r.epoch_loss);
        assert_eq!(back.weights_checksum, r.weights_checksum);
        assert_eq!(csv_row(&back), row);
        assert_eq!(CSV_HEADER.split(',').count(), CSV_COLUMNS);
        // The defaults' key has the columns a row from before the settings gets.
        let key: Vec<String> = settings_key(&tiny()).split(',').map(String::from).collect();
        assert_eq!(key[OPTIM_COLUMN..], OPTIM_DEFAULTS);
        assert_eq!(
            CSV_HEADER.split(',').collect::<Vec<_>>()[OPTIM_COLUMN..OPTIM_COLUMN + 4],
            ["clip", "adagrad_eps", "adagrad_init", "init"]
        );
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
        assert_eq!(parse_row(&row).unwrap().settings, min_char);
        let bad = row.replace("normal:0.01", "glorot");
        assert!(parse_row(&bad).unwrap_err().contains("'glorot'"));
        let bad = row.replace(",5,0.00000001,", ",five,0.00000001,");
        assert!(parse_row(&bad).unwrap_err().contains("clip 'five'"));
        assert!(parse_row("seed,1,2").unwrap_err().contains("3 fields"));
        let bad = row.replacen("seed", "tree", 1);
        assert!(parse_row(&bad).unwrap_err().contains("rule 'tree'"));
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
                final_loss: s.seed as f32,
                epoch_loss: vec![],
                learned: s.seed < 2,
                weights_checksum: "0".into(),
                wall_s: 0.0,
            })
            .collect();
        results.remove(5); // time_step 1, seed 2
        let c = cells(&g, &results);
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
        let c = cells(&g, &[]);
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
            0.5,
        )
        .unwrap();
        let row = csv_row(&r);
        assert_eq!(row.split(',').nth(CELL_COLUMN), Some("gru"));
        assert_eq!(parse_row(&row).unwrap().settings.cell, Rnn::Gru);
        assert!(
            parse_row(&row.replacen(",gru,", ",tree,", 1))
                .unwrap_err()
                .contains("unknown cell 'tree'")
        );
        // The same columns without the optimizer's settings: what sweep.csv held before
        // them; and without `cell` too: what it held before --cells.
        let drop_optim = |line: &str| {
            let mut f: Vec<&str> = line.split(',').collect();
            f.drain(OPTIM_COLUMN..OPTIM_COLUMN + OPTIM_DEFAULTS.len());
            f.join(",")
        };
        let drop_cell = |line: &str| {
            let mut f: Vec<&str> = line.split(',').collect();
            f.remove(CELL_COLUMN);
            f.join(",")
        };
        assert_eq!(drop_optim(CSV_HEADER), CSV_HEADER_BEFORE_OPTIM);
        assert_eq!(drop_cell(&drop_optim(CSV_HEADER)), CSV_HEADER_BEFORE_CELLS);
        let rnn = run_one(tiny(), 0.5).unwrap();
        let dir = std::env::temp_dir().join(format!("bitrnn-old-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sweep.csv");
        for (header, old_row) in [
            (CSV_HEADER_BEFORE_OPTIM, drop_optim(&csv_row(&rnn))),
            (
                CSV_HEADER_BEFORE_CELLS,
                drop_cell(&drop_optim(&csv_row(&rnn))),
            ),
        ] {
            std::fs::write(&path, format!("{header}\n{old_row}\n")).unwrap();
            let back = read_csv(&path).unwrap();
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].settings, rnn.settings);
            assert_eq!(csv_row(&back[0]), csv_row(&rnn));
        }
        std::fs::write(&path, format!("{CSV_HEADER_BEFORE_CELLS}\n{row}\n")).unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: 22 fields, want 17"), "{err}");
        std::fs::write(&path, format!("{CSV_HEADER_BEFORE_OPTIM}\n{row}\n")).unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: 22 fields, want 18"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
