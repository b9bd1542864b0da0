//! The scalar reference engine: the oracle every fast path is checked against.
//!
//! Plain loops in the order of the math, generic over `f32` and `f64`, never optimised.
//!
//! One window of `T` steps over `S` streams, hidden size `H`, inputs `x_t` in `0..V` and
//! targets `y_t` in `0..C` (`V = C = 2` for the bits), carried state `h_{-1}` (a constant: gradients stop at the window boundary):
//!
//! ```text
//! z_t = w_xh[x_t] + w_hh h_{t-1} + b_h          h_t = tanh(z_t)
//! l_t = w_hy h_t + b_y                          p_t = softmax(l_t)
//! L   = -(1 / (S T)) sum_{s,t} ln p_t[y_t]
//! ```
//!
//! Backward (truncated BPTT over the window), with `dl_t = (p_t - onehot(y_t)) / (S T)`:
//!
//! ```text
//! dh_t  = w_hy^T dl_t + w_hh^T dz_{t+1}       (the second term is 0 at t = T-1)
//! dz_t  = dh_t * (1 - h_t^2)
//! dw_hh += dz_t h_{t-1}^T    dw_xh[x_t] += dz_t    db_h += dz_t
//! dw_hy += dl_t h_t^T        db_y += dl_t
//! ```
//!
//! The gated cells (`p.cell` is [`Cell::Gru`] or [`Cell::Lstm`]: PyTorch's `nn.GRU` and
//! `nn.LSTM`) have the same window, head, loss and truncation; their cell and its backward
//! pass are in `reference/gated.rs`. Their carried state is `[streams][state_rows * hidden]`
//! ([`Cell::state_rows`]): `h`, then the LSTM's cell state `c`, both carried across windows.

use crate::params::{Cell, Params};
use crate::real::Real;

mod gated;

/// A symbol id in a [`Window`]: `u8` (the bits, or up to 256 symbols) or `u16`.
pub trait Symbol: Copy + Into<usize> {}
impl Symbol for u8 {}
impl Symbol for u16 {}

/// One training window: the inputs and targets of `streams` streams for `time_step` steps,
/// time-major (`x[t * streams + s]`): input symbols below the model's `V`, target classes
/// below its `C` (0 or 1 for the bits).
#[derive(Clone, Copy, Debug)]
pub struct Window<'a, S = u8> {
    pub streams: usize,
    pub time_step: usize,
    pub x: &'a [S],
    pub y: &'a [S],
}

impl<S: Symbol> Window<'_, S> {
    /// Input symbol and target class of stream `s` at step `t`.
    fn at(&self, t: usize, s: usize) -> (usize, usize) {
        let i = t * self.streams + s;
        (self.x[i].into(), self.y[i].into())
    }

    /// `state`: the numbers in one stream's carried state (`state_rows * hidden`).
    fn check<F>(&self, p: &Params<F>, state: usize, h0: &[impl Sized]) {
        assert!(
            self.x.iter().all(|&v| v.into() < p.vocab)
                && self.y.iter().all(|&v| v.into() < p.classes),
            "inputs below V and targets below C"
        );
        assert_eq!(
            self.x.len(),
            self.streams * self.time_step,
            "x is [time_step][streams]"
        );
        assert_eq!(
            self.y.len(),
            self.streams * self.time_step,
            "y is [time_step][streams]"
        );
        assert_eq!(
            h0.len(),
            self.streams * state,
            "h0 is [streams][state_rows * hidden]"
        );
    }
}

/// The head of one sample: logits `l = w_hy h + b_y` (into `dl`), their softmax `p` (with
/// the maximum subtracted, so nothing overflows) and the loss `-ln p[y]` against target `y`;
/// returns the loss and leaves the logits' gradient `(p - onehot(y)) scale` in `dl` (`C`
/// numbers).
fn head<F: Real>(w_hy: &[F], b_y: &[F], h: &[F], y: usize, scale: F, dl: &mut [F]) -> F {
    let hd = h.len();
    for (c, lc) in dl.iter_mut().enumerate() {
        *lc = b_y[c];
        for j in 0..hd {
            *lc += w_hy[c * hd + j] * h[j];
        }
    }
    let m = dl.iter().skip(1).fold(dl[0], |m, &v| m.max(v));
    let l_y = dl[y];
    let mut sum = F::ZERO;
    for v in dl.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    for (c, v) in dl.iter_mut().enumerate() {
        let target = if c == y { F::ONE } else { F::ZERO };
        *v = (*v / sum - target) * scale;
    }
    -(l_y - m - sum.ln())
}

