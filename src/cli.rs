//! The command line: raw flags (clap) and their conversion, once, into validated configs.

use crate::config::{self, Engine, Optimizer, TrainConfig, TrainSettings};
use crate::error::{Error, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

const ABOUT: &str = "A from-scratch, SIMD-optimized training engine for recurrent neural networks.

`bitrnn train` reproduces the experiment of the tutorial \"implement an RNN in seven steps\"
(TensorFlow, 2018): a 6-unit tanh RNN learns a rule hidden in a random bit sequence (loss
0.3466 = ln2/2 when learned, 0.6931 = ln2 when not).";

#[derive(Debug, Parser)]
#[command(name = "bitrnn", about = ABOUT, long_about = ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train the RNN (the seed experiment with the defaults) and write loss.csv, loss.png and
    /// summary.json.
    Train(TrainArgs),
    /// Write the generated data as NumPy files DIR/x.npy and DIR/y.npy (uint8, 1-D).
    Generate(GenerateArgs),
    /// Measure training throughput (median of repeats), GFLOP/s and % of the measured peak.
    Bench(crate::cmd::bench::BenchArgs),
    /// Run the training hot loop only, for a fixed time, for perf/flamegraph.
    Profile(crate::cmd::profile::ProfileArgs),
    /// Check the SIMD engine against the f64 reference, number by number.
    Verify(crate::cmd::verify::VerifyArgs),
    /// Loss and accuracy of a saved model on fresh data.
    Eval(crate::cmd::eval::EvalArgs),
}

impl Cli {
    /// Parses the process's arguments; `--version` also reports the SIMD level the binary was
    /// built with. A parse error (or `--help`, `--version`) exits here, with code 2 (0).
    #[must_use]
    pub fn parse_args() -> Self {
        Self::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the program's name first) as [`Cli::parse_args`] does, returning clap's
    /// error instead of exiting (for the fuzz target and tests).
    ///
    /// # Errors
    /// clap's error for a bad command line, `--help` or `--version`.
    pub fn try_parse_args<I, T>(args: I) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let version = VERSION.get_or_init(|| {
            format!(
                "{} (SIMD: {})",
                env!("CARGO_PKG_VERSION"),
                bitrnn_kernels::simd_level()
            )
        });
        let matches = Self::command()
            .version(version.as_str())
            .try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

/// The data and model flags shared by every command that trains.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// Samples in the generated bit sequence.
    #[arg(long, default_value_t = TrainSettings::SEED.data_size)]
    pub data_size: usize,
    /// The tutorial's batch_size: the LENGTH of each stream. The sequence is reshaped into
    /// data_size / batch_size parallel streams (seed: 500000 / 2000 = 250 streams of 2000
    /// steps).
    #[arg(long, default_value_t = TrainSettings::SEED.batch_size)]
    pub batch_size: usize,
    /// Steps per training window (truncated BPTT); an epoch is batch_size / time_step windows
    /// (seed: 400).
    #[arg(long, default_value_t = TrainSettings::SEED.time_step)]
    pub time_step: usize,
    /// Hidden units of the tanh cell.
    #[arg(long, default_value_t = TrainSettings::SEED.hidden)]
    pub hidden: usize,
    /// The rule's lags A,B: where x[i-A] == x[i-B] the target is !x[i-A], else a coin.
    /// 1,2 is learnable with time_step 5; 5,6 is not.
    #[arg(long, default_value = "1,2", value_parser = parse_lags)]
    pub lags: (usize, usize),
    /// Learning rate.
    #[arg(long, default_value_t = TrainSettings::SEED.lr, value_parser = parse_lr)]
    pub lr: f32,
    /// Optimizer: adagrad (TensorFlow semantics, accumulator starts at 0.1) or sgd.
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.optimizer)]
    pub optimizer: Optimizer,
    /// Seed of the data and the initial weights.
    #[arg(long, default_value_t = TrainSettings::SEED.seed)]
    pub seed: u64,
    /// Worker threads (default: all cores). Results are identical for any value.
    #[arg(long)]
    pub threads: Option<usize>,
    /// simd (fused f32x8 kernels) or scalar (the reference, single-threaded).
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.engine)]
    pub engine: Engine,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The defaults are the seed experiment: 250 streams x 2000 steps, \
    windows of 5 steps (400 per epoch), hidden 6, Adagrad 0.1. Expect final_loss near 0.3466; \
    with --lags 5,6 it stays near 0.6931."
)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Epochs to train.
    #[arg(long, default_value_t = DEFAULT_EPOCHS)]
    pub epochs: usize,
    /// Output directory for loss.csv, loss.png and summary.json.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// No progress bar and no report on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Also print summary.json as one line on stdout.
    #[arg(long)]
    pub json: bool,
    /// Save a checkpoint (safetensors, PyTorch names) here at the end: the model and the
    /// trainer state needed by --resume.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Continue the run saved in this checkpoint, up to --epochs in all. The checkpoint's
    /// settings define the run: only --epochs, --threads, --out, --save, --quiet and --json
    /// are taken from the command line (a model flag that disagrees with the checkpoint is an
    /// error). The result is bit-for-bit the uninterrupted run; loss.csv and summary.json
    /// cover the whole run.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

