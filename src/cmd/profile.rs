//! `bitrnn profile` (being written).

use crate::error::{Error, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct ProfileArgs {}

pub fn run(_args: &ProfileArgs) -> Result<()> {
    Err(Error::Usage("bitrnn profile: not available in this build".into()))
}
