//! The flags of `bitrnn train` ([`TrainArgs`]) and the data and model flags it shares with
//! `profile` ([`ModelArgs`]), which [`ModelArgs::to_config`] validates into a
//! [`TrainConfig`]; among them the optimizer's step and the initial weights ([`OptimArgs`]),
//! which `sweep` shares too.

use super::{default_threads, parse_f32, parse_lags};
use crate::config::{
    Cell, Engine, Init, Optimizer, Rule, Source, TrainConfig, TrainSettings, parse_cell,
};
use crate::error::Result;
use crate::output::{check_input_file, check_out_dir};
use crate::source::{DataSource, RunData};
use clap::Args;
use std::path::PathBuf;

/// The data and model flags shared by every command that trains.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// Samples in the generated bit sequence [default: 500000]. For the generator only: a
    /// --text or .npy run trains on the whole file.
    #[arg(long)]
    pub data_size: Option<usize>,
    /// The data flags: a text, .npy ids, the held-out fraction.
    #[command(flatten)]
    pub data_flags: DataArgs,
    /// The tutorial's batch_size: the LENGTH of each stream. The sequence is reshaped into
    /// data_size / batch_size parallel streams (seed: 500000 / 2000 = 250 streams of 2000
    /// steps).
    #[arg(long, default_value_t = TrainSettings::SEED.batch_size)]
    pub batch_size: usize,
    /// Steps per training window (truncated BPTT); an epoch is batch_size / time_step windows
    /// (seed: 400).
    #[arg(long, default_value_t = TrainSettings::SEED.time_step)]
    pub time_step: usize,
    /// Hidden units of the cell.
    #[arg(long, default_value_t = TrainSettings::SEED.hidden)]
    pub hidden: usize,
    /// The recurrent cell: rnn (the seed's tanh RNN), gru or lstm (PyTorch's nn.GRU and
    /// nn.LSTM formulas, gates r,z,n and i,f,g,o).
    #[arg(long, default_value = "rnn", value_parser = parse_cell)]
    pub cell: Cell,
    /// The rule of the targets: seed (where x[i-A] == x[i-B] the target is !x[i-A], else a
    /// coin) or r2rt (`P(y[i] = 1) = 0.5 + 0.5 x[i-A] - 0.25 x[i-B]`, a fresh draw each step).
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.rule)]
    pub rule: Rule,
    /// The rule's lags A,B [default: 1,2 for --rule seed, 3,8 for --rule r2rt]. With the seed
    /// rule 1,2 is learnable with time_step 5; 5,6 is not.
    #[arg(long, value_parser = parse_lags)]
    pub lags: Option<(usize, usize)>,
    /// Learning rate.
    #[arg(long, default_value_t = TrainSettings::SEED.lr, value_parser = parse_f32)]
    pub lr: f32,
    /// Optimizer: adagrad (accum += g^2; w -= lr g / sqrt(accum + eps), TensorFlow's by
    /// default: the accumulator starts at 0.1, eps 0) or sgd (w -= lr g).
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.optimizer)]
    pub optimizer: Optimizer,
    /// The clip, Adagrad's epsilon and initial accumulator, the initial weights.
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Seed of the data and the initial weights.
    #[arg(long, default_value_t = TrainSettings::SEED.seed)]
    pub seed: u64,
    /// Worker threads (default: all cores). Results are identical for any value.
    #[arg(long)]
    pub threads: Option<usize>,
    /// simd (fused SIMD kernels) or scalar (the reference, single-threaded).
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.engine)]
    pub engine: Engine,
}