/// Epochs by default: the seed configuration's loss settles within about 5 epochs (see
/// README), so 10 leave a margin.
pub const DEFAULT_EPOCHS: usize = 10;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Samples to generate.
    #[arg(long, default_value_t = TrainSettings::SEED.data_size)]
    pub data_size: usize,
    /// The rule's lags A,B.
    #[arg(long, default_value = "1,2", value_parser = parse_lags)]
    pub lags: (usize, usize),
    /// Seed.
    #[arg(long, default_value_t = TrainSettings::SEED.seed)]
    pub seed: u64,
    /// Output directory.
    #[arg(long, default_value = "runs/data")]
    pub out: PathBuf,
}

/// Parses `A,B` into two integers (their range is checked by the config).
fn parse_lags(s: &str) -> std::result::Result<(usize, usize), String> {
    let err = || format!("'{s}': expected two positive integers A,B such as 1,2");
    let (a, b) = s.split_once(',').ok_or_else(err)?;
    let a = a.trim().parse().map_err(|_| err())?;
    let b = b.trim().parse().map_err(|_| err())?;
    Ok((a, b))
}

/// Parses `--lr` as an `f32`, refusing a number that `f32` cannot hold rather than rounding it
/// to infinity or 0 (`1e40`, `1e-50`), so that the message shows what was typed. Whether the
/// value is allowed (finite, above 0) is checked by the config.
fn parse_lr(s: &str) -> std::result::Result<f32, String> {
    let wide: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}': expected a number such as 0.1"))?;
    let lr = wide as f32;
    if wide.is_finite() && wide != 0.0 && (lr.is_infinite() || lr.abs() < f32::MIN_POSITIVE) {
        return Err(format!(
            "'{s}': outside the range of f32 ({:e} to {:e})",
            f32::MIN_POSITIVE,
            f32::MAX
        ));
    }
    Ok(lr)
}

/// All cores, as the default of `--threads`.
#[must_use]
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ModelArgs {
    /// The settings these flags give, with `epochs` (not yet validated).
    #[must_use]
    pub fn settings(&self, epochs: usize) -> TrainSettings {
        TrainSettings {
            data_size: self.data_size,
            batch_size: self.batch_size,
            time_step: self.time_step,
            hidden: self.hidden,
            lags: self.lags,
            lr: self.lr,
            optimizer: self.optimizer,
            seed: self.seed,
            epochs,
            threads: self.threads.unwrap_or_else(default_threads),
            engine: self.engine,
        }
    }

    /// The validated training configuration for these flags and `epochs`.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the first flag out of range ([`TrainConfig::new`]).
    pub fn to_config(&self, epochs: usize) -> Result<TrainConfig> {
        TrainConfig::new(self.settings(epochs))
    }
}

