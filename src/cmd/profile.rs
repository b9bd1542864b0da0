//! `bitrnn profile`: the training hot loop alone ([`Trainer::step`] over epochs) for a fixed
//! time, nothing written, for `perf` and flamegraphs. Data generation and set-up happen
//! before the clock starts and are reported apart.

use crate::cli::ModelArgs;
use crate::error::{Error, Result};
use crate::train::Trainer;
use clap::Args;
use std::time::Instant;

/// Longest `--seconds` accepted.
pub const MAX_SECONDS: f64 = 86_400.0;

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

pub fn run(args: &ProfileArgs) -> Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= MAX_SECONDS) {
        return Err(Error::Usage(format!(
            "--seconds {}: must be a number above 0 and at most {MAX_SECONDS}",
            args.seconds
        )));
    }
    // `epochs` only bounds `train`; the loop below runs until the time is up.
    let cfg = args.model.to_config(1)?;
    eprintln!(
        "bitrnn profile: {}; {} thread(s), engine {:?}; running the training loop for {} s",
        cfg.describe(),
        cfg.threads,
        cfg.engine,
        args.seconds
    );
    let setup = Instant::now();
    let mut trainer = Trainer::new(cfg.clone())?;
    let setup_s = setup.elapsed().as_secs_f64();

    let wpe = cfg.windows_per_epoch();
    let start = Instant::now();
    let mut windows = 0usize;
    let mut loss_sum = 0.0f64;
    let mut loss_n = 0usize;
    // One clock read per window (~25 ns) is below 1% of even the smallest window's work.
    let mut elapsed = 0.0;
    trainer.run(usize::MAX, |loss| {
        windows += 1;
        // The mean loss of the last (partial) epoch, as a sanity check.
        if windows % wpe == 1 || wpe == 1 {
            loss_sum = 0.0;
            loss_n = 0;
        }
        loss_sum += f64::from(loss);
        loss_n += 1;
        elapsed = start.elapsed().as_secs_f64();
        elapsed < args.seconds
    })?;
    let rate = (windows * cfg.sample_steps_per_window()) as f64 / elapsed;
    println!(
        "profile: {windows} windows ({:.2} epochs) in {elapsed:.2} s: {:.2} M sample-steps/s \
         ({:.2} GFLOP/s at 6H^2 + 12H per sample-step); mean loss of the last epoch {:.4}; \
         set-up {setup_s:.2} s",
        windows as f64 / wpe as f64,
        rate / 1e6,
        rate * super::bench::flops_per_sample_step(cfg.hidden) / 1e9,
        loss_sum / loss_n as f64,
    );
    Ok(())
}
