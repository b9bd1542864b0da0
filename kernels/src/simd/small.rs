//! The kernels for hidden sizes up to [`SMALL_MAX`](super::SMALL_MAX), the size a
//! compile-time constant: one lane group at a time through all the window's steps, its hidden
//! state (forward) or the next step's `dz` (backward) in registers, the weight gradients
//! accumulated per lane in the workspace and reduced across lanes once per window.

use super::head::head;
use super::{Prepared, Workspace, flush};
use crate::approx;
use crate::lanes::{Vf32, hsum};
use crate::params::Layout;

/// Fills the workspace's copy of the small kernels' weights, splatted into vectors so that
/// their FMAs take them straight from memory: `[w_hh (H^2) | zx0 (H) | zx1 (H) | wy_diff (H)]`.
/// In the workspace, not in [`Prepared`]: a shard run on another core then reads `H^2 + 3H`
/// floats of the shared weights each window, not as many whole vectors (64 bytes each with
/// 16 lanes), and the vectors stay in the cache of the core that uses them.
pub(super) fn splat_small(w: &Prepared, out: &mut [Vf32]) {
    let h = w.hidden;
    // Four plain loops, not one chained iterator: the chain's per-item checks cost 4% of a
    // seed run's instructions (callgrind, 2026-12-01).
    let (o_hh, rest) = out.split_at_mut(h * h);
    let (o_zx0, rest) = rest.split_at_mut(h);
    let (o_zx1, o_wy) = rest.split_at_mut(h);
    for (o, v) in [
        (o_hh, &w.w_hh[..]),
        (o_zx0, &w.zx0[..]),
        (o_zx1, &w.zx1[..]),
        (&mut o_wy[..h], &w.wy_diff[..]),
    ] {
        for (o, &v) in o.iter_mut().zip(v) {
            *o = Vf32::splat(v);
        }
    }
}

/// Forward over the window for `H <= SMALL_MAX`: one lane group at a time through all steps,
/// its hidden state in registers.
#[inline(never)]
pub(super) fn forward_small<const H: usize>(
    w: &Prepared,
    ws: &mut Workspace,
    scale: Vf32,
) -> (Vf32, Vf32) {
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

/// BPTT through the window for `H <= SMALL_MAX`: one lane group at a time, `dz` of the next
/// step in registers; the weight gradients accumulate per lane in `ws.gacc` (L1-resident),
/// reduced across lanes once per window by [`small_gradients`].
#[inline(never)]
pub(super) fn backward_small<const H: usize>(w: &Prepared, ws: &mut Workspace) {
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
pub(super) fn small_gradients(ws: &Workspace, grad: &mut [f32]) {
    let h = ws.hidden;
    let rows = h + 2;
    let [r_xh, r_hh, r_bh, _, r_hy, r_by] = Layout::new(h).ranges();
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
