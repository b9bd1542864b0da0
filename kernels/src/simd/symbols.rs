//! The symbols' path: every cell over `V` input symbols and `C` classes (a character model:
//! `V = C` = the alphabet of a text), on the lane layout of the [module docs](super), for
//! any hidden size, `V` and `C` up to [`crate::MAX_SYMBOLS`]. The bits (`V = C = 2` from
//! bit planes) keep their own kernels; this path takes [`super::SymbolPlanes`].
//!
//! # Per step
//!
//! Forward:
//! 1. the input side, a gather: each stream's symbol picks its row of the prepared table
//!    `zx[x] = w_x[x] + b_ih (+ b_hh)` (`G H` numbers), written into the pre-activations
//!    lane by lane (the one-hot product, `G H` loads per sample-step);
//! 2. `pre += w_hh h_{t-1}`, one register-tiled GEMM ([`gemm_acc`], the gated cells' tiles);
//! 3. the cell's step: for the RNN `h = tanh(pre)` on each finished tile of that GEMM
//!    ([`super::tiles::Finish`]), for the gated cells their passes of [`super::gated`]
//!    (their gates, state update and stores);
//! 4. the head: `logits = b_y + w_hy h_t`, a second GEMM (`C` rows), then the softmax and
//!    loss per lane group ([`softmax_step`]).
//!
//! Backward: `dh_t = w_hy^T dl_t + w_hh^T dz_{t+1}` (two GEMMs into one buffer), then the
//! cell's derivatives (for the RNN `dz = dh (1 - h^2)` on each finished tile of the second
//! GEMM, the gated cells' passes). Weight gradients once per window: `dw_hh` and `dw_hy` as
//! one GEMM with the columns in the lanes ([`super::tiles::gradient_panels`]: `dz` against
//! `h_{t-1}`, `dl` against `h_t`), `dw_x` each sample-step's input-side gradient added into
//! its symbol's row, 16 rows at a time through transposes (in a fixed order: deterministic),
//! the biases as sums.
//!
//! FLOPs per sample-step, forward and backward: `6 G H^2` in the cell's GEMMs and `6 H C` in
//! the head's (`2 H C` each for the logits, `dh` and `dw_hy`): the `bench` model.
//!
//! # The softmax, without a denormal cliff
//!
//! Per lane: `m = max_c l_c`, `e_c = exp(max(l_c - m, -60))`, `s = sum_c e_c` (`1 <= s <=
//! C`), `loss = ln s + m - l_y`, `p_c = e_c / s` flushed below 2^-64, `dl_c = (p_c - [c =
//! y]) valid scale` flushed below 2^-64. The clamp at -60 keeps `e_c >= e^-60 > 2^-87` and
//! `e_c / s > 2^-103`: normal (it changes `s` by less than `C e^-60 < 2^-70`, far below an
//! ulp of `s >= 1`); the flush keeps `p_c valid scale >= 2^-64 2^-40` normal (`scale = 1 / (S
//! T) >= 2^-40`). A prediction is correct when the target's logit is the largest (ties
//! included).

use super::gated::{gru_back, gru_step, lstm_back, lstm_step};
use super::tiles::{Finish, GradGemm, KC, MR, NR, acc_tile, gradient_panels, pack_panel_b};
use super::{Prepared, Workspace, flush};
use crate::approx;
use crate::lanes::{LANES, Vf32, hsum, transpose_into};
use crate::params::Cell;

/// `out[r][g] += sum_k a[r][k] b[k][g]` for `r < m_rows`, `k < k_dim`, all `groups`: `a`
/// packed by `pack_rows` (`m_rows x k_dim`), `b` `[k_dim][groups]`, `out` `[m_rows][groups]`;
/// each tile of the last pass then goes through `finish` ([`Finish`]). The gated cells' loop
/// nest: passes of [`KC`] reduction indices, tiles of `MR x NR`; `panel` ([`KC`] x [`NR`]
/// vectors) takes a copy of `b`'s block where its rows are wider than the tile.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_acc(
    packed: &[f32],
    k_dim: usize,
    m_rows: usize,
    b: &[Vf32],
    out: &mut [Vf32],
    groups: usize,
    panel: &mut [Vf32],
    mut finish: Finish<'_>,
) {
    for k0 in (0..k_dim).step_by(KC) {
        let kc = KC.min(k_dim - k0);
        let last = k0 + kc == k_dim;
        for g0 in (0..groups).step_by(NR) {
            let nr = NR.min(groups - g0);
            // `b`'s block in place where its rows are one panel wide, else copied contiguous.
            let (b_panel, stride, b_g0) = if nr == groups {
                (&b[k0 * groups..], groups, g0)
            } else {
                pack_panel_b(panel, b, groups, k0, kc, g0, nr);
                (&*panel, nr, 0)
            };
            for r0 in (0..m_rows).step_by(MR) {
                let mr = MR.min(m_rows - r0);
                dispatch_tile!(
                    acc_tile, mr, nr, packed, k_dim, b_panel, stride, b_g0, out, groups, r0, g0,
                    k0, kc
                );
                if last {
                    finish.tile(out, groups, r0, mr, g0, nr);
                }
            }
        }
    }
}

