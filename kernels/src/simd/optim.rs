//! The optimizers' updates on the build's vector, in the arithmetic order of the reference's
//! [`crate::reference::adagrad_step`] and [`crate::reference::sgd_step`], so that the two
//! engines' weights agree to the last bit for the same gradient.

use crate::lanes::{LANES, Vf32};

/// Adagrad with TensorFlow's semantics, fused on Vf32: `accum += g^2; w -= lr g /
/// sqrt(accum)` with a true square root and division (the approximate `rsqrt` would not
/// match the reference). Same arithmetic order as [`crate::reference::adagrad_step`].
pub fn adagrad_step(w: &mut [f32], accum: &mut [f32], grad: &[f32], lr: f32) {
    assert!(
        w.len() == accum.len() && w.len() == grad.len(),
        "adagrad_step: lengths"
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
pub fn sgd_step(w: &mut [f32], grad: &[f32], lr: f32) {
    assert_eq!(w.len(), grad.len(), "sgd_step: lengths");
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
