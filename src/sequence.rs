//! Sequences of symbols to train on, read from a text or from two integer `.npy` arrays, and
//! the time-major symbol planes of their windows: the data side of models over `V` input
//! symbols and `C` classes (the generator's bits are the case `V = C = 2`, see [`crate::data`]).
//!
//! # The data
//!
//! A [`Sequence`] is `len` positions; position `i` has an input symbol `inputs[i] < V` and a
//! target class `targets[i] < C`, with `1 <= V <= 65,536` and `2 <= C <= 65,536` (one class
//! leaves a softmax nothing to predict). Three sources:
//!
//! - **A text** ([`Sequence::from_text`]): next-byte prediction. The vocabulary is the sorted
//!   set of the bytes that occur (or all 256 with `all_bytes`, `--bytes`); symbol `id` is the
//!   byte `alphabet[id]`, and `V = C = alphabet.len()`. Position `i` has the input
//!   `bytes[i]` and the target `bytes[i + 1]`, so `len = bytes.len() - 1`. A model that already
//!   has an alphabet (eval, resume) reads with it: [`Sequence::from_text_with_alphabet`].
//! - **Two `.npy` arrays** ([`Sequence::from_npy`], [`Sequence::from_dir`] for `DIR/x.npy`
//!   and `DIR/y.npy`, what `bitrnn generate` writes): inputs and targets, 1-D, C order, of one
//!   length, any little-endian integer dtype (`|u1`, `<u2`, `<u4`, `<u8`, `|i1`, `<i2`, `<i4`,
//!   `<i8`: what numpy and PyTorch write for token ids). `V` and `C` are given or are
//!   `max + 1` of each array.
//! - **Memory** ([`Sequence::from_ids`]), for tests and tools.
//!
//! Everything else is refused with one line naming the file and what is allowed
//! ([`Error::BadFile`], exit 2; [`Error::Io`] for a file that cannot be read): an empty file,
//! a text of one byte (no target) or of one distinct byte (no choice to learn), a float, bool,
//! string or big-endian dtype, an array of 0 or 2 or more dimensions, Fortran order, a
//! truncated array or one with bytes after its data, arrays of different lengths, a negative
//! id, an id `>= V` (or `>= C`; the message names its index and value) or above 65,535, a
//! directory without `x.npy` and `y.npy`. No input bytes make it panic (the fuzz target
//! `sequence_parse` checks this).
//!
//! # Storage: at most one byte per position for a text
//!
//! [`Symbols`] holds ids in the narrowest type that fits their bound (`V` for the inputs, `C`
//! for the targets): `u8` up to 256 symbols, `u16` above. A text's inputs and targets are two
//! views of one array of byte ids, offset by one, so a text of `n` bytes holds `n` bytes (a
//! 100 MB text trains with 100 MB of data). The file is read straight into the buffer that
//! becomes the ids, which are then mapped in place through a 256-entry table: the text is
//! never held twice.
//!
//! Views share their storage ([`std::sync::Arc`]): [`Sequence::split_valid`] and `clone` copy
//! nothing.
//!
//! # Reading `.npy`
//!
//! The file is memory-mapped ([`memmap2`]); [`npyz`] parses the header and converts the
//! values from their dtype. Two passes over the map, never a copy in the file's dtype: the
//! first checks every value and finds the maximum (which fixes `V` or `C`, and so the width),
//! the second writes the narrow ids. Before npyz sees a file, three guards keep hostile
//! headers from it: the header length must lie within the file (npyz would allocate whatever
//! the header claims, up to 4 GiB); the header may hold at most a few brackets (the
//! Python-literal parser npyz uses takes time exponential in their nesting: a header of
//! 30 nested `[` would hang it); and a `shape` of other than one dimension is refused (npyz
//! multiplies the dimensions unchecked, which overflows on a shape like `(2**40, 2**40)`).
//! The shape is read for that with `py_literal`, the parser npyz itself uses.
//!
//! # Time-major symbol planes
//!
//! As for the bits ([`crate::data`], "Time-major bit planes"): the positions are cut into
//! `streams = len / stream_len` parallel streams, stream `s` being positions
//! `[s * stream_len, (s + 1) * stream_len)` (the leftover tail is unused), and the kernels
//! take each window as [`SymbolPlanes`], one row of `stride` ids per step:
//!
//! ```text
//! x[t * stride + s] = inputs[s * stream_len + t0 + t]      s < streams
//! x[t * stride + s] = 0                                    streams <= s < stride (padding)
//! stride = groups_for(streams) * LANES                     whole lane groups
//! ```
//!
//! (and `y` likewise from the targets). [`SymbolChunks`] fills whole windows covering about
//! 64 steps at once, as [`crate::planes::PlaneChunks`] does for the bits, by a transposing
//! copy 32 streams at a time: 32 sequential reads of the streams' rows, one 64-byte write
//! (a cache line) per step. Measured (2-vCPU VM): 1000 streams x 25 steps take about 20 µs a
//! window (inputs and targets), 100,000 streams about 17 ms (memory-bound: 10 MB of planes a
//! window); 8 or 16 streams at a time were slower, 64 much slower.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::simd::{SymbolPlanes, groups_for};
use npyz::{DType, Endianness, NpyHeader, Order, TypeChar};

