//! Checkpoints: a trained model in safetensors, with PyTorch's names, plus what `--resume`
//! needs to continue the run bit for bit.
//!
//! # Tensors (all `F32`, little-endian, C order)
//!
//! The model is saved as the state dict of `nn.RNN(2, H)` (`nn.GRU(2, H)`, `nn.LSTM(2, H)` for
//! `--cell gru`, `lstm`) + `nn.Linear(H, 2)` held under the attributes `rnn` and `fc` (the
//! one-hot input makes `x_t @ weight_ih^T` a column select). `G` is the cell's gate count (1,
//! 3 for the GRU's `r, z, n`, 4 for the LSTM's `i, f, g, o`, PyTorch's order):
//!
//! | name                  | shape          | from bitrnn's [`Params`] layout                   |
//! |-----------------------|----------------|---------------------------------------------------|
//! | `rnn.weight_ih_l0`    | `[G H, 2]`     | `w_x` transposed: `[r][k] = w_x[k][r]`            |
//! | `rnn.weight_hh_l0`    | `[G H, H]`     | `w_hh` as is: `a_r += w_hh[r][k] h_k`             |
//! | `rnn.bias_ih_l0`      | `[G H]`        | `b_ih` (the RNN's `b_h`)                          |
//! | `rnn.bias_hh_l0`      | `[G H]`        | `b_hh`; zeros for the RNN, which has one hidden bias |
//! | `fc.weight`           | `[2, H]`       | `w_hy`                                            |
//! | `fc.bias`             | `[2]`          | `b_y`                                             |
//! | `bitrnn.adagrad_accum`| `[P]`          | Adagrad's accumulator, flat, in the Params layout |
//! | `bitrnn.hidden_state` | `[streams, H]` | the carried hidden state of every stream          |
//! | `bitrnn.cell_state`   | `[streams, H]` | LSTM only: the carried cell state `c`             |
//! | `bitrnn.losses`       | `[steps]`      | the loss of every training step so far            |
//!
//! so `h_t = tanh(weight_ih x_t + bias_ih + weight_hh h_{t-1} + bias_hh)` (the GRU's and
//! LSTM's formulas, [`bitrnn_kernels::reference`]) and `logits = fc.weight h_t + fc.bias` are
//! exactly bitrnn's equations. PyTorch loads the model
//! after dropping the `bitrnn.` tensors (then `load_state_dict(..., strict=True)` checks that
//! nothing else is missing or extra); see `scripts/pytorch_check.py`.
//!
//! # Metadata (`__metadata__`, string to string)
//!
//! | key                | value                                                           |
//! |--------------------|-----------------------------------------------------------------|
//! | `format`           | `bitrnn-checkpoint`                                             |
//! | `format_version`   | `1`                                                             |
//! | `config`           | the run's [`TrainConfig`] as JSON (the `config` of summary.json)|
//! | `epoch`, `window`  | where the run stands: the next window to train ([`Progress`])   |
//! | `weights_checksum` | [`crate::model::checksum`] of the weights (integrity check)     |
//! | `state_checksum`   | FNV-1a of the bits of the three `bitrnn.` tensors, in the order |
//! |                    | of the table above (integrity check of the resume state)        |
//! | `producer`         | bitrnn's version and SIMD level (informational, not checked)    |
//!
//! No random-number-generator state is stored: the data is regenerated from `config.seed` on
//! resume (the generator is deterministic, see [`crate::data`]) and training itself draws no
//! random numbers. Weights, accumulator, position and carried state are all the trainer has,
//! which is why a resumed run is bit-for-bit the run that was never stopped.
//!
//! The bytes are a function of the contents: header keys sorted, tensor data in name order.
//! So the checkpoint of a resumed run is byte-identical to that of the uninterrupted run when
//! both ran with the same `--threads` (stored in `config`, though results do not depend on it).
//!
//! # Loading
//!
//! [`load`] trusts nothing in the file. It checks the 8-byte header length against the file
//! size before reading anything else, reads the header (at most [`MAX_HEADER_BYTES`]), checks
//! the metadata, the tensor names, dtypes and shapes against the stored config, and that the
//! file is exactly as long as those tensors need; only then does it read the data (so it
//! never allocates more than the file holds, nor more than the config implies). Then it
//! checks every value (finite; Adagrad's accumulator at least its initial value,
//! `--adagrad-init`; the hidden
//! state within tanh's range [-1, 1]; the RNN's `rnn.bias_hh_l0` zero) and both checksums. Any
//! failure is an [`Error::BadFile`] naming the file and what is wrong.

