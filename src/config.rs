//! The training configuration: raw flags are validated once, here, into a ready-to-use value.
//! Every error names the flag, the value and what is allowed.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

pub use crate::data::Rule;
pub use crate::model::Init;
pub use bitrnn_kernels::Cell;
pub use bitrnn_kernels::reference::Update;

/// Largest accepted `--hidden`: `w_hh` alone is then 64 MiB.
pub const MAX_HIDDEN: usize = 4096;
/// Largest accepted `--data-size`: 2^36 samples take 16 GiB as two bit planes.
pub const MAX_DATA_SIZE: usize = 1 << 36;
/// Largest accepted `--threads`.
pub const MAX_THREADS: usize = 1024;
/// Largest accepted `--epochs`: a million epochs of the seed's shape are 4e8 training steps,
/// 1.6 GB of losses kept for loss.csv; the memory estimate below bounds the rest.
pub const MAX_EPOCHS: usize = 1_000_000;
/// Largest memory estimate ([`TrainSettings::memory_bytes`]) accepted on any machine: 64 GiB.
/// A smaller machine lowers the limit to its own memory ([`memory_limit`]).
pub const MAX_MEMORY_BYTES: u64 = 64 << 30;

/// Which engine runs the windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fused SIMD kernels, sharded over threads.
    Simd,
    /// The scalar reference (plain loops, f32), single-threaded.
    Scalar,
}

/// The optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Adagrad, `accum += g^2; w -= lr g / sqrt(accum + eps)`, the accumulator from
    /// `--adagrad-init`; by default TensorFlow's (accumulator starts at 0.1, no epsilon).
    Adagrad,
    /// Plain stochastic gradient descent.
    Sgd,
}

/// Adagrad's initial accumulator value by default (TensorFlow's; `--adagrad-init`).
pub const ADAGRAD_INITIAL_ACCUMULATOR: f32 = 0.1;

/// The training settings as written: by the flags ([`crate::cli::ModelArgs`]), in a
/// checkpoint's `config` and in summary.json's `config` (this type's serde form, the same
/// keys and enum spellings in both). Not checked: only [`TrainConfig::new`] turns settings
/// into something a [`crate::train::Trainer`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Samples in the generated sequence.
    pub data_size: usize,
    /// The tutorial's `batch_size`: the length of each stream (the sequence is reshaped into
    /// `data_size / batch_size` parallel streams).
    pub batch_size: usize,
    /// Steps per training window (truncated BPTT length).
    pub time_step: usize,
    /// Hidden units.
    pub hidden: usize,
    /// The recurrent cell (`--cell`); a checkpoint written before there was a choice has no
    /// `cell` key and is the tanh RNN.
    #[serde(default, with = "cell_name")]
    pub cell: Cell,
    /// The rule of the targets (`--rule`); a checkpoint written before there was a choice
    /// has no `rule` key and is the seed rule.
    #[serde(default)]
    pub rule: Rule,
    /// The rule's lags (a, b).
    pub lags: (usize, usize),
    /// Learning rate.
    pub lr: f32,
    pub optimizer: Optimizer,
    /// Each entry of the window's gradient clamped to `[-clip, clip]` before the optimizer's
    /// step (`--clip`; `None`, null in JSON: not clipped). Absent in a checkpoint written
    /// before there was a choice: no clip.
    #[serde(default)]
    pub clip: Option<f32>,
    /// Adagrad's epsilon, `sqrt(accum + eps)` (`--adagrad-eps`; absent: 0, TensorFlow's).
    #[serde(default)]
    pub adagrad_eps: f32,
    /// Adagrad's initial accumulator (`--adagrad-init`; absent:
    /// [`ADAGRAD_INITIAL_ACCUMULATOR`], TensorFlow's 0.1).
    #[serde(default = "default_adagrad_init")]
    pub adagrad_init: f32,
    /// The initial weights (`--init`; `"default"`, `"pytorch"`, `"normal:STD"` in JSON;
    /// absent: default).
    #[serde(default, with = "init_name")]
    pub init: Init,
    /// Seed of the data and the initial weights.
    pub seed: u64,
    /// Epochs to train.
    pub epochs: usize,
    /// Worker threads (`--threads`); results do not depend on it.
    pub threads: usize,
    pub engine: Engine,
    /// Where the sequence comes from: the generator (the default, and what a checkpoint
    /// written before there was a choice holds), a text or NumPy files (their paths travel
    /// beside the settings: [`crate::sequence`]).
    #[serde(default)]
    pub source: Source,
    /// Input symbols `V` and classes `C` (2 and 2 for the generator's bits; from the data
    /// otherwise).
    #[serde(default = "two")]
    pub vocab: usize,
    #[serde(default = "two")]
    pub classes: usize,
    /// The fraction of the data held out at its tail for the held-out loss (`--valid`); 0:
    /// none.
    #[serde(default)]
    pub valid: f64,
}

