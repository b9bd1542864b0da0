//! The gated cells, PyTorch's `nn.GRU` and `nn.LSTM` (formulas in [`crate::reference`]), on
//! the lane layout of the [module docs](super), for any hidden size.
//!
//! # Per step
//!
//! Forward: all `G H` gate pre-activations as one register-tiled GEMM of `w_hh` (`[G H][H]`)
//! with `h_{t-1}` (`[H][lanes]` per group), the input column and the biases selected per lane
//! as the accumulators' start ([`preact_tile`]); then one pass over the units and groups for
//! the gates' nonlinearities, the state update and the output projection; then the head.
//! The gates of one unit are `H` rows apart in the GEMM's output, so they meet in that pass
//! rather than in the tiles' epilogue.
//!
//! Backward: `dL/dh_t = w_hy' dl_t + w_hh^T dz_{t+1}` as one GEMM ([`dh_tile`]), then one pass
//! for the gates' derivatives (`dz_t`, the gradient of the `G H` pre-activations) and what
//! is carried to the step before outside the GEMM (the LSTM's `dc_t f_t`, the GRU's
//! `dh_t z_t`). The weight gradients are one GEMM per window over `[h; x; 1 - x]` with `G H`
//! rows, its columns in the lanes (`h` transposed per stream once per window) so that the
//! whole window's sample-steps are one reduction in registers without lane sums.
//!
//! # No denormal cliff, per quantity
//!
//! As for the RNN ([`FLUSH`](super::FLUSH)): gradients are flushed to 0 below 2^-64, and here
//! after **every** product of a gradient with an activation, so that each multiplication has
//! at most one factor that is a (flushed, `>= 2^-64`) gradient and one that is an activation
//! bounded away from 0:
//! - the sigmoid gates' pre-activations are clamped to `[-GATE_CLAMP, GATE_CLAMP]` = `[-30,
//!   30]`: a gate is then 0 or at least `sigmoid(-30) = 9.4e-14 > 2^-44`, and so is
//!   `s (1 - s)` (0 where `s` rounds to 1). A gradient times such a factor is at least 2^-108,
//!   normal. The clamp changes a gate by less than 9.4e-14 (`sigmoid(30)` rounds to 1 in f32
//!   anyway), far below the f32 rounding of anything it is added to;
//! - `1 - tanh^2` and `1 - z` are 0 or at least 2^-24 (one ulp below 1);
//! - the carried cell state `c_t` and the hidden state are flushed below 2^-64 too, so that a
//!   state that decays over many steps (`c_t = f c_{t-1}` with `i g ~ 0`) never becomes
//!   subnormal (a change below 2^-64 of a state, invisible to every output);
//! - the factors left without a floor, as for the RNN, are values of the model: a weight,
//!   `g = tanh(.)`, `c_{t-1}`, `h_{t-1} - n` or `W_hn h + b_hn`. A product with one of them is
//!   subnormal only if that value is below 2^-62 in magnitude; the product is flushed at once.

use super::blocked::finish_gradients;
use super::head::head;
use super::tiles::{GradGemm, KC, MR, NR, dh_tile, gradient_panels, pack_panel_b, preact_tile};
use super::{Prepared, Workspace, flush};
use crate::approx;
use crate::lanes::{Vf32, hsum};
use crate::params::{Cell, Layout};

/// The sigmoid gates' pre-activations are clamped to `[-GATE_CLAMP, GATE_CLAMP]` (module
/// docs).
pub const GATE_CLAMP: f32 = 30.0;

/// `sigmoid(x)` of a gate's pre-activation, clamped (module docs).
#[inline(always)]
fn gate(x: Vf32) -> Vf32 {
    let cap = Vf32::splat(GATE_CLAMP);
    approx::sigmoid(x.max(-cap).min(cap))
}

/// `s (1 - s)`, the derivative of a sigmoid gate `s`.
#[inline(always)]
fn gate_slope(s: Vf32) -> Vf32 {
    s * (Vf32::ONE - s)
}

