//! `bitrnn bench` (being written).

use crate::error::{Error, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {}

pub fn run(_args: &BenchArgs) -> Result<()> {
    Err(Error::Usage("bitrnn bench: not available in this build".into()))
}
