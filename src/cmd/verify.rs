//! `bitrnn verify` (being written).

use crate::error::{Error, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct VerifyArgs {}

pub fn run(_args: &VerifyArgs) -> Result<()> {
    Err(Error::Usage("bitrnn verify: not available in this build".into()))
}
