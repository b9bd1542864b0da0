//! The optimizers' updates on the build's vector, in the arithmetic order of the reference's
//! [`crate::reference::adagrad_step`] and [`crate::reference::sgd_step`], so that the two
//! engines' weights agree to the last bit for the same gradient.
//!
//! The clip ([`Update::clip`]) is fused into the update: two compares and two blends per
//! vector, `g < -c` to `-c`, then `g > c` to `c`, which is the reference's [`clip`] lane by
//! lane (an ordered compare is false for a NaN, which so passes unchanged, as with
//! `f32::clamp`). Without a clip the bounds are `±inf`: no lane compares true, every lane
//! passes bit for bit (NaN and `-0.0` included), and the defaults' arithmetic is the one
//! without a clip. The gradient slice itself is never written: the trainer's gradient stays
//! the unclipped one.
//!
//! [`clip`]: crate::reference::clip

use crate::lanes::{LANES, Vf32};
use crate::reference::Update;

/// The clip's bounds `(-c, c)` as vectors; `±inf` without a clip.
#[inline(always)]
fn clip_bounds(clip: Option<f32>) -> (Vf32, Vf32) {
    let c = clip.unwrap_or(f32::INFINITY);
    (Vf32::splat(-c), Vf32::splat(c))
}

/// `g` clamped to `[lo, hi]` as [`crate::reference::clip`] does (NaN lanes kept).
#[inline(always)]
fn clamp(g: Vf32, (lo, hi): (Vf32, Vf32)) -> Vf32 {
    let g = g.simd_lt(lo).select(lo, g);
    g.simd_gt(hi).select(hi, g)
}

/// Adagrad fused on Vf32: each gradient entry clipped, then `accum += g^2; w -= lr g /
/// sqrt(accum + eps)` with a true square root and division (the approximate `rsqrt` would
/// not match the reference). Same arithmetic order as [`crate::reference::adagrad_step`],
/// whose docs say why `eps = 0` is TensorFlow's Adagrad bit for bit.
pub fn adagrad_step(w: &mut [f32], accum: &mut [f32], grad: &[f32], update: Update<f32>) {
    assert!(
        w.len() == accum.len() && w.len() == grad.len(),
        "adagrad_step: lengths"
    );
    let (lr, eps) = (Vf32::splat(update.lr), Vf32::splat(update.eps));
    let bounds = clip_bounds(update.clip);
    let step = |w: &mut [f32; LANES], a: &mut [f32; LANES], g: &[f32; LANES]| {
        let gv = clamp(Vf32::new(*g), bounds);
        let av = Vf32::new(*a) + gv * gv;
        *a = av.to_array();
        *w = (Vf32::new(*w) - lr * gv / (av + eps).sqrt()).to_array();
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

/// Plain SGD on Vf32: each gradient entry clipped, then `w -= lr g` ([`Update::eps`] is not
/// used).
pub fn sgd_step(w: &mut [f32], grad: &[f32], update: Update<f32>) {
    assert_eq!(w.len(), grad.len(), "sgd_step: lengths");
    let lr = Vf32::splat(update.lr);
    let bounds = clip_bounds(update.clip);
    let step = |w: [f32; LANES], g: [f32; LANES]| {
        (Vf32::new(w) - lr * clamp(Vf32::new(g), bounds)).to_array()
    };
    let (wc, wt) = w.as_chunks_mut::<LANES>();
    let (gc, gt) = grad.as_chunks::<LANES>();
    for (wv, gv) in wc.iter_mut().zip(gc) {
        *wv = step(*wv, *gv);
    }
    let n = wt.len();
    if n > 0 {
        let (mut wp, mut gp) = ([0.0; LANES], [0.0; LANES]);
        wp[..n].copy_from_slice(wt);
        gp[..n].copy_from_slice(gt);
        wt.copy_from_slice(&step(wp, gp)[..n]);
    }
}