impl GenerateArgs {
    /// Checks the flags (the same rules as training's data flags, and the data's bit planes
    /// must fit in memory) and that `--out` is, or can become, a directory.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the first bad flag.
    pub fn validate(&self) -> Result<()> {
        if self.data_size == 0 || self.data_size > config::MAX_DATA_SIZE {
            return Err(Error::Usage(format!(
                "--data-size {}: must be between 1 and {}",
                self.data_size,
                config::MAX_DATA_SIZE
            )));
        }
        config::check_lags(self.lags, self.data_size)?;
        let bytes = config::data_bytes(self.data_size);
        let limit = config::memory_limit();
        if bytes > limit {
            return Err(Error::Usage(format!(
                "--data-size {}: its bit planes need {}, more than the {} of memory allowed",
                self.data_size,
                config::human_bytes(bytes),
                config::human_bytes(limit)
            )));
        }
        check_out_dir("--out", &self.out)
    }
}

impl TrainArgs {
    /// Checks the paths before any work: `--out` is (or can become) a directory and
    /// `--resume`, when given, is an existing file ([`check_input_file`]). (`--save` is
    /// checked by the train command.)
    pub fn check_paths(&self) -> Result<()> {
        check_out_dir("--out", &self.out)?;
        if let Some(path) = &self.resume {
            check_input_file("--resume", path)?;
        }
        Ok(())
    }
}

/// Checks that the input file `path`, given as `flag`, exists and is a file: a missing or
/// mistyped path is a usage error (exit code 2), like a bad value. What is inside is the
/// reader's to check.
pub fn check_input_file(flag: &str, path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "{flag} {}: is not a file (a directory?); give a checkpoint file",
            shown(path)
        ))),
        Err(e) => Err(Error::Usage(format!(
            "{flag} {}: cannot be read: {e}",
            shown(path)
        ))),
    }
}

/// Checks that the output file `path`, given as `flag`, can be written: a file name ending in
/// `.extension`, in an existing directory, not itself a directory. Checked before any work.
pub fn check_output_file(flag: &str, path: &Path, extension: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let named = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(extension));
    if path.file_name().is_none() || !named {
        return Err(Error::Usage(format!(
            "{flag} {}: must be a file name ending in .{extension}",
            shown(path)
        )));
    }
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} {}: the directory {} does not exist",
            shown(path),
            shown(dir)
        )));
    }
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} {}: is a directory",
            shown(path)
        )));
    }
    Ok(())
}

/// Checks that `path`, given as `flag`, is a directory or can become one: it is not empty,
/// and it, or else its nearest existing ancestor, is a directory. Checked before any work so
/// that a mistyped `--out` fails at once, with exit code 2, rather than after training. Whether
/// the directory is writable is left to the first write.
pub fn check_out_dir(flag: &str, path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::Usage(format!(
            "{flag} '': must name a directory (`.` for the current one)"
        )));
    }
    for p in path.ancestors() {
        if p.as_os_str().is_empty() {
            // The relative path's base: the current directory.
            break;
        }
        // Not found (or a component is a file): look further up.
        let Ok(meta) = std::fs::metadata(p) else {
            continue;
        };
        if meta.is_dir() {
            return Ok(());
        }
        return Err(Error::Usage(if p == path {
            format!(
                "{flag} {}: exists and is not a directory; give a directory (created if missing)",
                shown(path)
            )
        } else {
            format!(
                "{flag} {}: cannot be created as a directory: {} is a file",
                shown(path),
                shown(p)
            )
        }));
    }
    Ok(())
}

/// `path` for a one-line message: as [`Path::display`], with control characters (a newline
/// in a file name, a terminal escape) written as Rust escapes (`\n`, `\u{1b}`), so that the
/// message stays one line and harmless on a terminal.
#[must_use]
pub fn shown(path: &Path) -> String {
    let mut out = String::new();
    for c in path.display().to_string().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