use crate::config::{Cell, TrainConfig, TrainSettings};
use crate::error::{Error, Result};
use crate::train::{Progress, Trainer};
use crate::{model, output};
use bitrnn_kernels::Params;
use bitrnn_kernels::params::Layout;
use safetensors::tensor::{SafeTensors, TensorInfo};
use safetensors::{Dtype, SafeTensorError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The `format` metadata value.
pub const FORMAT: &str = "bitrnn-checkpoint";
/// The `format_version` this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest header accepted. A bitrnn header is under 2 KB (nine tensor entries and a config);
/// anything claiming more than this is not a bitrnn checkpoint.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Tensor names, in the order they are checked.
pub const WEIGHT_IH: &str = "rnn.weight_ih_l0";
pub const WEIGHT_HH: &str = "rnn.weight_hh_l0";
pub const BIAS_IH: &str = "rnn.bias_ih_l0";
pub const BIAS_HH: &str = "rnn.bias_hh_l0";
pub const FC_WEIGHT: &str = "fc.weight";
pub const FC_BIAS: &str = "fc.bias";
pub const ADAGRAD_ACCUM: &str = "bitrnn.adagrad_accum";
pub const HIDDEN_STATE: &str = "bitrnn.hidden_state";
pub const CELL_STATE: &str = "bitrnn.cell_state";
pub const LOSSES: &str = "bitrnn.losses";

/// Everything a checkpoint holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The run's configuration (`epochs` is the target of the run that saved it; `threads`
    /// is informational: results do not depend on it).
    pub config: TrainConfig,
    pub params: Params<f32>,
    /// Adagrad's accumulator (all `--adagrad-init` and unused under SGD).
    pub accumulator: Params<f32>,
    /// The next window to train.
    pub progress: Progress,
    /// The carried state, `[streams][state_rows * hidden]`: `h`, then the LSTM's `c`
    /// ([`Layout::state_len`]).
    pub hidden_state: Vec<f32>,
    /// The loss of each training step so far: `epoch * windows_per_epoch + window` of them.
    pub losses: Vec<f32>,
    /// A text model's alphabet: the byte of each symbol id (metadata `alphabet`, a JSON
    /// array of `V` numbers), so that `eval`, `sample` and `--resume` read text as training
    /// did.
    pub alphabet: Option<Vec<u8>>,
}

impl Checkpoint {
    /// The trainer's current state and the losses of the steps it has run (the caller keeps
    /// them; `losses.len()` must be the number of steps the progress implies).
    ///
    /// # Panics
    /// If `losses` does not have one entry per step trained.
    #[must_use]
    pub fn of_trainer(trainer: &Trainer, losses: &[f32]) -> Self {
        let config = trainer.config().clone();
        let progress = trainer.progress();
        assert_eq!(
            losses.len(),
            progress.epoch * config.windows_per_epoch() + progress.window,
            "one loss per step trained"
        );
        Self {
            params: trainer.params().clone(),
            accumulator: trainer.accumulator().clone(),
            hidden_state: trainer.carried_state(),
            losses: losses.to_vec(),
            progress,
            alphabet: trainer.alphabet().map(<[u8]>::to_vec),
            config,
        }
    }
}

/// The tensors' expected shapes for `cfg` and `steps` trained steps, in checking order.
fn expected_shapes(cfg: &TrainConfig, steps: usize) -> Vec<(&'static str, Vec<usize>)> {
    let h = cfg.hidden;
    let layout = cfg.layout();
    let gh = layout.gate_rows();
    let mut shapes = vec![
        (WEIGHT_IH, vec![gh, layout.vocab]),
        (WEIGHT_HH, vec![gh, h]),
        (BIAS_IH, vec![gh]),
        (BIAS_HH, vec![gh]),
        (FC_WEIGHT, vec![layout.classes, h]),
        (FC_BIAS, vec![layout.classes]),
        (ADAGRAD_ACCUM, vec![layout.len()]),
        (HIDDEN_STATE, vec![cfg.streams(), h]),
        (LOSSES, vec![steps]),
    ];
    if cfg.cell == Cell::Lstm {
        shapes.push((CELL_STATE, vec![cfg.streams(), h]));
    }
    shapes
}

/// Row `row` (0: `h`, 1: the LSTM's `c`) of every stream's carried state
/// (`[streams][state_rows * hidden]`), as a `[streams, H]` tensor.
fn state_part(state: &[f32], layout: Layout, row: usize) -> Vec<f32> {
    let (h, width) = (layout.hidden, layout.cell.state_rows() * layout.hidden);
    state
        .chunks_exact(width)
        .flat_map(|s| &s[row * h..(row + 1) * h])
        .copied()
        .collect()
}

fn from_le_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

/// The checkpoint as the bytes of a safetensors file.
///
/// # Panics
/// If the shapes of `ckpt` are inconsistent with its config (a bug in the caller).
#[must_use]
pub fn to_bytes(ckpt: &Checkpoint) -> Vec<u8> {
    let cfg = &ckpt.config;
    let layout = cfg.layout();
    let p = &ckpt.params;
    assert_eq!(p.layout(), layout, "params match the config");
    assert_eq!(
        ckpt.accumulator.layout(),
        layout,
        "accumulator matches the config"
    );
    assert_eq!(
        ckpt.hidden_state.len(),
        layout.state_len(cfg.streams()),
        "state is [streams][state_rows * hidden]"
    );
    let steps = ckpt.progress.epoch * cfg.windows_per_epoch() + ckpt.progress.window;
    assert_eq!(ckpt.losses.len(), steps, "one loss per step");

    let gh = layout.gate_rows();
    let v_n = layout.vocab;
    let mut weight_ih = vec![0.0f32; gh * v_n];
    for k in 0..v_n {
        for r in 0..gh {
            weight_ih[r * v_n + k] = p.w_x()[k * gh + r];
        }
    }
    let bias_hh = if cfg.cell == Cell::Rnn {
        vec![0.0; gh]
    } else {
        p.b_hh().to_vec()
    };
    let mut data: Vec<Vec<f32>> = vec![
        weight_ih,
        p.w_hh().to_vec(),
        p.b_ih().to_vec(),
        bias_hh,
        p.w_hy().to_vec(),
        p.b_y().to_vec(),
        ckpt.accumulator.data.clone(),
        state_part(&ckpt.hidden_state, layout, 0),
        ckpt.losses.clone(),
    ];
    if cfg.cell == Cell::Lstm {
        data.push(state_part(&ckpt.hidden_state, layout, 1));
    }
    let config = serde_json::to_string(cfg).expect("config serializes");
    if let Some(a) = &ckpt.alphabet {
        assert_eq!(a.len(), layout.vocab, "one byte per input symbol");
    }
    let alphabet = ckpt.alphabet.as_ref().map(|a| {
        (
            "alphabet",
            serde_json::to_string(a).expect("bytes serialize"),
        )
    });
    let metadata: BTreeMap<&str, String> = alphabet
        .into_iter()
        .chain([
            ("format", FORMAT.to_string()),
            ("format_version", FORMAT_VERSION.to_string()),
            ("config", config),
            ("epoch", ckpt.progress.epoch.to_string()),
            ("window", ckpt.progress.window.to_string()),
            ("weights_checksum", model::checksum(p)),
            (
                "state_checksum",
                state_checksum(&ckpt.accumulator.data, &ckpt.hidden_state, &ckpt.losses),
            ),
            (
                "producer",
                format!(
                    "bitrnn {} (SIMD: {})",
                    env!("CARGO_PKG_VERSION"),
                    bitrnn_kernels::simd_level()
                ),
            ),
        ])
        .collect();
    encode(
        &metadata,
        expected_shapes(cfg, steps).into_iter().zip(&data),
    )
}

