//! Where a run's sequence comes from, and the held-out tail: the bridge between the data
//! flags (`--text`, `--data`, `--inputs`/`--targets`, `--valid`) and the trainer's
//! [`TrainData`].
//!
//! - The generator (no data flag): the bits of `--rule` and `--lags`, `--data-size` samples
//!   from `--seed`, `V = C = 2`.
//! - `--text FILE` (`--bytes` for all 256 byte values): next-byte prediction over the file's
//!   alphabet ([`Sequence::from_text`]); a model that has an alphabet (eval, sample, resume)
//!   reads with it.
//! - `--data DIR` (`DIR/x.npy`, `DIR/y.npy`) or `--inputs X.npy --targets Y.npy`: integer
//!   arrays ([`Sequence::from_npy`]), `V` and `C` from `--vocab`/`--classes` or the data.
//!
//! With a file, `data_size` is the file's length (`--data-size` is the generator's flag).
//! `--valid F` keeps the last `round(F n)` of the `n = data_size` positions out of training
//! (training uses [`TrainSettings::train_size`]), for either source, and
//! [`held_out_streams`] cuts them into streams for the per-epoch loss.

use crate::config::{Source, TrainSettings};
use crate::data::{Dataset, ReferenceLevel};
use crate::error::{Error, Result};
use crate::planes::TrainData;
use crate::sequence::Sequence;
use std::path::{Path, PathBuf};

/// The data flags, as given.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum DataSource {
    /// The built-in generator.
    #[default]
    Generator,
    /// `--text FILE`, with `--bytes`.
    Text { path: PathBuf, all_bytes: bool },
    /// `--inputs X --targets Y` (or `--data DIR`: `DIR/x.npy`, `DIR/y.npy`).
    Npy { inputs: PathBuf, targets: PathBuf },
}

impl DataSource {
    /// The source of the data flags: at most one of `text`, `data` and the pair `inputs`
    /// with `targets` (clap enforces it).
    #[must_use]
    pub fn from_flags(
        text: Option<&Path>,
        all_bytes: bool,
        data: Option<&Path>,
        inputs: Option<&Path>,
        targets: Option<&Path>,
    ) -> Self {
        match (text, data, inputs, targets) {
            (Some(p), ..) => Self::Text {
                path: p.to_path_buf(),
                all_bytes,
            },
            (_, Some(dir), ..) => Self::Npy {
                inputs: dir.join("x.npy"),
                targets: dir.join("y.npy"),
            },
            (_, _, Some(x), Some(y)) => Self::Npy {
                inputs: x.to_path_buf(),
                targets: y.to_path_buf(),
            },
            _ => Self::Generator,
        }
    }

    /// The kind stored in the settings.
    #[must_use]
    pub fn kind(&self) -> Source {
        match self {
            Self::Generator => Source::Generator,
            Self::Text { .. } => Source::Text,
            Self::Npy { .. } => Source::Npy,
        }
    }

    /// The file named in messages about the data's shape.
    #[must_use]
    pub fn name(&self) -> PathBuf {
        match self {
            Self::Generator => PathBuf::from("the generated data"),
            Self::Text { path, .. } => path.clone(),
            Self::Npy { inputs, .. } => inputs.clone(),
        }
    }

    /// A short description for reports and plot titles.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Generator => "generator".into(),
            Self::Text { path, .. } => format!("text {}", path.display()),
            Self::Npy { inputs, targets } => {
                format!("npy {} -> {}", inputs.display(), targets.display())
            }
        }
    }

    /// Reads the sequence of a file source (`None` for the generator). `alphabet`: the
    /// model's, for a text read by a trained model; `vocab`, `classes`: `--vocab` and
    /// `--classes` for `.npy` (or a model's).
    ///
    /// # Errors
    /// What [`Sequence`]'s readers refuse, naming the file.
    pub fn read(
        &self,
        alphabet: Option<&[u8]>,
        vocab: Option<usize>,
        classes: Option<usize>,
    ) -> Result<Option<Sequence>> {
        // A data file that cannot be read is bad input (exit 2), not a failed output.
        let input = |e: Error| match e {
            Error::Io { path, source } => Error::BadFile {
                path,
                reason: format!("cannot be read: {source}"),
            },
            e => e,
        };
        self.read_files(alphabet, vocab, classes).map_err(input)
    }

    fn read_files(
        &self,
        alphabet: Option<&[u8]>,
        vocab: Option<usize>,
        classes: Option<usize>,
    ) -> Result<Option<Sequence>> {
        Ok(match self {
            Self::Generator => None,
            Self::Text { path, all_bytes } => Some(match alphabet {
                Some(a) => Sequence::from_text_with_alphabet(path, a)?,
                None => Sequence::from_text(path, *all_bytes)?,
            }),
            Self::Npy { inputs, targets } => {
                Some(Sequence::from_npy(inputs, targets, vocab, classes)?)
            }
        })
    }
}

/// A run's data, read and split: the training part and the held-out tail (when `--valid`).
pub struct RunData {
    pub train: TrainData,
    pub valid: Option<TrainData>,
}

/// Reads (or generates) the data of `settings` from `source`, splits off the held-out tail,
/// and returns the settings completed from the data (`source`, `V`, `C`, and for a file
/// `data_size` = its length) with the data. `model`: `--vocab` and `--classes` for `.npy`
/// data.
///
/// # Errors
/// [`Error::Usage`] for `--valid` out of `[0, 1)`, a `--data-size` given with a file, or a
/// part too short for one stream; the readers' errors naming the file.
pub fn load(
    settings: TrainSettings,
    source: &DataSource,
    data_size_given: bool,
    model: (Option<usize>, Option<usize>),
) -> Result<(TrainSettings, RunData)> {
    load_with(settings, source, data_size_given, None, model)
}

