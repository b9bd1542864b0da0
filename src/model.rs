//! The model's initial weights. The tanh RNN's as TensorFlow initialises the tutorial's graph:
//! Glorot-uniform weights and zero biases. The gated cells' as PyTorch initialises `nn.GRU`
//! and `nn.LSTM`: every weight and bias of the cell `U(-1/sqrt(H), 1/sqrt(H))`; their output
//! layer as the RNN's (Glorot-uniform `w_hy`, zero `b_y`).
//!
//! The tutorial's `BasicRNNCell` keeps one kernel of shape `[2 + H, H]` for the input and the
//! recurrent weights together, so both `w_xh` and `w_hh` are drawn from
//! `U(-l, l)` with `l = sqrt(6 / ((2 + H) + H))`; the output layer `W` `[H, 2]` uses
//! `l = sqrt(6 / (H + 2))`.

use bitrnn_kernels::{Cell, Layout, Params};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// The initial weights of `layout` (cell, hidden size, `V` inputs, `C` classes), from `seed`
/// (module docs; the bits' `2` there is `V` in the RNN's kernel and `C` in the head).
///
/// The generator is `Xoshiro256PlusPlus::seed_from_u64(seed)` advanced by `long_jump()`, a
/// stream disjoint from the data's (which uses the unjumped and `jump()`ed streams). Draws
/// are in layout order: `w_x`, `w_hh`, (`b_ih`, `b_hh` for the gated cells), `w_hy`.
#[must_use]
pub fn init_params(layout: Layout, seed: u64) -> Params<f32> {
    let (cell, hidden) = (layout.cell, layout.hidden);
    let (v, c) = (layout.vocab as f64, layout.classes as f64);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    rng.long_jump();
    let mut uniform = |limit: f64| {
        // 53 random bits -> [0, 1) -> [-limit, limit).
        let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((2.0 * u - 1.0) * limit) as f32
    };
    let h = hidden as f64;
    let out = (6.0 / (h + c)).sqrt();
    let mut p = Params::filled_as(layout, 0.0);
    // The RNN's w_xh and w_hh (`U(-l, l)`, `l` Glorot's), or the gated cells' w_ih, w_hh,
    // b_ih and b_hh (`U(-1/sqrt(H), 1/sqrt(H))`): the layout's leading tensors.
    let [_, (_, w_hh_end), _, (_, b_hh_end), ..] = p.layout().ranges();
    let (end, limit) = match cell {
        Cell::Rnn => (w_hh_end, (6.0 / ((v + h) + h)).sqrt()),
        Cell::Gru | Cell::Lstm => (b_hh_end, 1.0 / h.sqrt()),
    };
    for v in &mut p.data[..end] {
        *v = uniform(limit);
    }
    for v in p.w_hy_mut() {
        *v = uniform(out);
    }
    p
}

/// FNV-1a over the bits of the weights: equal checksums mean bit-identical weights.
#[must_use]
pub fn checksum(p: &Params<f32>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for v in &p.data {
        for b in v.to_bits().to_le_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}