use crate::output::shown;
use crate::{Error, Result};

/// The largest vocabulary and the largest number of classes: ids are `u16`.
pub const MAX_SYMBOLS: usize = 1 << 16;

/// The integer dtypes a `.npy` file may hold, for messages.
const DTYPES: &str = "u1, u2, u4, u8, i1, i2, i4 or i8, little-endian";

// ---------------------------------------------------------------------------------------
// Symbols
// ---------------------------------------------------------------------------------------

/// The storage of a [`Symbols`]: one byte per id when they all fit, else two.
#[derive(Clone, Debug)]
enum Ids {
    U8(Arc<Vec<u8>>),
    U16(Arc<Vec<u16>>),
}

/// A 1-D sequence of symbol ids (a view of shared storage), held as `u8` when its bound is
/// at most 256 and as `u16` above; see the module documentation.
#[derive(Clone, Debug)]
pub struct Symbols {
    ids: Ids,
    /// The view: ids `start..start + len` of the storage.
    start: usize,
    len: usize,
}

impl Symbols {
    /// Byte ids, held as they are.
    #[must_use]
    pub fn from_u8(ids: Vec<u8>) -> Self {
        let len = ids.len();
        Symbols {
            ids: Ids::U8(Arc::new(ids)),
            start: 0,
            len,
        }
    }

    /// `u16` ids, held as bytes when every one is below 256.
    #[must_use]
    pub fn from_u16(ids: &[u16]) -> Self {
        if ids.iter().all(|&id| id < 256) {
            Self::from_u8(ids.iter().map(|&id| id as u8).collect())
        } else {
            let len = ids.len();
            Symbols {
                ids: Ids::U16(Arc::new(ids.to_vec())),
                start: 0,
                len,
            }
        }
    }

    /// The number of ids.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes per id: 1 (`u8`) or 2 (`u16`).
    #[must_use]
    pub fn width(&self) -> usize {
        match self.ids {
            Ids::U8(_) => 1,
            Ids::U16(_) => 2,
        }
    }

    /// Id `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    #[must_use]
    pub fn get(&self, i: usize) -> u16 {
        assert!(i < self.len, "id {i} of {}", self.len);
        match &self.ids {
            Ids::U8(v) => u16::from(v[self.start + i]),
            Ids::U16(v) => v[self.start + i],
        }
    }

    /// Copies ids `start..start + out.len()` into `out`.
    ///
    /// # Panics
    /// If that range is past `len()`.
    pub fn copy_to(&self, start: usize, out: &mut [u16]) {
        assert!(
            start <= self.len && out.len() <= self.len - start,
            "ids {start}..+{} of {}",
            out.len(),
            self.len
        );
        let from = self.start + start;
        match &self.ids {
            Ids::U8(v) => {
                for (o, &id) in out.iter_mut().zip(&v[from..]) {
                    *o = u16::from(id);
                }
            }
            Ids::U16(v) => out.copy_from_slice(&v[from..from + out.len()]),
        }
    }