/// [`load`] for a trained model: its alphabet reads a text, its `V` and `C` bound `.npy`
/// data.
///
/// # Errors
/// As [`load`].
pub fn load_with(
    settings: TrainSettings,
    source: &DataSource,
    data_size_given: bool,
    alphabet: Option<&[u8]>,
    model: (Option<usize>, Option<usize>),
) -> Result<(TrainSettings, RunData)> {
    let valid = settings.valid;
    if !(valid.is_finite() && (0.0..1.0).contains(&valid)) {
        return Err(Error::Usage(format!(
            "--valid {valid}: must be at least 0 and below 1 (the fraction held out)"
        )));
    }
    let Some(seq) = source.read(alphabet, model.0, model.1)? else {
        // Checked before generating: the data's size is a flag.
        crate::config::TrainConfig::new(settings)?;
        let data = Dataset::generate_rule(
            settings.rule,
            settings.data_size,
            settings.lags,
            settings.seed,
        );
        let train_len = settings.train_size();
        let held = settings.data_size - train_len;
        let train = data.slice(0, train_len);
        let valid = (held > 0).then(|| TrainData::Bits(data.slice(train_len, held)));
        return Ok((
            TrainSettings {
                source: Source::Generator,
                ..settings
            },
            RunData {
                train: TrainData::Bits(train),
                valid,
            },
        ));
    };
    if data_size_given {
        return Err(Error::Usage(format!(
            "--data-size {}: the size of the generated data; with {} the data are the whole \
             file (hold out a part with --valid)",
            settings.data_size,
            source.describe()
        )));
    }
    let (train, valid) = if valid > 0.0 {
        let (t, v) = seq.split_valid(valid).map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("--valid {valid}: {m}")),
            e => e,
        })?;
        if t.len() < settings.batch_size {
            return Err(Error::Usage(format!(
                "--valid {valid}: leaves {} of the {} positions of {} for training, fewer than \
                 one stream of --batch-size {}; hold out less or use a smaller --batch-size",
                t.len(),
                seq.len(),
                source.name().display(),
                settings.batch_size
            )));
        }
        (t, Some(v))
    } else {
        (seq, None)
    };
    let settings = TrainSettings {
        data_size: train.len() + valid.as_ref().map_or(0, Sequence::len),
        source: source.kind(),
        vocab: train.vocab(),
        classes: train.classes(),
        ..settings
    };
    train.check_windows(&source.name(), settings.batch_size, settings.time_step)?;
    Ok((
        settings,
        RunData {
            train: TrainData::Symbols(train),
            valid: valid.map(TrainData::Symbols),
        },
    ))
}

/// Positions held out of `n` by `--valid fraction`.
#[must_use]
pub fn held_out(n: usize, fraction: f64) -> usize {
    ((n as f64) * fraction).round() as usize
}

/// The held-out tail's streams: `batch_size` positions each where it has that many, else
/// one stream of the whole tail cut to whole windows. `None` when it is shorter than one
/// window of `time_step`.
#[must_use]
pub fn held_out_streams(len: usize, batch_size: usize, time_step: usize) -> Option<(usize, usize)> {
    if len >= batch_size {
        Some((len / batch_size, batch_size))
    } else if len >= time_step {
        Some((1, len - len % time_step))
    } else {
        None
    }
}

/// Checks that a held-out tail of `len` positions gives at least one window.
///
/// # Errors
/// [`Error::Usage`] naming `--valid` and what would fix it.
pub fn check_held_out(len: usize, settings: &TrainSettings) -> Result<(usize, usize)> {
    held_out_streams(len, settings.batch_size, settings.time_step).ok_or_else(|| {
        Error::Usage(format!(
            "--valid {}: holds out {len} positions, fewer than one window of --time-step {}; \
             hold out more",
            settings.valid, settings.time_step
        ))
    })
}

/// The loss of a model that knows only how often each class occurs: the entropy (in nats)
/// of the targets' frequencies in `data`, and the accuracy of always predicting the most
/// frequent class. A character model is learning something once it is below this.
#[must_use]
pub fn unigram_level(data: &TrainData) -> ReferenceLevel {
    let (counts, n) = match data {
        TrainData::Bits(d) => {
            let ones = (0..d.data_size()).filter(|&i| d.y(i)).count();
            (vec![d.data_size() - ones, ones], d.data_size())
        }
        TrainData::Symbols(seq) => {
            let mut counts = vec![0usize; seq.classes()];
            let targets = seq.targets();
            let mut buf = vec![0u16; 1 << 16];
            let mut at = 0;
            while at < targets.len() {
                let n = buf.len().min(targets.len() - at);
                targets.copy_to(at, &mut buf[..n]);
                for &c in &buf[..n] {
                    counts[usize::from(c)] += 1;
                }
                at += n;
            }
            (counts, seq.len())
        }
    };
    let n = n.max(1) as f64;
    let entropy = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum();
    ReferenceLevel {
        name: "unigram",
        label: "symbol frequencies only (unigram entropy)",
        loss: entropy,
        accuracy: counts.iter().copied().max().unwrap_or(0) as f64 / n,
    }
}
