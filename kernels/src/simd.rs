//! The fused SIMD kernels: one window of forward + truncated BPTT on the build's vector
//! [`Vf32`] ([`LANES`] = 16 with AVX-512, else 8), with the **streams in the SIMD lanes**. The math is the reference's (see [`crate::reference`]); this
//! module only changes the order of the arithmetic.
//!
//! # Layout
//!
//! A shard's streams are cut into `groups` lane groups of [`LANES`] streams. Every per-stream
//! quantity is stored as one `Vf32` per (row, group), rows outer, groups inner, so a hidden
//! unit of all streams of the shard is contiguous and any hidden size uses full vectors:
//!
//! ```text
//! hbuf[t]  (t = 0..=T)       rows 0..H : h_{t-1}        (hbuf[0] = the carried state)
//!                            row  H    : x_t as 0.0/1.0 (input of step t)
//!                            row  H+1  : 1 - x_t
//!          row r, group g    -> hbuf[(t * (H + 2) + r) * groups + g]  (streams LANES g ..)
//! dz[t]    rows 0..H         dL/dz_t
//! dl[t]    one row           dL/dlogit1_t  (= -dL/dlogit0_t: two classes)
//! ```
//!
//! # Per step
//!
//! Forward, one pass per step: `z = (w_xh[x] + b_h) + w_hh h_{t-1}` as a register-blocked
//! GEMM (`MR` hidden rows x `NR` groups per tile, the input column selected per lane from the
//! bit plane), `tanh` and the output projection in the tile's epilogue, then one pass over the
//! groups for softmax, loss and the logits' gradient. Two classes make the softmax a sigmoid
//! of the logit difference `d = (w_hy[1] - w_hy[0]) h + (b_y[1] - b_y[0])`: `p1 = sigmoid(d)`,
//! `loss = softplus(d)` for `y = 0` and `softplus(-d)` for `y = 1`, `dl1 = (p1 - y) / (S T)`.
//!
//! Backward, one pass per step: `dz_t = (w_hh^T dz_{t+1} + (w_hy[1] - w_hy[0]) dl1_t) *
//! (1 - h_t^2)`, the same GEMM on the transposed weights with the output gradient and the
//! `tanh'` in its epilogue. The weight gradients are one GEMM per window over the reduction
//! index (t, group): `[dw_hh | dw_xh[1] | dw_xh[0]] = sum dz_t [h_{t-1}; x_t; 1 - x_t]^T`,
//! accumulated per lane in registers and reduced across lanes once per window.
//!
//! # Padding lanes
//!
//! Streams past the shard's end (the last group's padding lanes) read x = y = 0 from the
//! zero-padded bit planes and carry a finite hidden state (zeroed by [`Workspace::reset`] and
//! [`Workspace::load_state`]). Their `dl` is multiplied by a 0/1 `valid` mask, so their `dz`
//! is exactly 0 (a finite `h` times 0), and they add exactly 0 to every gradient and to the
//! loss: inert, as the tests check bit for bit.
//!
//! # No denormal cliff
//!
//! Once the model is confident, `p - y` becomes tiny and, multiplied through BPTT, would
//! produce subnormal floats, which cost ~100x per operation on x86 (the PyTorch row of
//! SEED.md). bitrnn never lets them start: [`crate::approx::exp`] never returns a subnormal,
//! and `dl` and `dz` are flushed to 0 below [`FLUSH`] = 2^-64. Every other product in the
//! kernels is a flushed gradient times a weight or a hidden value, which stays normal
//! (`>= 2^-126`) unless that weight or value is itself below 2^-62. The flush changes nothing
//! that matters: an Adagrad step is at most `lr |g| / sqrt(0.1)`, so a gradient term below
//! 2^-64 moves no weight above 2^-40 by even one ulp. Setting the FTZ/DAZ bits of MXCSR would
//! do the same for the whole thread but is undefined behaviour under Rust's floating-point
//! model, hence this design.

use crate::approx;
use crate::lanes::{LANE_BYTES, Vf32, bits_to_lanes};
use crate::params::{Layout, Params};

pub use crate::lanes::{LANES, hsum};

/// Gradients (`dl`, `dz`) below this magnitude are set to 0: 2^-64. See the module docs.
pub const FLUSH: f32 = 1.0 / 18_446_744_073_709_551_616.0;

/// Hidden sizes up to this use the small kernels: the whole hidden state of a lane group in
/// registers across the window's steps, the size a compile-time constant.
pub const SMALL_MAX: usize = 8;

