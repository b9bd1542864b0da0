//! One module per subcommand: each turns validated flags into work and output files.

pub mod generate;
pub mod train;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Generate(args) => generate::run(&args),
    }
}
