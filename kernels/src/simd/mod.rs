//! The fused SIMD kernels: one window of forward + truncated BPTT on the build's vector
//! [`Vf32`] ([`LANES`] = 16 with AVX-512, else 8), with the **streams in the SIMD lanes**. The
//! math is the reference's (see [`crate::reference`]); this module only changes the order of
//! the arithmetic.
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

use crate::lanes::{LANE_BYTES, Vf32, bits_to_lanes};
use crate::params::Cell;
use blocked::{backward_blocked, forward_blocked, weight_gradients};
use gated::{backward_gated, forward_gated};
use small::{backward_small, forward_small, small_gradients};
use symbols::{backward_symbols, forward_symbols};

pub use crate::lanes::{LANES, hsum};
pub use gated::GATE_CLAMP;
pub use layout::{Inputs, Planes, Prepared, SymbolPlanes, WindowStats, Workspace};
pub use optim::{adagrad_step, sgd_step};

/// Gradients (`dl`, `dz`) below this magnitude are set to 0: 2^-64. See the module docs.
pub const FLUSH: f32 = 1.0 / 18_446_744_073_709_551_616.0;

/// Hidden sizes up to this use the small kernels: the whole hidden state of a lane group in
/// registers across the window's steps, the size a compile-time constant.
pub const SMALL_MAX: usize = 8;

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

/// Sets lanes with `|v| < FLUSH` to zero.
#[inline(always)]
fn flush(v: Vf32) -> Vf32 {
    v & v.abs().simd_ge(Vf32::splat(FLUSH))
}