/// The serde default of `vocab` and `classes`: the bits'.
fn two() -> usize {
    bitrnn_kernels::CLASSES
}

/// The kind of data a run trains on (the paths are not settings: a text or NumPy file may
/// move between a run and its resume).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The built-in generator (`--rule`, `--lags`, `--data-size`, `--seed`): bit planes.
    #[default]
    Generator,
    /// `--text FILE`: next-byte prediction over the file's alphabet.
    Text,
    /// `--data DIR` or `--inputs X.npy --targets Y.npy`: symbol ids.
    Npy,
}

/// The length of each stream in the seed experiment (the tutorial's `batch_size`), also the
/// stream length of `bench` and `verify`, so that they measure and check `train`'s layout.
pub const BATCH_SIZE: usize = 2_000;

impl TrainSettings {
    /// The seed experiment's settings (SEED.md): the defaults of the flags, on one thread.
    pub const SEED: Self = Self {
        data_size: 500_000,
        batch_size: BATCH_SIZE,
        time_step: 5,
        hidden: 6,
        cell: Cell::Rnn,
        rule: Rule::Seed,
        lags: (1, 2),
        lr: 0.1,
        optimizer: Optimizer::Adagrad,
        clip: None,
        adagrad_eps: 0.0,
        adagrad_init: ADAGRAD_INITIAL_ACCUMULATOR,
        init: Init::Default,
        seed: 0,
        epochs: 10,
        threads: 1,
        engine: Engine::Simd,
        source: Source::Generator,
        vocab: bitrnn_kernels::CLASSES,
        classes: bitrnn_kernels::CLASSES,
        valid: 0.0,
    };