/// Forward over the window for a gated cell: per step the gates' GEMM, the cell's pass, the
/// head. Returns the (loss, correct) lane sums.
pub(super) fn forward_gated(w: &Prepared, ws: &mut Workspace, scale: Vf32) -> (Vf32, Vf32) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let gh = ws.cell.gates() * h;
    let rows = h + 2;
    let (mut loss, mut correct) = (Vf32::ZERO, Vf32::ZERO);
    for t in 0..t_n {
        let prev = &ws.hbuf[t * rows * groups..(t + 1) * rows * groups];
        for k0 in (0..h).step_by(KC) {
            let kc = KC.min(h - k0);
            for g0 in (0..groups).step_by(NR) {
                let nr = NR.min(groups - g0);
                pack_panel_b(&mut ws.panel, prev, groups, k0, kc, g0, nr);
                for r0 in (0..gh).step_by(MR) {
                    let mr = MR.min(gh - r0);
                    dispatch_tile!(
                        preact_tile,
                        mr,
                        nr,
                        w,
                        prev,
                        &ws.panel,
                        &mut ws.pre,
                        groups,
                        r0,
                        g0,
                        k0,
                        kc
                    );
                }
            }
        }
        // The logit difference, `b_y[1] - b_y[0] + wy_diff h_t`, as the cell emits `h_t`.
        let mut logit = core::mem::take(&mut ws.logit);
        logit.fill(Vf32::splat(w.by_diff));
        let mut project = |j: usize, g: usize, hv: Vf32| {
            logit[g] = Vf32::splat(w.wy_diff[j]).mul_add(hv, logit[g]);
        };
        match ws.cell {
            Cell::Lstm => lstm_step(ws, t, &mut project),
            Cell::Gru => {
                // The `n` gate's input side, `w_x[x][n_j] + b_in[j]`, selected by the input bit.
                let n_input = |j: usize, _: usize, x: Vf32| {
                    x.simd_ne(Vf32::ZERO)
                        .select(Vf32::splat(w.nx1[j]), Vf32::splat(w.nx0[j]))
                };
                gru_step(ws, t, n_input, &mut project);
            }
            Cell::Rnn => unreachable!("the RNN runs the blocked or small kernels"),
        }
        ws.logit = logit;
        for g in 0..groups {
            let (l, c, dl) = head(ws.logit[g], ws.y[t * groups + g], ws.valid[g], scale);
            loss += l;
            correct += c;
            ws.dl[t * groups + g] = dl;
        }
    }
    (loss, correct)
}

/// The LSTM's pass over step `t`'s pre-activations (`ws.pre`, gates `i, f, g, o`):
/// `c_t = f c_{t-1} + i g`, `h_t = o tanh(c_t)`, the gates stored for the backward pass;
/// `emit(j, g, h)` sees each unit `j` of `h_t` of group `g` (the bits' head projects it).
// Not inlined (nor `lstm_back`, `gru_step`, `gru_back` below): once per step, so a call costs
// nothing, and profiles show the cells' passes apart from the GEMMs (hidden 256, LSTM, one
// thread: 7% and 5% of the time, 2026-12-01).
#[inline(never)]
pub(super) fn lstm_step(ws: &mut Workspace, t: usize, emit: &mut impl FnMut(usize, usize, Vf32)) {
    let (h, groups) = (ws.hidden, ws.groups);
    let (rows, gh) = (h + 2, 4 * h);
    let (c_done, c_rest) = ws.cbuf.split_at_mut((t + 1) * h * groups);
    let c_prev = &c_done[t * h * groups..];
    let c_next = &mut c_rest[..h * groups];
    let gates = &mut ws.gates[t * gh * groups..(t + 1) * gh * groups];
    let tc_t = &mut ws.aux[t * h * groups..(t + 1) * h * groups];
    let h_next = &mut ws.hbuf[(t + 1) * rows * groups..][..h * groups];
    for j in 0..h {
        for g in 0..groups {
            let at = |q: usize| (q * h + j) * groups + g;
            let i = gate(ws.pre[at(0)]);
            let f = gate(ws.pre[at(1)]);
            let gg = approx::tanh(ws.pre[at(2)]);
            let o = gate(ws.pre[at(3)]);
            let c = flush(f.mul_add(c_prev[j * groups + g], i * gg));
            let tc = approx::tanh(c);
            let hv = flush(o * tc);
            gates[at(0)] = i;
            gates[at(1)] = f;
            gates[at(2)] = gg;
            gates[at(3)] = o;
            c_next[j * groups + g] = c;
            tc_t[j * groups + g] = tc;
            h_next[j * groups + g] = hv;
            emit(j, g, hv);
        }
    }
}

