//! `bitrnn eval`: loss and accuracy of a saved model on fresh data, or on a file.
//!
//! # Protocol
//!
//! The evaluation data is generated like training data (`--data-size`, `--lags`, `--seed`),
//! or read from the data flags (below), and cut the way training cuts it, with the checkpoint's `batch_size` and `time_step`:
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
//!
//! # Data files
//!
//! `--text FILE`, `--data DIR` or `--inputs X.npy --targets Y.npy` score the model on a file
//! instead ([`crate::source::DataSource`]): a text through the model's alphabet (a byte
//! outside it is the reader's error; only a text model has an alphabet), `.npy` ids bounded
//! by the model's `V` and `C` (a bits model scores `bitrnn generate`'s files this way, on the
//! symbols' path). The streams are those of a held-out tail
//! ([`crate::source::held_out_streams`]): `len / batch_size` streams of `batch_size`, or, for
//! data shorter than one stream, one stream of the whole data cut to whole windows. A text or
//! `.npy` model needs a data flag (it has no generator). The report adds the unigram level of
//! the targets scored ([`crate::source::scored_unigram_level`]): the loss of knowing only the
//! symbols' frequencies.

use crate::checkpoint::{self, Checkpoint};
use crate::cli::EvalArgs;
use crate::config::{Rule, Source, TrainConfig, TrainSettings};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::handout::{split_for_members, take_block};
use crate::output::shown;
use crate::planes::{Feed, TrainData};
use crate::shards;
use crate::source::{self, DataSource};
use crate::team::{self, Team};
use bitrnn_kernels::Params;
use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::simd::{self, Prepared, WindowStats, Workspace};
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
    /// Positions in the data (generated, or in the file).
    pub data_size: usize,
    /// What was scored: `generator`, or the text or `.npy` files.
    pub data: String,
    /// The generator's rule, lags and seed (absent for a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lags: Option<(usize, usize)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The model's input symbols `V` and classes `C`.
    pub vocab: usize,
    pub classes: usize,
    /// For a file: the unigram entropy of the targets scored and the accuracy of always
    /// predicting the most frequent class ([`crate::source::scored_unigram_level`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unigram_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unigram_accuracy: Option<f64>,
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
/// (for a sequence of symbols) the symbols' path. The streams are cut into the shards
/// training would use for that shape ([`crate::shards::shape_shards`]), shared by `team`'s
/// members where one is given, and their sums added in shard order: the same result for any
/// team, or none.
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
    team: Option<&Team>,
) -> EvalStats {
    let windows = stream_len / time_step;
    assert!(streams >= 1 && windows >= 1, "evaluate: empty shape");
    assert!(
        data.len() >= streams * stream_len,
        "evaluate: data too short"
    );
    let layout = params.layout();
    let symbols = matches!(data, TrainData::Symbols(_));
    let ranges = shards::shape_shards(simd::groups_for(streams), params.hidden, time_step, symbols);
    let mut shards: Vec<(usize, Workspace, WindowStats)> = ranges
        .iter()
        .map(|&(g0, g1)| {
            let n = (g1 * LANES).min(streams) - g0 * LANES;
            let ws = Workspace::for_path(layout, symbols, n, time_step);
            (g0, ws, WindowStats::default())
        })
        .collect();
    let mut prepared = Prepared::for_path(layout, symbols);
    prepared.load(params);
    let prepared = &prepared;
    let mut feed = Feed::new(data.clone(), streams, stream_len, time_step);
    let (mut loss_sum, mut correct) = (0.0, 0.0);
    for w in 0..windows {
        let inputs = feed.window(w * time_step);
        let run = |(g0, ws, stats): &mut (usize, Workspace, WindowStats)| {
            *stats = simd::forward(prepared, ws, inputs.offset(*g0));
        };
        match team {
            Some(team) if team.size() > 1 => {
                let n = shards.len();
                let blocks = split_for_members(shards.chunks_mut(1));
                team.run(n, &|unit| {
                    if let Some(block) = take_block(&blocks, unit) {
                        block.iter_mut().for_each(run);
                    }
                });
            }
            _ => shards.iter_mut().for_each(run),
        }
        for (_, _, stats) in &shards {
            loss_sum += stats.loss_sum;
            correct += stats.correct;
        }
    }
    EvalStats {
        loss_sum,
        correct,
        samples: streams * windows * time_step,
    }
}

/// Runs `body` with a team of `--threads` members (this thread and a pool's workers), or
/// none for one thread.
fn with_threads<R>(args: &EvalArgs, body: impl FnOnce(Option<&Team>) -> R) -> Result<R> {
    let n = args.thread_count()?;
    if n == 1 {
        return Ok(body(None));
    }
    let pool = team::workers(n)?;
    Ok(team::with_team(&pool, n, |team| body(Some(team))))
}

