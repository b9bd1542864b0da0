//! The SIMD vector every kernel computes on, chosen once, at compile time, from the build
//! target: `wide::f32x16` (one 512-bit `zmm` register) where the build enables AVX-512F, else
//! `wide::f32x8` (one `ymm` with AVX2, two `xmm` in the portable SSE2 build). Nothing else in
//! the crate names a width: workspaces, shard sizes, padding rules and tests are all written
//! in terms of [`LANES`], [`Vf32`] and [`LANE_BYTES`].
//!
//! `wide` picks its implementation from `cfg(target_feature)` only, so a run-time switch
//! would buy nothing: the binary is built for one level (`.cargo/config.toml`) and reports it.
//! The `lanes16` feature forces the 16-lane types on a build without AVX-512 (`wide` then
//! implements `f32x16` as two `f32x8`), so the 16-lane code paths can be tested anywhere.
//!
//! Per lane, the arithmetic is the same whatever the width: an `f32x16` FMA rounds each lane
//! exactly as an `f32x8` FMA does. What changes with the width is the order of the sums
//! across lanes ([`hsum`]) and how streams fall into lane groups, so a 16-lane build's
//! weights differ from an 8-lane build's in the last bits (each build is deterministic, and
//! each is checked against the reference with the same error model).

#[cfg(any(
    feature = "lanes16",
    all(target_arch = "x86_64", target_feature = "avx512f")
))]
mod width {
    pub use wide::{f32x16 as Vf32, i32x16 as Vi32, u32x16 as Vu32};
    pub const LANES: usize = 16;
}

#[cfg(not(any(
    feature = "lanes16",
    all(target_arch = "x86_64", target_feature = "avx512f")
)))]
mod width {
    pub use wide::{f32x8 as Vf32, i32x8 as Vi32, u32x8 as Vu32};
    pub const LANES: usize = 8;
}

/// The vector types: `f32`, `i32` and `u32` lanes, [`LANES`] of each.
pub use width::{LANES, Vf32, Vi32, Vu32};

/// Bytes of bit plane per lane group: one bit per stream.
pub const LANE_BYTES: usize = LANES / 8;

const _: () = assert!(LANES.is_power_of_two() && LANES.is_multiple_of(8));

/// Sum of the lanes in a fixed pairwise tree of depth `log2(LANES)` (`reduce_add`'s order is
/// unspecified, and the result must not depend on the compiler). 8 lanes:
/// `((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))`.
#[cfg(not(any(
    feature = "lanes16",
    all(target_arch = "x86_64", target_feature = "avx512f")
)))]
#[inline(always)]
#[must_use]
pub fn hsum(v: Vf32) -> f32 {
    let a = v.to_array();
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// Sum of the lanes in a fixed pairwise tree of depth `log2(LANES)` (`reduce_add`'s order is
/// unspecified, and the result must not depend on the compiler). 16 lanes: the halves first,
/// as vectors (`s_i = a_i + a_{i+8}`, then `r_i = s_i + s_{i+4}`), then
/// `(r0 + r1) + (r2 + r3)`: two vector additions and three scalar ones, where a scalar tree
/// took fifteen and made the lane sums of the weight-gradient tiles a third of their time at
/// hidden 256 (2026-12-01).
#[cfg(any(
    feature = "lanes16",
    all(target_arch = "x86_64", target_feature = "avx512f")
))]
#[inline(always)]
#[must_use]
pub fn hsum(v: Vf32) -> f32 {
    let [lo, hi]: [wide::f32x8; 2] = bytemuck::cast(v);
    let [c, d]: [wide::f32x4; 2] = bytemuck::cast(lo + hi);
    let r = (c + d).to_array();
    (r[0] + r[1]) + (r[2] + r[3])
}

/// The tree [`hsum`] adds in, on plain floats: the oracle of its test.
#[cfg(test)]
fn hsum_tree(a: [f32; LANES]) -> f32 {
    if LANES == 8 {
        ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    } else {
        let s: [f32; 8] = core::array::from_fn(|i| a[i] + a[i + 8]);
        let r: [f32; 4] = core::array::from_fn(|i| s[i] + s[i + 4]);
        (r[0] + r[1]) + (r[2] + r[3])
    }
}

