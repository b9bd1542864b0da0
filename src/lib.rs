//! bitrnn: a from-scratch, SIMD-optimized training engine for recurrent neural networks.
//!
//! Where things live:
//! - `bitrnn_kernels` (the `kernels/` crate): arithmetic only, the scalar reference and the
//!   SIMD kernels.
//! - [`data`]: the bit-packed dataset generator and its time-major bit planes.
//! - [`error`]: the error type and its exit codes.

pub mod data;
pub mod error;
pub mod npy;
pub mod output;
pub mod plot;

pub use error::{Error, Result};
