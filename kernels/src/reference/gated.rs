//! The scalar reference for the gated cells, PyTorch's `nn.GRU` and `nn.LSTM`, with the same
//! window, head and loss as the tanh RNN (see the parent module).
//!
//! Every gate row `r = gate * H + j` has an input-side and a hidden-side pre-activation,
//! `gi_r = w_x[x_t][r] + b_ih[r]` (the one-hot input picks column `x_t`) and
//! `gh_r = sum_k w_hh[r][k] h_{t-1}[k] + b_hh[r]`. Gates in PyTorch's order.
//!
//! GRU (gates `r, z, n`; state `h`):
//!
//! ```text
//! r_t = sigmoid(gi_r + gh_r)        z_t = sigmoid(gi_z + gh_z)
//! n_t = tanh(gi_n + r_t * gh_n)     (r multiplies the whole hidden side, b_hn included)
//! h_t = (1 - z_t) n_t + z_t h_{t-1}
//! ```
//!
//! LSTM (gates `i, f, g, o`; state `[h | c]`):
//!
//! ```text
//! i_t = sigmoid(gi_i + gh_i)   f_t = sigmoid(gi_f + gh_f)
//! g_t = tanh(gi_g + gh_g)      o_t = sigmoid(gi_o + gh_o)
//! c_t = f_t c_{t-1} + i_t g_t  h_t = o_t tanh(c_t)
//! ```
//!
//! Head and loss on `h_t` as for the RNN: `l_t = w_hy h_t + b_y`, `p_t = softmax(l_t)`,
//! `L = -(1 / (S T)) sum_{s,t} ln p_t[y_t]`, `dl_t = (p_t - onehot(y_t)) / (S T)`.
//!
//! Backward (truncated BPTT: the carried state is a constant, so nothing flows out of step 0),
//! with `dh_t = w_hy^T dl_t + (the carry from step t+1)` and `sigmoid' = s (1 - s)`,
//! `tanh' = 1 - tanh^2`. Each gate row gets `da_r` on its input side and `dah_r` on its
//! hidden side (equal except for the GRU's `n`); then for every cell
//!
//! ```text
//! dw_x[x_t][r] += da_r    db_ih[r] += da_r
//! dw_hh[r][k] += dah_r h_{t-1}[k]    db_hh[r] += dah_r
//! dh_{t-1}[k] = sum_r w_hh[r][k] dah_r (+ the direct term of the GRU)
//! ```
//!
//! GRU:
//!
//! ```text
//! dn = dh_t (1 - z)          dz = dh_t (h_{t-1} - n)
//! da_n = dn (1 - n^2)        dah_n = da_n r        (through r * gh_n)
//! dr = da_n gh_n             da_r = dr r (1 - r)   da_z = dz z (1 - z)
//! dh_{t-1} += dh_t z         (the direct path of h_t = ... + z h_{t-1})
//! ```
//!
//! LSTM, with `dc_t = dh_t o tanh'(c_t) + dc_{t+1} f_{t+1}` (the cell's carry through `f`):
//!
//! ```text
//! do = dh_t tanh(c_t)    di = dc_t g    df = dc_t c_{t-1}    dg = dc_t i
//! da_i = di i (1 - i)    da_f = df f (1 - f)    da_g = dg (1 - g^2)    da_o = do o (1 - o)
//! ```

use super::{Symbol, Window, head};
use crate::params::{Cell, Params};
use crate::real::Real;