/// The lane weights `1, 2, 4, ...`: lane `i` tests bit `i` of a group's plane bits.
const BIT_WEIGHTS: [i32; LANES] = {
    let mut w = [0; LANES];
    let mut i = 0;
    while i < LANES {
        w[i] = 1 << i;
        i += 1;
    }
    w
};

/// A lane group's [`LANE_BYTES`] bytes of a bit plane (little-endian: bit `i` of the group is
/// bit `i % 8` of byte `i / 8`) as 0.0/1.0 lanes: splat the bits, AND with the lane weights,
/// compare with them (`wide` has no `from_bitmask`).
#[inline(always)]
#[must_use]
pub fn bits_to_lanes(bytes: &[u8; LANE_BYTES]) -> Vf32 {
    let mut bits = 0_i32;
    for (k, &b) in bytes.iter().enumerate() {
        bits |= i32::from(b) << (8 * k);
    }
    let weights = Vi32::new(BIT_WEIGHTS);
    let m = (Vi32::splat(bits) & weights).simd_eq(weights);
    m.select(Vf32::ONE, Vf32::ZERO)
}

/// The `LANES x LANES` transpose: lane `j` of row `i` becomes lane `i` of row `j` (streams in
/// the lanes to hidden units in the lanes, and back). AVX-512: the 64-shuffle network of
/// `vunpck{l,h}ps`, `vshufps` and two rounds of `vshuff32x4`, in registers (`wide`'s
/// `f32x16::transpose` inserts the 256 scalars one by one; four `f32x8` quarters went through
/// the stack in 256-bit halves: 7% of a character model's time at hidden 128, 2026-12-02).
/// Otherwise `wide`'s transpose: `f32x8`'s shuffles with AVX, scalars on 16 lanes without
/// AVX-512 (the `lanes16` test build).
#[inline(always)]
#[must_use]
pub fn transpose(rows: [Vf32; LANES]) -> [Vf32; LANES] {
    let mut out = [Vf32::ZERO; LANES];
    transpose_into(&rows, 1, LANES, &mut out, 1);
    out
}