    /// All ids as `u16`.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u16> {
        let mut out = vec![0; self.len];
        self.copy_to(0, &mut out);
        out
    }

    /// Ids `start..start + len` as a view of the same storage.
    fn slice(&self, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= self.len);
        Symbols {
            ids: self.ids.clone(),
            start: self.start + start,
            len,
        }
    }

    /// Bytes of the whole storage (which other views may share).
    fn storage_bytes(&self) -> usize {
        match &self.ids {
            Ids::U8(v) => v.len(),
            Ids::U16(v) => 2 * v.len(),
        }
    }

    /// Whether `self` and `other` are views of one storage.
    fn shares_storage(&self, other: &Symbols) -> bool {
        match (&self.ids, &other.ids) {
            (Ids::U8(a), Ids::U8(b)) => Arc::ptr_eq(a, b),
            (Ids::U16(a), Ids::U16(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The planes of `steps` steps from step `t0` of `streams` streams of `stream_len` ids:
    /// `out[t * stride + s] = self[s * stream_len + t0 + t]`; the padding entries
    /// (`streams <= s < stride`) are not written.
    fn transpose_into(
        &self,
        t0: usize,
        streams: usize,
        stream_len: usize,
        steps: usize,
        out: &mut [u16],
        stride: usize,
    ) {
        let (from, to) = (self.start + t0, self.start + self.len);
        match &self.ids {
            Ids::U8(v) => transpose(&v[from..to], streams, stream_len, steps, out, stride),
            Ids::U16(v) => transpose(&v[from..to], streams, stream_len, steps, out, stride),
        }
    }
}

/// Streams transposed per block of this many: one write of this many adjacent ids per step.
const BLOCK: usize = 32;

/// `out[t * stride + s] = ids[s * stream_len + t]` for `s < streams`, `t < steps`.
fn transpose<T: Copy + Into<u16>>(
    ids: &[T],
    streams: usize,
    stream_len: usize,
    steps: usize,
    out: &mut [u16],
    stride: usize,
) {
    let row = |s: usize| &ids[s * stream_len..s * stream_len + steps];
    let mut s0 = 0;
    while s0 + BLOCK <= streams {
        let rows: [&[T]; BLOCK] = std::array::from_fn(|j| row(s0 + j));
        for t in 0..steps {
            let dst: &mut [u16; BLOCK] = (&mut out[t * stride + s0..t * stride + s0 + BLOCK])
                .try_into()
                .expect("a block of BLOCK ids");
            for (d, r) in dst.iter_mut().zip(&rows) {
                *d = r[t].into();
            }
        }
        s0 += BLOCK;
    }
    for s in s0..streams {
        for (t, &id) in row(s).iter().enumerate() {
            out[t * stride + s] = id.into();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sequence
// ---------------------------------------------------------------------------------------

/// Positions of an input symbol and a target class each; see the module documentation.
#[derive(Clone, Debug)]
pub struct Sequence {
    inputs: Symbols,
    targets: Symbols,
    vocab: usize,
    classes: usize,
    /// For a text: symbol `id` is the byte `alphabet[id]`.
    alphabet: Option<Arc<[u8]>>,
}

/// Which array of a sequence an id belongs to, for messages.
#[derive(Clone, Copy)]
enum Role {
    Input,
    Target,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Target => "target",
        }
    }
    /// Why ids must be below `limit`.
    fn bound(self, limit: Option<usize>) -> String {
        match (self, limit) {
            (Role::Input, Some(v)) => format!("the vocabulary size is {v}"),
            (Role::Target, Some(c)) => format!("the number of classes is {c}"),
            (_, None) => format!("at most {MAX_SYMBOLS} symbols"),
        }
    }
}

/// `vocab` (inputs) or `classes` (targets) when given: within `min..=MAX_SYMBOLS`.
fn check_given(role: Role, given: Option<usize>) -> Result<()> {
    let (what, min) = match role {
        Role::Input => ("vocabulary size", 1),
        Role::Target => ("number of classes", 2),
    };
    match given {
        Some(n) if !(min..=MAX_SYMBOLS).contains(&n) => Err(Error::Usage(format!(
            "{what} {n}: must be between {min} and {MAX_SYMBOLS}"
        ))),
        _ => Ok(()),
    }
}

/// The integer types a `.npy` array of ids may hold.
trait Id: npyz::Deserialize + Copy + fmt::Display + TryInto<u16> {}
impl<T: npyz::Deserialize + Copy + fmt::Display + TryInto<u16>> Id for T {}

/// The ids of one array (`values` makes a fresh iterator over its `n` values), checked and
/// narrowed: pass 1 checks each value is within `0..limit` (or `0..MAX_SYMBOLS`) and finds
/// the maximum, pass 2 writes them as `u8` when the bound (`limit`, else `max + 1`) is at most
/// 256, else as `u16`. Returns the ids and the bound.
fn narrow_ids<T: Id, I: Iterator<Item = io::Result<T>>>(
    values: impl Fn() -> std::result::Result<I, String>,
    n: usize,
    role: Role,
    limit: Option<usize>,
) -> std::result::Result<(Symbols, usize), String> {
    let cap = limit.unwrap_or(MAX_SYMBOLS);
    let mut max = 0u16;
    for (i, v) in values()?.enumerate() {
        let v = v.map_err(|e| e.to_string())?;
        match v.try_into() {
            Ok(id) if usize::from(id) < cap => max = max.max(id),
            _ => {
                let what = role.name();
                return Err(format!(
                    "{what} {v} at index {i} is out of range: {what}s must be between 0 and {} \
                     ({})",
                    cap - 1,
                    role.bound(limit)
                ));
            }
        }
    }
    let bound = limit.unwrap_or(usize::from(max) + 1);
    // Every value passed pass 1, so the conversions below cannot fail.
    let id = |v: io::Result<T>| v.ok().and_then(|v| v.try_into().ok()).unwrap_or(0u16);
    let symbols = if bound <= 256 {
        let mut ids = Vec::with_capacity(n);
        ids.extend(values()?.map(|v| id(v) as u8));
        Symbols::from_u8(ids)
    } else {
        let mut ids = Vec::with_capacity(n);
        ids.extend(values()?.map(id));
        let len = ids.len();
        Symbols {
            ids: Ids::U16(Arc::new(ids)),
            start: 0,
            len,
        }
    };
    Ok((symbols, bound))
}

/// The sequence of `inputs` (of bound `vocab`) and `targets` (of bound `classes`), both read
/// and of one length, or the reason it is refused: a single class.
fn pair(
    inputs: Symbols,
    targets: Symbols,
    vocab: usize,
    classes: usize,
) -> std::result::Result<Sequence, String> {
    if classes < 2 {
        return Err(format!(
            "every target is 0: {classes} class leaves a softmax nothing to predict; the \
             targets need at least 2 classes (or give the number of classes)"
        ));
    }
    Ok(Sequence {
        inputs,
        targets,
        vocab,
        classes,
        alphabet: None,
    })
}

impl Sequence {
    /// Next-byte prediction on the bytes of the file at `path`: the vocabulary is the sorted
    /// set of the bytes that occur, or all 256 with `all_bytes` (`--bytes`).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::BadFile`] if it holds fewer than 2
    /// bytes, or (without `all_bytes`) only one distinct byte.
    pub fn from_text(path: &Path, all_bytes: bool) -> Result<Sequence> {
        let mut bytes = read_text(path)?;
        let alphabet: Vec<u8> = if all_bytes {
            (0..=255).collect()
        } else {
            let mut seen = [false; 256];
            for &b in &bytes {
                seen[usize::from(b)] = true;
            }
            (0..=255u8).filter(|&b| seen[usize::from(b)]).collect()
        };
        if alphabet.len() < 2 {
            return Err(Error::bad_file(
                path,
                format!(
                    "every byte is {}: one distinct byte leaves nothing to predict; a text needs \
                     at least 2 (or --bytes, for all 256)",
                    escaped(bytes[0])
                ),
            ));
        }
        let mut table = [0u8; 256];
        for (id, &b) in alphabet.iter().enumerate() {
            table[usize::from(b)] = id as u8;
        }
        for b in &mut bytes {
            *b = table[usize::from(*b)];
        }
        Ok(Sequence::shifted(bytes, alphabet))
    }

    /// Next-byte prediction on the bytes of the file at `path` with a model's `alphabet`
    /// (symbol `id` is the byte `alphabet[id]`), for eval and resume.
    ///
    /// # Errors
    /// [`Error::Usage`] if `alphabet` does not hold 2 to 256 distinct bytes; [`Error::Io`] if
    /// the file cannot be read; [`Error::BadFile`] if it holds fewer than 2 bytes or a byte
    /// outside `alphabet` (the message names the first one and its offset).
    pub fn from_text_with_alphabet(path: &Path, alphabet: &[u8]) -> Result<Sequence> {
        const NONE: u16 = u16::MAX;
        let mut table = [NONE; 256];
        for (id, &b) in alphabet.iter().enumerate() {
            if table[usize::from(b)] != NONE {
                return Err(Error::Usage(format!(
                    "alphabet: byte {} appears twice; an alphabet holds distinct bytes",
                    escaped(b)
                )));
            }
            table[usize::from(b)] = id as u16;
        }
        if alphabet.len() < 2 {
            return Err(Error::Usage(format!(
                "alphabet of {} bytes: must hold between 2 and 256",
                alphabet.len()
            )));
        }
        let mut bytes = read_text(path)?;
        for (offset, b) in bytes.iter_mut().enumerate() {
            match table[usize::from(*b)] {
                NONE => {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "byte {} (0x{:02x}) at offset {offset} is not in the model's \
                             alphabet of {} bytes",
                            escaped(*b),
                            *b,
                            alphabet.len()
                        ),
                    ));
                }
                id => *b = id as u8,
            }
        }
        Ok(Sequence::shifted(bytes, alphabet.to_vec()))
    }

    /// A text's sequence: inputs `ids[..n - 1]`, targets `ids[1..]`, one storage.
    fn shifted(ids: Vec<u8>, alphabet: Vec<u8>) -> Sequence {
        let n = ids.len();
        let all = Symbols::from_u8(ids);
        Sequence {
            inputs: all.slice(0, n - 1),
            targets: all.slice(1, n - 1),
            vocab: alphabet.len(),
            classes: alphabet.len(),
            alphabet: Some(alphabet.into()),
        }
    }

    /// Inputs and targets from two 1-D integer `.npy` arrays of one length; `V` is `vocab` or
    /// `max(inputs) + 1`, `C` is `classes` or `max(targets) + 1`.
    ///
    /// # Errors
    /// [`Error::Usage`] if `vocab` is not within `1..=65536` or `classes` not within
    /// `2..=65536`; [`Error::Io`] if a file cannot be read; [`Error::BadFile`] naming the file
    /// for everything the module documentation lists as refused (a dtype other than a
    /// little-endian integer, not 1-D, Fortran order, truncated, empty, an id out of range,
    /// lengths that differ, a single class).
    pub fn from_npy(
        inputs_path: &Path,
        targets_path: &Path,
        vocab: Option<usize>,
        classes: Option<usize>,
    ) -> Result<Sequence> {
        check_given(Role::Input, vocab)?;
        check_given(Role::Target, classes)?;
        let (inputs, vocab) = read_npy(inputs_path, Role::Input, vocab)?;
        let (targets, classes) = read_npy(targets_path, Role::Target, classes)?;
        if targets.len() != inputs.len() {
            return Err(Error::bad_file(
                targets_path,
                format!(
                    "{} targets, but {} holds {} inputs: the two arrays must have the same length",
                    targets.len(),
                    shown(inputs_path),
                    inputs.len()
                ),
            ));
        }
        pair(inputs, targets, vocab, classes)
            .map_err(|reason| Error::bad_file(targets_path, reason))
    }

    /// [`Sequence::from_npy`] on `dir/x.npy` (inputs) and `dir/y.npy` (targets), what
    /// `bitrnn generate` writes.
    ///
    /// # Errors
    /// As [`Sequence::from_npy`], and [`Error::BadFile`] naming `dir` if it is not a
    /// directory holding both files.
    pub fn from_dir(dir: &Path, vocab: Option<usize>, classes: Option<usize>) -> Result<Sequence> {
        let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
        if !dir.is_dir() {
            let reason = if dir.exists() {
                "not a directory: a data directory holds x.npy (inputs) and y.npy (targets)"
            } else {
                "no such directory: a data directory holds x.npy (inputs) and y.npy (targets)"
            };
            return Err(Error::bad_file(dir, reason));
        }
        for name in ["x.npy", "y.npy"] {
            if !dir.join(name).is_file() {
                return Err(Error::bad_file(
                    dir,
                    format!(
                        "no {name}: a data directory holds x.npy (inputs) and y.npy (targets), \
                         as `bitrnn generate` writes"
                    ),
                ));
            }
        }
        Sequence::from_npy(&x, &y, vocab, classes)
    }

    /// Inputs and targets held in memory (for tests and tools); `V` is `vocab` or
    /// `max(inputs) + 1`, `C` is `classes` or `max(targets) + 1`.
    ///
    /// # Errors
    /// [`Error::Usage`] if the two have different lengths or none, an id is out of range, or
    /// `V` or `C` is (see [`Sequence::from_npy`]).
    pub fn from_ids(
        inputs: &[u16],
        targets: &[u16],
        vocab: Option<usize>,
        classes: Option<usize>,
    ) -> Result<Sequence> {
        check_given(Role::Input, vocab)?;
        check_given(Role::Target, classes)?;
        if inputs.len() != targets.len() || inputs.is_empty() {
            return Err(Error::Usage(format!(
                "{} inputs and {} targets: must be the same number, at least 1",
                inputs.len(),
                targets.len()
            )));
        }
        let n = inputs.len();
        let (inputs, vocab) =
            narrow_ids(|| Ok(inputs.iter().copied().map(Ok)), n, Role::Input, vocab)
                .map_err(Error::Usage)?;
        let (targets, classes) = narrow_ids(
            || Ok(targets.iter().copied().map(Ok)),
            n,
            Role::Target,
            classes,
        )
        .map_err(Error::Usage)?;
        pair(inputs, targets, vocab, classes).map_err(Error::Usage)
    }

    /// The number of positions (input-target pairs).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are none (never, for a sequence that was read).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// `V`: inputs are ids `0..V`.
    #[must_use]
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// `C`: targets are ids `0..C`.
    #[must_use]
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// For a text: symbol `id` is the byte `alphabet[id]` (for inputs and targets alike).
    #[must_use]
    pub fn alphabet(&self) -> Option<&[u8]> {
        self.alphabet.as_deref()
    }

    /// The input symbols.
    #[must_use]
    pub fn inputs(&self) -> &Symbols {
        &self.inputs
    }

    /// The target classes.
    #[must_use]
    pub fn targets(&self) -> &Symbols {
        &self.targets
    }

    /// Bytes of id storage this sequence holds: a text's one array counts once, and views made
    /// by [`Sequence::split_valid`] each report the storage they share.
    #[must_use]
    pub fn symbol_bytes(&self) -> usize {
        let x = self.inputs.storage_bytes();
        if self.inputs.shares_storage(&self.targets) {
            x
        } else {
            x + self.targets.storage_bytes()
        }
    }

    /// The training part and the held-out tail: the last `round(len * fraction)` positions
    /// are held out. Both are views of this sequence's storage (nothing is copied), with its
    /// `V`, `C` and alphabet. A caller that holds nothing out does not split.
    ///
    /// # Errors
    /// [`Error::Usage`] if `fraction` is not above 0 and below 1, or leaves either part
    /// empty.
    pub fn split_valid(&self, fraction: f64) -> Result<(Sequence, Sequence)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Usage(format!(
                "validation fraction {fraction}: must be above 0 and below 1"
            )));
        }
        let len = self.len();
        let held = ((len as f64) * fraction).round() as usize;
        let train = len.saturating_sub(held);
        if held == 0 || train == 0 {
            return Err(Error::Usage(format!(
                "validation fraction {fraction} of {len} positions leaves {train} for training \
                 and {held} held out: each needs at least 1"
            )));
        }
        let part = |start: usize, n: usize| Sequence {
            inputs: self.inputs.slice(start, n),
            targets: self.targets.slice(start, n),
            ..self.clone()
        };
        Ok((part(0, train), part(train, held)))
    }

    /// Parallel streams of `stream_len` positions: `len / stream_len` (0 for a `stream_len`
    /// of 0).
    #[must_use]
    pub fn streams(&self, stream_len: usize) -> usize {
        self.len().checked_div(stream_len).unwrap_or(0)
    }

    /// Checks that the sequence read from `name` gives at least one window of `time_step`
    /// steps in streams of `batch_size` positions, and returns the number of streams.
    ///
    /// # Errors
    /// [`Error::Usage`] if `batch_size` is 0 or `time_step` is not within `1..=batch_size`;
    /// [`Error::BadFile`] naming `name` if the sequence is shorter than one stream.
    pub fn check_windows(&self, name: &Path, batch_size: usize, time_step: usize) -> Result<usize> {
        if batch_size == 0 {
            return Err(Error::Usage(
                "--batch-size 0: must be at least 1 (it is the length of each stream)".into(),
            ));
        }
        if time_step == 0 || time_step > batch_size {
            return Err(Error::Usage(format!(
                "--time-step {time_step}: must be between 1 and --batch-size ({batch_size})"
            )));
        }
        if self.len() < batch_size {
            return Err(Error::bad_file(
                name,
                format!(
                    "{} positions, fewer than one stream of --batch-size {batch_size}: give a \
                     longer sequence or a smaller --batch-size",
                    self.len()
                ),
            ));
        }
        Ok(self.streams(batch_size))
    }
}