    /// The flags a resumed run takes from its checkpoint (all but `--epochs` and
    /// `--threads`), each with its value as messages show it.
    #[must_use]
    pub fn model_flags(&self) -> [(&'static str, String); 16] {
        [
            ("--data-size", format!("{:?}", self.data_size)),
            ("--valid", format!("{:?}", self.valid)),
            ("--batch-size", format!("{:?}", self.batch_size)),
            ("--time-step", format!("{:?}", self.time_step)),
            ("--hidden", format!("{:?}", self.hidden)),
            ("--cell", self.cell.name().to_string()),
            ("--rule", self.rule.to_string()),
            ("--lags", format!("{:?}", self.lags)),
            ("--lr", format!("{:?}", self.lr)),
            ("--optimizer", format!("{:?}", self.optimizer)),
            (
                "--clip",
                self.clip.map_or_else(|| "off".into(), |c| format!("{c:?}")),
            ),
            ("--adagrad-eps", format!("{:?}", self.adagrad_eps)),
            ("--adagrad-init", format!("{:?}", self.adagrad_init)),
            ("--init", self.init.to_string()),
            ("--seed", format!("{:?}", self.seed)),
            ("--engine", format!("{:?}", self.engine)),
        ]
    }

    /// The optimizer's step settings: `lr`, `clip` and `adagrad_eps`.
    #[must_use]
    pub fn update(&self) -> Update<f32> {
        Update {
            lr: self.lr,
            clip: self.clip,
            eps: self.adagrad_eps,
        }
    }

    /// The parameters' layout: the cell, hidden size, vocabulary and classes.
    #[must_use]
    pub fn layout(&self) -> bitrnn_kernels::Layout {
        bitrnn_kernels::Layout::with_symbols(self.cell, self.hidden, self.vocab, self.classes)
    }
    /// Whether the run's inputs are symbol ids (the kernels' symbols' path) rather than the
    /// generator's bit planes.
    #[must_use]
    pub fn symbols(&self) -> bool {
        self.source != Source::Generator
    }
    /// Positions trained on: `data_size` less the held-out tail (`--valid`).
    #[must_use]
    pub fn train_size(&self) -> usize {
        self.data_size - crate::source::held_out(self.data_size, self.valid)
    }
    /// Parallel streams: `train_size / batch_size` (`data_size / batch_size` without
    /// `--valid`).
    #[must_use]
    pub fn streams(&self) -> usize {
        self.train_size() / self.batch_size
    }
    /// Training windows per epoch: `batch_size / time_step`.
    #[must_use]
    pub fn windows_per_epoch(&self) -> usize {
        self.batch_size / self.time_step
    }
    /// Sample-steps per window: `streams * time_step`.
    #[must_use]
    pub fn sample_steps_per_window(&self) -> usize {
        self.streams() * self.time_step
    }

    /// The bytes a run of this config allocates, from the sizes of its buffers (allocator
    /// overhead, the thread pool's stacks, the plot and the planes of one chunk of windows
    /// are not counted):
    ///
    /// - `data`: the x and y bit planes, `2 * 8 * ceil(data_size / 64)`;
    /// - `losses`: one `f32` per training step, `4 * epochs * windows_per_epoch`;
    /// - `weights`: params, Adagrad accumulator, summed gradient (`3 P` f32 for the cell's
    ///   `P` parameters, `H^2 + 5H + 2` for the RNN), the kernels' `w_hh` and its transpose
    ///   (`2 G H^2` for `G` gates), and one gradient per shard of the SIMD engine
    ///   ([`crate::shards::shard_ranges`], at most [`crate::shards::MAX_SHARDS`]);
    /// - `activations`: the SIMD workspace, one vector (`4 LANES` bytes) per lane group
    ///   for each of `(T + 1)(H + 2)` states and inputs, `T G H` values of `dz` and `2T + 2`
    ///   more, and for the gated cells `T G H` gates, `T H` more per step (`tanh c` or
    ///   `W_hn h`; the GRU's `dn`, the LSTM's `c`) and `(G + 1) H` of scratch; the scalar
    ///   engine instead keeps two states (`2 S H` f32 per state row) and the window's bits.
    #[must_use]
    pub fn memory_bytes(&self) -> MemoryEstimate {
        let n = |v: usize| v as u128;
        let (h, t, s) = (n(self.hidden), n(self.time_step), n(self.streams()));
        let lanes = n(bitrnn_kernels::lanes::LANES);
        let groups = s.div_ceil(lanes);
        let layout = self.layout();
        let params = n(layout.len());
        let gh = n(layout.gate_rows());
        let gated = match self.cell {
            Cell::Rnn => 0,
            Cell::Gru | Cell::Lstm => t * gh + 2 * t * h + (gh + h) + h,
        };
        // The symbols' path: `dl` and the logits (`(T + 1) C`), the pre-activations (`G H`),
        // the GRU's `n` input side (`H`), and the transposed states (`(T + 1) H` per
        // stream), per lane group.
        let c = n(self.classes);
        let symbols = if self.symbols() {
            (t + 1) * c + gh + h + (t + 1) * h
        } else {
            0
        };
        let (activations, shards) = match self.engine {
            Engine::Simd => (
                4 * lanes * groups * ((t + 1) * (h + 2) + t * gh + 2 * t + 2 + gated + symbols),
                crate::shards::run_shards(self).len(),
            ),
            Engine::Scalar => (8 * s * h * n(self.cell.state_rows()) + 2 * s * t, 1),
        };
        let sat = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        MemoryEstimate {
            // The generator's bit planes; a sequence's ids, a byte each up to 256 symbols.
            data: if self.symbols() {
                let width = |n: usize| if n <= 256 { 1 } else { 2 };
                sat(n(self.data_size) * n(width(self.vocab) + width(self.classes)))
            } else {
                data_bytes(self.data_size)
            },
            losses: sat(4 * n(self.epochs) * n(self.windows_per_epoch())),
            weights: sat(4 * ((3 + n(shards)) * params + 2 * gh * h)),
            activations: sat(activations),
        }
    }

    /// Refuses a config whose [`memory_bytes`](Self::memory_bytes) exceed `limit` bytes,
    /// naming the flags that size the largest part. An estimate within the machine's memory
    /// is no promise that the run fits (other processes, the page cache), but one above it
    /// would end in an allocation failure (an abort) or the OOM killer after the data was
    /// generated: this turns that into an error before any work.
    pub fn check_memory(&self, limit: u64) -> Result<()> {
        let m = self.memory_bytes();
        let total = m.total();
        if total <= limit {
            return Ok(());
        }
        let (part, flags) = [
            (m.data, "data bit planes", "a smaller --data-size"),
            (
                m.losses,
                "loss of every step",
                "fewer --epochs, or fewer windows per epoch (a smaller --batch-size or a larger \
                 --time-step)",
            ),
            (m.weights, "weights and gradients", "a smaller --hidden"),
            (
                m.activations,
                "activations",
                "a smaller --data-size, --hidden or --time-step",
            ),
        ]
        .into_iter()
        .max_by_key(|p| p.0)
        .map(|(_, what, flags)| (what, flags))
        .expect("four parts");
        Err(Error::Usage(format!(
            "--data-size {}, --batch-size {}, --time-step {}, --hidden {}, --epochs {}: the run \
             needs about {} of memory (largest part: the {part}), more than the {} allowed \
             ({}); use {flags}",
            self.data_size,
            self.batch_size,
            self.time_step,
            self.hidden,
            self.epochs,
            human_bytes(total),
            human_bytes(limit),
            if limit < MAX_MEMORY_BYTES {
                "this machine's memory"
            } else {
                "the most bitrnn accepts"
            },
        )))
    }

    /// A one-line description for plot titles and logs.
    #[must_use]
    pub fn describe(&self) -> String {
        let cell = match self.cell {
            Cell::Rnn => String::new(),
            c => format!("{} ", c.name()),
        };
        let data = if self.symbols() {
            format!("{} symbols -> {} classes", self.vocab, self.classes)
        } else {
            format!("rule {}, lags ({},{})", self.rule, self.lags.0, self.lags.1)
        };
        format!(
            "{cell}hidden {}, {data}, time_step {}, {} streams x {}, {:?} lr {}",
            self.hidden,
            self.time_step,
            self.streams(),
            self.batch_size,
            self.optimizer,
            self.lr
        )
        .replace("Adagrad", "adagrad")
        .replace("Sgd", "sgd")
            + &self.describe_optim()
    }

    /// The settings that are away from their defaults among `clip`, `adagrad_eps`,
    /// `adagrad_init` (Adagrad only) and `init`, as `, clip 5, eps 1e-8, accum0 0, init
    /// normal:0.01` (empty with the defaults).
    #[must_use]
    pub fn describe_optim(&self) -> String {
        let mut out = String::new();
        if let Some(c) = self.clip {
            out += &format!(", clip {c}");
        }
        if self.optimizer == Optimizer::Adagrad {
            if self.adagrad_eps != 0.0 {
                out += &format!(", eps {:e}", self.adagrad_eps);
            }
            if self.adagrad_init != ADAGRAD_INITIAL_ACCUMULATOR {
                out += &format!(", accum0 {}", self.adagrad_init);
            }
        }
        if self.init != Init::Default {
            out += &format!(", init {}", self.init);
        }
        out
    }
}

/// A validated training configuration: the only way to one is [`TrainConfig::new`] (or
/// deserializing, which calls it), so a `TrainConfig` is proof that its settings were
/// checked, and the trainer does not check them again. Its settings are read through
/// `Deref` (`cfg.hidden`, `cfg.streams()`) and cannot be changed: to vary one, build new
/// [`TrainSettings`] from [`TrainConfig::settings`] and validate those.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "TrainSettings", try_from = "TrainSettings")]
pub struct TrainConfig {
    settings: TrainSettings,
}

impl TrainConfig {
    /// Checks every setting; the error names the flag, the value and what is allowed.
    ///
    /// # Errors
    /// [`Error::Usage`] for the first setting out of its range, or a run that would not fit
    /// in [`memory_limit`].
    pub fn new(settings: TrainSettings) -> Result<Self> {
        let s = &settings;
        let usage = |m: String| Err(Error::Usage(m));
        if s.hidden == 0 || s.hidden > MAX_HIDDEN {
            return usage(format!(
                "--hidden {}: must be between 1 and {MAX_HIDDEN}",
                s.hidden
            ));
        }
        if s.batch_size == 0 {
            return usage(
                "--batch-size 0: must be at least 1 (it is the length of each stream)".into(),
            );
        }
        if s.time_step == 0 || s.time_step > s.batch_size {
            return usage(format!(
                "--time-step {}: must be between 1 and --batch-size ({})",
                s.time_step, s.batch_size
            ));
        }
        if !(s.valid.is_finite() && (0.0..1.0).contains(&s.valid)) {
            return usage(format!(
                "--valid {}: must be at least 0 and below 1 (the fraction held out)",
                s.valid
            ));
        }
        if s.data_size < s.batch_size || s.data_size > MAX_DATA_SIZE {
            return usage(format!(
                "--data-size {}: must be between --batch-size ({}, one stream) and {MAX_DATA_SIZE}",
                s.data_size, s.batch_size
            ));
        }
        if s.train_size() < s.batch_size {
            return usage(format!(
                "--valid {}: holds out {} of {} positions and leaves {} for training, fewer \
                 than one stream of --batch-size {}",
                s.valid,
                s.data_size - s.train_size(),
                s.data_size,
                s.train_size(),
                s.batch_size
            ));
        }
        if s.valid > 0.0 {
            crate::source::check_held_out(s.data_size - s.train_size(), s)?;
        }
        let max = bitrnn_kernels::MAX_SYMBOLS;
        let bits = s.source == Source::Generator;
        if bits && !(s.vocab == 2 && s.classes == 2) {
            return usage(format!(
                "vocabulary {} and {} classes: the generator's data are bits (2 and 2)",
                s.vocab, s.classes
            ));
        }
        if !(1..=max).contains(&s.vocab) || !(2..=max).contains(&s.classes) {
            return usage(format!(
                "vocabulary {} and {} classes: must be 1..={max} symbols and 2..={max} classes",
                s.vocab, s.classes
            ));
        }
        check_lags(s.lags, s.data_size)?;
        if !(s.lr.is_finite() && s.lr > 0.0) {
            return usage(format!("--lr {}: must be a finite number above 0", s.lr));
        }
        check_optim(s)?;
        if s.epochs == 0 || s.epochs > MAX_EPOCHS {
            return usage(format!(
                "--epochs {}: must be between 1 and {MAX_EPOCHS}",
                s.epochs
            ));
        }
        if s.threads == 0 || s.threads > MAX_THREADS {
            return usage(format!(
                "--threads {}: must be between 1 and {MAX_THREADS}",
                s.threads
            ));
        }
        s.check_memory(memory_limit())?;
        Ok(Self { settings })
    }

