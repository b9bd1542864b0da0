//! One module per subcommand: each turns validated flags into work and output files.

pub mod bench;
pub mod eval;
pub mod generate;
pub mod profile;
pub mod sample;
pub mod sweep;
pub mod train;
pub mod verify;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let single = crate::distributed::single_process;
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Generate(args) => single("generate").and_then(|()| generate::run(&args)),
        Command::Bench(args) => bench::run(&args),
        Command::Profile(args) => single("profile").and_then(|()| profile::run(&args)),
        Command::Verify(args) => single("verify").and_then(|()| verify::run(&args)),
        Command::Eval(args) => single("eval").and_then(|()| eval::run(&args)),
        Command::Sample(args) => single("sample").and_then(|()| sample::run(&args)),
        Command::Sweep(args) => single("sweep").and_then(|()| sweep::run(&args)),
    }
}