/// Forward over the window on the symbols' path. Returns the (loss, correct) lane sums.
pub(super) fn forward_symbols(w: &Prepared, ws: &mut Workspace, scale: Vf32) -> (Vf32, Vf32) {
    let (h, groups, t_n, c_n) = (ws.hidden, ws.groups, ws.time_step, ws.classes);
    let gh = ws.cell.gates() * h;
    let rows = h + 2;
    let (mut loss, mut correct) = (Vf32::ZERO, Vf32::ZERO);
    for t in 0..t_n {
        gather_inputs(w, ws, t);
        let (before, after) = ws.hbuf.split_at_mut((t + 1) * rows * groups);
        let prev = &before[t * rows * groups..][..h * groups];
        let h_next = &mut after[..h * groups];
        // The tanh RNN's step runs on the GEMM's finished tiles; the gated cells' after it.
        let finish = if ws.cell == Cell::Rnn {
            Finish::Tanh(h_next)
        } else {
            Finish::Out
        };
        gemm_acc(
            &w.w_hh_packed,
            h,
            gh,
            prev,
            &mut ws.pre,
            groups,
            &mut ws.panel,
            finish,
        );
        let mut ignore = |_: usize, _: usize, _: Vf32| {};
        match ws.cell {
            Cell::Rnn => {}
            Cell::Lstm => lstm_step(ws, t, &mut ignore),
            Cell::Gru => {
                let nin = core::mem::take(&mut ws.nin);
                gru_step(ws, t, |j, g, _| nin[j * groups + g], &mut ignore);
                ws.nin = nin;
            }
        }
        let h_t = &ws.hbuf[(t + 1) * rows * groups..][..h * groups];
        for (row, &b) in ws.logits.chunks_exact_mut(groups).zip(&w.b_y) {
            row.fill(Vf32::splat(b));
        }
        gemm_acc(
            &w.w_hy_packed,
            h,
            c_n,
            h_t,
            &mut ws.logits,
            groups,
            &mut ws.panel,
            Finish::Out,
        );
        let (l, c) = softmax_step(ws, t, scale);
        loss += l;
        correct += c;
    }
    (loss, correct)
}

/// Step `t`'s input side into `ws.pre` (and the GRU's `n` input side into `ws.nin`): each
/// lane's row of the prepared tables for its symbol.
// Index loops: row `r` of all the lanes' table rows makes one vector.
#[allow(clippy::needless_range_loop)]
fn gather_inputs(w: &Prepared, ws: &mut Workspace, t: usize) {
    let (h, groups) = (ws.hidden, ws.groups);
    let gh = ws.cell.gates() * h;
    let xs = &ws.xs[t * groups * LANES..][..groups * LANES];
    for (g, x) in xs.chunks_exact(LANES).enumerate() {
        let zx: [&[f32]; LANES] = core::array::from_fn(|l| &w.zx[usize::from(x[l]) * gh..][..gh]);
        for r in 0..gh {
            ws.pre[r * groups + g] = Vf32::new(core::array::from_fn(|l| zx[l][r]));
        }
        if ws.cell == Cell::Gru {
            let nx: [&[f32]; LANES] = core::array::from_fn(|l| &w.nx[usize::from(x[l]) * h..][..h]);
            for j in 0..h {
                ws.nin[j * groups + g] = Vf32::new(core::array::from_fn(|l| nx[l][j]));
            }
        }
    }
}

/// Lane groups whose softmax maxima and sums [`max_and_sums`] keeps in registers at once.
const SOFT_GROUPS: usize = 4;

/// The softmax's `exp` arguments `l_c - max` are floored here: `exp(-60) = 8.8e-27`, far
/// below an `f32` ulp of the sum (at least 1), and far above the subnormals.
const EXP_FLOOR: f32 = -60.0;

