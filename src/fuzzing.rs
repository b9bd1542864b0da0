//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with cargo-fuzz)
//! and their corpus replay test (`tests/fuzz_corpus.rs`, run by `cargo test` on stable).
//!
//! Each function takes the fuzzer's raw bytes, runs one piece of bitrnn on them and panics
//! when a property fails; a panic is what the fuzzer reports. Everything else (an input the
//! code refuses cleanly) returns normally.
//!
//! - [`checkpoint_load`]: any bytes as a checkpoint file: [`checkpoint::load`] returns an
//!   error naming the file on one line, or a checkpoint that saves and loads back unchanged.
//! - [`cli_parse`]: any argument vector: the command line parses or is refused by clap, and
//!   every parsed command's flags validate into a ready config or a one-line usage error
//!   that names a flag. Nothing runs.
//! - [`simd_vs_reference`]: any small window (hidden 1..=24, streams 1..=24, 1..=8 steps,
//!   Glorot-sized weights): the SIMD kernels agree with the f64 reference within an error
//!   bound derived from the arithmetic, and produce no NaN or infinity.
//! - [`sequence_parse`]: any bytes as a text or a `.npy` array of symbol ids: refused with one
//!   line naming the file, or read into a sequence whose ids are within its bounds, in the
//!   narrow type, and whose windows' planes match plain indexing.

use crate::checkpoint;
use crate::cli::{Cli, Command, Temperature};
use crate::error::Error;
use crate::sequence::{MAX_SYMBOLS, Sequence, SymbolChunks};
use bitrnn_kernels::rounding::{self, RoundedWindow, StateError, WindowBound};
use bitrnn_kernels::simd::{self, Planes, Prepared, SymbolPlanes, WindowStats, Workspace};
use bitrnn_kernels::testing::Case;
use bitrnn_kernels::{Cell, Layout, Params, reference};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------
// Scratch files
// ---------------------------------------------------------------------------------------

/// A scratch file for one call of a file-based entry point ([`checkpoint_load`],
/// [`sequence_parse`]), named `name` after a prefix unique per process and call, so that tests
/// may run calls in parallel; removed when dropped, panic or not.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Scratch(
            std::env::temp_dir().join(format!("bitrnn-fuzz-{}-{call}-{name}", std::process::id())),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// checkpoint_load
// ---------------------------------------------------------------------------------------

/// `data` as a checkpoint file: the loader refuses it with one line naming the file, or the
/// checkpoint it returns is consistent: it saves ([`checkpoint::to_bytes`], whose shape
/// assertions check it) and loads back equal.
///
/// # Panics
/// When a property fails (or the scratch file in the temp dir cannot be written).
pub fn checkpoint_load(data: &[u8]) {
    let scratch = Scratch::new("checkpoint.safetensors");
    let path = &scratch.0;
    std::fs::write(path, data).expect("the scratch file can be written");
    match checkpoint::load(path) {
        Ok(ck) => {
            let bytes = checkpoint::to_bytes(&ck);
            std::fs::write(path, &bytes).expect("the scratch file can be written");
            let again = checkpoint::load(path).expect("a saved checkpoint loads");
            assert_eq!(
                again, ck,
                "a loaded checkpoint saves and loads back unchanged"
            );
        }
        Err(e) => assert_refuses_file(&e, path),
    }
}

/// A refused input file: a bad file (or an unreadable one) on one line that names it.
fn assert_refuses_file(e: &Error, path: &std::path::Path) {
    assert!(
        matches!(e, Error::BadFile { .. } | Error::Io { .. }),
        "a bad file is a bad file: {e:?}"
    );
    assert_one_line(&e.to_string());
    assert!(
        e.to_string().starts_with(&path.display().to_string()),
        "the error names the file: {e}"
    );
}

fn assert_one_line(message: &str) {
    assert!(
        !message.is_empty() && !message.contains(['\n', '\r']),
        "an error is one non-empty line: {message:?}"
    );
}

