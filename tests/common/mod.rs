//! What the integration tests share.

// Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use bitrnn::config::{TrainConfig, TrainSettings};

/// The seed's settings with another shape: `data_size / batch_size` streams, windows of 5
/// steps, 2 epochs.
pub fn settings(
    data_size: usize,
    batch_size: usize,
    hidden: usize,
    threads: usize,
) -> TrainSettings {
    TrainSettings {
        data_size,
        batch_size,
        time_step: 5,
        hidden,
        threads,
        epochs: 2,
        ..TrainSettings::SEED
    }
}

/// [`settings`], validated.
pub fn config(data_size: usize, batch_size: usize, hidden: usize, threads: usize) -> TrainConfig {
    valid(settings(data_size, batch_size, hidden, threads))
}

/// `settings` validated (a test's settings are valid).
pub fn valid(settings: TrainSettings) -> TrainConfig {
    TrainConfig::new(settings).expect("valid test settings")
}