/// Calls `$f::<mr, nr>(args)` for runtime `mr` in 1..=6 and `nr` in 1..=4: the register tiles'
/// sizes, full (6 x 4 with AVX-512's 32 registers, 6 x 2 with AVX2's 16) or at the edges.
macro_rules! dispatch_tile {
    ($f:ident, $mr:expr, $nr:expr, $($arg:expr),* $(,)?) => {
        match $nr {
            4 => dispatch_tile!(@rows $f, $mr, 4, $($arg),*),
            3 => dispatch_tile!(@rows $f, $mr, 3, $($arg),*),
            2 => dispatch_tile!(@rows $f, $mr, 2, $($arg),*),
            1 => dispatch_tile!(@rows $f, $mr, 1, $($arg),*),
            _ => unreachable!("tile sizes are at most 6 x 4"),
        }
    };
    (@rows $f:ident, $mr:expr, $n:literal, $($arg:expr),*) => {
        match $mr {
            6 => $f::<6, $n>($($arg),*),
            5 => $f::<5, $n>($($arg),*),
            4 => $f::<4, $n>($($arg),*),
            3 => $f::<3, $n>($($arg),*),
            2 => $f::<2, $n>($($arg),*),
            1 => $f::<1, $n>($($arg),*),
            _ => unreachable!("tile sizes are at most 6 x 4"),
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

// The parts, declared after the dispatch macros they use.
mod blocked;
mod gated;
mod head;
mod layout;
mod optim;
mod small;
mod symbols;
mod tiles;

/// Forward pass of one window for one shard. Fills `hbuf[1..=T]`, `y` and (when `scale` is
/// `Some`) `dl`; returns the loss and accuracy sums. `scale` is `1 / (S T)` over the whole
/// batch of `S` streams (all shards).
fn forward_pass(
    w: &Prepared,
    ws: &mut Workspace,
    inputs: Inputs<'_>,
    scale: Option<f32>,
) -> WindowStats {
    assert!(
        w.layout() == ws.layout() && w.symbols == ws.symbols,
        "Prepared and Workspace disagree on the model or the path"
    );
    match inputs {
        Inputs::Bits(planes) => load_bits(ws, &planes),
        Inputs::Symbols(planes) => load_symbols(ws, &planes),
    }
    let scale = scale.map_or(Vf32::ZERO, Vf32::splat);
    let h = ws.hidden;
    let (loss, correct) = if ws.symbols {
        forward_symbols(w, ws, scale)
    } else if ws.cell == Cell::Rnn {
        dispatch_small!(
            forward_small,
            h,
            (w, ws, scale),
            forward_blocked(w, ws, scale)
        )
    } else {
        forward_gated(w, ws, scale)
    };
    WindowStats {
        loss_sum: f64::from(hsum(loss)),
        correct: f64::from(hsum(correct)),
    }
}

/// The window's bit planes into the workspace's input rows and targets.
fn load_bits(ws: &mut Workspace, planes: &Planes) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    assert!(
        !ws.symbols,
        "bit planes for a workspace of the symbols' path"
    );
    let rows = h + 2;
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
}

/// The window's symbols into the workspace, checked against `V` and `C`.
fn load_symbols(ws: &mut Workspace, planes: &SymbolPlanes) {
    assert!(
        ws.symbols,
        "symbol planes for a workspace of the bits' kernels"
    );
    let (n, t_n) = (ws.groups * LANES, ws.time_step);
    assert!(
        planes.stride >= n,
        "SymbolPlanes::stride below the shard's groups"
    );
    let need = (t_n - 1) * planes.stride + n;
    assert!(
        planes.x.len() >= need && planes.y.len() >= need,
        "SymbolPlanes shorter than the window"
    );
    let (mut x_max, mut y_max) = (0, 0);
    for t in 0..t_n {
        let (x, y) = (
            &planes.x[t * planes.stride..][..n],
            &planes.y[t * planes.stride..][..n],
        );
        ws.xs[t * n..][..n].copy_from_slice(x);
        ws.ys[t * n..][..n].copy_from_slice(y);
        x_max = x.iter().fold(x_max, |m, &v| m.max(v));
        y_max = y.iter().fold(y_max, |m, &v| m.max(v));
    }
    assert!(
        usize::from(x_max) < ws.vocab && usize::from(y_max) < ws.classes,
        "symbols below V and classes below C"
    );
}

/// Moves `h_{T-1}` into the carried-state rows for the next window (the last part of
/// [`forward_backward`], for callers that run [`forward_train`] and [`backward`] apart).
pub fn carry_state(ws: &mut Workspace) {
    let n = ws.hidden * ws.groups;
    let last = ws.time_step * (ws.hidden + 2) * ws.groups;
    ws.hbuf.copy_within(last..last + n, 0);
    if ws.cell == Cell::Lstm {
        ws.cbuf
            .copy_within(ws.time_step * n..(ws.time_step + 1) * n, 0);
    }
}

/// Forward pass only over one window (evaluation): returns loss and accuracy sums and
/// carries the hidden state into the next window.
pub fn forward<'a>(w: &Prepared, ws: &mut Workspace, planes: impl Into<Inputs<'a>>) -> WindowStats {
    let stats = forward_pass(w, ws, planes.into(), None);
    carry_state(ws);
    stats
}

/// Forward pass and truncated BPTT over one window for one shard: [`forward_train`],
/// [`backward`], then the carried state moves on to the next window. `grad` (length
/// `H^2 + 5H + 2`, the [`Params`](crate::Params) layout) is overwritten with this shard's gradient of the
/// batch-mean loss (`scale = 1 / (S T)` for `S` streams in all shards). Returns the shard's
/// loss and accuracy sums.
pub fn forward_backward<'a>(
    w: &Prepared,
    ws: &mut Workspace,
    planes: impl Into<Inputs<'a>>,
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
pub fn forward_train<'a>(
    w: &Prepared,
    ws: &mut Workspace,
    planes: impl Into<Inputs<'a>>,
    scale: f32,
) -> WindowStats {
    forward_pass(w, ws, planes.into(), Some(scale))
}

/// The backward half of [`forward_backward`]: BPTT over the window last run by
/// [`forward_train`], writing the shard's gradient to `grad`. `w` must be the weights that
/// `forward_train` ran with (for hidden sizes up to [`SMALL_MAX`] the kernels read the copy
/// of them that `forward_train` splatted into the workspace).
pub fn backward(w: &Prepared, ws: &mut Workspace, grad: &mut [f32]) {
    let h = ws.hidden;
    assert!(
        w.layout() == ws.layout() && w.symbols == ws.symbols,
        "Prepared and Workspace disagree on the model or the path"
    );
    assert_eq!(grad.len(), ws.layout().len(), "grad has the Params layout");
    if ws.symbols {
        backward_symbols(w, ws, grad);
    } else if ws.cell != Cell::Rnn {
        backward_gated(w, ws, grad);
    } else if h <= SMALL_MAX {
        dispatch_small!(backward_small, h, (w, ws), unreachable!("h <= SMALL_MAX"));
        small_gradients(ws, grad);
    } else {
        backward_blocked(w, ws);
        weight_gradients(ws, grad);
    }
}