/// What a model trained on `source` was trained on, for messages.
#[must_use]
pub fn trained_on(source: Source) -> &'static str {
    match source {
        Source::Generator => "the generator's bits",
        Source::Text => "a text",
        Source::Npy => ".npy symbol ids",
    }
}

/// The data flags that score a model trained on `source` (`--text FILE`, ...).
fn data_flags(source: Source) -> &'static str {
    match source {
        Source::Generator => "no data flag (generated data: --data-size, --rule, --lags, --seed)",
        Source::Text => "--text FILE",
        Source::Npy => "--data DIR or --inputs X.npy --targets Y.npy",
    }
}

/// The report of the model in `ck` on generated data (the module's protocol).
fn on_generated(args: &EvalArgs, ck: &Checkpoint) -> Result<EvalReport> {
    let trained = &ck.config;
    if trained.symbols() {
        return Err(Error::Usage(format!(
            "--model {}: the model was trained on {}, not generated bits; give the data to \
             score it on with {}",
            shown(&args.model),
            trained_on(trained.source),
            data_flags(trained.source)
        )));
    }
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
    let stats = with_threads(args, |team| {
        evaluate(
            &ck.params,
            &TrainData::Bits(data),
            cfg.streams(),
            cfg.batch_size,
            cfg.time_step,
            team,
        )
    })?;
    let shape = (cfg.streams(), cfg.batch_size);
    Ok(report(args, ck, &stats, shape, cfg.data_size, |r| {
        r.rule = Some(cfg.rule);
        r.lags = Some(cfg.lags);
        r.seed = Some(cfg.seed);
    }))
}

/// The report of the model in `ck` on the file(s) of `source` (module docs, "Data files").
fn on_file(args: &EvalArgs, ck: &Checkpoint, source: &DataSource) -> Result<EvalReport> {
    let cfg = &ck.config;
    if source.kind() == Source::Text && ck.alphabet.is_none() {
        return Err(Error::Usage(format!(
            "--text {}: the model {} has no alphabet (it was trained on {}, not a text); \
             score it with {}",
            shown(&source.name()),
            shown(&args.model),
            trained_on(cfg.source),
            if cfg.source == Source::Generator {
                "generated data or --data DIR (bitrnn generate's files)"
            } else {
                data_flags(cfg.source)
            }
        )));
    }
    let seq = source
        .read(ck.alphabet.as_deref(), Some(cfg.vocab), Some(cfg.classes))?
        .expect("a file source reads a sequence");
    let (streams, stream_len) = source::held_out_streams(seq.len(), cfg.batch_size, cfg.time_step)
        .ok_or_else(|| {
            Error::bad_file(
                &source.name(),
                format!(
                    "{} positions, fewer than one window of the model's time_step {}: give \
                     longer data",
                    seq.len(),
                    cfg.time_step
                ),
            )
        })?;
    let used = stream_len / cfg.time_step * cfg.time_step;
    let unigram = source::scored_unigram_level(&seq, streams, stream_len, used);
    let data_size = seq.len();
    let stats = with_threads(args, |team| {
        evaluate(
            &ck.params,
            &TrainData::Symbols(seq),
            streams,
            stream_len,
            cfg.time_step,
            team,
        )
    })?;
    Ok(report(
        args,
        ck,
        &stats,
        (streams, stream_len),
        data_size,
        |r| {
            r.data = source.describe();
            r.unigram_loss = Some(unigram.loss);
            r.unigram_accuracy = Some(unigram.accuracy);
        },
    ))
}

/// The report of `stats` over `(streams, stream_len)`, the generator's fields left out, then
/// completed by `fill`.
fn report(
    args: &EvalArgs,
    ck: &Checkpoint,
    stats: &EvalStats,
    (streams, stream_len): (usize, usize),
    data_size: usize,
    fill: impl FnOnce(&mut EvalReport),
) -> EvalReport {
    let cfg = &ck.config;
    let n = stats.samples as f64;
    let mut r = EvalReport {
        model: args.model.clone(),
        loss: stats.loss_sum / n,
        accuracy: stats.correct / n,
        samples: stats.samples,
        data_size,
        data: "generator".into(),
        rule: None,
        lags: None,
        seed: None,
        vocab: cfg.vocab,
        classes: cfg.classes,
        unigram_loss: None,
        unigram_accuracy: None,
        streams,
        batch_size: cfg.batch_size,
        time_step: cfg.time_step,
        windows: stream_len / cfg.time_step,
        hidden: cfg.hidden,
        train_seed: cfg.seed,
        trained_epochs: ck.progress.epoch,
        weights_checksum: crate::model::checksum(&ck.params),
    };
    fill(&mut r);
    r
}