/// FNV-1a over the bits of the resume state (accumulator, hidden state, losses), the hash of
/// [`crate::model::checksum`].
fn state_checksum(accumulator: &[f32], hidden_state: &[f32], losses: &[f32]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for v in [accumulator, hidden_state, losses].into_iter().flatten() {
        for b in v.to_bits().to_le_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// One entry of a safetensors header.
#[derive(Serialize)]
#[serde(untagged)]
enum HeaderEntry<'a> {
    Metadata(&'a BTreeMap<&'a str, String>),
    Tensor(TensorInfo),
}

/// A safetensors file of F32 tensors, written here rather than by `safetensors::serialize`
/// so that the bytes are a function of the contents: the crate takes the metadata as a
/// `HashMap`, whose order changes from one process to the next. Keys are in sorted order
/// (`__metadata__` first), the tensors' data in name order, and the header is padded with
/// spaces to a multiple of 8 bytes, as the crate does. The tests read every file back with
/// the crate.
fn encode<'a>(
    metadata: &BTreeMap<&str, String>,
    tensors: impl Iterator<Item = ((&'static str, Vec<usize>), &'a Vec<f32>)>,
) -> Vec<u8> {
    let mut tensors: Vec<_> = tensors.collect();
    tensors.sort_by_key(|((name, _), _)| *name);
    let mut header = BTreeMap::new();
    header.insert("__metadata__", HeaderEntry::Metadata(metadata));
    let mut offset = 0;
    for ((name, shape), values) in &tensors {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "{name}: shape"
        );
        let end = offset + 4 * values.len();
        header.insert(
            name,
            HeaderEntry::Tensor(TensorInfo {
                dtype: Dtype::F32,
                shape: shape.clone(),
                data_offsets: (offset, end),
            }),
        );
        offset = end;
    }
    let mut text = serde_json::to_vec(&header).expect("header serializes");
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for (_, values) in &tensors {
        out.extend(values.iter().flat_map(|x| x.to_le_bytes()));
    }
    out
}

/// Writes `ckpt` to `path` atomically (a temporary sibling renamed over `path`).
///
/// # Errors
/// [`Error::Io`] naming `path`.
///
/// # Panics
/// If the shapes of `ckpt` are inconsistent with its config.
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    output::write_atomic_bytes(path, &to_bytes(ckpt))
}

/// What the header says, checked against itself: config, progress and checksum from the
/// metadata, and each tensor's entry.
struct Header {
    config: TrainConfig,
    progress: Progress,
    checksum: String,
    state_checksum: String,
    steps: usize,
    alphabet: Option<Vec<u8>>,
    /// Bytes of tensor data the header's tensors need.
    data_bytes: u64,
}

