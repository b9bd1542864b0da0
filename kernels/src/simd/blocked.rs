//! The kernels for any hidden size: per step, the register-blocked GEMMs of
//! [`super::tiles`] with the activation and the output projection (forward) or the output
//! gradient and `tanh'` (backward) in their epilogues; then the weight gradients as one GEMM
//! per window.

use super::head::head;
use super::tiles::{GC, GR, MR, NR, backward_tile, forward_tile, grad_tile};
use super::{Prepared, Workspace};
use crate::lanes::{Vf32, hsum};
use crate::params::{Cell, Layout};

/// Forward over the window for any hidden size: per step, the register-blocked GEMM with
/// `tanh` and the output projection in its epilogue, then the head per group.
pub(super) fn forward_blocked(w: &Prepared, ws: &mut Workspace, scale: Vf32) -> (Vf32, Vf32) {
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
                dispatch_tile!(
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

/// BPTT through the window for any hidden size: per step, the register-blocked GEMM on
/// `w_hh^T` with the output gradient and `tanh'` in its epilogue.
pub(super) fn backward_blocked(w: &Prepared, ws: &mut Workspace) {
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
                dispatch_tile!(
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

/// The window's weight gradients from the stored activations and `dz`, `dl`, for the
/// blocked RNN and the gated cells: one GEMM over the reduction index (t, group) for
/// `[dw_hh | dw_x[1] | dw_x[0]]` (`G H` rows), lane sums once; the biases' gradients are the
/// sums of the input columns' (`x + (1 - x) = 1`).
pub(super) fn weight_gradients(ws: &Workspace, grad: &mut [f32]) {
    let (h, cell) = (ws.hidden, ws.cell);
    let rows = h + 2;
    let gh = cell.gates() * h;
    let [r_x, r_hh, ..] = Layout::of(cell, h).ranges();
    {
        let mut emit = |r: usize, c: usize, v: f32| {
            if c < h {
                grad[r_hh.0 + r * h + c] = v;
            } else if c == h {
                grad[r_x.0 + gh + r] = v;
            } else {
                grad[r_x.0 + r] = v;
            }
        };
        for j0 in (0..gh).step_by(GR) {
            let mr = GR.min(gh - j0);
            for c0 in (0..rows).step_by(GC) {
                let nr = GC.min(rows - c0);
                dispatch_tile!(grad_tile, mr, nr, ws, &ws.dz, gh, 0, j0, c0, &mut emit);
            }
        }
    }
    finish_gradients(ws, grad);
}

/// What follows the weight-gradient GEMM: the biases' gradients (the sums of the input
/// columns', `x + (1 - x) = 1`), the GRU's input side of its `n` rows, and the head's.
pub(super) fn finish_gradients(ws: &Workspace, grad: &mut [f32]) {
    let (h, cell) = (ws.hidden, ws.cell);
    let gh = cell.gates() * h;
    let [r_x, _, r_bih, r_bhh, r_hy, r_by] = Layout::of(cell, h).ranges();
    for r in 0..gh {
        let b = grad[r_x.0 + r] + grad[r_x.0 + gh + r];
        grad[r_bih.0 + r] = b;
        if cell != Cell::Rnn {
            grad[r_bhh.0 + r] = b;
        }
    }
    if cell == Cell::Gru {
        let (w_x, rest) = grad[r_x.0..r_bih.1].split_at_mut(r_x.1 - r_x.0);
        gru_input_gradients(ws, w_x, &mut rest[r_bih.0 - r_x.1..]);
    }
    let (w_hy, b_y) = grad[r_hy.0..r_by.1].split_at_mut(r_hy.1 - r_hy.0);
    head_gradients(ws, w_hy, b_y);
}

/// The GRU's `n` rows of `dw_x` and `db_ih` from the input side's gradient `dn` (the
/// GEMM above gave them `r dn`, the hidden side's, which went to `db_hh`).
fn gru_input_gradients(ws: &Workspace, w_x: &mut [f32], b_ih: &mut [f32]) {
    let (h, groups) = (ws.hidden, ws.groups);
    let (rows, gh) = (h + 2, 3 * h);
    for j in 0..h {
        let (mut x1, mut x0) = (Vf32::ZERO, Vf32::ZERO);
        for t in 0..ws.time_step {
            let dn = &ws.dn[(t * h + j) * groups..][..groups];
            let hb = &ws.hbuf[t * rows * groups..(t + 1) * rows * groups];
            let (xs, xc) = (
                &hb[h * groups..][..groups],
                &hb[(h + 1) * groups..][..groups],
            );
            for g in 0..groups {
                x1 = dn[g].mul_add(xs[g], x1);
                x0 = dn[g].mul_add(xc[g], x0);
            }
        }
        let (x1, x0) = (hsum(x1), hsum(x0));
        let n = 2 * h + j;
        w_x[gh + n] = x1;
        w_x[n] = x0;
        b_ih[n] = x0 + x1;
    }
}

/// The output layer's gradients, `dw_hy = sum dl_t h_t` and `db_y = sum dl_t` over the
/// window (two classes: the rows for class 0 are the negatives of class 1's).
fn head_gradients(ws: &Workspace, w_hy: &mut [f32], b_y: &mut [f32]) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let rows = h + 2;
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
        w_hy[h + j] = v;
        w_hy[j] = -v;
    }
    let v = hsum(dby);
    b_y[1] = v;
    b_y[0] = -v;
}