/// Forward pass, and the backward pass when `grad` is given (overwritten with the gradient).
/// `h0` and `h_last` are `[streams][state_rows * hidden]`: `h`, then the LSTM's `c`.
pub(super) fn forward_backward<F: Real, S: Symbol>(
    p: &Params<F>,
    h0: &[F],
    win: &Window<S>,
    h_last: &mut [F],
    grad: Option<&mut Params<F>>,
) -> F {
    let cell = p.cell;
    assert!(matches!(cell, Cell::Gru | Cell::Lstm), "gated cells only");
    let hd = p.hidden;
    let gh_n = cell.gates() * hd;
    let (s_n, t_n, c_n) = (win.streams, win.time_step, p.classes);
    let lstm = cell == Cell::Lstm;
    let (w_x, w_hh, b_ih, b_hh, w_hy, b_y) =
        (p.w_x(), p.w_hh(), p.b_ih(), p.b_hh(), p.w_hy(), p.b_y());
    let scale = F::ONE / F::from_f64((s_n * t_n) as f64);

    // hs[t+1] and cs[t+1] hold h_t and c_t (LSTM) of every stream, `[streams][hidden]`;
    // hs[0], cs[0] the carried state.
    let mut hs = vec![vec![F::ZERO; s_n * hd]; t_n + 1];
    let mut cs = vec![vec![F::ZERO; if lstm { s_n * hd } else { 0 }]; t_n + 1];
    let width = cell.state_rows() * hd;
    for s in 0..s_n {
        hs[0][s * hd..(s + 1) * hd].copy_from_slice(&h0[s * width..s * width + hd]);
        if lstm {
            cs[0][s * hd..(s + 1) * hd].copy_from_slice(&h0[s * width + hd..(s + 1) * width]);
        }
    }
    // The gates' values `[time_step][streams][G H]` (after their nonlinearity), and the GRU's
    // hidden-side `gh_n` `[time_step][streams][H]`, kept for the backward pass.
    let mut acts = vec![F::ZERO; t_n * s_n * gh_n];
    let mut ghns = vec![F::ZERO; if lstm { 0 } else { t_n * s_n * hd }];
    // dls[(t * S + s) * C + c]: the logits' gradients.
    let mut dls = vec![F::ZERO; s_n * t_n * c_n];
    let mut gi = vec![F::ZERO; gh_n];
    let mut gh = vec![F::ZERO; gh_n];
    let mut total = F::ZERO;
    for t in 0..t_n {
        for s in 0..s_n {
            let (x, y) = win.at(t, s);
            let h_prev = &hs[t][s * hd..(s + 1) * hd];
            for r in 0..gh_n {
                gi[r] = w_x[x * gh_n + r] + b_ih[r];
                let mut a = F::ZERO;
                for k in 0..hd {
                    a += w_hh[r * hd + k] * h_prev[k];
                }
                gh[r] = a + b_hh[r];
            }
            let act = &mut acts[(t * s_n + s) * gh_n..(t * s_n + s + 1) * gh_n];
            let mut h_new = vec![F::ZERO; hd];
            if lstm {
                for j in 0..hd {
                    let i = (gi[j] + gh[j]).sigmoid();
                    let f = (gi[hd + j] + gh[hd + j]).sigmoid();
                    let g = (gi[2 * hd + j] + gh[2 * hd + j]).tanh();
                    let o = (gi[3 * hd + j] + gh[3 * hd + j]).sigmoid();
                    let c = f * cs[t][s * hd + j] + i * g;
                    cs[t + 1][s * hd + j] = c;
                    h_new[j] = o * c.tanh();
                    (act[j], act[hd + j], act[2 * hd + j], act[3 * hd + j]) = (i, f, g, o);
                }
            } else {
                for j in 0..hd {
                    let r = (gi[j] + gh[j]).sigmoid();
                    let z = (gi[hd + j] + gh[hd + j]).sigmoid();
                    let n = (gi[2 * hd + j] + r * gh[2 * hd + j]).tanh();
                    h_new[j] = (F::ONE - z) * n + z * h_prev[j];
                    (act[j], act[hd + j], act[2 * hd + j]) = (r, z, n);
                    ghns[(t * s_n + s) * hd + j] = gh[2 * hd + j];
                }
            }
            hs[t + 1][s * hd..(s + 1) * hd].copy_from_slice(&h_new);
            let dl = &mut dls[(t * s_n + s) * c_n..][..c_n];
            total += head(w_hy, b_y, &h_new, y, scale, dl);
        }
    }
    for s in 0..s_n {
        h_last[s * width..s * width + hd].copy_from_slice(&hs[t_n][s * hd..(s + 1) * hd]);
        if lstm {
            h_last[s * width + hd..(s + 1) * width].copy_from_slice(&cs[t_n][s * hd..(s + 1) * hd]);
        }
    }
    let Some(grad) = grad else {
        return total * scale;
    };

    grad.data.iter_mut().for_each(|g| *g = F::ZERO);
    // The carries into step t from step t+1: dh (through w_hh, and the GRU's z) and the
    // LSTM's dc (through f); zero at t = T-1.
    let mut dh_carry = vec![F::ZERO; s_n * hd];
    let mut dc_carry = vec![F::ZERO; s_n * hd];
    let mut dh = vec![F::ZERO; hd];
    let mut da = vec![F::ZERO; gh_n];
    let mut dah = vec![F::ZERO; gh_n];
    for t in (0..t_n).rev() {
        for s in 0..s_n {
            let (x, _) = win.at(t, s);
            let dl = &dls[(t * s_n + s) * c_n..][..c_n];
            let act = &acts[(t * s_n + s) * gh_n..(t * s_n + s + 1) * gh_n];
            // dh_t = w_hy^T dl_t + carry.
            for j in 0..hd {
                let mut d = F::ZERO;
                for (c, dlc) in dl.iter().enumerate() {
                    d += w_hy[c * hd + j] * *dlc;
                }
                dh[j] = d + dh_carry[s * hd + j];
            }
            if lstm {
                for j in 0..hd {
                    let (i, f, g, o) = (act[j], act[hd + j], act[2 * hd + j], act[3 * hd + j]);
                    let c = cs[t + 1][s * hd + j];
                    let tc = c.tanh();
                    // dc_t = dh_t o (1 - tanh(c_t)^2) + dc_{t+1} f_{t+1}.
                    let dc = dh[j] * o * (F::ONE - tc * tc) + dc_carry[s * hd + j];
                    let d_o = dh[j] * tc;
                    let di = dc * g;
                    let df = dc * cs[t][s * hd + j];
                    let dg = dc * i;
                    da[j] = di * i * (F::ONE - i);
                    da[hd + j] = df * f * (F::ONE - f);
                    da[2 * hd + j] = dg * (F::ONE - g * g);
                    da[3 * hd + j] = d_o * o * (F::ONE - o);
                    // dc_{t-1} = dc_t f_t.
                    dc_carry[s * hd + j] = dc * f;
                }
                dah.copy_from_slice(&da);
            } else {
                for j in 0..hd {
                    let (r, z, n) = (act[j], act[hd + j], act[2 * hd + j]);
                    let ghn = ghns[(t * s_n + s) * hd + j];
                    let dn = dh[j] * (F::ONE - z);
                    let dz = dh[j] * (hs[t][s * hd + j] - n);
                    let dan = dn * (F::ONE - n * n);
                    let dr = dan * ghn;
                    da[j] = dr * r * (F::ONE - r);
                    da[hd + j] = dz * z * (F::ONE - z);
                    da[2 * hd + j] = dan;
                    dah[j] = da[j];
                    dah[hd + j] = da[hd + j];
                    dah[2 * hd + j] = dan * r;
                }
            }
            for r in 0..gh_n {
                grad.w_x_mut()[x * gh_n + r] += da[r];
                grad.b_ih_mut()[r] += da[r];
                for k in 0..hd {
                    grad.w_hh_mut()[r * hd + k] += dah[r] * hs[t][s * hd + k];
                }
                grad.b_hh_mut()[r] += dah[r];
            }
            // dh_{t-1} = w_hh^T dah (+ dh_t z for the GRU); dropped at t = 0 (truncation).
            for k in 0..hd {
                let mut d = F::ZERO;
                for r in 0..gh_n {
                    d += w_hh[r * hd + k] * dah[r];
                }
                if !lstm {
                    d += dh[k] * act[hd + k];
                }
                dh_carry[s * hd + k] = d;
            }
            for (c, dlc) in dl.iter().enumerate() {
                for j in 0..hd {
                    grad.w_hy_mut()[c * hd + j] += *dlc * hs[t + 1][s * hd + j];
                }
                grad.b_y_mut()[c] += *dlc;
            }
        }
    }
    total * scale
}
