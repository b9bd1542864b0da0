//! One module per subcommand: each turns validated flags into work and output files.

pub mod bench;
pub mod eval;
pub mod generate;
pub mod profile;
pub mod sweep;
pub mod train;
pub mod verify;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Profile(args) => profile::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Sweep(args) => sweep::run(&args),
    }
}
