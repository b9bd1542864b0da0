//! bitrnn: a from-scratch, SIMD-optimized training engine for recurrent neural networks.
//!
//! Where things live:
//! - `bitrnn_kernels` (the `kernels/` crate): arithmetic only, the scalar reference and the
//!   SIMD kernels.
//! - [`data`]: the bit-packed dataset generator and its time-major bit planes; [`planes`]:
//!   the planes of a run's windows, chunk by chunk; [`sequence`]: sequences of symbols read
//!   from a text or `.npy` files, and their symbol planes chunk by chunk.
//! - [`model`]: initial weights and the weights' checksum.
//! - [`train`]: the driver: epochs, windows, optimizer; [`engine`]: the SIMD and scalar
//!   engines that run a window; [`shards`]: the shard partition;
//!   [`reduce`]: the fixed-order gradient reduction; [`team`], [`handout`]: the per-window
//!   fork-join of its threads and how it hands out work.
//! - [`config`]: the training settings, validated once into a [`config::TrainConfig`];
//!   [`cli`]: every clap struct and its validation; [`cmd`]: one module per command.
//! - [`output`], [`plot`], [`npy`]: files, written whole or not at all; [`output`] also
//!   checks the paths the flags name.
//! - [`checkpoint`]: safetensors checkpoints with PyTorch's names, for `--save`/`--resume`/`eval`.
//! - [`verify`]: the model behind `bitrnn verify`: the SIMD trainer against the f64 reference
//!   window by window, with tolerances from the kernels' rounding model.
//! - [`peak`]: the machine's measured f32 FMA peak, for `bench`'s roofline figures; [`cpu`]:
//!   the refusal to run on a CPU without the features the binary was built for.
//! - [`sweep`]: the grid of runs behind `bitrnn sweep`, its CSV rows and per-cell medians.
//! - [`error`]: the error type and its exit codes.
//! - [`distributed`]: training under `mpirun` (feature `mpi`), bit-identical to one process.
//! - [`signal`]: Ctrl-C as a flag, so that an interrupted `train` still writes its outputs.
//! - `fuzzing` (feature `fuzzing`): entry points shared by the fuzz targets (`fuzz/`) and
//!   their corpus replay test (`tests/fuzz_corpus.rs`).

pub mod checkpoint;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod cpu;
pub mod data;
pub mod distributed;
pub mod engine;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod handout;
pub mod model;
pub mod npy;
pub mod output;
pub mod peak;
pub mod planes;
pub mod plot;
pub mod reduce;
pub mod sequence;
pub mod shards;
pub mod signal;
pub mod source;
pub mod sweep;
pub mod team;
pub mod train;
pub mod verify;

pub use error::{Error, Result};
