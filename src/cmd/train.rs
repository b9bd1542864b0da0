//! `bitrnn train`: the main job. Trains, then writes `loss.csv`, `loss.png` and
//! `summary.json` (each whole or not at all), and with `--save` a checkpoint.
//!
//! # Resuming
//!
//! `--resume FILE` continues the run saved in FILE up to `--epochs` epochs in all. The
//! checkpoint's config is authoritative: it defines the run (data_size, batch_size,
//! time_step, hidden, cell, rule, lags, lr, optimizer, clip, adagrad_eps, adagrad_init, init,
//! seed, engine), and only `--epochs`, `--threads`,
//! `--out`, `--save`, `--quiet` and `--json` come from the command line. A model flag set to
//! something other than its default that disagrees with the checkpoint is refused (exit 2)
//! rather than silently ignored. The data is regenerated from the seed, the trainer is
//! restored (weights, Adagrad accumulator, position, carried state), and the result is
//! bit-for-bit the run that was never stopped.
//!
//! The outputs of a resumed run cover the whole run: the checkpoint stores the loss of every
//! step, so `loss.csv`, `loss.png`, `epoch_loss`, `final_loss` and `steps` are those of the
//! uninterrupted run. Only the timings (`train_s`, `sample_steps_per_s`,
//! `epoch_sample_steps_per_s`) cover just the epochs this command trained, from
//! `first_epoch` on.
//!
//! # Ctrl-C
//!
//! SIGINT stops the run after the window in progress ([`crate::signal`]): the outputs (and
//! the checkpoint with `--save`, resumable from that window) are written for the steps run,
//! `epoch_loss` covers the complete epochs, and the command exits with code 130.

use crate::checkpoint::{self, Checkpoint};
use crate::cli::{ModelArgs, TrainArgs};
use crate::cmd::eval::evaluate;
use crate::config::{Source, TrainConfig, TrainSettings, default_threads};
use crate::data::ReferenceLevel;
use crate::error::{Error, Result};
use crate::planes::TrainData;
use crate::source::{self, RunData};
use crate::train::Trainer;
use crate::{distributed, model, output, plot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
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
    /// Per epoch trained by this command (from `first_epoch` on).
    pub epoch_sample_steps_per_s: Vec<f64>,
    /// The first epoch this command trained: 0, or where `--resume` picked the run up.
    /// Timings cover the epochs from here on; the losses cover the whole run.
    pub first_epoch: usize,
    /// The checkpoint this run was resumed from, if any.
    pub resumed_from: Option<PathBuf>,
    /// Members of the thread team that shared the windows (`--threads`, at most the shards
    /// and the cores; 1 means no team).
    pub team_members: usize,
    /// Rounds (one per window, one more per shared reduction) the team ran together, and
    /// rounds the first thread ran alone because the team was losing to one thread on this
    /// machine at that moment (see `bitrnn::team`): the weights are the same either way.
    pub team_rounds: u64,
    pub solo_rounds: u64,
    /// Times the first thread gave up its core because the other members had taken no unit
    /// for a while (one may have been waiting for that core; see `bitrnn::team`).
    pub team_yields: u64,
    /// Times the first thread moved a member onto its own core because that member held work
    /// the round waited for far longer than the work takes (it was waiting for its core).
    pub team_pulls: u64,
    /// The losses the run's rule lets a model settle at ([`crate::data::Rule::reference_levels`]), by
    /// name: `{"rule_learned": 0.3466, "nothing_learned": 0.6931}` for the seed rule.
    #[serde(serialize_with = "levels_by_name")]
    pub reference_levels: Vec<ReferenceLevel>,
    /// The held-out loss and accuracy (`--valid`) after each epoch this command trained:
    /// `epochs` trained at the time, `loss`, `accuracy`; absent without `--valid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOut>,
    /// What the run trained on: `generator`, or the text or `.npy` files.
    pub data: String,
    /// FNV-1a of the final weights' bits: equal for any --threads.
    pub weights_checksum: String,
    /// `f32` lanes of the kernels' vector in this build (16 with AVX-512, else 8).
    pub lanes: usize,
    pub simd_level: &'static str,
    pub version: &'static str,
}

/// The held-out scores of a run (`--valid`), one entry per epoch scored.
#[derive(Debug, Serialize)]
pub struct HeldOut {
    /// Positions held out (the tail of the data).
    pub positions: usize,
    pub epochs: Vec<usize>,
    pub loss: Vec<f32>,
    pub accuracy: Vec<f32>,
    /// The last entry's loss.
    pub final_loss: f32,
}