/// A byte as it reads in a message: `'a'`, `'\n'`, `'\xff'`.
fn escaped(b: u8) -> String {
    format!("'{}'", b.escape_ascii())
}

/// The bytes of a text file, at least 2 of them.
fn read_text(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match bytes.len() {
        0 => Err(Error::bad_file(
            path,
            "empty file: a text needs at least 2 bytes (an input and its next byte)",
        )),
        1 => Err(Error::bad_file(
            path,
            "1 byte: a text needs at least 2 (an input and its next byte)",
        )),
        _ => Ok(bytes),
    }
}

// ---------------------------------------------------------------------------------------
// .npy
// ---------------------------------------------------------------------------------------

/// One array of ids from the `.npy` file at `path`, and its bound (`limit`, else
/// `max + 1`).
fn read_npy(path: &Path, role: Role, limit: Option<usize>) -> Result<(Symbols, usize)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size == 0 {
        return Err(Error::bad_file(
            path,
            format!(
                "empty file: want a 1-D .npy array of {} ids ({DTYPES})",
                role.name()
            ),
        ));
    }
    // SAFETY: the map is only read, and only while this function runs. Another process
    // truncating the file meanwhile would fault the read (SIGBUS): the same trust that every
    // reader of a file places in its not changing under it.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    parse_npy(&map, role, limit).map_err(|reason| Error::bad_file(path, reason))
}