/// Hidden rows per register tile of the step GEMMs: 6 x 2 tiles keep 12 accumulators, the
/// 2-vector panel and one broadcast in the 16 ymm registers of AVX2.
const MR: usize = 6;
/// Lane groups per register tile of the step GEMMs.
const NR: usize = 2;
/// Hidden rows (of `dz`) per register tile of the weight-gradient GEMM (6 x 2, as above).
const GR: usize = 6;
/// Columns (of `[h; x; 1-x]`) per register tile of the weight-gradient GEMM.
const GC: usize = 2;

/// The number of lane groups needed for `streams` streams.
#[must_use]
pub const fn groups_for(streams: usize) -> usize {
    streams.div_ceil(LANES)
}

/// Bytes of one step's bit plane for `streams` streams: whole lane groups.
#[must_use]
pub const fn plane_bytes(streams: usize) -> usize {
    groups_for(streams) * LANE_BYTES
}

/// Weights arranged for the kernels. Rebuilt by [`Prepared::load`] after every update (a copy
/// of `H^2 + 4H` numbers, negligible next to a window's work).
#[derive(Clone, Debug)]
pub struct Prepared {
    hidden: usize,
    /// `w_hh[j][k]`, row-major: the forward GEMM's matrix.
    w_hh: Vec<f32>,
    /// `w_hh[k][j]`: the backward GEMM's matrix (`w_hh^T`).
    w_hh_t: Vec<f32>,
    /// `w_xh[0][j] + b_h[j]` and `w_xh[1][j] + b_h[j]`: the start of `z_j` for each input.
    zx0: Vec<f32>,
    zx1: Vec<f32>,
    /// `w_hy[1][j] - w_hy[0][j]`: the logit difference's weights.
    wy_diff: Vec<f32>,
    /// `b_y[1] - b_y[0]`.
    by_diff: f32,
}

