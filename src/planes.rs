//! The time-major bit planes of an epoch's windows, filled chunk by chunk from a
//! [`Dataset`]: the one driver between the bit-packed data and the kernels' [`Planes`]; and
//! [`Feed`], the same for either kind of data a run trains on ([`TrainData`]: the bits, or a
//! [`Sequence`] of symbols through [`SymbolChunks`]).
//!
//! A chunk holds whole windows covering up to 64 steps (one bit-matrix transpose of
//! [`Dataset::fill_planes`] per block of 64 streams), so the seed's windows of 5 steps are
//! filled 12 at a time. Use [`PlaneChunks::window`] once per window, in any order: it refills
//! the chunk when the window is not in it. The trainer and `eval` both walk their windows
//! through it.

use crate::data::Dataset;
use crate::sequence::{Sequence, SymbolChunks};
use bitrnn_kernels::simd::{Inputs, Planes};

/// The planes of one chunk of consecutive steps and the shape they are cut with.
pub struct PlaneChunks {
    streams: usize,
    /// The length of each stream (`batch_size`): a chunk never runs past it.
    stream_len: usize,
    time_step: usize,
    words_per_plane: usize,
    /// First step of the chunk within the epoch, and its length in steps.
    start: usize,
    steps: usize,
    x: Vec<u64>,
    y: Vec<u64>,
}

impl PlaneChunks {
    /// Room for a chunk of `streams` streams of `stream_len` steps cut in windows of
    /// `time_step` steps; nothing filled yet.
    #[must_use]
    pub fn new(streams: usize, stream_len: usize, time_step: usize) -> Self {
        // A chunk of whole windows covering up to 64 steps (one bit-matrix transpose).
        let chunk_steps = (64 / time_step).max(1) * time_step;
        let words_per_plane = streams.div_ceil(64);
        Self {
            streams,
            stream_len,
            time_step,
            words_per_plane,
            start: usize::MAX,
            steps: 0,
            x: vec![0; chunk_steps * words_per_plane],
            y: vec![0; chunk_steps * words_per_plane],
        }
    }

    /// The planes of steps `t0..t0 + time_step` of the epoch, read from `data` when they are
    /// not in the chunk (the chunk then starts at `t0`).
    ///
    /// # Panics
    /// If `t0 + time_step` is past the stream length, or `data` is shorter than
    /// `streams * stream_len`.
    pub fn window(&mut self, data: &Dataset, t0: usize) -> Planes<'_> {
        let t = self.time_step;
        let w = self.words_per_plane;
        if !(t0 >= self.start && t0 + t <= self.start + self.steps) {
            let cap = self.x.len() / w;
            let steps = cap.min(self.stream_len - t0).max(t);
            let mut done = 0;
            while done < steps {
                let n = (steps - done).min(64);
                data.fill_planes(
                    self.streams,
                    self.stream_len,
                    t0 + done,
                    n,
                    w,
                    &mut self.x[done * w..(done + n) * w],
                    &mut self.y[done * w..(done + n) * w],
                );
                done += n;
            }
            self.start = t0;
            self.steps = steps;
        }
        let off = (t0 - self.start) * w;
        Planes {
            x: bytemuck::cast_slice(&self.x[off..off + t * w]),
            y: bytemuck::cast_slice(&self.y[off..off + t * w]),
            stride: w * 8,
        }
    }
}

/// A run's training data: the generator's bits or a sequence of symbols ([`Sequence`]).
#[derive(Clone, Debug)]
pub enum TrainData {
    Bits(Dataset),
    Symbols(Sequence),
}

impl From<Dataset> for TrainData {
    fn from(d: Dataset) -> Self {
        Self::Bits(d)
    }
}
impl From<Sequence> for TrainData {
    fn from(s: Sequence) -> Self {
        Self::Symbols(s)
    }
}

impl TrainData {
    /// The generator's bits for `settings` (`--rule`, `--lags`, `--data-size`, `--seed`).
    #[must_use]
    pub fn generate(settings: &crate::config::TrainSettings) -> Self {
        Self::Bits(Dataset::generate_rule(
            settings.rule,
            settings.data_size,
            settings.lags,
            settings.seed,
        ))
    }

    /// Positions in the data (samples of the bits, symbols of a sequence).
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Bits(d) => d.data_size(),
            Self::Symbols(s) => s.len(),
        }
    }
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The windows of a run's data, chunk by chunk: [`PlaneChunks`] over the bits or
/// [`SymbolChunks`] over a sequence, as the kernels' [`Inputs`].
pub struct Feed {
    data: TrainData,
    chunks: Chunks,
}

enum Chunks {
    Bits(PlaneChunks),
    Symbols(SymbolChunks),
}

impl Feed {
    /// The windows of `streams` streams of `stream_len` steps of `data`, `time_step` steps
    /// each.
    #[must_use]
    pub fn new(data: TrainData, streams: usize, stream_len: usize, time_step: usize) -> Self {
        let chunks = match data {
            TrainData::Bits(_) => Chunks::Bits(PlaneChunks::new(streams, stream_len, time_step)),
            TrainData::Symbols(_) => {
                Chunks::Symbols(SymbolChunks::new(streams, stream_len, time_step))
            }
        };
        Self { data, chunks }
    }

    /// The inputs of steps `t0..t0 + time_step` of every stream ([`PlaneChunks::window`]).
    pub fn window(&mut self, t0: usize) -> Inputs<'_> {
        match (&mut self.chunks, &self.data) {
            (Chunks::Bits(c), TrainData::Bits(d)) => Inputs::Bits(c.window(d, t0)),
            (Chunks::Symbols(c), TrainData::Symbols(s)) => Inputs::Symbols(c.window(s, t0)),
            _ => unreachable!("the chunks are made for the data"),
        }
    }

    #[must_use]
    pub fn data(&self) -> &TrainData {
        &self.data
    }
}