/// The most opening brackets a `.npy` header may hold. numpy's header for a 1-D array of a
/// plain dtype holds 2 (`{'descr': '<i8', 'fortran_order': False, 'shape': (9,), }`); the
/// Python-literal parser takes time exponential in the nesting depth (each level of `[` or
/// `{` doubles it: 20 levels take seconds), so deeper headers never reach it.
const MAX_BRACKETS: usize = 8;

/// The guards before npyz (see the module documentation): the header must lie within the
/// file, hold at most [`MAX_BRACKETS`] brackets, and its `shape` must have one dimension.
fn preflight(bytes: &[u8], want: &str) -> std::result::Result<(), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic at the start)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12)
        }
        2 | 3 => return Err("truncated header".into()),
        v => {
            return Err(format!(
                "unsupported .npy format version {v} (want 1, 2 or 3)"
            ));
        }
    };
    if header_len > bytes.len() - start {
        return Err(format!(
            "truncated header: it claims {header_len} bytes, the file has {} after the preamble",
            bytes.len() - start
        ));
    }
    let text = &bytes[start..start + header_len];
    let brackets = text.iter().filter(|b| b"([{".contains(b)).count();
    if brackets > MAX_BRACKETS {
        return Err(format!(
            "a header of {brackets} brackets: not what numpy writes for a 1-D array (at most \
             {MAX_BRACKETS})"
        ));
    }
    let text = String::from_utf8_lossy(text);
    if let Ok(py_literal::Value::Dict(entries)) = text.trim_end().parse::<py_literal::Value>() {
        for (key, value) in &entries {
            if !matches!(key, py_literal::Value::String(k) if k == "shape") {
                continue;
            }
            if let py_literal::Value::Tuple(dims) | py_literal::Value::List(dims) = value
                && dims.len() != 1
            {
                return Err(format!("a {}-D array: {want}", dims.len()));
            }
        }
    }
    Ok(())
}

