//! `bitrnn profile`: the training hot loop alone ([`Trainer::step`] over epochs) for a fixed
//! time, nothing written, for `perf` and flamegraphs. Data generation and set-up happen
//! before the clock starts and are reported apart.

use crate::cli::{MAX_PROFILE_SECONDS, ProfileArgs};
use crate::error::{Error, Result};
use crate::train::Trainer;
use std::time::Instant;

pub fn run(args: &ProfileArgs) -> Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= MAX_PROFILE_SECONDS) {
        return Err(Error::Usage(format!(
            "--seconds {}: must be a number above 0 and at most {MAX_PROFILE_SECONDS}",
            args.seconds
        )));
    }
    // `epochs` only bounds `train`; the loop below runs until the time is up.
    let (cfg, data) = args.model.load(1)?;
    eprintln!(
        "bitrnn profile: {}; {} thread(s), engine {:?}; running the training loop for {} s",
        cfg.describe(),
        cfg.threads,
        cfg.engine,
        args.seconds
    );
    let setup = Instant::now();
    let params = crate::model::init_params(cfg.init, cfg.layout(), cfg.seed);
    let mut trainer = Trainer::with_params(cfg.clone(), data.train, params)?;
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
         ({:.2} GFLOP/s at 6GH^2 + 6HC per sample-step, G = {}, C = {}); mean loss of the \
         last epoch {:.4}; set-up {setup_s:.2} s",
        windows as f64 / wpe as f64,
        rate / 1e6,
        rate * super::bench::flops_with_classes(cfg.cell, cfg.hidden, cfg.classes) / 1e9,
        cfg.cell.gates(),
        cfg.classes,
        loss_sum / loss_n as f64,
    );
    Ok(())
}