/// Parses and checks the header JSON (everything but the data offsets, which the
/// safetensors crate checks against the whole buffer).
fn check_header(text: &[u8]) -> std::result::Result<Header, String> {
    let text = std::str::from_utf8(text)
        .map_err(|_| "the header is not UTF-8 text: not a safetensors file".to_string())?;
    let mut entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| format!("the header is not a safetensors JSON object: {e}"))?;

    let meta = entries.remove("__metadata__").ok_or(
        "no __metadata__: not a bitrnn checkpoint (a bare PyTorch state dict cannot be \
         resumed or evaluated)",
    )?;
    let meta: HashMap<String, String> = serde_json::from_value(meta)
        .map_err(|e| format!("__metadata__ is not a map of strings: {e}"))?;
    let get = |key: &str| {
        meta.get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("metadata key '{key}' is missing"))
    };
    match get("format")? {
        FORMAT => {}
        f => return Err(format!("metadata format {f:?}, want {FORMAT:?}")),
    }
    match get("format_version")?.parse::<u32>() {
        Ok(FORMAT_VERSION) => {}
        _ => {
            return Err(format!(
                "metadata format_version {:?}: this build reads version {FORMAT_VERSION}",
                get("format_version")?
            ));
        }
    }
    // Read strictly (an unknown or missing key is an error), then validated.
    let settings: TrainSettings = serde_json::from_str(get("config")?)
        .map_err(|e| format!("metadata config is not a bitrnn TrainConfig: {e}"))?;
    let config =
        TrainConfig::new(settings).map_err(|e| format!("metadata config is invalid: {e}"))?;
    let count = |key: &str| -> std::result::Result<usize, String> {
        let v = get(key)?;
        v.parse()
            .map_err(|_| format!("metadata {key} {v:?} is not a non-negative integer"))
    };
    let (epoch, window) = (count("epoch")?, count("window")?);
    let wpe = config.windows_per_epoch();
    if window >= wpe {
        return Err(format!(
            "metadata window {window} is out of range: an epoch has {wpe} windows"
        ));
    }
    let steps = epoch
        .checked_mul(wpe)
        .and_then(|s| s.checked_add(window))
        .filter(|&s| s <= isize::MAX as usize / 4)
        .ok_or_else(|| format!("metadata epoch {epoch} is absurd"))?;
    let checksum = get("weights_checksum")?.to_string();
    let state_checksum = get("state_checksum")?.to_string();
    let alphabet = match meta.get("alphabet") {
        None => None,
        Some(text) => {
            let a: Vec<u8> = serde_json::from_str(text)
                .map_err(|e| format!("metadata alphabet is not a list of bytes: {e}"))?;
            let sorted = a.windows(2).all(|w| w[0] < w[1]);
            if a.len() != config.vocab || !sorted {
                return Err(format!(
                    "metadata alphabet has {} bytes{}, but the model has {} input symbols",
                    a.len(),
                    if sorted {
                        ""
                    } else {
                        " not in increasing order"
                    },
                    config.vocab
                ));
            }
            Some(a)
        }
    };

    let expected = expected_shapes(&config, steps);
    if let Some(extra) = entries
        .keys()
        .find(|k| !expected.iter().any(|(n, _)| n == k))
    {
        let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unexpected tensor '{extra}' (a bitrnn checkpoint holds exactly {})",
            names.join(", ")
        ));
    }
    let mut data_bytes: u64 = 0;
    for (name, shape) in &expected {
        let entry = entries
            .remove(*name)
            .ok_or_else(|| format!("tensor '{name}' is missing"))?;
        let info: TensorInfo = serde_json::from_value(entry)
            .map_err(|e| format!("tensor '{name}': unreadable entry: {e}"))?;
        if info.dtype != Dtype::F32 {
            return Err(format!(
                "tensor '{name}' has dtype {}, want F32",
                info.dtype
            ));
        }
        if info.shape != *shape {
            return Err(format!(
                "tensor '{name}' has shape {:?}, want {shape:?} for the stored config \
                 (hidden {}, {} streams, {steps} steps)",
                info.shape,
                config.hidden,
                config.streams()
            ));
        }
        data_bytes += 4 * shape.iter().product::<usize>() as u64;
    }
    Ok(Header {
        config,
        progress: Progress { epoch, window },
        checksum,
        state_checksum,
        steps,
        alphabet,
        data_bytes,
    })
}

/// Reads and checks a checkpoint; see the module documentation for what is checked.
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened or read; [`Error::BadFile`] naming the file and
/// the first problem found otherwise.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bad = |reason: String| Error::bad_file(path, reason);
    let io = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(bad("empty file, not a safetensors checkpoint".into()));
    }
    if len < 8 {
        return Err(bad(format!(
            "truncated: {len} bytes, shorter than safetensors' 8-byte header length"
        )));
    }
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(io)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "header length {n} bytes is absurd (a bitrnn header is under {MAX_HEADER_BYTES}): \
             not a bitrnn checkpoint{}",
            if n > len - 8 { ", or truncated" } else { "" }
        )));
    }
    if n > len - 8 {
        return Err(bad(format!(
            "truncated: the header length says {n} bytes but only {} follow it",
            len - 8
        )));
    }
    let mut head = vec![0u8; n as usize];
    file.read_exact(&mut head).map_err(io)?;
    let header = check_header(&head).map_err(bad)?;
    let want = 8 + n + header.data_bytes;
    if len < want {
        return Err(bad(format!(
            "truncated: {len} bytes, the header's tensors need {want}"
        )));
    }
    if len > want {
        return Err(bad(format!(
            "{} trailing bytes after the tensors ({len} bytes, the header's tensors need {want})",
            len - want
        )));
    }
    // The file is exactly as long as the validated header implies: read it whole, but never
    // more than that (it might grow while being read).
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut bytes = Vec::with_capacity(want as usize);
    file.take(want).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 != want {
        return Err(bad("the file changed while being read".into()));
    }
    decode(&bytes, header).map_err(bad)
}

