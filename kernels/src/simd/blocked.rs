//! The kernels for any hidden size: per step, the register-blocked GEMMs of
//! [`super::tiles`] with the activation and the output projection (forward) or the output
//! gradient and `tanh'` (backward) in their epilogues; then the weight gradients as one GEMM
//! per window.

use super::head::head;
use super::tiles::{GC, GR, MR, NR, backward_tile, forward_tile, grad_tile};
use super::{Prepared, Workspace};
use crate::lanes::{Vf32, hsum};
use crate::params::Layout;

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

/// The window's weight gradients from the stored activations and `dz`, `dl`: one GEMM over
/// the reduction index (t, group) for `[dw_hh | dw_xh[1] | dw_xh[0]]`, lane sums once.
pub(super) fn weight_gradients(ws: &Workspace, grad: &mut [f32]) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let rows = h + 2;
    let layout = Layout::new(h);

    let [r_xh, r_hh, r_bh, _, r_hy, r_by] = layout.ranges();
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
                dispatch_tile!(grad_tile, mr, nr, ws, j0, c0, &mut emit);
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
