//! What the integration tests share.

// Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use bitrnn::config::TrainConfig;

/// The seed's settings with another shape: `data_size / batch_size` streams, windows of 5
/// steps, 2 epochs.
pub fn config(data_size: usize, batch_size: usize, hidden: usize, threads: usize) -> TrainConfig {
    TrainConfig {
        data_size,
        batch_size,
        time_step: 5,
        hidden,
        threads,
        epochs: 2,
        ..TrainConfig::seed_defaults()
    }
}