/// Forward pass only: the mean loss of the window. `h_last` receives the state after step
/// `T-1` (`[streams][state_rows * hidden]`: `h_{T-1}`, and for the LSTM `c_{T-1}` after it),
/// the state carried into the next window; `h0` is the state carried in, in the same layout.
pub fn forward<F: Real, S: Symbol>(
    p: &Params<F>,
    h0: &[F],
    win: &Window<S>,
    h_last: &mut [F],
) -> F {
    check_state(p, h0, win, h_last);
    if p.cell != Cell::Rnn {
        return gated::forward_backward(p, h0, win, h_last, None);
    }
    let mut grad = Params::filled_as(p.layout(), F::ZERO);
    forward_backward_impl(p, h0, win, h_last, &mut grad, false)
}

/// Forward pass and truncated BPTT over one window. Returns the mean loss; `grad` (in `p`'s
/// layout: `Params::filled_as(p.layout(), 0)`) is overwritten with the gradient of that loss;
/// `h_last` receives the state after step `T-1`, as in [`forward`].
pub fn forward_backward<F: Real, S: Symbol>(
    p: &Params<F>,
    h0: &[F],
    win: &Window<S>,
    grad: &mut Params<F>,
    h_last: &mut [F],
) -> F {
    check_state(p, h0, win, h_last);
    assert_eq!(grad.layout(), p.layout(), "grad has the parameters' layout");
    if p.cell != Cell::Rnn {
        return gated::forward_backward(p, h0, win, h_last, Some(grad));
    }
    forward_backward_impl(p, h0, win, h_last, grad, true)
}

/// The shapes of the window and of the carried states, for every cell.
fn check_state<F, S: Symbol>(p: &Params<F>, h0: &[F], win: &Window<S>, h_last: &[F]) {
    let state = p.cell.state_rows() * p.hidden;
    win.check(p, state, h0);
    assert_eq!(
        h_last.len(),
        win.streams * state,
        "h_last is [streams][state_rows * hidden]"
    );
}

fn forward_backward_impl<F: Real, S: Symbol>(
    p: &Params<F>,
    h0: &[F],
    win: &Window<S>,
    h_last: &mut [F],
    grad: &mut Params<F>,
    backward: bool,
) -> F {
    let hd = p.hidden;
    let (s_n, t_n, c_n) = (win.streams, win.time_step, p.classes);
    let scale = F::ONE / F::from_f64((s_n * t_n) as f64);
    let (w_xh, w_hh, b_h, w_hy, b_y) = (p.w_xh(), p.w_hh(), p.b_h(), p.w_hy(), p.b_y());

    // hs[t+1] holds h_t for every stream; hs[0] is the carried state.
    let mut hs = vec![vec![F::ZERO; s_n * hd]; t_n + 1];
    hs[0].copy_from_slice(h0);
    // dls[(t * S + s) * C + c]: the logits' gradients.
    let mut dls = vec![F::ZERO; s_n * t_n * c_n];
    let mut total = F::ZERO;
    for t in 0..t_n {
        for s in 0..s_n {
            let (x, y) = win.at(t, s);
            for j in 0..hd {
                let mut z = w_xh[x * hd + j] + b_h[j];
                for k in 0..hd {
                    z += w_hh[j * hd + k] * hs[t][s * hd + k];
                }
                hs[t + 1][s * hd + j] = z.tanh();
            }
            let dl = &mut dls[(t * s_n + s) * c_n..][..c_n];
            total += head(w_hy, b_y, &hs[t + 1][s * hd..(s + 1) * hd], y, scale, dl);
        }
    }
    h_last.copy_from_slice(&hs[t_n]);
    if !backward {
        return total * scale;
    }

    grad.data.iter_mut().for_each(|g| *g = F::ZERO);
    let mut dz_next = vec![F::ZERO; s_n * hd];
    let mut dz = vec![F::ZERO; s_n * hd];
    for t in (0..t_n).rev() {
        for s in 0..s_n {
            let (x, _) = win.at(t, s);
            let dl = &dls[(t * s_n + s) * c_n..][..c_n];
            for j in 0..hd {
                let h = hs[t + 1][s * hd + j];
                let mut dh = F::ZERO;
                for (c, dlc) in dl.iter().enumerate() {
                    dh += w_hy[c * hd + j] * *dlc;
                }
                if t + 1 < t_n {
                    for i in 0..hd {
                        dh += w_hh[i * hd + j] * dz_next[s * hd + i];
                    }
                }
                dz[s * hd + j] = dh * (F::ONE - h * h);
            }
            for j in 0..hd {
                let dzj = dz[s * hd + j];
                for k in 0..hd {
                    grad.w_hh_mut()[j * hd + k] += dzj * hs[t][s * hd + k];
                }
                grad.w_xh_mut()[x * hd + j] += dzj;
                grad.b_h_mut()[j] += dzj;
            }
            for (c, dlc) in dl.iter().enumerate() {
                for j in 0..hd {
                    grad.w_hy_mut()[c * hd + j] += *dlc * hs[t + 1][s * hd + j];
                }
                grad.b_y_mut()[c] += *dlc;
            }
        }
        core::mem::swap(&mut dz, &mut dz_next);
    }
    total * scale
}