/// The GRU's pass over step `t`'s pre-activations (`ws.pre`: `r` and `z` complete, the `n`
/// rows holding `W_hn h_{t-1} + b_hn`): `n = tanh(W_in x + b_in + r (W_hn h + b_hn))`,
/// `h_t = (1 - z) n + z h_{t-1}`, the gates and `W_hn h + b_hn` stored for the backward pass.
/// `n_input(j, g, x)` is the input side `W_in x + b_in` of unit `j` for group `g` (`x` the
/// bits' input row of the step, unused by the symbols' path); `emit` as for [`lstm_step`].
#[inline(never)]
pub(super) fn gru_step(
    ws: &mut Workspace,
    t: usize,
    n_input: impl Fn(usize, usize, Vf32) -> Vf32,
    emit: &mut impl FnMut(usize, usize, Vf32),
) {
    let (h, groups) = (ws.hidden, ws.groups);
    let (rows, gh) = (h + 2, 3 * h);
    let (done, rest) = ws.hbuf.split_at_mut((t + 1) * rows * groups);
    let prev = &done[t * rows * groups..];
    let h_next = &mut rest[..h * groups];
    let gates = &mut ws.gates[t * gh * groups..(t + 1) * gh * groups];
    let hn_t = &mut ws.aux[t * h * groups..(t + 1) * h * groups];
    for j in 0..h {
        for g in 0..groups {
            let at = |q: usize| (q * h + j) * groups + g;
            let r = gate(ws.pre[at(0)]);
            let z = gate(ws.pre[at(1)]);
            let hn = ws.pre[at(2)];
            let n = approx::tanh(r.mul_add(hn, n_input(j, g, prev[h * groups + g])));
            let hp = prev[j * groups + g];
            let hv = flush(z.mul_add(hp - n, n));
            gates[at(0)] = r;
            gates[at(1)] = z;
            gates[at(2)] = n;
            hn_t[j * groups + g] = hn;
            h_next[j * groups + g] = hv;
            emit(j, g, hv);
        }
    }
}

/// BPTT through the window for a gated cell, then the weight gradients into `grad` (the
/// [`crate::Params`] layout of the cell).
pub(super) fn backward_gated(w: &Prepared, ws: &mut Workspace, grad: &mut [f32]) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let gh = ws.cell.gates() * h;
    ws.carry.fill(Vf32::ZERO);
    for t in (0..t_n).rev() {
        {
            let dz_next: &[Vf32] = if t + 1 < t_n {
                &ws.dz[(t + 1) * gh * groups..(t + 2) * gh * groups]
            } else {
                &[]
            };
            let dl = &ws.dl[t * groups..(t + 1) * groups];
            let k_len = if dz_next.is_empty() { 0 } else { gh };
            // One pass (of no reduction) at the window's last step, else ceil(G H / KC).
            for k0 in (0..k_len.max(1)).step_by(KC) {
                let kc = KC.min(k_len - k0.min(k_len));
                for g0 in (0..groups).step_by(NR) {
                    let nr = NR.min(groups - g0);
                    if kc > 0 {
                        pack_panel_b(&mut ws.panel, dz_next, groups, k0, kc, g0, nr);
                    }
                    for j0 in (0..h).step_by(MR) {
                        let mr = MR.min(h - j0);
                        dispatch_tile!(
                            dh_tile,
                            mr,
                            nr,
                            w,
                            &ws.panel,
                            &mut ws.pre,
                            dl,
                            groups,
                            j0,
                            g0,
                            k0,
                            kc
                        );
                    }
                }
            }
        }
        match ws.cell {
            Cell::Lstm => lstm_back(ws, t),
            Cell::Gru => gru_back(ws, t),
            Cell::Rnn => unreachable!("the RNN runs the blocked or small kernels"),
        }
    }
    weight_gradients_t(ws, grad);
}

/// The gated cells' weight gradients: `dw_hh = sum_{t,s} dz_t[r][s] h_{t-1}[s]^T` as one GEMM
/// with the columns in the lanes ([`gradient_panels`]), the input columns `dw_x[1][r] = sum
/// dz x`, `dw_x[0][r] = sum dz (1 - x)` by one pass of per-lane sums (a `1/H` share of the
/// work, kept out of the GEMM, whose last column tile would otherwise hold only these two),
/// then the biases, the GRU's input side and the head as for the RNN ([`finish_gradients`]).
fn weight_gradients_t(ws: &mut Workspace, grad: &mut [f32]) {
    let (h, groups, t_n) = (ws.hidden, ws.groups, ws.time_step);
    let (rows, gh) = (h + 2, ws.cell.gates() * h);
    let [r_x, r_hh, ..] = Layout::of(ws.cell, h).ranges();
    let mut scratch = core::mem::take(&mut ws.bt);
    {
        let ws = &*ws;
        gradient_panels(
            ws,
            &mut scratch,
            t_n,
            &mut [GradGemm {
                a: &ws.dz,
                rows: gh,
                shift: 0,
                out: &mut grad[r_hh.0..r_hh.1],
            }],
        );
        for r in 0..gh {
            let (mut x1, mut x0) = (Vf32::ZERO, Vf32::ZERO);
            for t in 0..t_n {
                let dz = &ws.dz[(t * gh + r) * groups..][..groups];
                let hb = &ws.hbuf[(t * rows + h) * groups..][..2 * groups];
                let (xs, xc) = hb.split_at(groups);
                for g in 0..groups {
                    x1 = dz[g].mul_add(xs[g], x1);
                    x0 = dz[g].mul_add(xc[g], x0);
                }
            }
            grad[r_x.0 + gh + r] = hsum(x1);
            grad[r_x.0 + r] = hsum(x0);
        }
        finish_gradients(ws, grad);
    }
    ws.bt = scratch;
}