/// Groups `g0..g0 + N`: `m` = the maximum logit over the classes, `dl[c]` = `exp(l_c - m)`
/// (the argument floored at -60), `q` = the sum of those over the classes in class order.
/// The running maxima and sums stay in registers: kept in `m` and `q` in memory, each class's
/// update waited for the previous one's store (27% of the softmax pass's time at hidden 128,
/// perf, 2026-12-02).
#[inline(always)]
fn max_and_sums<const N: usize>(
    logits: &[Vf32],
    dl: &mut [Vf32],
    groups: usize,
    g0: usize,
    m: &mut [Vf32],
    q: &mut [Vf32],
) {
    let floor = Vf32::splat(EXP_FLOOR);
    let mut mx: [Vf32; N] = core::array::from_fn(|n| logits[g0 + n]);
    for row in logits.chunks_exact(groups).skip(1) {
        for (mx, &l) in mx.iter_mut().zip(&row[g0..g0 + N]) {
            *mx = mx.max(l);
        }
    }
    let mut sum = [Vf32::ZERO; N];
    for (row, d) in logits.chunks_exact(groups).zip(dl.chunks_exact_mut(groups)) {
        for n in 0..N {
            let e = approx::exp((row[g0 + n] - mx[n]).max(floor));
            d[g0 + n] = e;
            sum[n] += e;
        }
    }
    m[g0..g0 + N].copy_from_slice(&mx);
    q[g0..g0 + N].copy_from_slice(&sum);
}

/// The softmax, loss and logits' gradient of step `t` (module docs), from `ws.logits` into
/// `dl_t`; returns the (loss, correct) lane sums of the step. Passes over the classes with
/// the lane groups inner (the logits and `dl` streamed front to back; [`SOFT_GROUPS`] groups
/// at a time, their maxima and sums in registers, then in `ws.soft`): the max, then `e_c`
/// and its sum, then `dl_c = e_c / s valid scale`; the targets' entries (`(p_y - 1) valid
/// scale`) are written lane by lane after it.
fn softmax_step(ws: &mut Workspace, t: usize, scale: Vf32) -> (Vf32, Vf32) {
    let (groups, c_n) = (ws.groups, ws.classes);
    let logits = &ws.logits[..c_n * groups];
    let dl = &mut ws.dl[t * c_n * groups..][..c_n * groups];
    let ys = &ws.ys[t * groups * LANES..][..groups * LANES];
    let (m, q) = ws.soft[..2 * groups].split_at_mut(groups);
    for g0 in (0..groups).step_by(SOFT_GROUPS) {
        match SOFT_GROUPS.min(groups - g0) {
            4 => max_and_sums::<4>(logits, dl, groups, g0, m, q),
            3 => max_and_sums::<3>(logits, dl, groups, g0, m, q),
            2 => max_and_sums::<2>(logits, dl, groups, g0, m, q),
            _ => max_and_sums::<1>(logits, dl, groups, g0, m, q),
        }
    }
    let (mut loss, mut correct) = (Vf32::ZERO, Vf32::ZERO);
    for (g, y) in ys.chunks_exact(LANES).enumerate() {
        let (sum, m_g) = (q[g], m[g]);
        let l_y = Vf32::new(core::array::from_fn(|l| {
            logits[usize::from(y[l]) * groups + g].as_array()[l]
        }));
        let valid = ws.valid[g];
        loss += (approx::ln(sum) + (m_g - l_y)) * valid;
        correct += l_y.simd_ge(m_g).select(valid, Vf32::ZERO);
        let inv = Vf32::ONE / sum;
        let vs = valid * scale;
        // The target's entry (`e_y` again: the same exp of the same argument), kept in `m`.
        let p_y = flush(approx::exp((l_y - m_g).max(Vf32::splat(EXP_FLOOR))) * inv);
        m[g] = flush((p_y - Vf32::ONE) * vs);
        q[g] = inv * vs;
    }
    for d in dl.chunks_exact_mut(groups) {
        for (d, &qv) in d.iter_mut().zip(&*q) {
            *d = flush(*d * qv);
        }
    }
    for (g, y) in ys.chunks_exact(LANES).enumerate() {
        let target = m[g].to_array();
        for (l, &c) in y.iter().enumerate() {
            dl[usize::from(c) * groups + g].as_mut_array()[l] = target[l];
        }
    }
    (loss, correct)
}

/// BPTT through the window on the symbols' path, then the weight gradients into `grad` (the
/// [`crate::Params`] layout of the workspace's model).
pub(super) fn backward_symbols(w: &Prepared, ws: &mut Workspace, grad: &mut [f32]) {
    let (h, groups, t_n, c_n) = (ws.hidden, ws.groups, ws.time_step, ws.classes);
    let gh = ws.cell.gates() * h;
    let rows = h + 2;
    ws.carry.fill(Vf32::ZERO);
    for t in (0..t_n).rev() {
        let dh = &mut ws.pre[..h * groups];
        let dl = &ws.dl[t * c_n * groups..][..c_n * groups];
        let h_t = &ws.hbuf[(t + 1) * rows * groups..][..h * groups];
        let last = t + 1 == t_n;
        // The tanh RNN's derivative in the last GEMM's finish: dz_t = dh_t (1 - h_t^2).
        let (dz_t, dz_rest) = ws.dz[t * gh * groups..].split_at_mut(gh * groups);
        let derivative = Finish::TanhDerivative { h: h_t, dz: dz_t };
        let (head_finish, finish) = match (ws.cell, last) {
            (Cell::Rnn, true) => (derivative, Finish::Out),
            (Cell::Rnn, false) => (Finish::Out, derivative),
            _ => (Finish::Out, Finish::Out),
        };
        dh.fill(Vf32::ZERO);
        gemm_acc(
            &w.w_hy_t_packed,
            c_n,
            h,
            dl,
            dh,
            groups,
            &mut ws.panel,
            head_finish,
        );
        if !last {
            let dz_next = &dz_rest[..gh * groups];
            gemm_acc(
                &w.w_hh_t_packed,
                gh,
                h,
                dz_next,
                dh,
                groups,
                &mut ws.panel,
                finish,
            );
        }
        match ws.cell {
            Cell::Rnn => {}
            Cell::Lstm => lstm_back(ws, t),
            Cell::Gru => gru_back(ws, t),
        }
    }
    weight_gradients(ws, grad);
}