/// The report as one line of text.
fn line(r: &EvalReport) -> String {
    let what = match (r.rule, r.lags, r.seed) {
        (Some(rule), Some(lags), Some(seed)) => format!(
            "{}lags {},{}, seed {seed}; {}",
            match rule {
                Rule::Seed => String::new(),
                rule => format!("rule {rule}, "),
            },
            lags.0,
            lags.1,
            rule.reference_levels()
                .iter()
                .map(|l| format!("{:.4}/{} = {}", l.loss, l.accuracy, l.label))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!(
            "{}; {:.4}/{:.4} = symbol frequencies only (unigram entropy)",
            r.data,
            r.unigram_loss.unwrap_or(f64::NAN),
            r.unigram_accuracy.unwrap_or(f64::NAN)
        ),
    };
    format!(
        "{}: loss {:.4} accuracy {:.4} on {} samples ({} streams x {} windows of {}, {what})",
        r.model.display(),
        r.loss,
        r.accuracy,
        r.samples,
        r.streams,
        r.windows,
        r.time_step,
    )
}

pub fn run(args: &EvalArgs) -> Result<()> {
    args.thread_count()?;
    crate::output::check_input_file("--model", &args.model)?;
    let ck = checkpoint::load(&args.model)?;
    let source = args.source();
    let report = match source.kind() {
        Source::Generator => on_generated(args, &ck)?,
        _ => on_file(args, &ck, &source)?,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        println!("{}", line(&report));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Init, init_params};
    use crate::sequence::Sequence;
    use bitrnn_kernels::{Cell, Layout};

    /// `evaluate` with no team and with teams of 2 and 3, and the same streams in one
    /// workspace (no shards): the sharded sums must agree bit for bit among themselves (the
    /// shard partition is the shape's, the sums in shard order), and with the unsharded run to
    /// the rounding of the summation order (each lane's losses are the same numbers).
    fn check(params: &Params<f32>, data: &TrainData, streams: usize, stream_len: usize) {
        let time_step = 5;
        let symbols = matches!(data, TrainData::Symbols(_));
        let shards = shards::shape_shards(simd::groups_for(streams), params.hidden, 5, symbols);
        assert!(shards.len() >= 4, "the shape cuts into shards: {shards:?}");
        let alone = evaluate(params, data, streams, stream_len, time_step, None);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        for size in [2, 3] {
            let shared = team::with_team(&pool, size, |t| {
                evaluate(params, data, streams, stream_len, time_step, Some(t))
            });
            assert_eq!(shared, alone, "a team of {size}");
        }
        let layout = params.layout();
        let mut prepared = Prepared::for_path(layout, symbols);
        let mut ws = Workspace::for_path(layout, symbols, streams, time_step);
        prepared.load(params);
        let mut feed = Feed::new(data.clone(), streams, stream_len, time_step);
        let (mut loss, mut correct) = (0.0, 0.0);
        for w in 0..stream_len / time_step {
            let s = simd::forward(&prepared, &mut ws, feed.window(w * time_step));
            loss += s.loss_sum;
            correct += s.correct;
        }
        assert_eq!(alone.samples, streams * stream_len);
        assert_eq!(alone.correct, correct, "the same predictions");
        let rel = (alone.loss_sum - loss).abs() / loss;
        assert!(
            rel < 1e-6,
            "loss {} vs unsharded {loss}: {rel:e}",
            alone.loss_sum
        );
    }

    #[test]
    fn shards_and_teams_give_the_unsharded_scores() {
        let (streams, stream_len) = (1000, 20);
        let bits = TrainData::Bits(Dataset::generate(streams * stream_len, (1, 2), 7));
        for (cell, hidden) in [(Cell::Rnn, 6), (Cell::Rnn, 20), (Cell::Lstm, 12)] {
            let params = init_params(Init::Default, Layout::of(cell, hidden), 3);
            check(&params, &bits, streams, stream_len);
        }
        let n = streams * stream_len;
        let ids = |m: u64| -> Vec<u16> {
            (0..n as u64)
                .map(|i| ((i * 2_654_435_761 + m) % 67) as u16)
                .collect()
        };
        let seq = Sequence::from_ids(&ids(1), &ids(5), Some(67), Some(67)).expect("ids");
        for cell in [Cell::Rnn, Cell::Gru] {
            let params = init_params(Init::Default, Layout::with_symbols(cell, 24, 67, 67), 4);
            check(
                &params,
                &TrainData::Symbols(seq.clone()),
                streams,
                stream_len,
            );
        }
    }
}