/// The data flags of every command that trains (`train`, `profile`, `sweep`): where the
/// sequence comes from ([`DataArgs::source`]) and the held-out tail.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Train on this file's bytes: next-byte prediction over the sorted set of the bytes
    /// that occur (a character model: V = C = that alphabet's size).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "inputs"], help_heading = "Data")]
    pub text: Option<PathBuf>,
    /// With --text: the vocabulary is all 256 byte values, not only those that occur.
    #[arg(long, requires = "text", help_heading = "Data")]
    pub bytes: bool,
    /// Train on DIR/x.npy (input symbols) and DIR/y.npy (target classes), what `bitrnn
    /// generate` writes: 1-D little-endian integer arrays (u8, u16, i32, i64, ...).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "inputs",
        help_heading = "Data"
    )]
    pub data: Option<PathBuf>,
    /// Train on these input symbols (a 1-D integer .npy), with --targets.
    #[arg(
        long,
        value_name = "X.npy",
        requires = "targets",
        help_heading = "Data"
    )]
    pub inputs: Option<PathBuf>,
    /// The target classes of --inputs (a 1-D integer .npy of the same length).
    #[arg(long, value_name = "Y.npy", requires = "inputs", help_heading = "Data")]
    pub targets: Option<PathBuf>,
    /// Input symbols V of .npy data [default: the largest input + 1]; up to 65536.
    #[arg(long, help_heading = "Data")]
    pub vocab: Option<usize>,
    /// Classes C of .npy data [default: the largest target + 1]; up to 65536.
    #[arg(long, help_heading = "Data")]
    pub classes: Option<usize>,
    /// Hold out the last FRACTION of the data (e.g. 0.05) and report its loss and accuracy
    /// after every epoch.
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.0,
        help_heading = "Data"
    )]
    pub valid: f64,
}

impl DataArgs {
    /// The data flags' source ([`DataSource::from_flags`]).
    #[must_use]
    pub fn source(&self) -> DataSource {
        DataSource::from_flags(
            self.text.as_deref(),
            self.bytes,
            self.data.as_deref(),
            self.inputs.as_deref(),
            self.targets.as_deref(),
        )
    }