/// The window's weight gradients (module docs): the two GEMMs with the columns in the lanes,
/// the input scatter and the biases.
fn weight_gradients(ws: &mut Workspace, grad: &mut [f32]) {
    let (h, groups, t_n, streams) = (ws.hidden, ws.groups, ws.time_step, ws.streams);
    let (gh, c_n) = (ws.cell.gates() * h, ws.classes);
    let [r_x, r_hh, r_bih, r_bhh, r_hy, r_by] = ws.layout().ranges();
    let mut scratch = core::mem::take(&mut ws.bt);
    let (hh, rest) = grad[r_hh.0..].split_at_mut(r_hh.1 - r_hh.0);
    let hy = &mut rest[r_hy.0 - r_hh.1..r_hy.1 - r_hh.1];
    gradient_panels(
        ws,
        &mut scratch,
        t_n,
        &mut [
            GradGemm {
                a: &ws.dz,
                rows: gh,
                shift: 0,
                out: hh,
            },
            GradGemm {
                a: &ws.dl,
                rows: c_n,
                shift: 1,
                out: hy,
            },
        ],
    );
    ws.bt = scratch;
    let ws = &*ws;
    // dw_x: each real stream's input-side gradient (dz; the GRU's n rows: dn) added into
    // its symbol's row, `LANES` rows at a time through a transpose (streams to rows in the
    // lanes). Each entry sums in (t, s) order: deterministic.
    let w_x = &mut grad[r_x.0..r_x.1];
    w_x.fill(0.0);
    let n_rows = if ws.cell == Cell::Gru { 2 * h } else { gh };
    for t in 0..t_n {
        let xs = &ws.xs[t * groups * LANES..][..streams];
        let dz = &ws.dz[t * gh * groups..][..n_rows * groups];
        let dn = if ws.cell == Cell::Gru {
            &ws.dn[t * h * groups..][..h * groups]
        } else {
            &[][..]
        };
        for (side, rows, col0) in [(dz, n_rows, 0), (dn, dn.len() / groups, n_rows)] {
            for r0 in (0..rows).step_by(LANES) {
                let k = LANES.min(rows - r0);
                for g in 0..groups {
                    let mut block = [Vf32::ZERO; LANES];
                    transpose_into(&side[r0 * groups + g..], groups, k, &mut block, 1);
                    let lanes = &xs[g * LANES..streams.min((g + 1) * LANES)];
                    for (v, &x) in block.iter().zip(lanes) {
                        let row = &mut w_x[usize::from(x) * gh + col0 + r0..][..k];
                        if let Ok(row) = <&mut [f32; LANES]>::try_from(&mut *row) {
                            // An array assignment: vector moves (copy_from_slice called memmove).
                            *row = (Vf32::new(*row) + *v).to_array();
                        } else {
                            for (w, d) in row.iter_mut().zip(v.as_array()) {
                                *w += d;
                            }
                        }
                    }
                }
            }
        }
    }
    // Row r of a [t][rows][groups] buffer, summed over the window (a fixed order).
    let row_sum = |a: &[Vf32], a_rows: usize, r: usize| {
        let mut acc = Vf32::ZERO;
        for t in 0..t_n {
            for v in &a[(t * a_rows + r) * groups..][..groups] {
                acc += *v;
            }
        }
        hsum(acc)
    };
    for r in 0..gh {
        grad[r_bih.0 + r] = if ws.cell == Cell::Gru && r >= 2 * h {
            row_sum(&ws.dn, h, r - 2 * h)
        } else {
            row_sum(&ws.dz, gh, r)
        };
        if ws.cell != Cell::Rnn {
            grad[r_bhh.0 + r] = row_sum(&ws.dz, gh, r);
        }
    }
    for c in 0..c_n {
        grad[r_by.0 + c] = row_sum(&ws.dl, c_n, c);
    }
}