// ---------------------------------------------------------------------------------------
// cli_parse
// ---------------------------------------------------------------------------------------

/// `data` as the arguments after `bitrnn`, separated by NUL bytes (on Unix each argument is
/// taken as raw bytes, so non-UTF-8 arguments are tried too).
#[must_use]
pub fn arguments(data: &[u8]) -> Vec<std::ffi::OsString> {
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0)
        .map(|arg| {
            #[cfg(unix)]
            {
                std::os::unix::ffi::OsStringExt::from_vec(arg.to_vec())
            }
            #[cfg(not(unix))]
            {
                String::from_utf8_lossy(arg).into_owned().into()
            }
        })
        .collect()
}

/// `data` ([`arguments`]) through the command line's parser and every validation a command
/// does before it runs, without running anything (`--out` and `--resume` are only looked at,
/// never created or read).
///
/// Properties: no panic; a parsed command's flags either validate into a config that keeps
/// the config's invariants (its memory estimate within the limit, at least one stream and one
/// window, the lags inside the data) or are refused by an [`Error::Usage`] of one line that
/// starts with the flag (`--name`).
///
/// Not covered here (their checks need a file or live in `run`): what `eval --model`,
/// `sample --model` (and the `--prime` it reads) and
/// `train --resume` hold (see [`checkpoint_load`]), `train --save`, `profile --seconds`.
///
/// # Panics
/// When a property fails.
pub fn cli_parse(data: &[u8]) {
    let args = arguments(data);
    let cli = match Cli::try_parse_args(std::iter::once("bitrnn".into()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            // Rendering the error (help, version, usage) must not panic either.
            let _ = e.render().to_string();
            return;
        }
    };
    let usage = |r: crate::Result<()>| match r {
        Ok(()) => {}
        Err(Error::Usage(m)) => {
            assert_one_line(&m);
            assert!(
                m.starts_with("--"),
                "a usage error names the flag first: {m}"
            );
        }
        Err(e) => panic!("validation fails with a usage error only: {e:?}"),
    };
    match &cli.command {
        Command::Train(args) => {
            usage(args.model.to_config(args.epochs).map(check_config));
            usage(args.check_paths());
        }
        Command::Profile(args) => usage(args.model.to_config(1).map(check_config)),
        Command::Generate(args) => usage(args.validate()),
        Command::Bench(args) => usage(args.plan().map(|plan| {
            assert!(plan.hidden.iter().chain(&plan.threads).all(|&v| v >= 1));
            assert!(plan.streams >= 1 && plan.time_step >= 1 && plan.repeats >= 1);
        })),
        Command::Verify(args) => usage(args.shapes().map(|shapes| {
            assert!(!shapes.is_empty());
            assert!(
                shapes
                    .iter()
                    .all(|s| s.hidden >= 1 && s.streams >= 1 && s.time_step >= 1)
            );
        })),
        Command::Eval(_) => {}
        Command::Sample(args) => usage(args.check().map(|t| {
            assert!(
                matches!(t, Temperature::Greedy)
                    || matches!(t, Temperature::Scaled(t) if t.is_finite() && t > 0.0)
            );
            assert!((1..=crate::cli::SAMPLE_MAX_LENGTH).contains(&args.length));
        })),
        Command::Sweep(args) => usage(args.to_grid().map(|(grid, _)| {
            assert!(!grid.is_empty() && grid.len() <= crate::sweep::MAX_RUNS);
            assert!(grid.runs().iter().all(|s| s.threads == 1));
        })),
    }
}

