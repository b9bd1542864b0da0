//! The flags of `bitrnn sweep` ([`SweepArgs`]): the grid's axes as lists and ranges, the
//! settings every run shares, and their validation into a [`Grid`].

use super::{DataArgs, parse_f32};
use crate::config::{Cell, Engine, Optimizer, Rule, Source, TrainSettings, parse_cell};
use crate::error::{Error, Result};
use crate::output::check_out_dir;
use crate::sweep::{Grid, MAX_AXIS, SweepData};
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "Lists and ranges:
  --time-steps 1..=12        the values 1 to 12
  --time-steps 1,2,5,10      these values (ranges and values mix: 1..=4,8,16)
  --lags 1..=12              first lags a = 1 to 12, each with b = a + 1: (1,2), (2,3), ... (12,13)
  --lags 1..=12+5            first lags 1 to 12, each with b = a + 5: (1,6), ... (3,8), ... (12,17)
  --lags 1,2 5,6 3,8         these pairs (a,b), separated by spaces
  --cells rnn,gru,lstm       these cells (gru and lstm cost about 3 and 4 times rnn's work)
An axis must not be empty or repeat a value; a grid has at most 100000 runs.

Your own sequences: --text FILE (--bytes), --data DIR or --inputs X.npy --targets Y.npy
(with --vocab, --classes), and --valid FRACTION, as `bitrnn train` takes them. The file is
read once and shared by every run; the grid is hidden x cells x time steps x seeds (the
generator's --rule, --lags and --data-size are refused with it). A run on a file learned when
its loss (held-out with --valid) is at most 0.9 times the unigram entropy of the training
targets; sweep.png then has time_step across and hidden down, one panel per cell.

Every run is `bitrnn train --threads 1` with its settings (bit for bit: same final_loss,
same weights_checksum); the runs share the cores, one run per thread, and the outputs are in
grid order whatever --threads. A run learned when its final_loss is below the midpoint
between the nothing-learned level and the level below it (seed rule: 0.5199; r2rt: 0.5904).

Outputs in --out: sweep.csv (one row per run), sweep.json (the grid, per-cell medians, the
levels, timings) and sweep.png (median final_loss over seeds: time_step across, lags down,
one panel per hidden size and cell; each square shows the median and the seeds that learned).
Ctrl-C finishes the runs in flight, writes the outputs for the runs done and exits 130;
--resume then runs only the rest.

The defaults (seed rule, lags 1..=12, time steps 1..=12, hidden 6, 5 seeds, 10 epochs: 720
runs) take well under a minute on two cores.";

/// `bitrnn sweep`: a grid of training runs and one picture of it.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SweepArgs {
    /// The data flags: a text or .npy ids instead of the generator, the held-out fraction
    /// (see `bitrnn train --help`).
    #[command(flatten)]
    pub data_flags: DataArgs,
    /// The rule of the targets: seed or r2rt (see `bitrnn train --help`) [default: seed].
    /// For the generator only.
    #[arg(long, value_enum)]
    pub rule: Option<Rule>,
    /// The lag pairs (a,b): a range of first lags `A..=B[+D]` (b = a + D, D = 1 when not
    /// given) or pairs `A,B`, several separated by spaces [default: 1..=12 for --rule seed,
    /// 1..=12+5 for --rule r2rt]. For the generator only.
    #[arg(long, num_args = 1.., value_parser = parse_lag_item)]
    pub lags: Vec<Vec<(usize, usize)>>,
    /// Steps per training window: a list and/or ranges, e.g. 1..=12 or 1,2,5,10.
    #[arg(long, default_value = "1..=12", value_parser = parse_list)]
    pub time_steps: ::std::vec::Vec<usize>,
    /// Hidden units: a list and/or ranges, e.g. 6 or 4,6,8 (one heatmap panel each).
    #[arg(long, default_value = "6", value_parser = parse_list)]
    pub hidden: ::std::vec::Vec<usize>,
    /// Recurrent cells: a comma-separated list of rnn, gru, lstm (one heatmap panel each).
    #[arg(long, default_value = "rnn", value_parser = parse_cells)]
    pub cells: ::std::vec::Vec<Cell>,
    /// Seeds per grid point: seeds 0 to N-1 (data and initial weights).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Epochs of every run.
    #[arg(long, default_value_t = super::DEFAULT_EPOCHS)]
    pub epochs: usize,
    /// Samples in each run's generated bit sequence [default: 500000]. For the generator
    /// only: a file is trained on whole.
    #[arg(long)]
    pub data_size: Option<usize>,
    /// The length of each stream (the tutorial's batch_size; see `bitrnn train --help`).
    #[arg(long, default_value_t = TrainSettings::SEED.batch_size)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = TrainSettings::SEED.lr, value_parser = parse_f32)]
    pub lr: f32,
    /// Optimizer: adagrad or sgd.
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.optimizer)]
    pub optimizer: Optimizer,
    /// The clip, Adagrad's epsilon and initial accumulator, the initial weights of every run
    /// (see `bitrnn train --help`).
    #[command(flatten)]
    pub optim: super::OptimArgs,
    /// simd or scalar (the reference; 8 to 16 times slower at the seed shape).
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.engine)]
    pub engine: Engine,
    /// Runs at once, one thread each (default: all cores). The results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output directory for sweep.csv, sweep.json and sweep.png.
    #[arg(long, default_value = "runs/sweep")]
    pub out: PathBuf,
    /// Skip the runs already in --out's sweep.csv with the same settings; run the rest and
    /// add them.
    #[arg(long)]
    pub resume: bool,
    /// Start even when the estimate says the sweep takes more than an hour.
    #[arg(long)]
    pub yes: bool,
    /// No progress bar and no report on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Sweeps estimated to take longer than this (seconds) need `--yes`.
