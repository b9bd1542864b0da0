//! `bitrnn eval`: loss and accuracy of a saved model on fresh data.
//!
//! # Protocol
//!
//! The evaluation data is generated like training data (`--data-size`, `--lags`, `--seed`)
//! and cut the way training cuts it, with the checkpoint's `batch_size` and `time_step`:
//! `S = data_size / batch_size` streams of `batch_size` steps, each walked in
//! `W = batch_size / time_step` windows of `time_step` steps. The hidden state starts at zero
//! and is carried from one window to the next, exactly as in one training epoch but with no
//! update. Samples past `S * batch_size` and, in each stream, steps past `W * time_step` are
//! not used, as in training. Over the `N = S * W * time_step` samples:
//!
//! ```text
//! loss     = (1 / N) sum -ln softmax(logits)[y]        (natural log, the training loss)
//! accuracy = (1 / N) #{ argmax logits == y }           (a tie counts as class 1)
//! ```
//!
//! Since the state is carried across windows, this is the same as running each stream
//! through the RNN from a zero state in one pass over its first `W * time_step` steps.
//! `scripts/pytorch_check.py` runs the same protocol in PyTorch.
//!
//! The default seed is the training seed + 1 (wrapping), so the data is fresh: a different
//! sequence than the one the model was trained on.

use crate::checkpoint;
use crate::cli::EvalArgs;
use crate::config::{Rule, TrainConfig, TrainSettings};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::planes::{Feed, TrainData};
use bitrnn_kernels::Params;
use bitrnn_kernels::simd::{self, Prepared, Workspace};
use serde::Serialize;
use std::path::PathBuf;

/// What `bitrnn eval --json` prints.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub model: PathBuf,
    /// Mean cross-entropy per sample (natural log).
    pub loss: f64,
    /// Fraction of samples whose more probable class is the target.
    pub accuracy: f64,
    /// Samples evaluated: `streams * windows * time_step`.
    pub samples: usize,
    pub data_size: usize,
    pub rule: Rule,
    pub lags: (usize, usize),
    pub seed: u64,
    pub streams: usize,
    pub batch_size: usize,
    pub time_step: usize,
    pub windows: usize,
    pub hidden: usize,
    /// The seed the model was trained with, and the epochs it was trained for.
    pub train_seed: u64,
    pub trained_epochs: usize,
    pub weights_checksum: String,
}

/// Sums of loss and correct predictions over the protocol's samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalStats {
    pub loss_sum: f64,
    pub correct: f64,
    pub samples: usize,
}

/// Runs `params` over `data` with the protocol of the module docs: `streams` streams of
/// `stream_len` steps in windows of `time_step`, the state carried; on the bits' kernels or
/// (for a sequence of symbols) the symbols' path.
///
/// # Panics
/// If `streams`, `stream_len` or `time_step` is 0, `time_step > stream_len`, or the data are
/// shorter than `streams * stream_len` (the caller validates them).
#[must_use]
pub fn evaluate(
    params: &Params<f32>,
    data: &TrainData,
    streams: usize,
    stream_len: usize,
    time_step: usize,
) -> EvalStats {
    let windows = stream_len / time_step;
    assert!(streams >= 1 && windows >= 1, "evaluate: empty shape");
    assert!(
        data.len() >= streams * stream_len,
        "evaluate: data too short"
    );
    let layout = params.layout();
    let (mut prepared, mut ws) = match data {
        TrainData::Bits(_) => (
            Prepared::with_cell(params.cell, params.hidden),
            Workspace::with_cell(params.cell, params.hidden, streams, time_step),
        ),
        TrainData::Symbols(_) => (
            Prepared::for_symbols(layout),
            Workspace::for_symbols(layout, streams, time_step),
        ),
    };
    prepared.load(params);
    let mut feed = Feed::new(data.clone(), streams, stream_len, time_step);
    let (mut loss_sum, mut correct) = (0.0, 0.0);
    for w in 0..windows {
        let stats = simd::forward(&prepared, &mut ws, feed.window(w * time_step));
        loss_sum += stats.loss_sum;
        correct += stats.correct;
    }
    EvalStats {
        loss_sum,
        correct,
        samples: streams * windows * time_step,
    }
}

pub fn run(args: &EvalArgs) -> Result<()> {
    crate::output::check_input_file("--model", &args.model)?;
    let ck = checkpoint::load(&args.model)?;
    let trained = &ck.config;
    let rule = args.rule.unwrap_or(trained.rule);
    let lags = args.lags.unwrap_or(if rule == trained.rule {
        trained.lags
    } else {
        rule.default_lags()
    });
    let seed = args.seed.unwrap_or(trained.seed.wrapping_add(1));
    // The training config's rules check the evaluation shape (data_size against the
    // checkpoint's batch_size, the lags against data_size).
    let cfg = TrainConfig::new(TrainSettings {
        data_size: args.data_size,
        rule,
        lags,
        seed,
        threads: 1,
        epochs: 1,
        valid: 0.0,
        ..*trained.settings()
    })
    .map_err(|e| match e {
        Error::Usage(m) if m.starts_with("--data-size") => Error::Usage(format!(
            "{m} (--batch-size comes from the checkpoint {})",
            args.model.display()
        )),
        e => e,
    })?;
    let data = Dataset::generate_rule(cfg.rule, cfg.data_size, cfg.lags, cfg.seed);
    let stats = evaluate(
        &ck.params,
        &TrainData::Bits(data),
        cfg.streams(),
        cfg.batch_size,
        cfg.time_step,
    );
    let n = stats.samples as f64;
    let report = EvalReport {
        model: args.model.clone(),
        loss: stats.loss_sum / n,
        accuracy: stats.correct / n,
        samples: stats.samples,
        data_size: cfg.data_size,
        rule: cfg.rule,
        lags: cfg.lags,
        seed: cfg.seed,
        streams: cfg.streams(),
        batch_size: cfg.batch_size,
        time_step: cfg.time_step,
        windows: cfg.windows_per_epoch(),
        hidden: cfg.hidden,
        train_seed: trained.seed,
        trained_epochs: ck.progress.epoch,
        weights_checksum: crate::model::checksum(&ck.params),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        println!(
            "{}: loss {:.4} accuracy {:.4} on {} samples ({} streams x {} windows of {}, {}lags {},{}, seed {}; {})",
            args.model.display(),
            report.loss,
            report.accuracy,
            report.samples,
            report.streams,
            report.windows,
            report.time_step,
            match report.rule {
                Rule::Seed => String::new(),
                rule => format!("rule {rule}, "),
            },
            report.lags.0,
            report.lags.1,
            report.seed,
            report
                .rule
                .reference_levels()
                .iter()
                .map(|l| format!("{:.4}/{} = {}", l.loss, l.accuracy, l.label))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
