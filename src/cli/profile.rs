//! The flags of `bitrnn profile`: the training flags and how long to run.

use super::ModelArgs;
use clap::Args;

/// Longest `--seconds` accepted.
pub const MAX_PROFILE_SECONDS: f64 = 86_400.0;

const AFTER_HELP: &str = "\
Build with symbols and record, e.g.:
  cargo build --profile profiling
  perf record -g target/profiling/bitrnn profile --seconds 5
  perf report --stdio --no-children | head -60
The profiling profile is release with full debug info. At the seed's size with --threads 1 the
kernels are ~95% of the samples (forward_small, which inlines approx::tanh, then
backward_small); at --hidden 64, forward_blocked, weight_gradients and backward. With
--threads 2 or more, bitrnn::team::Team::serve and Team::run (the barrier, inlined) show up
next to them: the time a member waits for the others or for the serial update (11% and 6%
of the samples of a 2-thread seed profile on the 2-core VM).";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ProfileArgs {
    /// Seconds to run the training loop (set-up not counted).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub seconds: f64,
    #[command(flatten)]
    pub model: ModelArgs,
}