/// The ids of a `.npy` file's bytes, and their bound; the error is the reason it is refused.
fn parse_npy(
    bytes: &[u8],
    role: Role,
    limit: Option<usize>,
) -> std::result::Result<(Symbols, usize), String> {
    let want = || format!("want a 1-D C-order array of {} ids ({DTYPES})", role.name());
    preflight(bytes, &want())?;
    let mut data = bytes;
    let header =
        NpyHeader::from_reader(&mut data).map_err(|e| format!("not a valid .npy header: {e}"))?;
    let DType::Plain(ty) = header.dtype() else {
        return Err(format!("dtype {}: {}", header.dtype().descr(), want()));
    };
    let size = ty.num_bytes().unwrap_or(0);
    if !matches!(ty.type_char(), TypeChar::Int | TypeChar::Uint) || ![1, 2, 4, 8].contains(&size) {
        return Err(format!("dtype '{ty}': {}", want()));
    }
    if ty.endianness() == Endianness::Big && size > 1 {
        return Err(format!(
            "big-endian dtype '{ty}': {} (numpy: a.astype('<{}{size}'))",
            want(),
            &ty.to_string()[1..2]
        ));
    }
    let [n] = header.shape() else {
        return Err(format!("a {}-D array: {}", header.shape().len(), want()));
    };
    if header.order() == Order::Fortran {
        return Err(format!("Fortran order: {}", want()));
    }
    let n = usize::try_from(*n).map_err(|_| format!("shape ({n},) is too large"))?;
    if n == 0 {
        return Err(format!("an empty array (shape (0,)): {}", want()));
    }
    let need = n.saturating_mul(size);
    if data.len() != need {
        let what = if data.len() < need {
            "truncated"
        } else {
            "bytes after the data"
        };
        return Err(format!(
            "{what}: shape ({n},) of '{ty}' takes {need} data bytes, the file has {}",
            data.len()
        ));
    }
    let header = &header;
    match (ty.type_char(), size) {
        (TypeChar::Uint, 1) => read_ids::<u8>(header, data, n, role, limit),
        (TypeChar::Uint, 2) => read_ids::<u16>(header, data, n, role, limit),
        (TypeChar::Uint, 4) => read_ids::<u32>(header, data, n, role, limit),
        (TypeChar::Uint, 8) => read_ids::<u64>(header, data, n, role, limit),
        (TypeChar::Int, 1) => read_ids::<i8>(header, data, n, role, limit),
        (TypeChar::Int, 2) => read_ids::<i16>(header, data, n, role, limit),
        (TypeChar::Int, 4) => read_ids::<i32>(header, data, n, role, limit),
        _ => read_ids::<i64>(header, data, n, role, limit),
    }
}