/// Serializes the levels as one object, `name: loss`, in their order.
fn levels_by_name<S: serde::Serializer>(
    levels: &[ReferenceLevel],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(levels.len()))?;
    for level in levels {
        map.serialize_entry(level.name, &level.loss)?;
    }
    map.end()
}

/// The levels as the report line shows them: `0.3466 = rule learned, 0.6931 = nothing learned`.
#[must_use]
pub fn describe_levels(levels: &[ReferenceLevel]) -> String {
    levels
        .iter()
        .map(|l| format!("{:.4} = {}", l.loss, l.label))
        .collect::<Vec<_>>()
        .join(", ")
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

/// The config of a resumed run: the checkpoint's, with `--epochs` and `--threads` from the
/// command line. A model flag away from its default that disagrees with the checkpoint is an
/// error (the user asked for something the checkpoint cannot give).
fn resume_config(args: &TrainArgs, path: &Path, ck: &Checkpoint) -> Result<TrainConfig> {
    let defaults = ModelArgs::defaults().settings(args.epochs);
    let mut given = args.model.settings(args.epochs);
    if args.model.lags.is_none() {
        // `--lags` not given: its default depends on `--rule`, and it asks for nothing.
        given.lags = defaults.lags;
    }
    let given = given.model_flags();
    let defaults = defaults.model_flags();
    let saved = ck.config.model_flags();
    let conflicts: Vec<String> = given
        .into_iter()
        .zip(defaults)
        .zip(saved)
        .filter(|(((_, given), (_, default)), (_, saved))| given != default && given != saved)
        .map(|(((flag, given), _), (_, saved))| {
            format!("{flag} {given} (the checkpoint has {saved})")
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(Error::Usage(format!(
            "--resume {}: {} disagree(s) with the checkpoint; a resumed run keeps the \
             checkpoint's settings (drop the flag, or train a new run)",
            path.display(),
            conflicts.join(", ")
        )));
    }
    let done = ck.progress.epoch + usize::from(ck.progress.window > 0);
    if args.epochs < done {
        return Err(Error::Usage(format!(
            "--epochs {}: the checkpoint {} has already trained {} epoch(s); --epochs counts \
             the epochs in all, resumed ones included",
            args.epochs,
            path.display(),
            done
        )));
    }
    TrainConfig::new(TrainSettings {
        epochs: args.epochs,
        threads: args.model.threads.unwrap_or_else(default_threads),
        ..*ck.config.settings()
    })
}

/// The data of a resumed run: read with the checkpoint's alphabet (a text) or `V` and `C`
/// (`.npy`) from the data flags, which must name the kind of data it trained on and the
/// same number of positions; the generator's regenerated from the settings.
fn resume_data(
    args: &TrainArgs,
    path: &Path,
    ck: &Checkpoint,
    cfg: &TrainConfig,
) -> Result<RunData> {
    let source = args.model.source();
    if source.kind() != cfg.source {
        return Err(Error::Usage(format!(
            "--resume {}: the checkpoint was trained on {} data, and the data flags give {}: \
             give the same data ({})",
            path.display(),
            format!("{:?}", cfg.source).to_lowercase(),
            format!("{:?}", source.kind()).to_lowercase(),
            match cfg.source {
                Source::Generator => "no --text, --data or --inputs",
                Source::Text => "--text FILE",
                Source::Npy => "--data DIR or --inputs X --targets Y",
            }
        )));
    }
    let model = (Some(cfg.vocab), Some(cfg.classes));
    let (settings, data) = source::load_with(
        *cfg.settings(),
        &source,
        false,
        ck.alphabet.as_deref(),
        model,
    )?;
    if settings.data_size != cfg.data_size {
        return Err(Error::BadFile {
            path: source.name(),
            reason: format!(
                "{} positions, but the run in {} trained on {}: not the same data",
                settings.data_size,
                path.display(),
                cfg.data_size
            ),
        });
    }
    Ok(data)
}

/// The run's config, the losses of the steps already trained (with `--resume`), its
/// trainer, placed where the checkpoint stood, and the held-out data (`--valid`). Under
/// mpirun every rank checks and loads, and only rank 0 (`root`) creates `--out`.
fn setup(
    args: &TrainArgs,
    root: bool,
) -> Result<(TrainConfig, Vec<f32>, Trainer, Option<TrainData>)> {
    args.check_paths()?;
    let resumed = match &args.resume {
        Some(path) => Some(checkpoint::load(path)?),
        None => None,
    };
    let (cfg, data) = match (&resumed, &args.resume) {
        (Some(ck), Some(path)) => {
            let cfg = resume_config(args, path, ck)?;
            let data = resume_data(args, path, ck, &cfg)?;
            (cfg, data)
        }
        _ => args.model.load(args.epochs)?,
    };
    if let Some(path) = &args.save {
        // A file inside `--out` is fine: that directory is created before anything is written.
        output::check_output_file("--save", path, None, Some(&args.out))?;
    }
    if root {
        output::ensure_dir(&args.out)?;
    }
    let mut trainer = distributed::trainer(cfg.clone(), data.train)?;
    let mut losses = Vec::with_capacity(cfg.epochs * cfg.windows_per_epoch());
    if let Some(ck) = resumed {
        losses.extend_from_slice(&ck.losses);
        trainer.restore(ck.params, ck.accumulator, ck.progress, &ck.hidden_state);
    }
    Ok((cfg, losses, trainer, data.valid))
}

/// The held-out loss and accuracy of `trainer`'s weights on `valid` (module
/// [`crate::source`]: the tail cut into streams of `--batch-size`), on the trainer's threads
/// ([`Trainer::with_team`]).
pub(crate) fn held_out_score(trainer: &Trainer, valid: &TrainData) -> (f32, f32) {
    let cfg = trainer.config();
    let (streams, stream_len) =
        source::held_out_streams(valid.len(), cfg.batch_size, cfg.time_step)
            .expect("TrainConfig::new checked the held-out length");
    let stats = trainer.with_team(|team| {
        evaluate(
            trainer.params(),
            valid,
            streams,
            stream_len,
            cfg.time_step,
            team,
        )
    });
    let n = stats.samples as f64;
    ((stats.loss_sum / n) as f32, (stats.correct / n) as f32)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let start = Instant::now();
    // Under mpirun only rank 0 writes files and talks; an error on any rank before training
    // ends every rank with the same line.
    let root = distributed::is_root();
    let (cfg, mut losses, mut trainer, valid) = distributed::agree(setup(args, root))?;
    let quiet = args.quiet || !root;
    let show = !quiet && std::io::stderr().is_terminal();
    let wpe = cfg.windows_per_epoch();
    let first = trainer.progress();
    let first_step = losses.len();
    crate::signal::install();
    if !quiet {
        eprintln!(
            "bitrnn train: {} streams x {} steps, {} windows of {} per epoch, {} epochs, {} thread(s), engine {:?}{}",
            cfg.streams(),
            cfg.batch_size,
            cfg.windows_per_epoch(),
            cfg.time_step,
            cfg.epochs,
            cfg.threads,
            cfg.engine,
            match &args.resume {
                Some(p) => format!(
                    "; resumed from {} at epoch {}, window {}",
                    p.display(),
                    first.epoch,
                    first.window
                ),
                None => String::new(),
            }
        );
    }
    let total = cfg.epochs * wpe - first_step;
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
    let mut epoch_rate = Vec::with_capacity(cfg.epochs - first.epoch);
    let mut train_s = 0.0;
    // One `run` for the whole training (the worker team starts once); the callback closes
    // each epoch's timing at its last window.
    let per_window = cfg.sample_steps_per_window();
    let mut epoch_start = Instant::now();
    let mut in_epoch = 0usize;
    let mut close_epoch = |losses: &[f32], in_epoch: &mut usize, epoch_start: &mut Instant| {
        let dt = epoch_start.elapsed().as_secs_f64();
        train_s += dt;
        epoch_rate.push((*in_epoch * per_window) as f64 / dt);
        bar.inc(*in_epoch as u64);
        let epoch = losses.len().div_ceil(wpe);
        bar.set_message(format!("{epoch} loss {:.4}", tail_mean(losses, wpe)));
        *in_epoch = 0;
        *epoch_start = Instant::now();
    };
    let mut on_window = |loss| {
        losses.push(loss);
        in_epoch += 1;
        if losses.len() % wpe == 0 {
            close_epoch(&losses, &mut in_epoch, &mut epoch_start);
        }
        !distributed::interrupted()
    };
    // The held-out loss and accuracy after each epoch this command trains (`--valid`).
    let mut valid_loss: Vec<(usize, f32, f32)> = Vec::new();
    match &valid {
        None => {
            trainer.run(cfg.epochs * wpe - first_step, &mut on_window)?;
        }
        // One `run` per epoch, the held-out data scored between them.
        Some(valid) => {
            let mut step = first_step;
            while step < cfg.epochs * wpe {
                let n = wpe - step % wpe;
                let done = trainer.run(n, &mut on_window)?;
                step += done;
                if done < n {
                    break;
                }
                let (loss, accuracy) = held_out_score(&trainer, valid);
                valid_loss.push((step / wpe, loss, accuracy));
            }
        }
    }
    if in_epoch > 0 {
        close_epoch(&losses, &mut in_epoch, &mut epoch_start);
    }
    // Stopped by Ctrl-C before the last window (a signal during the last one changes nothing).
    let interrupted = losses.len() < cfg.epochs * wpe;
    // Each epoch's mean, as the loop of an uninterrupted run computes it after the epoch.
    let epoch_loss: Vec<f32> = losses
        .chunks_exact(wpe)
        .map(|c| tail_mean(c, wpe))
        .collect();
    bar.finish_and_clear();
    if !trainer.weights_finite() {
        return Err(crate::Error::Diverged {
            step: losses.len(),
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
        sample_steps_per_s: if losses.len() == first_step {
            0.0
        } else {
            ((losses.len() - first_step) * cfg.sample_steps_per_window()) as f64 / train_s
        },
        epoch_sample_steps_per_s: epoch_rate,
        first_epoch: first.epoch,
        resumed_from: args.resume.clone(),
        team_members: trainer.team_members(),
        team_rounds: trainer.team_stats().team_rounds,
        solo_rounds: trainer.team_stats().solo_rounds,
        team_yields: trainer.team_stats().absent_yields,
        team_pulls: trainer.team_stats().pulls,
        reference_levels: if cfg.symbols() {
            vec![source::unigram_level(trainer.data())]
        } else {
            cfg.rule.reference_levels()
        },
        held_out: valid.as_ref().map(|v| HeldOut {
            positions: v.len(),
            epochs: valid_loss.iter().map(|e| e.0).collect(),
            loss: valid_loss.iter().map(|e| e.1).collect(),
            accuracy: valid_loss.iter().map(|e| e.2).collect(),
            final_loss: valid_loss.last().map_or(f32::NAN, |e| e.1),
        }),
        data: args.model.source().describe(),
        weights_checksum: model::checksum(trainer.params()),
        lanes: bitrnn_kernels::lanes::LANES,
        simd_level: bitrnn_kernels::simd_level(),
        version: env!("CARGO_PKG_VERSION"),
        wall_s: 0.0,
        config: cfg,
    };
    // The checkpoint's carried state is gathered from every rank (before rank 0 alone goes
    // on to write).
    let saved = args
        .save
        .as_ref()
        .map(|path| (path, Checkpoint::of_trainer(&trainer, &losses)));
    if !root {
        return if interrupted {
            Err(Error::Interrupted)
        } else {
            Ok(())
        };
    }
    output::write_loss_csv_held_out(
        &args.out.join("loss.csv"),
        &losses,
        wpe,
        valid.as_ref().map(|_| &valid_loss[..]),
    )?;
    let held: Vec<(usize, f32)> = valid_loss.iter().map(|e| (e.0, e.1)).collect();
    plot::loss_plot_held_out(
        &args.out.join("loss.png"),
        &losses,
        wpe,
        &summary.reference_levels,
        &summary.config.describe(),
        &held,
    )?;
    if let Some((path, ck)) = &saved {
        checkpoint::save(path, ck)?;
    }
    let summary = Summary {
        wall_s: start.elapsed().as_secs_f64(),
        ..summary
    };
    let json = serde_json::to_string(&summary).expect("summary serializes");
    output::write_atomic_bytes(
        &args.out.join("summary.json"),
        format!("{json}\n").as_bytes(),
    )?;
    if !quiet {
        if let Some(path) = &args.save {
            eprintln!(
                "wrote checkpoint {} (weights_checksum {})",
                path.display(),
                summary.weights_checksum
            );
        }
        let held = summary.held_out.as_ref().map_or(String::new(), |h| {
            format!(
                "; held-out loss {:.4}, accuracy {:.4}",
                h.final_loss,
                h.accuracy.last().copied().unwrap_or(f32::NAN)
            )
        });
        eprintln!(
            "final_loss {:.4}{held} ({}); {:.1} M sample-steps/s; wrote {}/{{loss.csv,loss.png,summary.json}}",
            summary.final_loss,
            describe_levels(&summary.reference_levels),
            summary.sample_steps_per_s / 1e6,
            args.out.display()
        );
    }
    if args.json {
        println!("{json}");
    }
    if interrupted {
        return Err(Error::Interrupted);
    }
    Ok(())
}
