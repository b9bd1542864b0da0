//! bitrnn's arithmetic, and nothing else: no threads, no I/O, no randomness, no allocation
//! inside a window.
//!
//! - [`reference`](mod@reference): the scalar oracle, plain loops generic over `f32`/`f64`.
//! - [`simd`]: the fused kernels, streams in the SIMD lanes.
//! - [`lanes`]: the vector they run on (`f32x16` with AVX-512, else `f32x8`), chosen at
//!   compile time.
//! - [`approx`]: the fast `tanh`/`exp`/`ln` the SIMD kernels use, with their measured errors.
//! - [`params`]: the flat parameter layout shared by both engines.
//! - [`rounding`]: the f32 rounding-error model of the SIMD engine, shared by its property
//!   tests, its fuzz target and `bitrnn verify`.
//! - `testing` (feature `testing`): random windows, bit planes and the tests' generator,
//!   shared by the kernels' tests, the fuzz targets and the root package's tests.

pub mod approx;
pub mod lanes;
pub mod params;
pub mod real;
pub mod reference;
pub mod rounding;
pub mod simd;
#[cfg(feature = "testing")]
pub mod testing;

pub use params::{CLASSES, Cell, GATED_TENSOR_NAMES, Layout, MAX_SYMBOLS, Params, TENSOR_NAMES};
pub use real::Real;

/// The SIMD instruction set this crate was compiled for (chosen at compile time: `wide`
/// selects its implementation from `cfg(target_feature)` only).
#[must_use]
pub const fn simd_level() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        "x86_64 AVX-512 (f32x16)"
    } else if cfg!(feature = "lanes16") {
        "f32x16 emulated by two f32x8 (lanes16)"
    } else if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        "x86_64 AVX2+FMA (x86-64-v3)"
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx")) {
        "x86_64 AVX (no FMA)"
    } else if cfg!(target_arch = "x86_64") {
        "x86_64 SSE2 (portable)"
    } else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        "aarch64 NEON"
    } else {
        "portable scalar"
    }
}
