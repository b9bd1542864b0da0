//! The flags of `bitrnn eval`.

use super::parse_lags;
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "Protocol: the data (--data-size, --lags, --seed) is cut like \
training data (--rule, default the checkpoint's) with the checkpoint's batch_size and time_step: data_size / batch_size streams, \
each walked in batch_size / time_step windows of time_step steps, the hidden state zero at the \
start and carried from window to window (one training epoch without updates). loss is the \
mean cross-entropy (natural log) and accuracy the fraction of argmax predictions equal to the \
target, over all those samples. With the seed rule a model that learned the rule scores about \
0.3466 and 0.75, one that learned nothing 0.6931 and 0.5; with r2rt the levels are 0.4545, \
0.5192 and 0.6616 (the line printed names them).";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct EvalArgs {
    /// The checkpoint to evaluate (written by `bitrnn train --save`).
    #[arg(long)]
    pub model: PathBuf,
    /// Samples of fresh data to evaluate on.
    #[arg(long, default_value_t = 500_000)]
    pub data_size: usize,
    /// The rule of the targets, seed or r2rt [default: the checkpoint's].
    #[arg(long, value_enum)]
    pub rule: Option<crate::config::Rule>,
    /// The rule's lags A,B [default: the checkpoint's, or the rule's default (1,2 for seed, 3,8
    /// for r2rt) when --rule differs from the checkpoint's].
    #[arg(long, value_parser = parse_lags)]
    pub lags: Option<(usize, usize)>,
    /// Seed of the evaluation data [default: the training seed + 1, i.e. data the model has
    /// not seen].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object on stdout instead of a line of text.
    #[arg(long)]
    pub json: bool,
}
