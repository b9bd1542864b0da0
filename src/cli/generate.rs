//! The flags of `bitrnn generate` and their validation.

use super::parse_lags;
use crate::config::{self, Rule, TrainSettings};
use crate::error::{Error, Result};
use crate::output::check_out_dir;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Samples to generate.
    #[arg(long, default_value_t = TrainSettings::SEED.data_size)]
    pub data_size: usize,
    /// The rule of the targets: seed or r2rt (see `bitrnn train --help`).
    #[arg(long, value_enum, default_value_t = TrainSettings::SEED.rule)]
    pub rule: Rule,
    /// The rule's lags A,B [default: 1,2 for --rule seed, 3,8 for --rule r2rt].
    #[arg(long, value_parser = parse_lags)]
    pub lags: Option<(usize, usize)>,
    /// Seed.
    #[arg(long, default_value_t = TrainSettings::SEED.seed)]
    pub seed: u64,
    /// Output directory.
    #[arg(long, default_value = "runs/data")]
    pub out: PathBuf,
}

impl GenerateArgs {
    /// The lags: `--lags`, or the rule's default.
    #[must_use]
    pub fn lags(&self) -> (usize, usize) {
        self.lags.unwrap_or(self.rule.default_lags())
    }

    /// Checks the flags (the same rules as training's data flags, and the data's bit planes
    /// must fit in memory) and that `--out` is, or can become, a directory.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the first bad flag.
    pub fn validate(&self) -> Result<()> {
        if self.data_size == 0 || self.data_size > config::MAX_DATA_SIZE {
            return Err(Error::Usage(format!(
                "--data-size {}: must be between 1 and {}",
                self.data_size,
                config::MAX_DATA_SIZE
            )));
        }
        config::check_lags(self.lags(), self.data_size)?;
        let bytes = config::data_bytes(self.data_size);
        let limit = config::memory_limit();
        if bytes > limit {
            return Err(Error::Usage(format!(
                "--data-size {}: its bit planes need {}, more than the {} of memory allowed",
                self.data_size,
                config::human_bytes(bytes),
                config::human_bytes(limit)
            )));
        }
        check_out_dir("--out", &self.out)
    }
}