pub const MAX_UNASKED_S: f64 = 3600.0;

/// Parses one integer or one range `A..=B` (inclusive; at most [`MAX_AXIS`] values).
fn parse_range(s: &str) -> std::result::Result<Vec<usize>, String> {
    let int = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("'{s}': expected an integer or a range A..=B such as 1..=12"))
    };
    match s.split_once("..") {
        None => Ok(vec![int(s)?]),
        Some((a, b)) => {
            let Some(b) = b.strip_prefix('=') else {
                return Err(format!(
                    "'{s}': write an inclusive range as A..=B (such as 1..=12)"
                ));
            };
            let (a, b) = (int(a)?, int(b)?);
            if a > b {
                return Err(format!("'{s}': empty range ({a} > {b})"));
            }
            if b - a >= MAX_AXIS {
                return Err(format!(
                    "'{s}': {} values, more than the {MAX_AXIS} an axis may have",
                    b - a + 1
                ));
            }
            Ok((a..=b).collect())
        }
    }
}

/// Parses a comma-separated list of integers and ranges: `1..=4,8,16`.
pub(crate) fn parse_list(s: &str) -> std::result::Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        out.extend(parse_range(item)?);
        if out.len() > MAX_AXIS {
            return Err(format!(
                "'{s}': more than the {MAX_AXIS} values an axis may have"
            ));
        }
    }
    Ok(out)
}

/// Parses `--cells`: a comma-separated list of cell names (empty when `s` is: the grid
/// refuses an empty axis, a repeated cell, in one line).
pub(crate) fn parse_cells(s: &str) -> std::result::Result<Vec<Cell>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',').map(|c| parse_cell(c.trim())).collect()
}

/// Parses one `--lags` value: a pair `A,B` or a range of first lags `A..=B[+D]`.
pub(crate) fn parse_lag_item(s: &str) -> std::result::Result<Vec<(usize, usize)>, String> {
    if s.contains("..") {
        let (range, gap) = match s.split_once('+') {
            Some((r, d)) => (
                r,
                d.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&d| d >= 1)
                    .ok_or_else(|| format!("'{s}': the gap after + must be an integer >= 1"))?,
            ),
            None => (s, 1),
        };
        let firsts = parse_range(range)?;
        firsts
            .into_iter()
            .map(|a| {
                a.checked_add(gap)
                    .map(|b| (a, b))
                    .ok_or_else(|| format!("'{s}': a lag overflows"))
            })
            .collect()
    } else {
        super::parse_lags(s).map(|p| vec![p]).map_err(|_| {
            format!(
                "'{s}': expected a pair A,B (such as 1,2) or a range A..=B[+D] (such as 1..=12)"
            )
        })
    }
}

impl SweepArgs {
    /// The rule of the generator's targets (`--rule`, default seed).
    #[must_use]
    pub fn rule(&self) -> Rule {
        self.rule.unwrap_or(TrainSettings::SEED.rule)
    }

    /// The lags the grid uses: the flag's, or the rule's default range.
    #[must_use]
    pub fn lag_pairs(&self) -> Vec<(usize, usize)> {
        if self.lags.is_empty() {
            let gap = match self.rule() {
                Rule::Seed => 1,
                Rule::R2rt => 5,
            };
            (1..=12).map(|a| (a, a + gap)).collect()
        } else {
            self.lags.iter().flatten().copied().collect()
        }
    }

    /// Threads to run on (`--threads`, default all cores), checked.
    ///
    /// # Errors
    /// [`Error::Usage`] outside 1..=[`MAX_THREADS`](crate::config::MAX_THREADS).
    pub fn thread_count(&self) -> Result<usize> {
        super::thread_count(self.threads)
    }