/// The invariants every validated config keeps (what the trainer relies on).
fn check_config(cfg: crate::config::TrainConfig) {
    assert!(
        cfg.streams() >= 1 && cfg.windows_per_epoch() >= 1,
        "{cfg:?}"
    );
    assert!(cfg.time_step <= cfg.batch_size && cfg.batch_size <= cfg.data_size);
    let (a, b) = cfg.lags;
    assert!(a >= 1 && b >= 1 && a != b && a.max(b) < cfg.data_size);
    assert!(cfg.lr.is_finite() && cfg.lr > 0.0);
    assert!(cfg.epochs >= 1 && cfg.threads >= 1 && cfg.hidden >= 1);
    assert!(cfg.memory_bytes().total() <= crate::config::memory_limit());
    let _ = cfg.describe();
    let _ = serde_json::to_string(&cfg).expect("a config serializes");
}

// ---------------------------------------------------------------------------------------
// simd_vs_reference
// ---------------------------------------------------------------------------------------

/// Largest shapes [`simd_vs_reference`] builds: both kernel families (small: hidden <= 8,
/// blocked: above), one to three lane groups with every count of padding lanes.
pub const FUZZ_MAX_HIDDEN: usize = 24;
pub const FUZZ_MAX_STREAMS: usize = 24;
pub const FUZZ_MAX_TIME_STEP: usize = 8;

/// The fuzzer's bytes read as numbers; zeros once they run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    /// A number in [-1, 1) on a grid of 2^-15, from two bytes.
    fn unit(&mut self) -> f64 {
        f64::from(i16::from_le_bytes([self.byte(), self.byte()])) / 32_768.0
    }
}

/// One window decoded from the fuzzer's bytes. Bytes 0-2: hidden `1 + b % 24` and the cell
/// `(b / 24) % 3` (rnn, gru, lstm), streams `1 + b % 24`, time_step `1 + b % 8`; then two
/// bytes per weight (`|w| <= 1/sqrt(hidden)`, Glorot-sized, PyTorch's init range of the
/// gated cells), two per carried-state value (in [-1, 1), the LSTM's `c` in [-2, 2)), and
/// the bits of x and y, one byte per 8 of them. Every number is an `f32` (held in f64), so that both engines start from the
/// same values.
#[must_use]
pub fn decode(data: &[u8]) -> Case {
    let mut r = Reader(data);
    let first = usize::from(r.byte());
    let hidden = 1 + first % FUZZ_MAX_HIDDEN;
    let cell = Cell::ALL[(first / FUZZ_MAX_HIDDEN) % Cell::ALL.len()];
    let streams = 1 + usize::from(r.byte()) % FUZZ_MAX_STREAMS;
    let time_step = 1 + usize::from(r.byte()) % FUZZ_MAX_TIME_STEP;
    let scale = 1.0 / (hidden as f64).sqrt();
    let layout = Layout::of(cell, hidden);
    let mut params = Params::filled_as(layout, 0.0);
    for w in &mut params.data {
        *w = f64::from((scale * r.unit()) as f32);
    }
    let width = cell.state_rows() * hidden;
    let h0 = (0..streams * width)
        .map(|i| {
            if i % width < hidden {
                r.unit()
            } else {
                2.0 * r.unit()
            }
        })
        .collect();
    let n = streams * time_step;
    let mut bits = |n: usize| {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let b = r.byte();
            v.extend((0..8).map(|i| (b >> i) & 1).take(n - v.len()));
        }
        v
    };
    let x = bits(n);
    let y = bits(n);
    Case {
        streams,
        time_step,
        params,
        h0,
        x,
        y,
    }
}

/// Slack for the f64 reference's own rounding (`gamma_64(n)` for the longest chain here,
/// a few hundred operations, is below 1e-13) against the magnitudes summed.
const F64_SLACK: f64 = 1e-12;

/// The rounding-error model's bound of a decoded window ([`rounding::window_bound`]): both
/// engines load the same carried state.
fn bound(w: &Case) -> WindowBound {
    let exact = StateError::exact(w.streams, w.hidden());
    rounding::window_bound(&w.params, &w.h0, &exact, &w.window())
}

