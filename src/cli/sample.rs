//! The flags of `bitrnn sample`, and their checks that need no model: `--length` and
//! `--temperature` ([`SampleArgs::check`]). What the prime may hold
//! depends on the model, so the command checks it once the checkpoint is loaded.

use crate::error::{Error, Result};
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;

/// The most symbols one command draws (`--length`): about 100 MB of text.
pub const MAX_LENGTH: usize = 100_000_000;

const AFTER_HELP: &str = "The model starts from a zero state, reads the prime one symbol at a \
time, then draws each next symbol from softmax(logits / T) and reads it back in (f64, the \
reference cell's arithmetic). A text model (trained with --text) prints the prime, then the \
drawn bytes, raw (a newline at the end when stdout is a terminal); any other model (bits, \
.npy) prints symbol ids, comma-separated, on one line. The same model, prime, length, \
temperature and seed give the same output.";

/// `bitrnn sample`: draw a sequence from a trained model.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SampleArgs {
    /// The checkpoint to sample from (written by `bitrnn train --save`).
    #[arg(long)]
    pub model: PathBuf,
    /// What the model reads before drawing. A text model: text whose bytes are all in the
    /// model's alphabet, printed before the drawn bytes [default: a newline when the
    /// alphabet has one, else its first byte; not printed]. Any other model: symbol ids
    /// below V, comma-separated, such as 0,1,1 [default: 0; not printed].
    #[arg(long, value_name = "TEXT")]
    pub prime: Option<OsString>,
    /// Symbols (bytes of a text model) to draw after the prime, 1 to 100000000.
    #[arg(long, default_value_t = 200)]
    pub length: usize,
    /// Divides the logits before the softmax: below 1 sharper, above 1 flatter; a finite
    /// number above 0, or 0 for the most probable symbol at every step (greedy; ties to the
    /// lowest id).
    #[arg(
        long,
        value_name = "T",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub temperature: f64,
    /// Seed of the draws (Xoshiro256++): the same seed gives the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// How each next symbol is chosen (`--temperature`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Temperature {
    /// `--temperature 0`: the most probable symbol, no draw.
    Greedy,
    /// A draw from `softmax(logits / t)`, `t` finite and above 0.
    Scaled(f64),
}

impl SampleArgs {
    /// Checks the flags that need no model (`--length`) and returns `--temperature`.
    ///
    /// # Errors
    /// [`Error::Usage`] naming `--length` or `--temperature`, its value and what is allowed.
    pub fn check(&self) -> Result<Temperature> {
        if !(1..=MAX_LENGTH).contains(&self.length) {
            return Err(Error::Usage(format!(
                "--length {}: must be between 1 and {MAX_LENGTH} (the symbols to draw)",
                self.length
            )));
        }
        let t = self.temperature;
        if !t.is_finite() || t < 0.0 {
            return Err(Error::Usage(format!(
                "--temperature {t}: must be a finite number above 0, or 0 for the most \
                 probable symbol at every step"
            )));
        }
        Ok(if t == 0.0 {
            Temperature::Greedy
        } else {
            Temperature::Scaled(t)
        })
    }
}