/// The tensors of a checked header out of the whole file's bytes, with every value checked.
fn decode(bytes: &[u8], header: Header) -> std::result::Result<Checkpoint, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| match e {
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor '{name}' has data offsets that do not follow the previous tensor")
        }
        e => format!("the tensors do not match the header: {e}"),
    })?;
    let Header {
        config,
        progress,
        checksum,
        state_checksum: state_sum,
        steps,
        ..
    } = header;
    let tensor = |name: &str| -> std::result::Result<Vec<f32>, String> {
        let v = from_le_bytes(st.tensor(name).map_err(|e| e.to_string())?.data());
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "tensor '{name}' holds a non-finite value ({} at index {i})",
                v[i]
            ));
        }
        Ok(v)
    };
    let h = config.hidden;
    let layout = config.layout();
    let gh = layout.gate_rows();
    let mut params = Params::<f32>::filled_as(layout, 0.0);
    let weight_ih = tensor(WEIGHT_IH)?;
    let v_n = layout.vocab;
    for k in 0..v_n {
        for r in 0..gh {
            params.w_x_mut()[k * gh + r] = weight_ih[r * v_n + k];
        }
    }
    params.w_hh_mut().copy_from_slice(&tensor(WEIGHT_HH)?);
    params.b_ih_mut().copy_from_slice(&tensor(BIAS_IH)?);
    let bias_hh = tensor(BIAS_HH)?;
    if config.cell != Cell::Rnn {
        params.b_hh_mut().copy_from_slice(&bias_hh);
    } else if bias_hh.iter().any(|&b| b != 0.0) {
        return Err(format!(
            "tensor '{BIAS_HH}' is not zero: bitrnn's rnn cell has one hidden bias (fold it \
             into '{BIAS_IH}')"
        ));
    }
    params.w_hy_mut().copy_from_slice(&tensor(FC_WEIGHT)?);
    params.b_y_mut().copy_from_slice(&tensor(FC_BIAS)?);
    let actual = model::checksum(&params);
    if actual != checksum {
        return Err(format!(
            "weights_checksum mismatch: the metadata says {checksum}, the weights give \
             {actual} (the file was modified or corrupted)"
        ));
    }
    let accum = tensor(ADAGRAD_ACCUM)?;
    let start = config.adagrad_init;
    if let Some(i) = accum.iter().position(|&a| a < start) {
        return Err(format!(
            "tensor '{ADAGRAD_ACCUM}' holds {} at index {i}, below the initial {start} \
             (--adagrad-init; the accumulator only grows)",
            accum[i]
        ));
    }
    let h_state = tensor(HIDDEN_STATE)?;
    if let Some(i) = h_state.iter().position(|s| s.abs() > 1.0) {
        return Err(format!(
            "tensor '{HIDDEN_STATE}' holds {} at index {i}, outside tanh's range [-1, 1]",
            h_state[i]
        ));
    }
    let hidden_state = if config.cell == Cell::Lstm {
        let c_state = tensor(CELL_STATE)?;
        h_state
            .chunks_exact(h)
            .zip(c_state.chunks_exact(h))
            .flat_map(|(hs, cs)| hs.iter().chain(cs))
            .copied()
            .collect()
    } else {
        h_state
    };
    let losses = tensor(LOSSES)?;
    if let Some(i) = losses.iter().position(|&l| l < 0.0) {
        return Err(format!(
            "tensor '{LOSSES}' holds a negative loss ({} at step {i})",
            losses[i]
        ));
    }
    debug_assert_eq!(losses.len(), steps);
    let actual = state_checksum(&accum, &hidden_state, &losses);
    if actual != state_sum {
        return Err(format!(
            "state_checksum mismatch: the metadata says {state_sum}, the tensors give {actual} \
             (the file was modified or corrupted)"
        ));
    }
    Ok(Checkpoint {
        accumulator: Params::from_vec_as(layout, accum).expect("shape checked"),
        config,
        params,
        progress,
        hidden_state,
        losses,
        alphabet: header.alphabet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Engine, Optimizer};
    use safetensors::tensor::TensorView;
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("bitrnn-ckpt-unit-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TestDir(dir)
        }
        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn small_config() -> TrainConfig {
        TrainConfig::new(TrainSettings {
            data_size: 4_000,
            batch_size: 200,
            time_step: 5,
            hidden: 3,
            epochs: 2,
            threads: 1,
            ..TrainSettings::SEED
        })
        .unwrap()
    }

    /// A checkpoint with distinct, recognisable values in every tensor (integers, so every
    /// value round-trips exactly) and a progress in the middle of an epoch.
    fn sample() -> Checkpoint {
        let config = small_config();
        let h = config.hidden;
        let progress = Progress {
            epoch: 1,
            window: 7,
        };
        let steps = config.windows_per_epoch() + 7;
        let params = Params::from_vec(
            h,
            (0..Layout::new(h).len()).map(|i| i as f32 - 10.0).collect(),
        )
        .unwrap();
        let accumulator = Params::from_vec(
            h,
            (0..Layout::new(h).len()).map(|i| 0.5 + i as f32).collect(),
        )
        .unwrap();
        let hidden_state = (0..config.streams() * h)
            .map(|i| (i % 5) as f32 * 0.25 - 0.5)
            .collect();
        let losses = (0..steps).map(|i| 0.7 - i as f32 / 1024.0).collect();
        Checkpoint {
            config,
            params,
            accumulator,
            progress,
            hidden_state,
            losses,
            alphabet: None,
        }
    }

    /// The tensors of a safetensors buffer, its metadata, and a re-encoder, for corrupting
    /// one thing at a time.
    struct Parts {
        tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
        meta: HashMap<String, String>,
    }

    impl Parts {
        fn of(bytes: &[u8]) -> Self {
            let st = SafeTensors::deserialize(bytes).unwrap();
            let (_, m) = SafeTensors::read_metadata(bytes).unwrap();
            let mut tensors: Vec<_> = st
                .tensors()
                .into_iter()
                .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
                .collect();
            tensors.sort_by(|a, b| a.0.cmp(&b.0));
            Self {
                tensors,
                meta: m.metadata().clone().unwrap(),
            }
        }
        fn encode(&self) -> Vec<u8> {
            let views: Vec<(String, TensorView<'_>)> = self
                .tensors
                .iter()
                .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
                .collect();
            safetensors::serialize(views, Some(self.meta.clone())).unwrap()
        }
        fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
            self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
        }
        /// Sets value `i` of an F32 tensor.
        fn set(&mut self, name: &str, i: usize, v: f32) {
            self.tensor(name).3[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Loads `bytes` from a file and returns the error message, which must be a BadFile.
    fn refusal(dir: &TestDir, bytes: &[u8]) -> String {
        let path = dir.write("bad.safetensors", bytes);
        match load(&path) {
            Err(e @ Error::BadFile { .. }) => {
                assert_eq!(e.exit_code(), 2);
                e.to_string()
            }
            Err(e) => panic!("expected BadFile, got {e:?}"),
            Ok(_) => panic!("a bad file was accepted"),
        }
    }

    fn assert_refused(dir: &TestDir, bytes: &[u8], needle: &str) {
        let msg = refusal(dir, bytes);
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
        assert!(msg.contains("bad.safetensors"), "{msg:?} names the file");
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = TestDir::new("roundtrip");
        let ck = sample();
        let path = dir.0.join("ok.safetensors");
        save(&path, &ck).unwrap();
        assert_eq!(load(&path).unwrap(), ck);
        // Only the checkpoint is left: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
    }

    #[test]
    fn bytes_are_deterministic_and_keys_sorted() {
        let a = to_bytes(&sample());
        assert_eq!(a, to_bytes(&sample()));
        let n = u64::from_le_bytes(a[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0, "header padded to 8 bytes");
        let text = std::str::from_utf8(&a[8..8 + n]).unwrap();
        assert!(text.starts_with("{\"__metadata__\":{\"config\":"), "{text}");
        // The crate agrees with the offsets and finds every tensor.
        let st = SafeTensors::deserialize(&a).unwrap();
        let mut names = st.names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                ADAGRAD_ACCUM,
                HIDDEN_STATE,
                LOSSES,
                FC_BIAS,
                FC_WEIGHT,
                BIAS_HH,
                BIAS_IH,
                WEIGHT_HH,
                WEIGHT_IH
            ]
        );
    }

    #[test]
    fn tensors_have_pytorch_names_shapes_and_orientation() {
        let ck = sample();
        let bytes = to_bytes(&ck);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let h = ck.config.hidden;
        let get = |n: &str| {
            let t = st.tensor(n).unwrap();
            assert_eq!(t.dtype(), Dtype::F32);
            (t.shape().to_vec(), from_le_bytes(t.data()))
        };
        let (shape, w_ih) = get(WEIGHT_IH);
        assert_eq!(shape, [h, 2]);
        for j in 0..h {
            for k in 0..2 {
                assert_eq!(w_ih[j * 2 + k], ck.params.w_xh()[k * h + j], "[{j}][{k}]");
            }
        }
        assert_eq!(get(WEIGHT_HH), (vec![h, h], ck.params.w_hh().to_vec()));
        assert_eq!(get(BIAS_IH), (vec![h], ck.params.b_h().to_vec()));
        assert_eq!(get(BIAS_HH), (vec![h], vec![0.0; h]));
        assert_eq!(get(FC_WEIGHT), (vec![2, h], ck.params.w_hy().to_vec()));
        assert_eq!(get(FC_BIAS), (vec![2], ck.params.b_y().to_vec()));
        assert_eq!(get(HIDDEN_STATE).0, [ck.config.streams(), h]);
        let meta = Parts::of(&bytes).meta;
        assert_eq!(meta["format"], FORMAT);
        assert_eq!(meta["format_version"], "1");
        assert_eq!(meta["epoch"], "1");
        assert_eq!(meta["window"], "7");
        assert_eq!(meta["weights_checksum"], model::checksum(&ck.params));
        assert_eq!(meta.len(), 8, "{meta:?}");
        assert_eq!(
            meta["config"],
            serde_json::to_string(&ck.config).unwrap(),
            "the config JSON is summary.json's"
        );
    }

    /// The accumulator is checked against the run's own `--adagrad-init`: an accumulator of
    /// zeros is a run from 0 (min-char-rnn's), one below a start of 0.6 is refused.
    #[test]
    fn the_accumulator_is_checked_against_its_start() {
        let dir = TestDir::new("accum-start");
        let ck = sample();
        let with = |adagrad_init: f32, accum: f32| Checkpoint {
            config: TrainConfig::new(TrainSettings {
                adagrad_init,
                adagrad_eps: 1e-8,
                ..*ck.config.settings()
            })
            .unwrap(),
            accumulator: Params::filled(ck.config.hidden, accum),
            ..ck.clone()
        };
        let path = dir.0.join("zero.safetensors");
        let zero = with(0.0, 0.0);
        save(&path, &zero).unwrap();
        assert_eq!(load(&path).unwrap(), zero);
        assert_refused(
            &dir,
            &to_bytes(&with(0.6, 0.5)),
            "holds 0.5 at index 0, below the initial 0.6 (--adagrad-init;",
        );
    }

    #[test]
    fn every_config_setting_round_trips() {
        let dir = TestDir::new("configs");
        let small = *small_config().settings();
        for settings in [
            TrainSettings {
                optimizer: Optimizer::Sgd,
                engine: Engine::Scalar,
                lr: 0.037,
                seed: u64::MAX,
                lags: (5, 6),
                ..small
            },
            TrainSettings {
                hidden: 9,
                time_step: 7,
                ..small
            },
            TrainSettings {
                clip: Some(5.0),
                adagrad_eps: 1e-8,
                adagrad_init: 0.0,
                init: crate::config::Init::Normal { std: 0.01 },
                ..small
            },
            TrainSettings {
                clip: Some(0.25),
                adagrad_init: 0.1,
                init: crate::config::Init::Pytorch,
                ..small
            },
        ] {
            let config = TrainConfig::new(settings).unwrap();
            let h = config.hidden;
            let ck = Checkpoint {
                params: Params::filled(h, 0.5),
                accumulator: Params::filled(h, 0.1),
                hidden_state: vec![0.0; config.streams() * h],
                losses: vec![],
                progress: Progress::default(),
                config,
                alphabet: None,
            };
            let path = dir.0.join("c.safetensors");
            save(&path, &ck).unwrap();
            assert_eq!(load(&path).unwrap(), ck);
        }
    }

    #[test]
    fn refuses_empty_short_and_random_files() {
        let dir = TestDir::new("garbage");
        assert_refused(&dir, b"", "empty file");
        assert_refused(&dir, b"\x10\0\0", "truncated");
        // Random bytes (a fixed xorshift stream): the header length is absurd.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        assert_refused(&dir, &random, "absurd");
    }

    #[test]
    fn refuses_header_lengths_beyond_the_file_or_absurd() {
        let dir = TestDir::new("headerlen");
        // u64::MAX: must be refused from the 8 bytes alone, nothing allocated.
        let mut b = u64::MAX.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert_refused(&dir, &b, "absurd");
        // Plausible but longer than the file.
        let mut b = 1000u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{\"a\":1}");
        assert_refused(&dir, &b, "truncated: the header length says 1000 bytes");
        // The right length over something that is not JSON.
        let mut b = 8u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"\xff\xfe\x00garbage");
        assert_refused(&dir, &b[..16], "not UTF-8");
        let mut b = 8u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"notjson!");
        assert_refused(&dir, &b, "not a safetensors JSON object");
    }

    #[test]
    fn refuses_truncated_and_padded_files() {
        let dir = TestDir::new("truncated");
        let good = to_bytes(&sample());
        for cut in [1, 4, 100, good.len() / 2] {
            assert_refused(&dir, &good[..good.len() - cut], "truncated");
        }
        let mut long = good.clone();
        long.extend_from_slice(&[0; 4]);
        assert_refused(&dir, &long, "4 trailing bytes");
    }

    #[test]
    fn refuses_wrong_missing_or_extra_tensors() {
        let dir = TestDir::new("names");
        let good = to_bytes(&sample());

        let mut p = Parts::of(&good);
        p.tensor(WEIGHT_HH).0 = "rnn.weight_hh".into();
        assert_refused(&dir, &p.encode(), "unexpected tensor 'rnn.weight_hh'");

        let mut p = Parts::of(&good);
        p.tensors.retain(|t| t.0 != FC_BIAS);
        assert_refused(&dir, &p.encode(), "tensor 'fc.bias' is missing");

        let mut p = Parts::of(&good);
        p.tensors
            .push(("extra".into(), Dtype::F32, vec![1], vec![0; 4]));
        assert_refused(&dir, &p.encode(), "unexpected tensor 'extra'");
    }

    #[test]
    fn refuses_wrong_shapes_and_dtypes() {
        let dir = TestDir::new("shapes");
        let good = to_bytes(&sample());
        let h = sample().config.hidden;

        // The transpose of weight_ih: the same bytes, PyTorch would reject it too.
        let mut p = Parts::of(&good);
        p.tensor(WEIGHT_IH).2 = vec![2, h];
        assert_refused(
            &dir,
            &p.encode(),
            "'rnn.weight_ih_l0' has shape [2, 3], want [3, 2]",
        );

        // The same bytes as F64 (half as many numbers).
        let mut p = Parts::of(&good);
        let t = p.tensor(WEIGHT_HH);
        t.1 = Dtype::F64;
        t.2 = vec![h * h / 2];
        let mut b = t.3.clone();
        b.truncate(8 * (h * h / 2));
        t.3 = b;
        assert_refused(&dir, &p.encode(), "dtype F64, want F32");

        // Tensors of another hidden size than the config's.
        let other = Checkpoint {
            config: TrainConfig::new(TrainSettings {
                hidden: 4,
                ..*sample().config.settings()
            })
            .unwrap(),
            ..sample()
        };
        let mut p = Parts::of(&good);
        let q = Parts::of(&to_bytes(&Checkpoint {
            params: Params::zeros(4),
            accumulator: Params::filled(4, 0.1),
            hidden_state: vec![0.0; other.config.streams() * 4],
            ..other
        }));
        p.tensors = q.tensors;
        assert_refused(
            &dir,
            &p.encode(),
            "want [3, 2] for the stored config (hidden 3",
        );

        // A hidden state for another number of streams.
        let mut p = Parts::of(&good);
        let t = p.tensor(HIDDEN_STATE);
        t.2[0] -= 1;
        let n = t.3.len() - 4 * h;
        t.3.truncate(n);
        assert_refused(&dir, &p.encode(), "'bitrnn.hidden_state' has shape [19, 3]");

        // One loss too few for the progress.
        let mut p = Parts::of(&good);
        let t = p.tensor(LOSSES);
        t.2[0] -= 1;
        let n = t.3.len() - 4;
        t.3.truncate(n);
        assert_refused(&dir, &p.encode(), "'bitrnn.losses' has shape [46]");
    }

    #[test]
    fn refuses_non_finite_and_impossible_values() {
        let dir = TestDir::new("values");
        let good = to_bytes(&sample());
        for (name, i) in [(WEIGHT_HH, 4), (FC_BIAS, 1), (HIDDEN_STATE, 0), (LOSSES, 3)] {
            for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut p = Parts::of(&good);
                p.set(name, i, v);
                assert_refused(&dir, &p.encode(), &format!("'{name}' holds a non-finite"));
            }
        }
        let mut p = Parts::of(&good);
        p.set(ADAGRAD_ACCUM, 2, f32::NAN);
        assert_refused(&dir, &p.encode(), "non-finite");

        let mut p = Parts::of(&good);
        p.set(ADAGRAD_ACCUM, 2, 0.0);
        assert_refused(&dir, &p.encode(), "below the initial 0.1 (--adagrad-init;");
        let mut p = Parts::of(&good);
        p.set(HIDDEN_STATE, 5, 1.5);
        assert_refused(&dir, &p.encode(), "outside tanh's range");
        let mut p = Parts::of(&good);
        p.set(BIAS_HH, 0, 0.25);
        assert_refused(&dir, &p.encode(), "'rnn.bias_hh_l0' is not zero");
        let mut p = Parts::of(&good);
        p.set(LOSSES, 0, -1.0);
        assert_refused(&dir, &p.encode(), "negative loss");
        // A weight changed without updating the checksum.
        let mut p = Parts::of(&good);
        p.set(WEIGHT_HH, 0, 1234.0);
        assert_refused(&dir, &p.encode(), "weights_checksum mismatch");
        // A plausible loss, accumulator or state value changed without the checksum.
        for (name, v) in [(LOSSES, 0.5), (ADAGRAD_ACCUM, 7.0), (HIDDEN_STATE, 0.125)] {
            let mut p = Parts::of(&good);
            p.set(name, 1, v);
            assert_refused(&dir, &p.encode(), "state_checksum mismatch");
        }
    }

    #[test]
    fn refuses_missing_or_unparseable_metadata() {
        let dir = TestDir::new("meta");
        let good = to_bytes(&sample());

        // A bare state dict (no metadata at all).
        let p = Parts::of(&good);
        let views: Vec<(String, TensorView<'_>)> = p
            .tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let bare = safetensors::serialize(views, None).unwrap();
        assert_refused(&dir, &bare, "no __metadata__");

        for key in [
            "format",
            "format_version",
            "config",
            "epoch",
            "window",
            "weights_checksum",
            "state_checksum",
        ] {
            let mut p = Parts::of(&good);
            p.meta.remove(key);
            assert_refused(
                &dir,
                &p.encode(),
                &format!("metadata key '{key}' is missing"),
            );
        }
        let cases: [(&str, &str, &str); 10] = [
            ("format", "gguf", "metadata format \"gguf\""),
            ("format_version", "2", "this build reads version 1"),
            ("config", "{not json", "not a bitrnn TrainConfig"),
            ("config", "{}", "not a bitrnn TrainConfig"),
            ("epoch", "-1", "metadata epoch \"-1\""),
            ("epoch", "99999999999999999999", "metadata epoch"),
            ("window", "40", "window 40 is out of range"),
            ("epoch", "1000000000000000000", "absurd"),
            (
                "weights_checksum",
                "0000000000000000",
                "weights_checksum mismatch",
            ),
            (
                "state_checksum",
                "0000000000000000",
                "state_checksum mismatch",
            ),
        ];
        for (key, value, needle) in cases {
            let mut p = Parts::of(&good);
            p.meta.insert(key.into(), value.into());
            assert_refused(&dir, &p.encode(), needle);
        }
        // A config that parses but is invalid, or has an unknown field.
        let cfg = serde_json::to_string(&sample().config).unwrap();
        for (bad, needle) in [
            (cfg.replace("\"hidden\":3", "\"hidden\":0"), "--hidden 0"),
            (
                cfg.replace("\"engine\":\"simd\"", "\"engine\":\"gpu\""),
                "unknown variant `gpu`, expected `simd` or `scalar`",
            ),
            (
                cfg.replace('}', ",\"dropout\":0.5}"),
                "unknown field `dropout`",
            ),
        ] {
            let mut p = Parts::of(&good);
            p.meta.insert("config".into(), bad);
            assert_refused(&dir, &p.encode(), needle);
        }
        // Metadata whose values are not all strings.
        let b = with_header(&good, |v| v["__metadata__"]["epoch"] = serde_json::json!(1));
        assert_refused(&dir, &b, "__metadata__ is not a map of strings");
        // A tensor entry that safetensors itself cannot read.
        let b = with_header(&good, |v| v[FC_BIAS]["dtype"] = serde_json::json!("F31"));
        assert_refused(&dir, &b, "tensor 'fc.bias': unreadable entry");
    }

    /// `bytes` with its header JSON edited by `edit` (the header length is rewritten).
    fn with_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        edit(&mut v);
        let text = serde_json::to_string(&v).unwrap();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(&bytes[8 + n..]);
        out
    }

    #[test]
    fn refuses_overlapping_offsets() {
        let dir = TestDir::new("offsets");
        let good = to_bytes(&sample());
        // Shift the first tensor's offsets (offset 0) by 4 bytes: the sizes and the file
        // length stay right, so only the crate's offset check can catch it.
        let b = with_header(&good, |v| {
            let obj = v.as_object_mut().unwrap();
            let first = obj
                .iter()
                .filter(|(k, _)| *k != "__metadata__")
                .min_by_key(|(_, t)| t["data_offsets"][0].as_u64().unwrap())
                .map(|(k, _)| k.clone())
                .unwrap();
            let o = &mut obj.get_mut(&first).unwrap()["data_offsets"];
            let (s, e) = (o[0].as_u64().unwrap(), o[1].as_u64().unwrap());
            *o = serde_json::json!([s + 4, e + 4]);
        });
        assert_refused(&dir, &b, "data offsets");
    }
}