impl Prepared {
    /// Buffers for hidden size `hidden`; call [`Prepared::load`] before use.
    #[must_use]
    pub fn new(hidden: usize) -> Self {
        Self {
            hidden,
            w_hh: vec![0.0; hidden * hidden],
            w_hh_t: vec![0.0; hidden * hidden],
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
        for j in 0..h {
            for k in 0..h {
                self.w_hh_t[k * h + j] = p.w_hh()[j * h + k];
            }
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
fn padded(n: usize) -> Vec<Vf32> {
    let mut v = Vec::with_capacity(n + PAD);
    v.resize(n, Vf32::ZERO);
    v
}

/// Spare vectors after each workspace buffer: 256 bytes.
const PAD: usize = 256 / core::mem::size_of::<Vf32>();

/// One shard's buffers for the whole run: the carried hidden state and the window's
/// activations. Allocated once; the kernels never allocate.
#[derive(Clone, Debug)]
pub struct Workspace {
    hidden: usize,
    streams: usize,
    groups: usize,
    time_step: usize,
    /// `[t][H + 2][groups]`, see the module docs.
    hbuf: Vec<Vf32>,
    /// `[t][H][groups]`.
    dz: Vec<Vf32>,
    /// `[t][groups]`.
    dl: Vec<Vf32>,
    /// `[t][groups]`: y as 0.0/1.0.
    y: Vec<Vf32>,
    /// `[groups]`: the running logit difference of the current step.
    logit: Vec<Vf32>,
    /// `[groups]`: 1.0 in lanes of real streams, 0.0 in padding lanes.
    valid: Vec<Vf32>,
    /// Small kernels only: the weights splatted into vectors (see `splat_small`).
    splat: Vec<Vf32>,
    /// Small kernels only: per-lane gradient accumulators of the window,
    /// `[H][H + 2]` for `[dw_hh | dw_xh[1] | dw_xh[0]]`, then `[H]` for `dw_hy[1]`, then 1 for
    /// `db_y[1]`.
    gacc: Vec<Vf32>,
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

/// Sets lanes with `|v| < FLUSH` to zero.
#[inline(always)]
fn flush(v: Vf32) -> Vf32 {
    v & v.abs().simd_ge(Vf32::splat(FLUSH))
}

/// Calls `$f::<mr, nr>(args)` for runtime `mr` in 1..=6 and `nr` in 1..=2.
macro_rules! dispatch_6x2 {
    ($f:ident, $mr:expr, $nr:expr, $($arg:expr),* $(,)?) => {
        match ($mr, $nr) {
            (6, 2) => $f::<6, 2>($($arg),*),
            (5, 2) => $f::<5, 2>($($arg),*),
            (6, 1) => $f::<6, 1>($($arg),*),
            (5, 1) => $f::<5, 1>($($arg),*),
            (4, 2) => $f::<4, 2>($($arg),*),
            (3, 2) => $f::<3, 2>($($arg),*),
            (2, 2) => $f::<2, 2>($($arg),*),
            (1, 2) => $f::<1, 2>($($arg),*),
            (4, 1) => $f::<4, 1>($($arg),*),
            (3, 1) => $f::<3, 1>($($arg),*),
            (2, 1) => $f::<2, 1>($($arg),*),
            (1, 1) => $f::<1, 1>($($arg),*),
            _ => unreachable!("tile sizes are at most 6 x 2"),
        }
    };
}

/// Calls `$f::<H>(args)` for the runtime hidden size `$h` in `1..=SMALL_MAX`, else `$else`.
macro_rules! dispatch_small {
    ($f:ident, $h:expr, ($($arg:expr),*), $else:expr) => {
        match $h {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            _ => $else,
        }
    };
}

const _: () = assert!(SMALL_MAX == 8, "dispatch_small covers 1..=8");

const _: () = assert!(
    MR == 6 && NR == 2 && GR == 6 && GC == 2,
    "dispatch_6x2 covers 6 x 2"
);

/// The register tile shared by the step GEMMs: `acc[i][n] += sum_k a[j0+i][k] b[k][g0+n]`
/// for `k < k_len`, with `a` row-major `[..][h]` scalars (broadcast) and `b` `[k][groups]`
/// vectors (a panel of `N` groups per `k`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_tile<const M: usize, const N: usize>(
    acc: &mut [[Vf32; N]; M],
    a: &[f32],
    h: usize,
    j0: usize,
    b: &[Vf32],
    groups: usize,
    g0: usize,
    k_len: usize,
) {
    let rows: [&[f32]; M] = core::array::from_fn(|i| &a[(j0 + i) * h..][..h]);
    for (k, row) in b.chunks_exact(groups).take(k_len).enumerate() {
        let panel: &[Vf32; N] = row[g0..g0 + N].try_into().expect("N groups");
        let b = *panel;
        for i in 0..M {
            let a = Vf32::splat(rows[i][k]);
            for n in 0..N {
                acc[i][n] = a.mul_add(b[n], acc[i][n]);
            }
        }
    }
}

/// Forward tile: rows `j0..j0+M` of `h_t` for groups `g0..g0+N`.
/// `z = select(x, zx1, zx0) + sum_k w_hh[j][k] h_{t-1}[k]`, `h = tanh(z)`, and
/// `logit += wy_diff[j] h[j]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_tile<const M: usize, const N: usize>(
    w: &Prepared,
    prev: &[Vf32],
    next: &mut [Vf32],
    logit: &mut [Vf32],
    groups: usize,
    j0: usize,
    g0: usize,
) {
    let h = w.hidden;
    let xmask: [_; N] = core::array::from_fn(|n| prev[h * groups + g0 + n].simd_ne(Vf32::ZERO));
    let mut acc: [[Vf32; N]; M] = core::array::from_fn(|i| {
        core::array::from_fn(|n| {
            xmask[n].select(Vf32::splat(w.zx1[j0 + i]), Vf32::splat(w.zx0[j0 + i]))
        })
    });
    gemm_tile(&mut acc, &w.w_hh, h, j0, prev, groups, g0, h);
    for i in 0..M {
        let wy = Vf32::splat(w.wy_diff[j0 + i]);
        for n in 0..N {
            let hv = approx::tanh(acc[i][n]);
            next[(j0 + i) * groups + g0 + n] = hv;
            logit[g0 + n] = wy.mul_add(hv, logit[g0 + n]);
        }
    }
}

/// Backward tile: rows `j0..j0+M` of `dz_t` for groups `g0..g0+N`:
/// `dz_t = flush((wy_diff[j] dl_t + sum_i w_hh[i][j] dz_{t+1}[i]) * (1 - h_t^2))`; the sum is
/// empty at the window's last step (`dz_next` empty).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_tile<const M: usize, const N: usize>(
    w: &Prepared,
    dz_next: &[Vf32],
    dz: &mut [Vf32],
    h_t: &[Vf32],
    dl: &[Vf32],
    groups: usize,
    j0: usize,
    g0: usize,
) {
    let h = w.hidden;
    let k_len = if dz_next.is_empty() { 0 } else { h };
    let mut acc: [[Vf32; N]; M] = core::array::from_fn(|i| {
        core::array::from_fn(|n| Vf32::splat(w.wy_diff[j0 + i]) * dl[g0 + n])
    });
    gemm_tile(&mut acc, &w.w_hh_t, h, j0, dz_next, groups, g0, k_len);
    for i in 0..M {
        for n in 0..N {
            let hv = h_t[(j0 + i) * groups + g0 + n];
            let d = acc[i][n] * hv.mul_neg_add(hv, Vf32::ONE);
            dz[(j0 + i) * groups + g0 + n] = flush(d);
        }
    }
}

/// Weight-gradient tile: `out[i][c] = sum over lanes, steps t and groups g of
/// dz_t[j0+i][g] * hbuf_t[c0+c][g]`, written as `(row j0+i, column c0+c)` to `emit`.
#[inline(always)]
fn grad_tile<const M: usize, const N: usize>(
    ws: &Workspace,
    j0: usize,
    c0: usize,
    emit: &mut impl FnMut(usize, usize, f32),
) {
    let (h, groups) = (ws.hidden, ws.groups);
    let rows = h + 2;
    let mut acc = [[Vf32::ZERO; N]; M];
    for t in 0..ws.time_step {
        let dz = &ws.dz[t * h * groups..(t + 1) * h * groups];
        let hb = &ws.hbuf[t * rows * groups..(t + 1) * rows * groups];
        let a_rows: [&[Vf32]; M] = core::array::from_fn(|i| &dz[(j0 + i) * groups..][..groups]);
        let b_rows: [&[Vf32]; N] = core::array::from_fn(|n| &hb[(c0 + n) * groups..][..groups]);
        for g in 0..groups {
            let b: [Vf32; N] = core::array::from_fn(|n| b_rows[n][g]);
            for i in 0..M {
                let a = a_rows[i][g];
                for n in 0..N {
                    acc[i][n] = a.mul_add(b[n], acc[i][n]);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (n, v) in row.iter().enumerate() {
            emit(j0 + i, c0 + n, hsum(*v));
        }
    }
}

/// Forward pass of one window for one shard. Fills `hbuf[1..=T]`, `y` and (when `scale` is
/// `Some`) `dl`; returns the loss and accuracy sums. `scale` is `1 / (S T)` over the whole
/// batch of `S` streams (all shards).
fn forward_pass(
    w: &Prepared,
    ws: &mut Workspace,
    planes: &Planes,
    scale: Option<f32>,
) -> WindowStats {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let rows = h + 2;
    assert_eq!(w.hidden, h, "Prepared and Workspace disagree on hidden");
    let group_bytes = groups * LANE_BYTES;
    assert!(
        planes.stride >= group_bytes,
        "Planes::stride below the shard's groups"
    );
    let need = (t_n - 1) * planes.stride + group_bytes;
    assert!(
        planes.x.len() >= need && planes.y.len() >= need,
        "Planes shorter than the window"
    );
    for t in 0..t_n {
        let hb = &mut ws.hbuf[t * rows * groups..(t + 1) * rows * groups];
        let xs = planes.x[t * planes.stride..][..group_bytes]
            .as_chunks::<LANE_BYTES>()
            .0;
        let ys = planes.y[t * planes.stride..][..group_bytes]
            .as_chunks::<LANE_BYTES>()
            .0;
        for (g, (xb, yb)) in xs.iter().zip(ys).enumerate() {
            let x = bits_to_lanes(xb);
            hb[h * groups + g] = x;
            hb[(h + 1) * groups + g] = Vf32::ONE - x;
            ws.y[t * groups + g] = bits_to_lanes(yb);
        }
    }
    let scale = scale.map_or(Vf32::ZERO, Vf32::splat);
    let (loss, correct) = dispatch_small!(
        forward_small,
        h,
        (w, ws, scale),
        forward_blocked(w, ws, scale)
    );
    WindowStats {
        loss_sum: f64::from(hsum(loss)),
        correct: f64::from(hsum(correct)),
    }
}

/// The output head of one step for one lane group, from the logit difference `d`.
///
/// Two-class softmax through `e = exp(-|d|)` and `u = 1 + e`: the class `d` favours has
/// probability `1/u`, the other `e/u`; the loss is `softplus(s) = max(s, 0) + ln(u)` with
/// `s = d` for `y = 0` and `s = -d` for `y = 1` (`|s| = |d|`), and `ln(u)` is corrected by
/// `(e - (u - 1)) / u` for the part of `e` lost in rounding `u`. `|d|` is capped at 80 so that
/// `e/u >= e^-80 / 2` stays a normal float. Returns (loss, correct, dl1), each masked by
/// `valid`; `dl1 = (p1 - y) scale` is flushed.
#[inline(always)]
fn head(d: Vf32, y: Vf32, valid: Vf32, scale: Vf32) -> (Vf32, Vf32, Vf32) {
    let e = approx::exp(-(d.abs().min(Vf32::splat(80.0))));
    let u = Vf32::ONE + e;
    let q = Vf32::ONE / u;
    let positive = d.simd_ge(Vf32::ZERO);
    let p1 = positive.select(q, e * q);
    let yes = y.simd_ne(Vf32::ZERO);
    let s = yes.select(-d, d);
    let c = e - (u - Vf32::ONE);
    let loss = s.max(Vf32::ZERO) + c.mul_add(q, approx::ln(u));
    let wrong = (positive.select(Vf32::ONE, Vf32::ZERO) - y).abs();
    let correct = wrong.mul_neg_add(valid, valid);
    let dl = flush((p1 - y) * (valid * scale));
    (loss * valid, correct, dl)
}

/// Fills the workspace's copy of the small kernels' weights, splatted into vectors so that
/// their FMAs take them straight from memory: `[w_hh (H^2) | zx0 (H) | zx1 (H) | wy_diff (H)]`.
/// In the workspace, not in [`Prepared`]: a shard run on another core then reads `H^2 + 3H`
/// floats of the shared weights each window, not as many whole vectors (64 bytes each with
/// 16 lanes), and the vectors stay in the cache of the core that uses them.
fn splat_small(w: &Prepared, out: &mut [Vf32]) {
    let h = w.hidden;
    let all = w.w_hh.iter().chain(&w.zx0).chain(&w.zx1).chain(&w.wy_diff);
    for (o, &v) in out[..h * h + 3 * h].iter_mut().zip(all) {
        *o = Vf32::splat(v);
    }
}

/// Forward over the window for `H <= SMALL_MAX`: one lane group at a time through all steps,
/// its hidden state in registers.
#[inline(never)]
fn forward_small<const H: usize>(w: &Prepared, ws: &mut Workspace, scale: Vf32) -> (Vf32, Vf32) {
    let (groups, t_n) = (ws.groups, ws.time_step);
    let rows = H + 2;
    splat_small(w, &mut ws.splat);
    let (wm, rest) = ws.splat.split_at(H * H);
    let zx0: &[Vf32; H] = rest[..H].try_into().expect("H entries");
    let zx1: &[Vf32; H] = rest[H..2 * H].try_into().expect("H entries");
    let wy: &[Vf32; H] = rest[2 * H..3 * H].try_into().expect("H entries");
    let by = Vf32::splat(w.by_diff);
    let (mut loss, mut correct) = (Vf32::ZERO, Vf32::ZERO);
    for g in 0..groups {
        let valid = ws.valid[g];
        let mut hv: [Vf32; H] = core::array::from_fn(|j| ws.hbuf[j * groups + g]);
        for t in 0..t_n {
            let xm = ws.hbuf[(t * rows + H) * groups + g].simd_ne(Vf32::ZERO);
            let mut z: [Vf32; H] = core::array::from_fn(|j| xm.select(zx1[j], zx0[j]));
            for j in 0..H {
                for k in 0..H {
                    z[j] = wm[j * H + k].mul_add(hv[k], z[j]);
                }
            }
            let mut d = by;
            let next = &mut ws.hbuf[(t + 1) * rows * groups..(t + 1) * rows * groups + H * groups];
            for j in 0..H {
                hv[j] = approx::tanh(z[j]);
                next[j * groups + g] = hv[j];
                d = wy[j].mul_add(hv[j], d);
            }
            let (l, c, dl) = head(d, ws.y[t * groups + g], valid, scale);
            loss += l;
            correct += c;
            ws.dl[t * groups + g] = dl;
        }
    }
    (loss, correct)
}

/// Forward over the window for any hidden size: per step, the register-blocked GEMM with
/// `tanh` and the output projection in its epilogue, then the head per group.
fn forward_blocked(w: &Prepared, ws: &mut Workspace, scale: Vf32) -> (Vf32, Vf32) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let rows = h + 2;
    let (mut loss, mut correct) = (Vf32::ZERO, Vf32::ZERO);
    for t in 0..t_n {
        let (done, rest) = ws.hbuf.split_at_mut((t + 1) * rows * groups);
        let prev = &done[t * rows * groups..];
        let next = &mut rest[..rows * groups];
        ws.logit.fill(Vf32::splat(w.by_diff));
        for g0 in (0..groups).step_by(NR) {
            let nr = NR.min(groups - g0);
            for j0 in (0..h).step_by(MR) {
                let mr = MR.min(h - j0);
                dispatch_6x2!(
                    forward_tile,
                    mr,
                    nr,
                    w,
                    prev,
                    next,
                    &mut ws.logit,
                    groups,
                    j0,
                    g0
                );
            }
        }
        for g in 0..groups {
            let (l, c, dl) = head(ws.logit[g], ws.y[t * groups + g], ws.valid[g], scale);
            loss += l;
            correct += c;
            ws.dl[t * groups + g] = dl;
        }
    }
    (loss, correct)
}

/// Moves `h_{T-1}` into the carried-state rows for the next window (the last part of
/// [`forward_backward`], for callers that run [`forward_train`] and [`backward`] apart).
pub fn carry_state(ws: &mut Workspace) {
    let n = ws.hidden * ws.groups;
    let last = ws.time_step * (ws.hidden + 2) * ws.groups;
    ws.hbuf.copy_within(last..last + n, 0);
}

/// Forward pass only over one window (evaluation): returns loss and accuracy sums and
/// carries the hidden state into the next window.
pub fn forward(w: &Prepared, ws: &mut Workspace, planes: &Planes) -> WindowStats {
    let stats = forward_pass(w, ws, planes, None);
    carry_state(ws);
    stats
}

/// Forward pass and truncated BPTT over one window for one shard: [`forward_train`],
/// [`backward`], then the carried state moves on to the next window. `grad` (length
/// `H^2 + 5H + 2`, the [`Params`] layout) is overwritten with this shard's gradient of the
/// batch-mean loss (`scale = 1 / (S T)` for `S` streams in all shards). Returns the shard's
/// loss and accuracy sums.
pub fn forward_backward(
    w: &Prepared,
    ws: &mut Workspace,
    planes: &Planes,
    scale: f32,
    grad: &mut [f32],
) -> WindowStats {
    let stats = forward_train(w, ws, planes, scale);
    backward(w, ws, grad);
    carry_state(ws);
    stats
}

/// The forward half of [`forward_backward`]: fills the activations and the logits' gradient
/// for [`backward`]; does not move the carried state.
pub fn forward_train(w: &Prepared, ws: &mut Workspace, planes: &Planes, scale: f32) -> WindowStats {
    forward_pass(w, ws, planes, Some(scale))
}

/// The backward half of [`forward_backward`]: BPTT over the window last run by
/// [`forward_train`], writing the shard's gradient to `grad`.
pub fn backward(w: &Prepared, ws: &mut Workspace, grad: &mut [f32]) {
    let h = ws.hidden;
    assert_eq!(w.hidden, h, "Prepared and Workspace disagree on hidden");
    assert_eq!(
        grad.len(),
        Layout::new(h).len(),
        "grad has the Params layout"
    );
    if h <= SMALL_MAX {
        dispatch_small!(backward_small, h, (w, ws), unreachable!("h <= SMALL_MAX"));
        small_gradients(ws, grad);
    } else {
        backward_blocked(w, ws);
        weight_gradients(ws, grad);
    }
}

/// BPTT through the window for `H <= SMALL_MAX`: one lane group at a time, `dz` of the next
/// step in registers; the weight gradients accumulate per lane in `ws.gacc` (L1-resident),
/// reduced across lanes once per window by [`small_gradients`].
#[inline(never)]
fn backward_small<const H: usize>(w: &Prepared, ws: &mut Workspace) {
    let (groups, t_n) = (ws.groups, ws.time_step);
    let rows = H + 2;
    // `ws.splat` was filled by this window's `forward_small`.
    let _ = w;
    let wm: &[Vf32] = &ws.splat[..H * H];
    let wy: &[Vf32] = &ws.splat[H * H + 2 * H..H * H + 3 * H];
    let gacc = &mut ws.gacc[..H * rows + H + 1];
    gacc.fill(Vf32::ZERO);
    for g in 0..groups {
        let mut dzn = [Vf32::ZERO; H];
        for t in (0..t_n).rev() {
            let dl = ws.dl[t * groups + g];
            let mut dh: [Vf32; H] = core::array::from_fn(|j| wy[j] * dl);
            if t + 1 < t_n {
                for i in 0..H {
                    for j in 0..H {
                        dh[j] = wm[i * H + j].mul_add(dzn[i], dh[j]);
                    }
                }
            }
            // hbuf[t] holds [h_{t-1}; x_t; 1 - x_t], hbuf[t + 1] starts with h_t.
            let hb = &ws.hbuf[t * rows * groups..(t + 1) * rows * groups + H * groups];
            let prev: [Vf32; H] = core::array::from_fn(|k| hb[k * groups + g]);
            let (x1, x0) = (hb[H * groups + g], hb[(H + 1) * groups + g]);
            let h_t: [Vf32; H] = core::array::from_fn(|j| hb[(rows + j) * groups + g]);
            for j in 0..H {
                let dz = flush(dh[j] * h_t[j].mul_neg_add(h_t[j], Vf32::ONE));
                dzn[j] = dz;
                let row = &mut gacc[j * rows..(j + 1) * rows];
                for k in 0..H {
                    row[k] = dz.mul_add(prev[k], row[k]);
                }
                row[H] = dz.mul_add(x1, row[H]);
                row[H + 1] = dz.mul_add(x0, row[H + 1]);
            }
            let hy = &mut gacc[H * rows..H * rows + H + 1];
            for j in 0..H {
                hy[j] = dl.mul_add(h_t[j], hy[j]);
            }
            hy[H] += dl;
        }
    }
}

/// Reduces the small kernels' per-lane accumulators into `grad` (the [`Params`] layout).
fn small_gradients(ws: &Workspace, grad: &mut [f32]) {
    let h = ws.hidden;
    let rows = h + 2;
    let [r_xh, r_hh, r_bh, r_hy, r_by] = Layout::new(h).ranges();
    for j in 0..h {
        for k in 0..h {
            grad[r_hh.0 + j * h + k] = hsum(ws.gacc[j * rows + k]);
        }
        let (x1, x0) = (hsum(ws.gacc[j * rows + h]), hsum(ws.gacc[j * rows + h + 1]));
        grad[r_xh.0 + h + j] = x1;
        grad[r_xh.0 + j] = x0;
        grad[r_bh.0 + j] = x0 + x1;
        let hy = hsum(ws.gacc[h * rows + j]);
        grad[r_hy.0 + h + j] = hy;
        grad[r_hy.0 + j] = -hy;
    }
    let by = hsum(ws.gacc[h * rows + h]);
    grad[r_by.0 + 1] = by;
    grad[r_by.0] = -by;
}

/// BPTT through the window for any hidden size: per step, the register-blocked GEMM on
/// `w_hh^T` with the output gradient and `tanh'` in its epilogue.
fn backward_blocked(w: &Prepared, ws: &mut Workspace) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let rows = h + 2;
    for t in (0..t_n).rev() {
        let (before, after) = ws.dz.split_at_mut((t + 1) * h * groups);
        let dz = &mut before[t * h * groups..];
        let dz_next: &[Vf32] = if t + 1 < t_n {
            &after[..h * groups]
        } else {
            &[]
        };
        let h_t = &ws.hbuf[(t + 1) * rows * groups..(t + 1) * rows * groups + h * groups];
        let dl = &ws.dl[t * groups..(t + 1) * groups];
        for g0 in (0..groups).step_by(NR) {
            let nr = NR.min(groups - g0);
            for j0 in (0..h).step_by(MR) {
                let mr = MR.min(h - j0);
                dispatch_6x2!(
                    backward_tile,
                    mr,
                    nr,
                    w,
                    dz_next,
                    dz,
                    h_t,
                    dl,
                    groups,
                    j0,
                    g0
                );
            }
        }
    }
}

/// The window's weight gradients from the stored activations and `dz`, `dl`: one GEMM over
/// the reduction index (t, group) for `[dw_hh | dw_xh[1] | dw_xh[0]]`, lane sums once.
fn weight_gradients(ws: &Workspace, grad: &mut [f32]) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let rows = h + 2;
    let layout = Layout::new(h);

    let [r_xh, r_hh, r_bh, r_hy, r_by] = layout.ranges();
    {
        let mut emit = |j: usize, c: usize, v: f32| {
            if c < h {
                grad[r_hh.0 + j * h + c] = v;
            } else if c == h {
                grad[r_xh.0 + h + j] = v;
            } else {
                grad[r_xh.0 + j] = v;
            }
        };
        for j0 in (0..h).step_by(GR) {
            let mr = GR.min(h - j0);
            for c0 in (0..rows).step_by(GC) {
                let nr = GC.min(rows - c0);
                dispatch_6x2!(grad_tile, mr, nr, ws, j0, c0, &mut emit);
            }
        }
    }
    for j in 0..h {
        grad[r_bh.0 + j] = grad[r_xh.0 + j] + grad[r_xh.0 + h + j];
    }
    let mut dby = Vf32::ZERO;
    for t in 0..t_n {
        for g in 0..groups {
            dby += ws.dl[t * groups + g];
        }
    }
    for j in 0..h {
        let mut acc = Vf32::ZERO;
        for t in 0..t_n {
            let h_t = &ws.hbuf[((t + 1) * rows + j) * groups..((t + 1) * rows + j + 1) * groups];
            let dl = &ws.dl[t * groups..(t + 1) * groups];
            for g in 0..groups {
                acc = dl[g].mul_add(h_t[g], acc);
            }
        }
        let v = hsum(acc);
        grad[r_hy.0 + h + j] = v;
        grad[r_hy.0 + j] = -v;
    }
    let v = hsum(dby);
    grad[r_by.0 + 1] = v;
    grad[r_by.0] = -v;
}

/// Adagrad with TensorFlow's semantics, fused on Vf32: `accum += g^2; w -= lr g /
/// sqrt(accum)` with a true square root and division (the approximate `rsqrt` would not
/// match the reference). Same arithmetic order as [`crate::reference::adagrad_step`].
pub fn adagrad_update(w: &mut [f32], accum: &mut [f32], grad: &[f32], lr: f32) {
    assert!(
        w.len() == accum.len() && w.len() == grad.len(),
        "adagrad_update: lengths"
    );
    let lr = Vf32::splat(lr);
    let step = |w: &mut [f32; LANES], a: &mut [f32; LANES], g: &[f32; LANES]| {
        let gv = Vf32::new(*g);
        let av = Vf32::new(*a) + gv * gv;
        *a = av.to_array();
        *w = (Vf32::new(*w) - lr * gv / av.sqrt()).to_array();
    };
    let (wc, wt) = w.as_chunks_mut::<LANES>();
    let (ac, at) = accum.as_chunks_mut::<LANES>();
    let (gc, gt) = grad.as_chunks::<LANES>();
    for ((wv, av), gv) in wc.iter_mut().zip(ac.iter_mut()).zip(gc) {
        step(wv, av, gv);
    }
    // The tail goes through the same vector code, padded: the accumulator's padding is 1.0
    // so the padding lanes never divide by zero.
    let n = wt.len();
    if n > 0 {
        let (mut wp, mut ap, mut gp) = ([0.0; LANES], [1.0; LANES], [0.0; LANES]);
        wp[..n].copy_from_slice(wt);
        ap[..n].copy_from_slice(at);
        gp[..n].copy_from_slice(gt);
        step(&mut wp, &mut ap, &gp);
        wt.copy_from_slice(&wp[..n]);
        at.copy_from_slice(&ap[..n]);
    }
}

/// Plain SGD on Vf32: `w -= lr g`.
pub fn sgd_update(w: &mut [f32], grad: &[f32], lr: f32) {
    assert_eq!(w.len(), grad.len(), "sgd_update: lengths");
    let lr = Vf32::splat(lr);
    let (wc, wt) = w.as_chunks_mut::<LANES>();
    let (gc, gt) = grad.as_chunks::<LANES>();
    for (wv, gv) in wc.iter_mut().zip(gc) {
        *wv = (Vf32::new(*wv) - lr * Vf32::new(*gv)).to_array();
    }
    let n = wt.len();
    if n > 0 {
        let (mut wp, mut gp) = ([0.0; LANES], [0.0; LANES]);
        wp[..n].copy_from_slice(wt);
        gp[..n].copy_from_slice(gt);
        let r = (Vf32::new(wp) - lr * Vf32::new(gp)).to_array();
        wt.copy_from_slice(&r[..n]);
    }
}
