//! The kernels' data: the weights as the kernels read them ([`Prepared`]), one shard's
//! buffers ([`Workspace`]: the carried state and the window's activations, in the lane layout
//! drawn in the [module docs](super)), the window's bit planes ([`Planes`]) and what a
//! forward pass measured ([`WindowStats`]).

use super::tiles::MR;
use super::{LANES, SMALL_MAX, groups_for};
use crate::lanes::Vf32;
use crate::params::Params;

/// Weights arranged for the kernels. Rebuilt by [`Prepared::load`] after every update (a copy
/// of `H^2 + 4H` numbers, negligible next to a window's work).
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(super) hidden: usize,
    /// `w_hh[j][k]`, row-major (the small kernels splat it).
    pub(super) w_hh: Vec<f32>,
    /// `w_hh` and `w_hh^T` packed for the register tiles ([`pack_rows`]): for each block of
    /// `MR` rows, `[k][MR]`, so a tile's broadcasts for one `k` are `MR` consecutive floats
    /// behind one pointer (zero rows pad the last block). Blocked kernels only.
    pub(super) w_hh_packed: Vec<f32>,
    pub(super) w_hh_t_packed: Vec<f32>,
    /// `w_xh[0][j] + b_h[j]` and `w_xh[1][j] + b_h[j]`: the start of `z_j` for each input.
    pub(super) zx0: Vec<f32>,
    pub(super) zx1: Vec<f32>,
    /// `w_hy[1][j] - w_hy[0][j]`: the logit difference's weights.
    pub(super) wy_diff: Vec<f32>,
    /// `b_y[1] - b_y[0]`.
    pub(super) by_diff: f32,
}

/// Floats of a packed `h x h` matrix: `ceil(h / MR)` blocks of `h x MR`.
fn packed_len(h: usize) -> usize {
    if h > SMALL_MAX {
        h.div_ceil(MR) * MR * h
    } else {
        0
    }
}

/// Packs the row-major `h x h` matrix `a` (or its transpose, reading `a[k][j]` for row `j`)
/// for the register tiles: block `b` holds rows `MR b .. MR b + MR` as `[k][MR]` (rows past
/// `h` are zeros).
fn pack_rows(a: &[f32], h: usize, transpose: bool, out: &mut [f32]) {
    for (b, block) in out.chunks_exact_mut(MR * h).enumerate() {
        for (k, at_k) in block.chunks_exact_mut(MR).enumerate() {
            for (i, v) in at_k.iter_mut().enumerate() {
                let j = b * MR + i;
                *v = match (j < h, transpose) {
                    (false, _) => 0.0,
                    (true, false) => a[j * h + k],
                    (true, true) => a[k * h + j],
                };
            }
        }
    }
}

impl Prepared {
    /// Buffers for hidden size `hidden`; call [`Prepared::load`] before use.
    #[must_use]
    pub fn new(hidden: usize) -> Self {
        Self {
            hidden,
            w_hh: vec![0.0; hidden * hidden],
            w_hh_packed: vec![0.0; packed_len(hidden)],
            w_hh_t_packed: vec![0.0; packed_len(hidden)],
            zx0: vec![0.0; hidden],
            zx1: vec![0.0; hidden],
            wy_diff: vec![0.0; hidden],
            by_diff: 0.0,
        }
    }

    /// Arranges `p` for the kernels (no allocation).
    pub fn load(&mut self, p: &Params<f32>) {
        let h = self.hidden;
        assert_eq!(p.hidden, h, "Prepared::load: hidden size");
        self.w_hh.copy_from_slice(p.w_hh());
        if h > SMALL_MAX {
            pack_rows(&self.w_hh, h, false, &mut self.w_hh_packed);
            pack_rows(&self.w_hh, h, true, &mut self.w_hh_t_packed);
        }
        let (w_xh, b_h, w_hy, b_y) = (p.w_xh(), p.b_h(), p.w_hy(), p.b_y());
        for j in 0..h {
            self.zx0[j] = w_xh[j] + b_h[j];
            self.zx1[j] = w_xh[h + j] + b_h[j];
            self.wy_diff[j] = w_hy[h + j] - w_hy[j];
        }
        self.by_diff = b_y[1] - b_y[0];
    }

    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }
}

/// `n` zero vectors in an allocation with [`PAD`] spare vectors after them, never used: the
/// next allocation starts at least 256 bytes after the last element, so two workspaces (two
/// shards, maybe on two threads) never write to one cache line or one adjacent-line
/// prefetch pair. Without it, a shard's small per-step buffers (`logit`, `dl`: one line at
/// the seed size) could share a line with a neighbour's, and 2 threads ran at the speed of 1
/// in some processes (false sharing).
pub(super) fn padded(n: usize) -> Vec<Vf32> {
    let mut v = Vec::with_capacity(n + PAD);
    v.resize(n, Vf32::ZERO);
    v
}

/// Spare vectors after each workspace buffer: 256 bytes.
pub(super) const PAD: usize = 256 / core::mem::size_of::<Vf32>();