/// The LSTM's derivatives at step `t`, from `dL/dh_t` (`ws.pre`) and `dc_{t+1} f_{t+1}`
/// (`ws.carry`):
///
/// ```text
/// dc  = dh o (1 - tanh(c_t)^2) + dc_{t+1} f_{t+1}
/// do  = dh tanh(c_t) o (1 - o)      di = dc g i (1 - i)
/// dg  = dc i (1 - g^2)              df = dc c_{t-1} f (1 - f)
/// ```
#[inline(never)]
pub(super) fn lstm_back(ws: &mut Workspace, t: usize) {
    let (h, groups) = (ws.hidden, ws.groups);
    let gh = 4 * h;
    let gates = &ws.gates[t * gh * groups..(t + 1) * gh * groups];
    let tc_t = &ws.aux[t * h * groups..(t + 1) * h * groups];
    let c_prev = &ws.cbuf[t * h * groups..(t + 1) * h * groups];
    let dz = &mut ws.dz[t * gh * groups..(t + 1) * gh * groups];
    for j in 0..h {
        for g in 0..groups {
            let at = |q: usize| (q * h + j) * groups + g;
            let e = j * groups + g;
            let (i, f, gg, o) = (gates[at(0)], gates[at(1)], gates[at(2)], gates[at(3)]);
            let (dh, tc) = (ws.pre[e], tc_t[e]);
            let dc = flush(flush(dh * o) * tc.mul_neg_add(tc, Vf32::ONE)) + ws.carry[e];
            dz[at(0)] = flush(flush(dc * gg) * gate_slope(i));
            dz[at(1)] = flush(flush(dc * c_prev[e]) * gate_slope(f));
            dz[at(2)] = flush(flush(dc * i) * gg.mul_neg_add(gg, Vf32::ONE));
            dz[at(3)] = flush(flush(dh * tc) * gate_slope(o));
            ws.carry[e] = flush(dc * f);
        }
    }
}

/// The GRU's derivatives at step `t`, from `dL/dh_t` (`ws.pre` + `ws.carry`, the latter
/// `dh_{t+1} z_{t+1}`):
///
/// ```text
/// dn  = dh (1 - z) (1 - n^2)        (the n gate's pre-activation, input side: ws.dn)
/// dz  = dh (h_{t-1} - n) z (1 - z)
/// dr  = dn (W_hn h_{t-1} + b_hn) r (1 - r)
/// dhn = dn r                         (the n rows' hidden side: dz's n rows)
/// ```
#[inline(never)]
pub(super) fn gru_back(ws: &mut Workspace, t: usize) {
    let (h, groups) = (ws.hidden, ws.groups);
    let (rows, gh) = (h + 2, 3 * h);
    let gates = &ws.gates[t * gh * groups..(t + 1) * gh * groups];
    let hn_t = &ws.aux[t * h * groups..(t + 1) * h * groups];
    let prev = &ws.hbuf[t * rows * groups..][..h * groups];
    let dz = &mut ws.dz[t * gh * groups..(t + 1) * gh * groups];
    let dn_t = &mut ws.dn[t * h * groups..(t + 1) * h * groups];
    for j in 0..h {
        for g in 0..groups {
            let at = |q: usize| (q * h + j) * groups + g;
            let e = j * groups + g;
            let (r, z, n) = (gates[at(0)], gates[at(1)], gates[at(2)]);
            let dh = ws.pre[e] + ws.carry[e];
            let dn = flush(flush(dh * (Vf32::ONE - z)) * n.mul_neg_add(n, Vf32::ONE));
            dz[at(1)] = flush(flush(dh * (prev[e] - n)) * gate_slope(z));
            dz[at(0)] = flush(flush(dn * hn_t[e]) * gate_slope(r));
            dz[at(2)] = flush(dn * r);
            dn_t[e] = dn;
            ws.carry[e] = flush(dh * z);
        }
    }
}
