//! `bitrnn eval` (being written).

use crate::error::{Error, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct EvalArgs {}

pub fn run(_args: &EvalArgs) -> Result<()> {
    Err(Error::Usage("bitrnn eval: not available in this build".into()))
}