    /// The seed experiment's settings ([`TrainSettings::SEED`]), validated.
    ///
    /// # Panics
    /// Never on a machine with the megabyte the seed run needs.
    #[must_use]
    pub fn seed_defaults() -> Self {
        Self::new(TrainSettings::SEED).expect("the seed's settings are valid")
    }

    /// The settings, to build a variant from (`TrainSettings { threads: 1, ..*cfg.settings() }`).
    #[must_use]
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }
}

impl std::ops::Deref for TrainConfig {
    type Target = TrainSettings;
    fn deref(&self) -> &TrainSettings {
        &self.settings
    }
}

impl TryFrom<TrainSettings> for TrainConfig {
    type Error = Error;
    fn try_from(settings: TrainSettings) -> Result<Self> {
        Self::new(settings)
    }
}

impl From<TrainConfig> for TrainSettings {
    fn from(cfg: TrainConfig) -> Self {
        cfg.settings
    }
}

/// The serde form of a [`Cell`]: its name (`"rnn"`, `"gru"`, `"lstm"`), as on the command
/// line.
pub mod cell_name {
    use super::Cell;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// # Errors
    /// Never (the serializer's own errors aside).
    pub fn serialize<S: Serializer>(cell: &Cell, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(cell.name())
    }

    /// # Errors
    /// A name that is not one of the cells'.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cell, D::Error> {
        let name = String::deserialize(d)?;
        super::parse_cell(&name).map_err(D::Error::custom)
    }
}

