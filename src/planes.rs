//! The time-major bit planes of an epoch's windows, filled chunk by chunk from a
//! [`Dataset`]: the one driver between the bit-packed data and the kernels' [`Planes`].
//!
//! A chunk holds whole windows covering up to 64 steps (one bit-matrix transpose of
//! [`Dataset::fill_planes`] per block of 64 streams), so the seed's windows of 5 steps are
//! filled 12 at a time. Use [`PlaneChunks::window`] once per window, in any order: it refills
//! the chunk when the window is not in it. The trainer and `eval` both walk their windows
//! through it.

use crate::data::Dataset;
use bitrnn_kernels::simd::Planes;

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