/// `data` as one window ([`decode`]) through the SIMD kernels and the f64
/// reference.
///
/// Properties: the SIMD engine writes every gradient entry (the buffer starts as NaN) and
/// produces only finite numbers; its loss, accuracy count, carried state and gradient are
/// within the rounding model's bound ([`rounding::window_bound`]) of the reference (plus
/// `F64_SLACK` for the reference's own rounding); `forward` (evaluation) gives the same
/// loss, accuracy and state bit for bit. The bound's own f64 trajectory is checked against
/// the reference too.
///
/// # Panics
/// When a property fails.
pub fn simd_vs_reference(data: &[u8]) {
    let w = decode(data);
    let hd = w.hidden();
    let n = w.streams * w.time_step;
    let what = format!(
        "{:?} hidden {hd}, {} streams, time_step {}",
        w.cell(),
        w.streams,
        w.time_step
    );

    // The SIMD engine, as the trainer drives one shard.
    let cell = w.cell();
    let p32 = w.params32();
    let mut prepared = Prepared::with_cell(cell, hd);
    prepared.load(&p32);
    let h0_32 = w.h0_32();
    let (xp, yp) = w.planes();
    let planes = Planes {
        x: &xp,
        y: &yp,
        stride: simd::plane_bytes(w.streams),
    };
    let mut ws = Workspace::with_cell(cell, hd, w.streams, w.time_step);
    ws.load_state(&h0_32);
    let mut grad = vec![f32::NAN; p32.data.len()];
    let stats = simd::forward_backward(&prepared, &mut ws, &planes, 1.0 / n as f32, &mut grad);
    let mut state = vec![f32::NAN; w.h0.len()];
    ws.store_state(&mut state);

    let mut eval = Workspace::with_cell(cell, hd, w.streams, w.time_step);
    eval.load_state(&h0_32);
    let eval_stats = simd::forward(&prepared, &mut eval, &planes);
    let mut eval_state = vec![f32::NAN; w.h0.len()];
    eval.store_state(&mut eval_state);
    assert_eq!(
        eval_stats, stats,
        "{what}: forward and forward_backward disagree"
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&eval_state),
        bits(&state),
        "{what}: forward and forward_backward carry different states"
    );

    assert!(
        stats.loss_sum.is_finite() && stats.correct.is_finite(),
        "{what}: {stats:?}"
    );
    if let Some(i) = grad.iter().chain(&state).position(|v| !v.is_finite()) {
        panic!("{what}: non-finite output at index {i} of gradient ++ state");
    }

    if cell != Cell::Rnn {
        return gated_within_tolerance(&w, &stats, &grad, &state, &what);
    }

    // The reference.
    let mut ref_grad = Params::<f64>::zeros(hd);
    let mut ref_state = vec![0.0; w.streams * hd];
    let ref_loss =
        reference::forward_backward(&w.params, &w.h0, &w.window(), &mut ref_grad, &mut ref_state);
    let ref_loss_sum = ref_loss * n as f64;

    let b = bound(&w);
    let near = |a: f64, b: f64, mag: f64| (a - b).abs() <= F64_SLACK * (mag + 1.0);
    assert!(
        near(b.loss_sum, ref_loss_sum, b.loss_sum),
        "{what}: the bound's trajectory left the reference"
    );
    for (i, (g, r)) in b.grad.iter().zip(&ref_grad.data).enumerate() {
        assert!(
            near(*g, *r, b.ref_terms[i]),
            "{what}: bound vs reference, grad {i}"
        );
    }
    for (i, (s, r)) in b.state.iter().zip(&ref_state).enumerate() {
        assert!(near(*s, *r, 1.0), "{what}: bound vs reference, state {i}");
    }

    let err = (stats.loss_sum - ref_loss_sum).abs();
    let tol = b.loss_sum_tol + F64_SLACK * (b.loss_sum + 1.0);
    assert!(
        err <= tol,
        "{what}: loss_sum {} vs {ref_loss_sum}: error {err:e} > {tol:e}",
        stats.loss_sum
    );
    assert!(
        (stats.correct - b.correct).abs() <= b.ambiguous,
        "{what}: correct {} vs {} ({} ambiguous)",
        stats.correct,
        b.correct,
        b.ambiguous
    );
    for (i, (&s, r)) in state.iter().zip(&ref_state).enumerate() {
        let err = (f64::from(s) - r).abs();
        let tol = b.state_tol.entry[i] + F64_SLACK;
        assert!(
            err <= tol,
            "{what}: state {i}: {s} vs {r}: error {err:e} > {tol:e}"
        );
    }
    let tensors: Vec<_> = p32.layout().tensors().collect();
    for (i, (&g, r)) in grad.iter().zip(&ref_grad.data).enumerate() {
        let err = (f64::from(g) - r).abs();
        let tol = b.grad_tol[i] + F64_SLACK * b.ref_terms[i];
        let tensor = tensors
            .iter()
            .find(|(_, (lo, hi))| (*lo..*hi).contains(&i))
            .map_or("?", |(name, _)| *name);
        assert!(
            err <= tol,
            "{what}: grad {} entry {i}: {g} vs {r}: error {err:e} > {tol:e}",
            tensor
        );
    }
}