/// The serde form of an [`Init`]: its `--init` value (`"default"`, `"pytorch"`,
/// `"normal:0.01"`).
pub mod init_name {
    use super::Init;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// # Errors
    /// Never (the serializer's own errors aside).
    pub fn serialize<S: Serializer>(init: &Init, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(init)
    }

    /// # Errors
    /// A value that is not one of `--init`'s.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Init, D::Error> {
        let name = String::deserialize(d)?;
        Init::parse(&name).map_err(D::Error::custom)
    }
}

/// The default of [`TrainSettings::adagrad_init`] for a config written without it.
fn default_adagrad_init() -> f32 {
    ADAGRAD_INITIAL_ACCUMULATOR
}

/// A cell by its name, for `--cell` and the serde form.
///
/// # Errors
/// The name and the allowed ones, when it is not one of them.
pub fn parse_cell(name: &str) -> std::result::Result<Cell, String> {
    Cell::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| format!("unknown cell '{name}': use rnn, gru or lstm"))
}

/// Checks `--clip`, `--adagrad-eps`, `--adagrad-init` and `--init`.
fn check_optim(s: &TrainSettings) -> Result<()> {
    let usage = |m: String| Err(Error::Usage(m));
    if let Some(c) = s.clip
        && !(c.is_finite() && c > 0.0)
    {
        return usage(format!("--clip {c}: must be a finite number above 0"));
    }
    if !(s.adagrad_eps.is_finite() && s.adagrad_eps >= 0.0) {
        return usage(format!(
            "--adagrad-eps {}: must be a finite number, 0 or above",
            s.adagrad_eps
        ));
    }
    if !(s.adagrad_init.is_finite() && s.adagrad_init >= 0.0) {
        return usage(format!(
            "--adagrad-init {}: must be a finite number, 0 or above",
            s.adagrad_init
        ));
    }
    if s.optimizer == Optimizer::Adagrad && s.adagrad_eps == 0.0 && s.adagrad_init == 0.0 {
        return usage(
            "--adagrad-init 0 with --adagrad-eps 0: Adagrad would divide by zero on a zero \
             gradient (0 / sqrt(0 + 0)); give one of them a value above 0"
                .into(),
        );
    }
    if let Init::Normal { std } = s.init
        && !(std.is_finite() && std > 0.0)
    {
        return usage(format!(
            "--init {}: STD must be a finite number above 0",
            s.init
        ));
    }
    Ok(())
}