/// What an optimizer step needs besides the gradient: the learning rate, the clip of the
/// gradient and Adagrad's epsilon. [`Update::plain`] clips nothing and adds no epsilon (the
/// defaults: TensorFlow's Adagrad). The SIMD updates ([`crate::simd::adagrad_step`],
/// [`crate::simd::sgd_step`]) take the same value and do the same arithmetic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Update<F> {
    /// Learning rate.
    pub lr: F,
    /// Each gradient entry is first clamped to `[-clip, clip]` ([`clip`]; `clip > 0`), as
    /// min-char-rnn's `np.clip(dparam, -5, 5)`; `None`: the gradient is used as it is.
    pub clip: Option<F>,
    /// Adagrad's epsilon, under the square root: `sqrt(accum + eps)` (`eps >= 0`; unused by
    /// SGD).
    pub eps: F,
}

impl<F: Real> Update<F> {
    /// Learning rate `lr`, no clip, no epsilon.
    #[must_use]
    pub fn plain(lr: F) -> Self {
        Self {
            lr,
            clip: None,
            eps: F::ZERO,
        }
    }
}

/// `g` clamped to `[-c, c]` when `clip` is `Some(c)`, as `f32::clamp` does: a NaN stays NaN
/// (so a diverged gradient still poisons the weights and the next loss reports it), an
/// infinity becomes `±c`, and a value within the bounds (`-0.0` included) is returned as it is.
#[inline]
#[must_use]
pub fn clip<F: Real>(g: F, clip: Option<F>) -> F {
    match clip {
        Some(c) if g < -c => -c,
        Some(c) if g > c => c,
        _ => g,
    }
}

/// Adagrad: each gradient entry clipped ([`clip`]), then `accum += g^2; w -= lr * g /
/// sqrt(accum + eps)`. The accumulator starts at the caller's value (`--adagrad-init`,
/// TensorFlow's `initial_accumulator_value` 0.1 by default) and never decreases, so with a
/// start above 0 the division is safe for any `eps >= 0`, and with `eps > 0` for any start.
///
/// With the defaults (no clip, `eps = 0`) this is bit for bit TensorFlow's
/// `tf.compat.v1.train.AdagradOptimizer`, `w -= lr * g / sqrt(accum)`: `x + 0 == x` exactly
/// for every `x` but `-0.0`, and the accumulator is never `-0.0` (it starts above 0 when
/// `eps = 0`, and adding `g^2 >= +0` keeps it so). min-char-rnn's Adagrad is `clip = 5`,
/// `eps = 1e-8` and a start of 0.
pub fn adagrad_step<F: Real>(w: &mut [F], accum: &mut [F], grad: &[F], step: Update<F>) {
    assert!(w.len() == accum.len() && w.len() == grad.len());
    for i in 0..w.len() {
        let g = clip(grad[i], step.clip);
        accum[i] += g * g;
        w[i] -= step.lr * g / (accum[i] + step.eps).sqrt();
    }
}

/// Plain stochastic gradient descent, `w -= lr * g`, each gradient entry clipped first
/// ([`clip`]).
pub fn sgd_step<F: Real>(w: &mut [F], grad: &[F], step: Update<F>) {
    assert_eq!(w.len(), grad.len());
    for i in 0..w.len() {
        w[i] -= step.lr * clip(grad[i], step.clip);
    }
}