/// The gated cells' part of [`simd_vs_reference`]: loss, state and gradient within the
/// tolerances of the reference run on `Rounded` numbers ([`RoundedWindow`]).
fn gated_within_tolerance(w: &Case, stats: &WindowStats, grad: &[f32], state: &[f32], what: &str) {
    let r = RoundedWindow::new(&w.params, &w.h0, &w.window(), w.samples() as u64);
    let loss = stats.loss_sum / w.samples() as f64;
    let (want, tol) = r.loss;
    assert!(
        (loss - want).abs() <= tol + F64_SLACK,
        "{what}: loss {loss} vs {want}: tolerance {tol:e}"
    );
    for (name, got, want) in [("state", state, &r.state), ("grad", grad, &r.grad)] {
        for (i, (&g, &(v, tol))) in got.iter().zip(want).enumerate() {
            let err = (f64::from(g) - v).abs();
            assert!(
                err <= tol + F64_SLACK,
                "{what}: {name} {i}: {g} vs {v}: error {err:e} > {tol:e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// symbols_vs_reference
// ---------------------------------------------------------------------------------------

/// `data` as a window over symbols (the kernels' symbols' path, `--text` and `.npy` data):
/// byte 0 the hidden size and the cell as [`decode`], byte 1 the vocabulary `V` in
/// `1..=256`, byte 2 the classes `C` in `2..=256`, bytes 3 and 4 the streams and steps, then
/// the weights (`U(+-1/sqrt(H))`), the carried state, the inputs (`byte % V`) and the
/// targets (`byte % C`); bytes past the end read as 0.
#[must_use]
pub fn decode_symbols(data: &[u8]) -> Case {
    let mut r = Reader(data);
    let first = usize::from(r.byte());
    let hidden = 1 + first % FUZZ_MAX_HIDDEN;
    let cell = Cell::ALL[(first / FUZZ_MAX_HIDDEN) % Cell::ALL.len()];
    let vocab = 1 + usize::from(r.byte());
    let classes = 2 + usize::from(r.byte()) % 255;
    let streams = 1 + usize::from(r.byte()) % FUZZ_MAX_STREAMS;
    let time_step = 1 + usize::from(r.byte()) % FUZZ_MAX_TIME_STEP;
    let scale = 1.0 / (hidden as f64).sqrt();
    let layout = Layout::with_symbols(cell, hidden, vocab, classes);
    let mut params = Params::filled_as(layout, 0.0);
    for w in &mut params.data {
        *w = f64::from((scale * r.unit()) as f32);
    }
    let width = cell.state_rows() * hidden;
    let h0 = (0..streams * width)
        .map(|i| {
            if i % width < hidden {
                r.unit()
            } else {
                2.0 * r.unit()
            }
        })
        .collect();
    let n = streams * time_step;
    let mut ids = |bound: usize| -> Vec<u8> {
        (0..n)
            .map(|_| u8::try_from(usize::from(r.byte()) % bound).expect("below 256"))
            .collect()
    };
    let x = ids(vocab);
    let y = ids(classes);
    Case {
        streams,
        time_step,
        params,
        h0,
        x,
        y,
    }
}

/// Any small window over symbols ([`decode_symbols`]): the SIMD kernels' symbols' path
/// within the tolerances of the probabilistic rounding model ([`RoundedWindow`]) of the f64
/// reference, for the loss, the carried state and every gradient entry; `forward` and
/// `forward_backward` agree bit for bit; every output finite.
///
/// # Panics
/// When a property fails.
pub fn symbols_vs_reference(data: &[u8]) {
    let w = decode_symbols(data);
    let layout = w.params.layout();
    let n = w.streams * w.time_step;
    let what = format!(
        "{:?} hidden {}, V {}, C {}, {} streams, time_step {}",
        layout.cell, layout.hidden, layout.vocab, layout.classes, w.streams, w.time_step
    );
    let mut prepared = Prepared::for_symbols(layout);
    prepared.load(&w.params32());
    let stride = simd::groups_for(w.streams) * bitrnn_kernels::lanes::LANES;
    let mut x = vec![0u16; stride * w.time_step];
    let mut y = vec![0u16; stride * w.time_step];
    for t in 0..w.time_step {
        for s in 0..w.streams {
            x[t * stride + s] = u16::from(w.x[t * w.streams + s]);
            y[t * stride + s] = u16::from(w.y[t * w.streams + s]);
        }
    }
    let planes = SymbolPlanes {
        x: &x,
        y: &y,
        stride,
    };
    let run = |train: bool| {
        let mut ws = Workspace::for_symbols(layout, w.streams, w.time_step);
        ws.load_state(&w.h0_32());
        let mut grad = vec![f32::NAN; w.params.data.len()];
        let stats = if train {
            simd::forward_backward(&prepared, &mut ws, &planes, 1.0 / n as f32, &mut grad)
        } else {
            simd::forward(&prepared, &mut ws, &planes)
        };
        let mut state = vec![f32::NAN; w.h0.len()];
        ws.store_state(&mut state);
        (stats, grad, state)
    };
    let (stats, grad, state) = run(true);
    let (eval_stats, _, eval_state) = run(false);
    assert_eq!(
        eval_stats, stats,
        "{what}: forward and forward_backward disagree"
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&eval_state),
        bits(&state),
        "{what}: carried states differ"
    );
    if let Some(i) = grad.iter().chain(&state).position(|v| !v.is_finite()) {
        panic!("{what}: non-finite output at index {i} of gradient ++ state");
    }
    gated_within_tolerance(&w, &stats, &grad, &state, &what);
}

// ---------------------------------------------------------------------------------------
// sequence_parse
// ---------------------------------------------------------------------------------------

/// The alphabet of [`sequence_parse`]'s mode 2 (a model's alphabet, unsorted).
pub const SEQUENCE_ALPHABET: &[u8] = b"etaoin \n";

/// `data` as a sequence file: byte 0 picks the reader (its value mod 5), the rest is the
/// file: 0 a text, 1 a text over all 256 bytes, 2 a text with the alphabet
/// [`SEQUENCE_ALPHABET`], 3 a `.npy` array read as both inputs and targets, 4 the same with
/// `V = 300` and `C = 256` given.
///
/// Properties: no panic; a refusal is an [`Error::BadFile`] or [`Error::Io`] of one line that
/// names the file; a sequence has `V` in `1..=65536` and `C` in `2..=65536`, every input
/// below `V` and target below `C`, ids held in `u8` exactly when their bound is at most 256;
/// a text's ids are its bytes through its alphabet (the sorted bytes that occur, all 256, or
/// the one given), shifted by one for the targets, in one byte each; a `.npy` read twice
/// gives the same ids twice. Then the windows of a small shape match plain indexing
/// ([`SymbolChunks`]), and the held-out split cuts it in two.
///
/// # Panics
/// When a property fails (or the scratch file in the temp dir cannot be written).
pub fn sequence_parse(data: &[u8]) {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let mode = mode % 5;
    let scratch = Scratch::new(if mode < 3 {
        "sequence.txt"
    } else {
        "sequence.npy"
    });
    let path = &scratch.0;
    std::fs::write(path, file).expect("the scratch file can be written");
    let read = match mode {
        0 => Sequence::from_text(path, false),
        1 => Sequence::from_text(path, true),
        2 => Sequence::from_text_with_alphabet(path, SEQUENCE_ALPHABET),
        3 => Sequence::from_npy(path, path, None, None),
        _ => Sequence::from_npy(path, path, Some(300), Some(256)),
    };
    let seq = match read {
        Ok(seq) => seq,
        Err(e) => return assert_refuses_file(&e, path),
    };
    let (x, y) = (seq.inputs().to_vec(), seq.targets().to_vec());
    let (v, c) = (seq.vocab(), seq.classes());
    assert!(
        (1..=MAX_SYMBOLS).contains(&v) && (2..=MAX_SYMBOLS).contains(&c),
        "V {v}, C {c}"
    );
    assert!(!x.is_empty() && x.len() == seq.len() && y.len() == seq.len());
    assert!(
        x.iter().all(|&id| usize::from(id) < v),
        "inputs below V = {v}"
    );
    assert!(
        y.iter().all(|&id| usize::from(id) < c),
        "targets below C = {c}"
    );
    let width = |bound: usize| if bound <= 256 { 1 } else { 2 };
    assert_eq!(seq.inputs().width(), width(v));
    assert_eq!(seq.targets().width(), width(c));
    if let Some(alphabet) = seq.alphabet() {
        assert!(mode < 3);
        assert_eq!((alphabet.len(), alphabet.len()), (v, c));
        let want: Vec<u8> = match mode {
            0 => (0..=255u8).filter(|b| file.contains(b)).collect(),
            1 => (0..=255).collect(),
            _ => SEQUENCE_ALPHABET.to_vec(),
        };
        assert_eq!(alphabet, want, "the alphabet");
        assert_eq!(seq.len(), file.len() - 1);
        for (i, (&xi, &yi)) in x.iter().zip(&y).enumerate() {
            assert_eq!(alphabet[usize::from(xi)], file[i], "input {i}");
            assert_eq!(alphabet[usize::from(yi)], file[i + 1], "target {i}");
        }
        assert_eq!(seq.symbol_bytes(), file.len(), "one byte per text byte");
    } else {
        assert!(mode >= 3);
        assert_eq!(x, y, "one array read twice");
    }
    check_sequence_windows(&seq, &x, &y);
    if seq.len() >= 2 {
        let (train, held) = seq.split_valid(0.5).expect("half of 2 or more positions");
        assert_eq!(train.len() + held.len(), seq.len());
        assert_eq!(held.inputs().get(0), x[train.len()]);
        assert_eq!(held.targets().to_vec(), y[train.len()..]);
    }
}

/// The windows of streams of up to 37 positions (at most 20 streams, windows of up to 4
/// steps) of `seq`, whose ids are `x` and `y`, against plain indexing.
fn check_sequence_windows(seq: &Sequence, x: &[u16], y: &[u16]) {
    let stream_len = seq.len().min(37);
    let time_step = stream_len.min(4);
    let streams = seq.streams(stream_len).min(20);
    let mut chunks = SymbolChunks::new(streams, stream_len, time_step);
    let stride = chunks.stride();
    for t0 in (0..=stream_len - time_step).rev() {
        let planes = chunks.window(seq, t0);
        assert_eq!(planes.stride, stride);
        for t in 0..time_step {
            for s in 0..stride {
                let i = s * stream_len + t0 + t;
                let (wx, wy) = if s < streams { (x[i], y[i]) } else { (0, 0) };
                assert_eq!(
                    planes.x[t * stride + s],
                    wx,
                    "x step {t} stream {s} from {t0}"
                );
                assert_eq!(
                    planes.y[t * stride + s],
                    wy,
                    "y step {t} stream {s} from {t0}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_short_inputs_are_fine() {
        checkpoint_load(&[]);
        checkpoint_load(&[1, 2, 3]);
        cli_parse(&[]);
        cli_parse(b"train\0--hidden\x000");
        simd_vs_reference(&[]);
        simd_vs_reference(&[255; 7]);
    }

    #[test]
    fn arguments_split_on_nul() {
        assert_eq!(arguments(b"a\0b\0"), ["a", "b", ""]);
        assert!(arguments(b"").is_empty());
    }

    /// The bound means something: on random windows (random bytes: Glorot-sized weights
    /// uniform in `[-1/sqrt(H), 1/sqrt(H)]`, all shapes alike) the largest gradient tolerance
    /// is below 1e-3 of the gradient's largest entry in most windows and below 0.1 in nearly
    /// all, so a layout or indexing bug, an error the size of a gradient entry, cannot hide
    /// under it. The exceptions are the longest windows of the largest hidden sizes (a
    /// rigorous bound grows with the recurrence's worst-case gain per step).
    #[test]
    fn bound_is_informative_on_random_windows() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut tight, mut useful, mut total) = (0, 0, 0);
        for _ in 0..300 {
            let bytes: Vec<u8> = (0..4000).map(|_| next() as u8).collect();
            simd_vs_reference(&bytes);
            let case = decode(&bytes);
            if case.cell() != Cell::Rnn {
                continue;
            }
            total += 1;
            let b = bound(&case);
            let largest = b.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            let tol = b.grad_tol.iter().fold(0.0f64, |m, t| m.max(*t));
            tight += usize::from(tol < 1e-3 * largest);
            useful += usize::from(tol < 0.1 * largest);
        }
        println!(
            "of {total} windows, tolerance < 1e-3 (0.1) of the largest gradient entry: {tight} ({useful})"
        );
        assert!(
            tight * 10 >= total * 7 && useful * 10 >= total * 9,
            "{tight}, {useful} of {total}"
        );
    }

    /// The decoded window covers the shapes it promises.
    #[test]
    fn decode_reaches_every_shape_and_the_weight_bound() {
        let w = decode(&[23, 23, 7, 0xff, 0x7f, 0x00, 0x80]);
        assert_eq!((w.hidden(), w.streams, w.time_step), (24, 24, 8));
        let a = 1.0 / 24f64.sqrt();
        // f32 rounding may step a weight over the bound by half an ulp.
        assert!(
            w.params
                .data
                .iter()
                .all(|v| v.abs() <= a * (1.0 + rounding::U))
        );
        assert!((w.params.data[0] - a).abs() < 1e-4 && w.params.data[1] == f64::from(-a as f32));
        assert_eq!(w.x.len(), 24 * 8);
        // The first byte's quotient by 24 picks the cell; the LSTM's state holds c too.
        assert_eq!(decode(&[0]).cell(), Cell::Rnn);
        assert_eq!(decode(&[24 + 5]).cell(), Cell::Gru);
        let lstm = decode(&[48 + 5, 2]);
        assert_eq!((lstm.cell(), lstm.h0.len()), (Cell::Lstm, 3 * 2 * 6));
    }
}
