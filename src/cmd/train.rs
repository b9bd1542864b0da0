//! `bitrnn train`: the main job. Trains, then writes `loss.csv`, `loss.png` and
//! `summary.json` (each whole or not at all).

use crate::cli::TrainArgs;
use crate::config::TrainConfig;
use crate::error::Result;
use crate::train::Trainer;
use crate::{model, output, plot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::Instant;

/// Steps averaged for `final_loss`.
pub const FINAL_LOSS_STEPS: usize = 100;

/// What `summary.json` holds.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub config: TrainConfig,
    pub streams: usize,
    pub windows_per_epoch: usize,
    /// Mean loss of the last 100 training steps.
    pub final_loss: f32,
    /// Mean loss of each epoch.
    pub epoch_loss: Vec<f32>,
    pub steps: usize,
    /// Wall time of the whole command, data generation and output included.
    pub wall_s: f64,
    /// Seconds in the training loop only.
    pub train_s: f64,
    /// Sample-steps (one stream advancing one step, forward + backward + update) per second
    /// of the training loop.
    pub sample_steps_per_s: f64,
    pub epoch_sample_steps_per_s: Vec<f64>,
    /// FNV-1a of the final weights' bits: equal for any --threads.
    pub weights_checksum: String,
    pub simd_level: &'static str,
    pub version: &'static str,
}

/// Mean of the last `n` values (all of them when fewer).
#[must_use]
pub fn tail_mean(v: &[f32], n: usize) -> f32 {
    let tail = &v[v.len().saturating_sub(n)..];
    if tail.is_empty() {
        f32::NAN
    } else {
        tail.iter().sum::<f32>() / tail.len() as f32
    }
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let start = Instant::now();
    let cfg = args.model.to_config(args.epochs)?;
    output::ensure_dir(&args.out)?;
    let show = !args.quiet && std::io::stderr().is_terminal();
    if !args.quiet {
        eprintln!(
            "bitrnn train: {} streams x {} steps, {} windows of {} per epoch, {} epochs, {} thread(s), engine {:?}",
            cfg.streams(),
            cfg.batch_size,
            cfg.windows_per_epoch(),
            cfg.time_step,
            cfg.epochs,
            cfg.threads,
            cfg.engine
        );
    }
    let mut trainer = Trainer::new(cfg.clone())?;
    let wpe = cfg.windows_per_epoch();
    let total = cfg.epochs * wpe;
    let bar = if show {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    if show {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} windows  epoch {msg}  {elapsed} < {eta}",
            )
            .expect("static template"),
        );
    }
    let mut losses = Vec::with_capacity(total);
    let mut epoch_loss = Vec::with_capacity(cfg.epochs);
    let mut epoch_rate = Vec::with_capacity(cfg.epochs);
    let mut train_s = 0.0;
    for epoch in 0..cfg.epochs {
        let t = Instant::now();
        for _ in 0..wpe {
            losses.push(trainer.step()?);
        }
        let dt = t.elapsed().as_secs_f64();
        train_s += dt;
        epoch_rate.push((wpe * cfg.sample_steps_per_window()) as f64 / dt);
        epoch_loss.push(tail_mean(&losses, wpe));
        bar.inc(wpe as u64);
        bar.set_message(format!("{} loss {:.4}", epoch + 1, epoch_loss[epoch]));
    }
    bar.finish_and_clear();
    if !trainer.weights_finite() {
        return Err(crate::Error::Diverged {
            step: total,
            what: "a weight is not finite".into(),
        });
    }
    let summary = Summary {
        streams: cfg.streams(),
        windows_per_epoch: wpe,
        final_loss: tail_mean(&losses, FINAL_LOSS_STEPS),
        epoch_loss,
        steps: losses.len(),
        train_s,
        sample_steps_per_s: (total * cfg.sample_steps_per_window()) as f64 / train_s,
        epoch_sample_steps_per_s: epoch_rate,
        weights_checksum: model::checksum(trainer.params()),
        simd_level: bitrnn_kernels::simd_level(),
        version: env!("CARGO_PKG_VERSION"),
        wall_s: 0.0,
        config: cfg,
    };
    output::write_loss_csv(&args.out.join("loss.csv"), &losses, wpe)?;
    plot::loss_plot(
        &args.out.join("loss.png"),
        &losses,
        wpe,
        &summary.config.describe(),
    )?;
    let summary = Summary {
        wall_s: start.elapsed().as_secs_f64(),
        ..summary
    };
    let json = serde_json::to_string(&summary).expect("summary serializes");
    output::write_atomic_bytes(
        &args.out.join("summary.json"),
        format!("{json}\n").as_bytes(),
    )?;
    if !args.quiet {
        eprintln!(
            "final_loss {:.4} (0.3466 = rule learned, 0.6931 = nothing learned); {:.1} M sample-steps/s; wrote {}/{{loss.csv,loss.png,summary.json}}",
            summary.final_loss,
            summary.sample_steps_per_s / 1e6,
            args.out.display()
        );
    }
    if args.json {
        println!("{json}");
    }
    Ok(())
}