/// [`narrow_ids`] over npyz's reader of `data` as `T`.
fn read_ids<T: Id>(
    header: &NpyHeader,
    data: &[u8],
    n: usize,
    role: Role,
    limit: Option<usize>,
) -> std::result::Result<(Symbols, usize), String> {
    let values = || {
        npyz::NpyFile::with_header(header.clone(), data)
            .data::<T>()
            .map_err(|e| e.to_string())
    };
    narrow_ids(values, n, role, limit)
}

// ---------------------------------------------------------------------------------------
// SymbolChunks
// ---------------------------------------------------------------------------------------

/// The symbol planes of one chunk of consecutive steps and the shape they are cut with: the
/// analogue of [`crate::planes::PlaneChunks`] for a [`Sequence`].
///
/// A chunk holds whole windows covering up to 64 steps (at least one window). Use
/// [`SymbolChunks::window`] once per window, in any order: it refills the chunk when the
/// window is not in it. The chunk does not know which sequence filled it: use one
/// `SymbolChunks` per sequence (training and held-out data each their own).
pub struct SymbolChunks {
    streams: usize,
    /// The length of each stream (`batch_size`): a chunk never runs past it.
    stream_len: usize,
    time_step: usize,
    /// Ids per step: whole lane groups.
    stride: usize,
    /// First step of the chunk within the epoch, and its length in steps.
    start: usize,
    steps: usize,
    x: Vec<u16>,
    y: Vec<u16>,
}

