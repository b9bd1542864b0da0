//! The training configuration: raw flags are validated once, here, into a ready-to-use value.
//! Every error names the flag, the value and what is allowed.

use crate::error::{Error, Result};
use serde::Serialize;

/// Largest accepted `--hidden`: `w_hh` alone is then 64 MiB.
pub const MAX_HIDDEN: usize = 4096;
/// Largest accepted `--data-size`: 2^36 samples take 16 GiB as two bit planes.
pub const MAX_DATA_SIZE: usize = 1 << 36;
/// Largest accepted `--threads`.
pub const MAX_THREADS: usize = 1024;

/// Which engine runs the windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fused f32x8 kernels, sharded over threads.
    Simd,
    /// The scalar reference (plain loops, f32), single-threaded.
    Scalar,
}

/// The optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Adagrad with TensorFlow's semantics (accumulator starts at 0.1, no epsilon).
    Adagrad,
    /// Plain stochastic gradient descent.
    Sgd,
}

/// Adagrad's initial accumulator value (TensorFlow's default).
pub const ADAGRAD_INITIAL_ACCUMULATOR: f32 = 0.1;

/// A validated training configuration (the seed's defaults in [`TrainConfig::seed_defaults`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainConfig {
    /// Samples in the generated sequence.
    pub data_size: usize,
    /// The tutorial's `batch_size`: the length of each stream (the sequence is reshaped into
    /// `data_size / batch_size` parallel streams).
    pub batch_size: usize,
    /// Steps per training window (truncated BPTT length).
    pub time_step: usize,
    /// Hidden units.
    pub hidden: usize,
    /// The rule's lags (a, b).
    pub lags: (usize, usize),
    /// Learning rate.
    pub lr: f32,
    pub optimizer: Optimizer,
    /// Seed of the data and the initial weights.
    pub seed: u64,
    /// Epochs to train.
    pub epochs: usize,
    /// Worker threads (`--threads`); results do not depend on it.
    pub threads: usize,
    pub engine: Engine,
}

impl TrainConfig {
    /// The seed experiment's settings (SEED.md).
    #[must_use]
    pub fn seed_defaults() -> Self {
        Self {
            data_size: 500_000,
            batch_size: 2_000,
            time_step: 5,
            hidden: 6,
            lags: (1, 2),
            lr: 0.1,
            optimizer: Optimizer::Adagrad,
            seed: 0,
            epochs: 10,
            threads: 1,
            engine: Engine::Simd,
        }
    }

    /// Parallel streams: `data_size / batch_size`.
    #[must_use]
    pub fn streams(&self) -> usize {
        self.data_size / self.batch_size
    }
    /// Training windows per epoch: `batch_size / time_step`.
    #[must_use]
    pub fn windows_per_epoch(&self) -> usize {
        self.batch_size / self.time_step
    }
    /// Sample-steps per window: `streams * time_step`.
    #[must_use]
    pub fn sample_steps_per_window(&self) -> usize {
        self.streams() * self.time_step
    }

    /// Checks every setting; the error names the flag, the value and what is allowed.
    pub fn validate(self) -> Result<Self> {
        let usage = |m: String| Err(Error::Usage(m));
        if self.hidden == 0 || self.hidden > MAX_HIDDEN {
            return usage(format!(
                "--hidden {}: must be between 1 and {MAX_HIDDEN}",
                self.hidden
            ));
        }
        if self.batch_size == 0 {
            return usage(
                "--batch-size 0: must be at least 1 (it is the length of each stream)".into(),
            );
        }
        if self.time_step == 0 || self.time_step > self.batch_size {
            return usage(format!(
                "--time-step {}: must be between 1 and --batch-size ({})",
                self.time_step, self.batch_size
            ));
        }
        if self.data_size < self.batch_size || self.data_size > MAX_DATA_SIZE {
            return usage(format!(
                "--data-size {}: must be between --batch-size ({}, one stream) and {MAX_DATA_SIZE}",
                self.data_size, self.batch_size
            ));
        }
        let (a, b) = self.lags;
        if a == 0 || b == 0 || a == b || a.max(b) >= self.data_size {
            return usage(format!(
                "--lags {a},{b}: must be two distinct positive integers below --data-size ({})",
                self.data_size
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return usage(format!("--lr {}: must be a finite number above 0", self.lr));
        }
        if self.epochs == 0 {
            return usage("--epochs 0: must be at least 1".into());
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            return usage(format!(
                "--threads {}: must be between 1 and {MAX_THREADS}",
                self.threads
            ));
        }
        Ok(self)
    }

    /// A one-line description for plot titles and logs.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "hidden {}, lags ({},{}), time_step {}, {} streams x {}, {:?} lr {}",
            self.hidden,
            self.lags.0,
            self.lags.1,
            self.time_step,
            self.streams(),
            self.batch_size,
            self.optimizer,
            self.lr
        )
        .replace("Adagrad", "adagrad")
        .replace("Sgd", "sgd")
    }
}