/// One shard's buffers for the whole run: the carried hidden state and the window's
/// activations. Allocated once; the kernels never allocate.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub(super) hidden: usize,
    pub(super) streams: usize,
    pub(super) groups: usize,
    pub(super) time_step: usize,
    /// `[t][H + 2][groups]`, see the module docs.
    pub(super) hbuf: Vec<Vf32>,
    /// `[t][H][groups]`.
    pub(super) dz: Vec<Vf32>,
    /// `[t][groups]`.
    pub(super) dl: Vec<Vf32>,
    /// `[t][groups]`: y as 0.0/1.0.
    pub(super) y: Vec<Vf32>,
    /// `[groups]`: the running logit difference of the current step.
    pub(super) logit: Vec<Vf32>,
    /// `[groups]`: 1.0 in lanes of real streams, 0.0 in padding lanes.
    pub(super) valid: Vec<Vf32>,
    /// Small kernels only: the weights splatted into vectors (see `splat_small`).
    pub(super) splat: Vec<Vf32>,
    /// Small kernels only: per-lane gradient accumulators of the window,
    /// `[H][H + 2]` for `[dw_hh | dw_xh[1] | dw_xh[0]]`, then `[H]` for `dw_hy[1]`, then 1 for
    /// `db_y[1]`.
    pub(super) gacc: Vec<Vf32>,
}

/// What a forward pass over one window measured, summed over the shard's real streams and
/// the window's steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Sum of the per-sample cross-entropy losses.
    pub loss_sum: f64,
    /// Number of samples whose more probable class was the target.
    pub correct: f64,
}

impl Workspace {
    /// Buffers for `streams` streams (any count >= 1), hidden size `hidden`, windows of
    /// `time_step` steps. The carried state starts at zero.
    #[must_use]
    pub fn new(hidden: usize, streams: usize, time_step: usize) -> Self {
        assert!(
            hidden >= 1 && streams >= 1 && time_step >= 1,
            "Workspace::new: empty shape"
        );
        let groups = groups_for(streams);
        let rows = hidden + 2;
        let mut valid = padded(groups);
        for (g, v) in valid.iter_mut().enumerate() {
            *v = Vf32::new(core::array::from_fn(|lane| {
                if g * LANES + lane < streams { 1.0 } else { 0.0 }
            }));
        }
        Self {
            hidden,
            streams,
            groups,
            time_step,
            hbuf: padded((time_step + 1) * rows * groups),
            dz: padded(time_step * hidden * groups),
            dl: padded(time_step * groups),
            y: padded(time_step * groups),
            logit: padded(groups),
            valid,
            splat: if hidden <= SMALL_MAX {
                padded(hidden * hidden + 3 * hidden)
            } else {
                Vec::new()
            },
            gacc: if hidden <= SMALL_MAX {
                padded(hidden * rows + hidden + 1)
            } else {
                Vec::new()
            },
        }
    }

    #[must_use]
    pub fn streams(&self) -> usize {
        self.streams
    }
    #[must_use]
    pub fn groups(&self) -> usize {
        self.groups
    }
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    #[must_use]
    pub fn time_step(&self) -> usize {
        self.time_step
    }

    /// Zeroes the carried hidden state (the start of an epoch).
    pub fn reset(&mut self) {
        let n = self.hidden * self.groups;
        self.hbuf[..n].fill(Vf32::ZERO);
    }

    /// Sets the carried state from `h` laid out `[streams][hidden]` (the reference's layout);
    /// padding lanes are zeroed.
    pub fn load_state(&mut self, h: &[f32]) {
        assert_eq!(
            h.len(),
            self.streams * self.hidden,
            "load_state: [streams][hidden]"
        );
        self.reset();
        for s in 0..self.streams {
            for j in 0..self.hidden {
                self.hbuf[j * self.groups + s / LANES].as_mut_array()[s % LANES] =
                    h[s * self.hidden + j];
            }
        }
    }

    /// Writes the carried state to `h`, laid out `[streams][hidden]`.
    pub fn store_state(&self, h: &mut [f32]) {
        assert_eq!(
            h.len(),
            self.streams * self.hidden,
            "store_state: [streams][hidden]"
        );
        for s in 0..self.streams {
            for j in 0..self.hidden {
                h[s * self.hidden + j] =
                    self.hbuf[j * self.groups + s / LANES].as_array()[s % LANES];
            }
        }
    }

    /// The whole carried state including padding lanes, for tests of their inertness.
    #[must_use]
    pub fn raw_state(&self) -> &[Vf32] {
        &self.hbuf[..self.hidden * self.groups]
    }
    /// Mutable access to the whole carried state including padding lanes. Padding lanes must
    /// hold finite values small enough that `w_hh * v` cannot overflow (anything in [-1, 1],
    /// the range of tanh, is safe): an infinite `z` there would make `h` NaN, and `0 * NaN`
    /// would reach the gradient. [`Workspace::reset`], [`Workspace::load_state`] and the
    /// kernels themselves only ever put zeros or tanh outputs there.
    pub fn raw_state_mut(&mut self) -> &mut [Vf32] {
        let n = self.hidden * self.groups;
        &mut self.hbuf[..n]
    }
}

/// The inputs of one shard for one window: bit planes, [`LANE_BYTES`] bytes per lane group
/// per step. Bit `i % 8` of `x[t * stride + g * LANE_BYTES + i / 8]` is the input of stream
/// `LANES g + i` at step `t` (the layout of `bitrnn::data::Dataset::fill_planes` viewed as
/// bytes, offset to the shard's first group); `stride` is in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Planes<'a> {
    pub x: &'a [u8],
    pub y: &'a [u8],
    pub stride: usize,
}