impl SymbolChunks {
    /// Room for a chunk of `streams` streams of `stream_len` steps cut in windows of
    /// `time_step` steps; nothing filled yet.
    ///
    /// # Panics
    /// If `time_step` is 0.
    #[must_use]
    pub fn new(streams: usize, stream_len: usize, time_step: usize) -> Self {
        assert!(time_step > 0, "a window of 0 steps");
        let chunk_steps = (64 / time_step).max(1) * time_step;
        let stride = groups_for(streams) * LANES;
        Self {
            streams,
            stream_len,
            time_step,
            stride,
            start: usize::MAX,
            steps: 0,
            x: vec![0; chunk_steps * stride],
            y: vec![0; chunk_steps * stride],
        }
    }

    /// Ids per step of the planes: `groups_for(streams) * LANES`.
    #[must_use]
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The planes of steps `t0..t0 + time_step` of the epoch, read from `seq` when they are
    /// not in the chunk (the chunk then starts at `t0`).
    ///
    /// # Panics
    /// If `t0 + time_step` is past the stream length, or `seq` is shorter than
    /// `streams * stream_len`.
    pub fn window(&mut self, seq: &Sequence, t0: usize) -> SymbolPlanes<'_> {
        let (t, p) = (self.time_step, self.stride);
        assert!(
            t0 + t <= self.stream_len,
            "steps {t0}..{} past the stream length {}",
            t0 + t,
            self.stream_len
        );
        if !(t0 >= self.start && t0 + t <= self.start + self.steps) {
            assert!(
                self.streams * self.stream_len <= seq.len(),
                "{} streams of {} positions, but the sequence has {}",
                self.streams,
                self.stream_len,
                seq.len()
            );
            let steps = (self.x.len() / p).min(self.stream_len - t0);
            let (streams, len) = (self.streams, self.stream_len);
            seq.inputs
                .transpose_into(t0, streams, len, steps, &mut self.x, p);
            seq.targets
                .transpose_into(t0, streams, len, steps, &mut self.y, p);
            self.start = t0;
            self.steps = steps;
        }
        let off = (t0 - self.start) * p;
        SymbolPlanes {
            x: &self.x[off..off + t * p],
            y: &self.y[off..off + t * p],
            stride: p,
        }
    }
}
