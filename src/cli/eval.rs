//! The flags of `bitrnn eval`.

use super::parse_lags;
use crate::source::DataSource;
use clap::Args;
use std::path::PathBuf;

const AFTER_HELP: &str = "Protocol: the data (--data-size, --lags, --seed) is cut like \
training data (--rule, default the checkpoint's) with the checkpoint's batch_size and time_step: data_size / batch_size streams, \
each walked in batch_size / time_step windows of time_step steps, the hidden state zero at the \
start and carried from window to window (one training epoch without updates). loss is the \
mean cross-entropy (natural log) and accuracy the fraction of argmax predictions equal to the \
target, over all those samples. With the seed rule a model that learned the rule scores about \
0.3466 and 0.75, one that learned nothing 0.6931 and 0.5; with r2rt the levels are 0.4545, \
0.5192 and 0.6616 (the line printed names them).

With --text, --data or --inputs/--targets the model is scored on that file instead (a text \
model's alphabet reads the text; .npy ids must be below the model's V and C), cut the same \
way: data_size / batch_size streams of batch_size steps, or one stream of the whole data \
(cut to whole windows) when it is shorter than batch_size. The line then names the unigram \
entropy of the targets scored: a model below it has learned more than the symbols' \
frequencies.";

/// The generator's flags, which a data file replaces (clap's conflicts go both ways, so each
/// data flag names those after it).
const GENERATOR_FLAGS: [&str; 4] = ["data_size", "rule", "lags", "seed"];
const TEXT_CONFLICTS: [&str; 6] = ["data_size", "rule", "lags", "seed", "data", "inputs"];
const DATA_CONFLICTS: [&str; 5] = ["data_size", "rule", "lags", "seed", "inputs"];

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
    /// Score a text model on this file's bytes (next-byte prediction over the model's
    /// alphabet; a byte outside it is refused).
    #[arg(long, value_name = "FILE", conflicts_with_all = TEXT_CONFLICTS, help_heading = "Data")]
    pub text: Option<PathBuf>,
    /// Score the model on DIR/x.npy (input symbols) and DIR/y.npy (target classes), ids
    /// below the model's V and C.
    #[arg(long, value_name = "DIR", conflicts_with_all = DATA_CONFLICTS, help_heading = "Data")]
    pub data: Option<PathBuf>,
    /// Score the model on these input symbols (a 1-D integer .npy), with --targets.
    #[arg(long, value_name = "X.npy", requires = "targets", conflicts_with_all = GENERATOR_FLAGS, help_heading = "Data")]
    pub inputs: Option<PathBuf>,
    /// The target classes of --inputs (a 1-D integer .npy of the same length).
    #[arg(long, value_name = "Y.npy", requires = "inputs", help_heading = "Data")]
    pub targets: Option<PathBuf>,
    /// Print one JSON object on stdout instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: all cores). The scores are identical for any value.
    #[arg(long)]
    pub threads: Option<usize>,
}

impl EvalArgs {
    /// Threads to run on (`--threads`, default all cores), checked.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] outside 1..=[`crate::config::MAX_THREADS`].
    pub fn thread_count(&self) -> crate::error::Result<usize> {
        super::thread_count(self.threads)
    }

    /// The data flags: the generator when none is given.
    #[must_use]
    pub fn source(&self) -> DataSource {
        DataSource::from_flags(
            self.text.as_deref(),
            false,
            self.data.as_deref(),
            self.inputs.as_deref(),
            self.targets.as_deref(),
        )
    }
}