/// Checks the rule's lags against the data size (for `train` and `generate`).
///
/// # Errors
/// [`Error::Usage`] naming `--lags` unless they are two distinct positive integers below
/// `data_size`.
pub fn check_lags((a, b): (usize, usize), data_size: usize) -> Result<()> {
    if a == 0 || b == 0 || a == b || a.max(b) >= data_size {
        return Err(Error::Usage(format!(
            "--lags {a},{b}: must be two distinct positive integers below --data-size ({data_size})"
        )));
    }
    Ok(())
}

/// Bytes of the x and y bit planes of `data_size` samples: `2 * 8 * ceil(data_size / 64)`.
#[must_use]
pub fn data_bytes(data_size: usize) -> u64 {
    16 * (data_size as u64).div_ceil(64)
}

/// The parts of [`TrainSettings::memory_bytes`], in bytes (saturated at `u64::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub data: u64,
    pub losses: u64,
    pub weights: u64,
    pub activations: u64,
}

impl MemoryEstimate {
    /// The sum of the parts (saturating).
    #[must_use]
    pub fn total(&self) -> u64 {
        [self.data, self.losses, self.weights, self.activations]
            .into_iter()
            .fold(0u64, u64::saturating_add)
    }
}

/// All cores, as the default of `--threads`.
#[must_use]
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `bytes` as `12.3 GiB` (binary prefixes, up to EiB).
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The most memory a run may plan for: [`MAX_MEMORY_BYTES`], or less where this machine has
/// less (Linux: `MemTotal` of `/proc/meminfo`, and the cgroup v2 limit `memory.max` of this
/// process's cgroup when there is one). Read once per process.
#[must_use]
pub fn memory_limit() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        [physical_memory(), cgroup_memory_limit()]
            .into_iter()
            .flatten()
            .fold(MAX_MEMORY_BYTES, u64::min)
    })
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The cgroup v2 `memory.max` of this process's cgroup (`None` when unlimited or unknown).
fn cgroup_memory_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // cgroup v2: the one line `0::/path`.
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.max", path.trim())).ok()?;
    max.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(settings: TrainSettings) -> String {
        match TrainConfig::new(settings) {
            Err(Error::Usage(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seed_defaults_are_valid_and_small() {
        let cfg = TrainConfig::new(TrainSettings::SEED).unwrap();
        let m = cfg.memory_bytes();
        // 500000 samples: 2 x 7813 words; 250 streams in 32 lane groups of 6 x 48 + 30 + 12.
        assert_eq!(m.data, 16 * 7813);
        assert_eq!(m.activations, 32 * 32 * (6 * 8 + 30 + 12));
        assert_eq!(m.losses, 4 * 10 * 400);
        assert!(m.total() < 1 << 20, "{m:?}");
    }

    #[test]
    fn every_setting_is_bounded() {
        let base = || TrainSettings::SEED;
        for (cfg, flag) in [
            (
                TrainSettings {
                    epochs: 0,
                    ..base()
                },
                "--epochs 0",
            ),
            (
                TrainSettings {
                    epochs: MAX_EPOCHS + 1,
                    ..base()
                },
                "--epochs 1000001",
            ),
            (TrainSettings { lr: -0.0, ..base() }, "--lr -0"),
            (
                TrainSettings {
                    lr: f32::MIN_POSITIVE / 2.0,
                    threads: 0,
                    ..base()
                },
                "--threads 0",
            ),
            (
                TrainSettings {
                    lags: (1, 500_000),
                    ..base()
                },
                "--lags 1,500000",
            ),
            (
                TrainSettings {
                    data_size: usize::MAX,
                    ..base()
                },
                "--data-size 18446744073709551615",
            ),
        ] {
            let m = usage(cfg);
            assert!(m.starts_with(flag), "{m}");
        }
    }

    /// `--clip`, `--adagrad-eps`, `--adagrad-init` and `--init`: each bad value is one line
    /// naming the flag; the edges of the allowed ranges are accepted.
    #[test]
    fn the_optimizer_and_init_settings_are_bounded() {
        let base = || TrainSettings::SEED;
        let clip = |c| TrainSettings {
            clip: Some(c),
            ..base()
        };
        let eps = |e| TrainSettings {
            adagrad_eps: e,
            ..base()
        };
        let init = |a| TrainSettings {
            adagrad_init: a,
            ..base()
        };
        let normal = |std| TrainSettings {
            init: Init::Normal { std },
            ..base()
        };
        for (cfg, flag) in [
            (clip(0.0), "--clip 0: must be a finite number above 0"),
            (clip(-5.0), "--clip -5"),
            (clip(f32::NAN), "--clip NaN"),
            (clip(f32::INFINITY), "--clip inf"),
            (
                eps(-1e-8),
                "--adagrad-eps -0.00000001: must be a finite number, 0 or above",
            ),
            (eps(f32::NAN), "--adagrad-eps NaN"),
            (eps(f32::INFINITY), "--adagrad-eps inf"),
            (
                init(-0.1),
                "--adagrad-init -0.1: must be a finite number, 0 or above",
            ),
            (init(f32::NAN), "--adagrad-init NaN"),
            (init(f32::NEG_INFINITY), "--adagrad-init -inf"),
            (
                init(0.0),
                "--adagrad-init 0 with --adagrad-eps 0: Adagrad would divide by zero",
            ),
            (
                normal(0.0),
                "--init normal:0: STD must be a finite number above 0",
            ),
            (normal(-0.01), "--init normal:-0.01"),
            (normal(f64::NAN), "--init normal:NaN"),
            (normal(f64::INFINITY), "--init normal:inf"),
        ] {
            let m = usage(cfg);
            assert!(m.starts_with(flag), "{m}");
            assert!(!m.contains('\n'), "{m}");
        }
        for ok in [
            clip(f32::MIN_POSITIVE),
            clip(f32::MAX),
            eps(0.0),
            eps(f32::MAX),
            init(f32::MAX),
            TrainSettings {
                adagrad_init: 0.0,
                adagrad_eps: 1e-8,
                ..base()
            },
            // SGD never divides: both zero is allowed there.
            TrainSettings {
                optimizer: Optimizer::Sgd,
                adagrad_init: 0.0,
                ..base()
            },
            normal(1e-300),
            TrainSettings {
                init: Init::Pytorch,
                ..base()
            },
        ] {
            assert!(TrainConfig::new(ok).is_ok(), "{ok:?}");
        }
    }

    /// The settings' defaults are the runs' before the settings existed, and the step's
    /// settings come from them.
    #[test]
    fn the_optimizer_defaults_are_tensorflows() {
        let s = TrainSettings::SEED;
        assert_eq!(s.update(), Update::plain(0.1));
        assert_eq!(
            (s.clip, s.adagrad_eps, s.adagrad_init, s.init),
            (None, 0.0, 0.1, Init::Default)
        );
        let flags = s.model_flags();
        let flag = |name: &str| flags.iter().find(|(f, _)| *f == name).unwrap().1.clone();
        assert_eq!(flag("--clip"), "off");
        assert_eq!(flag("--adagrad-eps"), "0.0");
        assert_eq!(flag("--adagrad-init"), "0.1");
        assert_eq!(flag("--init"), "default");
        let min_char = TrainSettings {
            clip: Some(5.0),
            adagrad_eps: 1e-8,
            adagrad_init: 0.0,
            init: Init::Normal { std: 0.01 },
            ..s
        };
        assert_eq!(
            min_char.update(),
            Update {
                lr: 0.1,
                clip: Some(5.0),
                eps: 1e-8
            }
        );
        let flags = min_char.model_flags();
        assert!(flags.contains(&("--clip", "5.0".into())), "{flags:?}");
        assert!(
            flags.contains(&("--init", "normal:0.01".into())),
            "{flags:?}"
        );
        assert!(
            min_char
                .describe()
                .ends_with(", clip 5, eps 1e-8, accum0 0, init normal:0.01"),
            "{}",
            min_char.describe()
        );
        assert!(!s.describe().contains("clip"), "{}", s.describe());
    }

    /// A run far beyond any machine's memory is a usage error naming the flags and the
    /// largest part, never an allocation.
    #[test]
    fn memory_beyond_the_limit_is_a_usage_error() {
        let huge = TrainSettings {
            hidden: MAX_HIDDEN,
            data_size: MAX_DATA_SIZE,
            ..TrainSettings::SEED
        };
        let m = usage(huge);
        assert!(
            m.starts_with("--data-size 68719476736, --batch-size 2000"),
            "{m}"
        );
        assert!(
            m.contains("TiB of memory (largest part: the activations)"),
            "{m}"
        );
        assert!(!m.contains('\n'));
        let steps = TrainSettings {
            data_size: MAX_DATA_SIZE,
            batch_size: MAX_DATA_SIZE,
            time_step: 1,
            ..TrainSettings::SEED
        };
        assert!(usage(steps).contains("largest part: the loss of every step"));
        // The limit is the caller's: the seed's run does not fit in 1 KiB.
        let seed = TrainSettings::SEED;
        let m = seed.check_memory(1024).unwrap_err().to_string();
        assert!(m.contains("more than the 1.0 KiB allowed"), "{m}");
        assert!(seed.check_memory(seed.memory_bytes().total()).is_ok());
        assert!(memory_limit() <= MAX_MEMORY_BYTES);
    }

    #[test]
    fn human_bytes_uses_binary_prefixes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 30), "64.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    /// The serde form is what checkpoints and summary.json hold: the same keys in the same
    /// order and the enums in lower case, and reading it validates.
    #[test]
    fn the_json_form_is_the_settings_and_reading_it_validates() {
        let json = serde_json::to_string(&TrainConfig::seed_defaults()).unwrap();
        assert_eq!(
            json,
            "{\"data_size\":500000,\"batch_size\":2000,\"time_step\":5,\"hidden\":6,\
             \"cell\":\"rnn\",\"rule\":\"seed\",\"lags\":[1,2],\"lr\":0.1,\"optimizer\":\"adagrad\",\
             \"clip\":null,\"adagrad_eps\":0.0,\"adagrad_init\":0.1,\"init\":\"default\",\
             \"seed\":0,\"epochs\":10,\"threads\":1,\"engine\":\"simd\",\
             \"source\":\"generator\",\"vocab\":2,\"classes\":2,\"valid\":0.0}"
        );
        // A config written before --clip, --adagrad-eps, --adagrad-init and --init existed
        // is the run of their defaults.
        let before = json.replace(
            "\"clip\":null,\"adagrad_eps\":0.0,\"adagrad_init\":0.1,\"init\":\"default\",",
            "",
        );
        assert_eq!(
            serde_json::from_str::<TrainConfig>(&before).unwrap(),
            TrainConfig::seed_defaults()
        );
        let min_char: TrainConfig = serde_json::from_str(&json.replace(
            "\"clip\":null,\"adagrad_eps\":0.0,\"adagrad_init\":0.1,\"init\":\"default\"",
            "\"clip\":5.0,\"adagrad_eps\":1e-8,\"adagrad_init\":0.0,\"init\":\"normal:0.01\"",
        ))
        .unwrap();
        assert_eq!(
            (
                min_char.clip,
                min_char.adagrad_eps,
                min_char.adagrad_init,
                min_char.init
            ),
            (Some(5.0), 1e-8, 0.0, Init::Normal { std: 0.01 })
        );
        let again: TrainConfig =
            serde_json::from_str(&serde_json::to_string(&min_char).unwrap()).unwrap();
        assert_eq!(again, min_char);
        let pytorch: TrainConfig =
            serde_json::from_str(&json.replace("\"default\"", "\"pytorch\"")).unwrap();
        assert_eq!(pytorch.init, Init::Pytorch);
        for (bad, why) in [
            (
                json.replace("\"default\"", "\"glorot\""),
                "'glorot': expected default",
            ),
            (json.replace("\"clip\":null", "\"clip\":0.0"), "--clip 0"),
            (
                json.replace("\"default\"", "\"normal:-1\""),
                "--init normal:-1",
            ),
        ] {
            let e = serde_json::from_str::<TrainConfig>(&bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(
            serde_json::from_str::<TrainConfig>(&json).unwrap(),
            TrainConfig::seed_defaults()
        );
        let sgd = json
            .replace("\"adagrad\"", "\"sgd\"")
            .replace("simd", "scalar");
        let cfg: TrainConfig = serde_json::from_str(&sgd).unwrap();
        assert_eq!(
            (cfg.optimizer, cfg.engine),
            (Optimizer::Sgd, Engine::Scalar)
        );
        // A config written before `rule` existed is the seed rule.
        assert_eq!(
            serde_json::from_str::<TrainConfig>(&json.replace("\"rule\":\"seed\",", "")).unwrap(),
            TrainConfig::seed_defaults()
        );
        // A config written before `cell` existed is the tanh RNN; the names are the flag's.
        assert_eq!(
            serde_json::from_str::<TrainConfig>(&json.replace("\"cell\":\"rnn\",", "")).unwrap(),
            TrainConfig::seed_defaults()
        );
        let lstm: TrainConfig = serde_json::from_str(&json.replace("\"rnn\"", "\"lstm\"")).unwrap();
        assert_eq!(lstm.cell, Cell::Lstm);
        let e = serde_json::from_str::<TrainSettings>(&json.replace("\"rnn\"", "\"Lstm\""));
        assert!(e.unwrap_err().to_string().contains("unknown cell 'Lstm'"));
        let r2rt: TrainConfig =
            serde_json::from_str(&json.replace("\"rule\":\"seed\"", "\"rule\":\"r2rt\"")).unwrap();
        assert_eq!(r2rt.rule, Rule::R2rt);
        let e = serde_json::from_str::<TrainConfig>(&json.replace("\"hidden\":6", "\"hidden\":0"));
        assert!(e.unwrap_err().to_string().contains("--hidden 0"));
        for bad in [
            json.replace("simd", "Simd"),
            json.replace("\"seed\",", "\"Seed\","),
            json.replace("\"seed\",", "\"r2rt2\","),
            json.replace(",\"seed\":0", ""),
        ] {
            assert!(
                serde_json::from_str::<TrainSettings>(&bad).is_err(),
                "{bad}"
            );
        }
    }
}
