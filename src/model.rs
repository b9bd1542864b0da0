//! The model's initial weights, as TensorFlow initialises the tutorial's graph: Glorot-uniform
//! weights and zero biases.
//!
//! The tutorial's `BasicRNNCell` keeps one kernel of shape `[2 + H, H]` for the input and the
//! recurrent weights together, so both `w_xh` and `w_hh` are drawn from
//! `U(-l, l)` with `l = sqrt(6 / ((2 + H) + H))`; the output layer `W` `[H, 2]` uses
//! `l = sqrt(6 / (H + 2))`.

use bitrnn_kernels::Params;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// Glorot-uniform weights and zero biases for hidden size `hidden`, from `seed`.
///
/// The generator is `Xoshiro256PlusPlus::seed_from_u64(seed)` advanced by `long_jump()`, a
/// stream disjoint from the data's (which uses the unjumped and `jump()`ed streams).
#[must_use]
pub fn init_params(hidden: usize, seed: u64) -> Params<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    rng.long_jump();
    let mut uniform = |limit: f64| {
        // 53 random bits -> [0, 1) -> [-limit, limit).
        let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((2.0 * u - 1.0) * limit) as f32
    };
    let h = hidden as f64;
    let cell = (6.0 / ((2.0 + h) + h)).sqrt();
    let out = (6.0 / (h + 2.0)).sqrt();
    let mut p = Params::zeros(hidden);
    for v in p.w_xh_mut() {
        *v = uniform(cell);
    }
    for v in p.w_hh_mut() {
        *v = uniform(cell);
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