/// [`transpose`] from memory to memory: rows `src[i stride]` for `i < rows` (zero rows after
/// them, `rows <= LANES`), the transposed rows to `dst[j dst_stride]`, `j < LANES`. On
/// AVX-512 the loads, shuffles and stores stay in `zmm` registers (moving `[Vf32; 16]`
/// arrays by value went through the stack in 256-bit halves: store-forwarding stalls).
#[inline(always)]
pub fn transpose_into(
    src: &[Vf32],
    stride: usize,
    rows: usize,
    dst: &mut [Vf32],
    dst_stride: usize,
) {
    assert!(rows <= LANES && (rows == 0 || (rows - 1) * stride < src.len()));
    assert!((LANES - 1) * dst_stride < dst.len());
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        // SAFETY: this code is compiled only where the build enables AVX-512F, and the
        // binary refuses to start on a CPU without it (`bitrnn::cpu`).
        unsafe { transpose16(src, stride, rows, dst, dst_stride) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    {
        let block: [Vf32; LANES] = core::array::from_fn(|i| {
            if i < rows {
                src[i * stride]
            } else {
                Vf32::ZERO
            }
        });
        for (j, v) in Vf32::transpose(block).into_iter().enumerate() {
            dst[j * dst_stride] = v;
        }
    }
}

/// [`transpose_into`] on AVX-512 registers: the 64-shuffle network of `vunpck{l,h}ps`,
/// `vshufps` and two rounds of `vshuff32x4`.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(src: &[Vf32], stride: usize, rows: usize, dst: &mut [Vf32], dst_stride: usize) {
    use core::arch::x86_64::{
        __m512, _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_unpackhi_ps,
        _mm512_unpacklo_ps,
    };
    let mut r = [_mm512_setzero_ps(); 16];
    for i in 0..rows {
        r[i] = bytemuck::cast::<Vf32, __m512>(src[i * stride]);
    }
    let mut t = [_mm512_setzero_ps(); 16];
    // Pairs of rows interleaved per 128-bit lane: t[2i] = lo(r[2i], r[2i+1]), t[2i+1] = hi.
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // Quads: r[4q + j] holds column j (mod 4) of rows 4q..4q+4 in each 128-bit lane.
    for q in 0..4 {
        r[4 * q] = _mm512_shuffle_ps::<0x44>(t[4 * q], t[4 * q + 2]);
        r[4 * q + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * q], t[4 * q + 2]);
        r[4 * q + 2] = _mm512_shuffle_ps::<0x44>(t[4 * q + 1], t[4 * q + 3]);
        r[4 * q + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * q + 1], t[4 * q + 3]);
    }
    // 128-bit lanes, twice: rows 0..8 of each column, then all 16.
    for half in 0..2 {
        for j in 0..4 {
            let (a, b) = (r[8 * half + j], r[8 * half + 4 + j]);
            t[8 * half + j] = _mm512_shuffle_f32x4::<0x88>(a, b);
            t[8 * half + 4 + j] = _mm512_shuffle_f32x4::<0xDD>(a, b);
        }
    }
    for k in 0..8 {
        dst[k * dst_stride] = bytemuck::cast(_mm512_shuffle_f32x4::<0x88>(t[k], t[8 + k]));
        dst[(8 + k) * dst_stride] = bytemuck::cast(_mm512_shuffle_f32x4::<0xDD>(t[k], t[8 + k]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsum_adds_in_its_fixed_tree() {
        // Values whose sum depends on the order: 1e8 absorbs a 1.0 unless the ones meet
        // first; every placement of the four values over the lanes.
        for (i, j, k, l) in [
            (0, 1, 2, LANES - 1),
            (0, 8, 4, 12),
            (3, 11, 7, 15),
            (1, 2, 3, 5),
        ] {
            if [i, j, k, l].iter().any(|&x| x >= LANES) {
                continue;
            }
            let mut a = [0.0_f32; LANES];
            a[i] = 1.0;
            a[j] = 1.0;
            a[k] = 1e8;
            a[l] = -1e8;
            assert_eq!(
                hsum(Vf32::new(a)).to_bits(),
                hsum_tree(a).to_bits(),
                "{a:?}"
            );
        }
        let ints: [f32; LANES] = core::array::from_fn(|i| i as f32);
        assert_eq!(hsum(Vf32::new(ints)), (LANES * (LANES - 1) / 2) as f32);
        // The tree's depth is what the rounding model assumes: log2(LANES) additions in a row.
        let halves: [f32; LANES] = core::array::from_fn(|i| 1.0 + f32::EPSILON * i as f32);
        assert!((hsum(Vf32::new(halves)) - hsum_tree(halves)).abs() == 0.0);
    }

    #[test]
    fn bits_to_lanes_reads_every_bit_pattern_of_each_byte() {
        for byte in 0..=255_u8 {
            for k in 0..LANE_BYTES {
                let mut bytes = [0_u8; LANE_BYTES];
                bytes[k] = byte;
                let lanes = bits_to_lanes(&bytes).to_array();
                for (i, v) in lanes.iter().enumerate() {
                    let want = if i / 8 == k && byte >> (i % 8) & 1 == 1 {
                        1.0
                    } else {
                        0.0
                    };
                    assert_eq!(*v, want, "byte {byte:#x} at {k}, lane {i}");
                }
            }
        }
    }

    #[test]
    fn transpose_moves_lane_j_of_row_i_to_lane_i_of_row_j() {
        let rows: [Vf32; LANES] =
            core::array::from_fn(|i| Vf32::new(core::array::from_fn(|j| (i * 100 + j) as f32)));
        let t = transpose(rows);
        for (j, row) in t.iter().enumerate() {
            for (i, v) in row.to_array().into_iter().enumerate() {
                assert_eq!(v, (i * 100 + j) as f32, "row {j} lane {i}");
            }
        }
        assert_eq!(transpose(t).map(Vf32::to_array), rows.map(Vf32::to_array));
    }
}
