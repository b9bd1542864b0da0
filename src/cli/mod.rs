//! The command line: every clap struct, one file per command's flags, and their
//! validation into ready-to-use values ([`crate::config::TrainConfig`], [`BenchPlan`],
//! [`VerifyShape`]s). The commands ([`crate::cmd`]) take these and import nothing else from
//! here.

mod bench;
mod eval;
mod generate;
mod profile;
mod sample;
mod sweep;
mod train;
mod verify;

pub use bench::{BenchArgs, BenchPlan, MAX_REPEATS, MAX_SECONDS, MIN_REPEATS};
pub use eval::EvalArgs;
pub use generate::GenerateArgs;
pub use profile::{MAX_PROFILE_SECONDS, ProfileArgs};
pub use sample::{MAX_LENGTH as SAMPLE_MAX_LENGTH, SampleArgs, Temperature};
pub use sweep::{MAX_UNASKED_S, SweepArgs};
pub use train::{DEFAULT_EPOCHS, DataArgs, ModelArgs, OptimArgs, TrainArgs};
pub use verify::{
    DEFAULT_SHAPES, MAX_HIDDEN as VERIFY_MAX_HIDDEN, MAX_STEPS as VERIFY_MAX_STEPS,
    MAX_STREAMS as VERIFY_MAX_STREAMS, MAX_TIME_STEP as VERIFY_MAX_TIME_STEP, VerifyArgs,
    VerifyShape,
};

use clap::{Parser, Subcommand};

pub(crate) use crate::config::default_threads;

/// `--threads` of a command that defaults to all cores, checked.
///
/// # Errors
/// [`crate::Error::Usage`] outside 1..=[`crate::config::MAX_THREADS`].
pub(crate) fn thread_count(threads: Option<usize>) -> crate::error::Result<usize> {
    use crate::config::MAX_THREADS;
    let n = threads.unwrap_or_else(default_threads);
    if n == 0 || n > MAX_THREADS {
        return Err(crate::error::Error::Usage(format!(
            "--threads {n}: must be between 1 and {MAX_THREADS}"
        )));
    }
    Ok(n)
}

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
    Bench(BenchArgs),
    /// Run the training hot loop only, for a fixed time, for perf/flamegraph.
    Profile(ProfileArgs),
    /// Check the SIMD engine against the f64 reference, number by number.
    Verify(VerifyArgs),
    /// Loss and accuracy of a saved model on fresh data, or on a text or .npy file.
    Eval(EvalArgs),
    /// Draw a sequence from a saved model (a text model writes text), deterministic for a
    /// seed.
    Sample(SampleArgs),
    /// A grid of training runs (lags x time steps x hidden x seeds) in parallel, and one
    /// heatmap of it: sweep.csv, sweep.json, sweep.png.
    Sweep(SweepArgs),
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
                "{} (SIMD: {}, MPI: {})",
                env!("CARGO_PKG_VERSION"),
                bitrnn_kernels::simd_level(),
                if crate::distributed::COMPILED {
                    "compiled in"
                } else {
                    "not compiled in (feature mpi)"
                }
            )
        });
        let matches = Self::command()
            .version(version.as_str())
            .try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

/// Parses `A,B` into two integers (their range is checked by the config).
pub(crate) fn parse_lags(s: &str) -> std::result::Result<(usize, usize), String> {
    let err = || format!("'{s}': expected two positive integers A,B such as 1,2");
    let (a, b) = s.split_once(',').ok_or_else(err)?;
    let a = a.trim().parse().map_err(|_| err())?;
    let b = b.trim().parse().map_err(|_| err())?;
    Ok((a, b))
}

/// Parses a number flag (`--lr`, `--clip`, `--adagrad-eps`, `--adagrad-init`) as an `f32`,
/// refusing a number that `f32` cannot hold rather than rounding it to infinity or 0 (`1e40`,
/// `1e-50`), so that the message shows what was typed. Whether the value is allowed (finite,
/// above 0) is checked by the config.
pub(crate) fn parse_f32(s: &str) -> std::result::Result<f32, String> {
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