    /// Refuses the generator's flags (`--rule`, `--lags`, `--data-size`) with a file, and
    /// `--vocab`/`--classes` without `.npy` data.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the first such flag and why.
    fn check_source_flags(&self) -> Result<()> {
        let source = self.data_flags.source();
        if source.kind() == Source::Generator {
            return self.data_flags.check_generator();
        }
        let given = [
            ("--rule", self.rule.is_some()),
            ("--lags", !self.lags.is_empty()),
            ("--data-size", self.data_size.is_some()),
        ];
        match given.into_iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(Error::Usage(format!(
                "{flag}: a setting of the generated bits; a sweep on {} trains on the whole \
                 file, without a rule or lags (drop {flag}; hold out a part with --valid)",
                source.describe()
            ))),
            None => Ok(()),
        }
    }

    /// The validated grid, `--out` checked, and the data its runs train on: for a file, read
    /// once here ([`crate::source::load`]) and its settings (`source`, `V`, `C`, `data_size`)
    /// in the grid's shared settings.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the first bad flag ([`Grid::new`]); the data readers' errors
    /// naming the file.
    pub fn to_grid(&self) -> Result<(Grid, SweepData)> {
        check_out_dir("--out", &self.out)?;
        self.thread_count()?;
        if self.seeds > MAX_AXIS as u64 {
            return Err(Error::Usage(format!(
                "--seeds {}: at most {MAX_AXIS}",
                self.seeds
            )));
        }
        self.check_source_flags()?;
        let base = self.optim.apply(TrainSettings {
            data_size: self.data_size.unwrap_or(TrainSettings::SEED.data_size),
            batch_size: self.batch_size,
            rule: self.rule(),
            lr: self.lr,
            optimizer: self.optimizer,
            epochs: self.epochs,
            engine: self.engine,
            threads: 1,
            valid: self.data_flags.valid,
            // Any time step reads the file; the grid checks the axis's against --batch-size.
            time_step: 1,
            ..TrainSettings::SEED
        });
        let source = self.data_flags.source();
        let (base, data, lags) = if source.kind() == Source::Generator {
            (base, SweepData::Generator, self.lag_pairs())
        } else {
            let model = (self.data_flags.vocab, self.data_flags.classes);
            let settings = TrainSettings {
                vocab: model.0.unwrap_or(base.vocab),
                classes: model.1.unwrap_or(base.classes),
                ..base
            };
            let (settings, run_data) = crate::source::load(settings, &source, false, model)?;
            let lags = vec![settings.lags];
            (settings, SweepData::file(&source, run_data), lags)
        };
        let grid = Grid::new(
            base,
            lags,
            self.time_steps.clone(),
            self.hidden.clone(),
            self.cells.clone(),
            (0..self.seeds).collect(),
        )?;
        Ok((grid, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges_parse() {
        assert_eq!(parse_list("1..=4,8,16").unwrap(), [1, 2, 3, 4, 8, 16]);
        assert_eq!(parse_list("6").unwrap(), [6]);
        assert_eq!(parse_list("3..=3").unwrap(), [3]);
        for bad in ["", "1..4", "4..=1", "a", "1,,2", "-1", "1..=1000000"] {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cell_lists_parse() {
        assert_eq!(parse_cells("rnn,gru,lstm").unwrap(), Cell::ALL);
        assert_eq!(parse_cells("gru, gru").unwrap(), [Cell::Gru, Cell::Gru]);
        assert_eq!(parse_cells("").unwrap(), []);
        assert!(parse_cells("rnn,").unwrap_err().contains("unknown cell ''"));
        assert!(
            parse_cells("tanh")
                .unwrap_err()
                .contains("rnn, gru or lstm")
        );
    }

    #[test]
    fn lag_items_are_pairs_or_ranges_of_first_lags() {
        assert_eq!(parse_lag_item("3,8").unwrap(), [(3, 8)]);
        assert_eq!(parse_lag_item("1..=3").unwrap(), [(1, 2), (2, 3), (3, 4)]);
        assert_eq!(parse_lag_item("2..=3+5").unwrap(), [(2, 7), (3, 8)]);
        for bad in ["3", "1..=3+0", "1..=3+x", "1..3", "1,2,3", "a,b"] {
            assert!(parse_lag_item(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_defaults_are_the_720_run_grid() {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            sweep: SweepArgs,
        }
        let args = <Only as clap::Parser>::try_parse_from(["bitrnn"])
            .unwrap()
            .sweep;
        let (grid, data) = args.to_grid().unwrap();
        assert!(matches!(data, SweepData::Generator));
        assert_eq!(grid.len(), 720);
        assert_eq!(grid.lags[11], (12, 13));
        assert_eq!(grid.cells, [Cell::Rnn]);
        let cells = <Only as clap::Parser>::try_parse_from(["bitrnn", "--cells", "lstm,gru"])
            .unwrap()
            .sweep;
        assert_eq!(cells.cells, [Cell::Lstm, Cell::Gru]);
        assert_eq!(cells.to_grid().unwrap().0.len(), 1440);
        let r2rt = <Only as clap::Parser>::try_parse_from(["bitrnn", "--rule", "r2rt"])
            .unwrap()
            .sweep;
        assert!(r2rt.lag_pairs().contains(&(3, 8)));
        let mixed =
            <Only as clap::Parser>::try_parse_from(["bitrnn", "--lags", "1,2", "5..=6", "3,8"])
                .unwrap()
                .sweep;
        assert_eq!(mixed.lag_pairs(), [(1, 2), (5, 6), (6, 7), (3, 8)]);
    }
}