    /// Refuses `--vocab` and `--classes` without `.npy` data.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] naming them.
    pub fn check_generator(&self) -> Result<()> {
        if self.source().kind() == Source::Generator
            && (self.vocab.is_some() || self.classes.is_some())
        {
            return Err(crate::Error::Usage(
                "--vocab and --classes: for .npy data (--data, --inputs); the generator's data \
                 are bits"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The settings of the optimizer's step and of the initial weights beyond `--lr` and
/// `--optimizer`, shared by `train` and `profile` (in [`ModelArgs`]) and `sweep`. Their
/// defaults are the runs before they existed (TensorFlow's Adagrad, the default init).
#[derive(Debug, Args, Clone)]
pub struct OptimArgs {
    /// Clamp each entry of the window's gradient to [-VALUE, VALUE] before the optimizer's
    /// step (min-char-rnn's np.clip(dparam, -5, 5) is --clip 5); a finite number above 0.
    /// Default: no clip.
    #[arg(long, value_name = "VALUE", value_parser = parse_f32)]
    pub clip: Option<f32>,
    /// Adagrad's epsilon under the square root: w -= lr g / sqrt(accum + EPS) (min-char-rnn:
    /// 1e-8); 0 or above.
    #[arg(long, value_name = "EPS", default_value_t = TrainSettings::SEED.adagrad_eps, value_parser = parse_f32)]
    pub adagrad_eps: f32,
    /// Adagrad's initial accumulator (TensorFlow's 0.1; min-char-rnn's 0); 0 or above, and
    /// not 0 together with --adagrad-eps 0 (a zero gradient would divide 0 by 0).
    #[arg(long, value_name = "A", default_value_t = TrainSettings::SEED.adagrad_init, value_parser = parse_f32)]
    pub adagrad_init: f32,
    /// The initial weights: default (the tanh RNN Glorot-uniform as TensorFlow's
    /// BasicRNNCell, zero biases; the gated cells as PyTorch; a Glorot-uniform head), pytorch
    /// (every tensor as PyTorch's nn.RNN/GRU/LSTM and nn.Linear: U(-1/sqrt(H), 1/sqrt(H)))
    /// or normal:STD (every weight matrix N(0, STD^2), biases 0; min-char-rnn's is
    /// normal:0.01).
    #[arg(long, value_name = "NAME", default_value = "default", value_parser = Init::parse)]
    pub init: Init,
}

impl OptimArgs {
    /// `settings` with these flags' values (not yet validated; for `sweep`'s shared settings).
    #[must_use]
    pub fn apply(&self, settings: TrainSettings) -> TrainSettings {
        TrainSettings {
            clip: self.clip,
            adagrad_eps: self.adagrad_eps,
            adagrad_init: self.adagrad_init,
            init: self.init,
            ..settings
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "The defaults are the seed experiment: 250 streams x 2000 steps, \
    windows of 5 steps (400 per epoch), hidden 6, Adagrad 0.1. Expect final_loss near 0.3466; \
    with --lags 5,6 it stays near 0.6931. With --rule r2rt (lags 3,8) the levels are 0.6616 \
    (nothing learned), 0.5192 (lag A only) and 0.4545 (both lags)."
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

impl ModelArgs {
    /// The settings these flags give, with `epochs` (not yet validated).
    #[must_use]
    pub fn settings(&self, epochs: usize) -> TrainSettings {
        TrainSettings {
            data_size: self.data_size.unwrap_or(TrainSettings::SEED.data_size),
            batch_size: self.batch_size,
            time_step: self.time_step,
            hidden: self.hidden,
            cell: self.cell,
            rule: self.rule,
            lags: self.lags.unwrap_or(self.rule.default_lags()),
            lr: self.lr,
            optimizer: self.optimizer,
            clip: self.optim.clip,
            adagrad_eps: self.optim.adagrad_eps,
            adagrad_init: self.optim.adagrad_init,
            init: self.optim.init,
            seed: self.seed,
            epochs,
            threads: self.threads.unwrap_or_else(default_threads),
            engine: self.engine,
            valid: self.data_flags.valid,
            vocab: self.data_flags.vocab.unwrap_or(TrainSettings::SEED.vocab),
            classes: self
                .data_flags
                .classes
                .unwrap_or(TrainSettings::SEED.classes),
            ..TrainSettings::SEED
        }
    }

    /// The flags' defaults (to tell which ones the user changed).
    ///
    /// # Panics
    /// Never: every model flag has a default.
    #[must_use]
    pub fn defaults() -> Self {
        /// A command line of the model flags alone.
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            model: ModelArgs,
        }
        <Only as clap::Parser>::try_parse_from(["bitrnn"])
            .expect("the model flags all have defaults")
            .model
    }

    /// The data flags.
    #[must_use]
    pub fn source(&self) -> DataSource {
        self.data_flags.source()
    }

    /// The validated training configuration for these flags and `epochs`, with the data
    /// (read, or generated) it trains on ([`crate::source::load`]).
    ///
    /// # Errors
    /// [`crate::Error::Usage`] naming the first flag out of range ([`TrainConfig::new`]);
    /// the data readers' errors naming the file.
    pub fn to_config(&self, epochs: usize) -> Result<TrainConfig> {
        if self.source().kind() == Source::Generator
            && self.data_flags.vocab.is_none()
            && self.data_flags.classes.is_none()
        {
            // Nothing to read, and nothing generated: the flags alone decide.
            return TrainConfig::new(self.settings(epochs));
        }
        Ok(self.load(epochs)?.0)
    }

    /// [`ModelArgs::to_config`] and the data.
    ///
    /// # Errors
    /// As [`ModelArgs::to_config`].
    pub fn load(&self, epochs: usize) -> Result<(TrainConfig, RunData)> {
        let source = self.source();
        self.data_flags.check_generator()?;
        let given = self.settings(epochs);
        let settings = TrainSettings {
            vocab: if source.kind() == Source::Generator {
                2
            } else {
                given.vocab
            },
            classes: if source.kind() == Source::Generator {
                2
            } else {
                given.classes
            },
            ..given
        };
        let model = (self.data_flags.vocab, self.data_flags.classes);
        let (settings, data) =
            crate::source::load(settings, &source, self.data_size.is_some(), model)?;
        Ok((TrainConfig::new(settings)?, data))
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
