//! The `bitrnn` program: parse, run, map errors to one line on stderr and an exit code.

fn main() {
    let cli = bitrnn::cli::Cli::parse_args();
    if let Err(e) = bitrnn::cmd::run(cli) {
        eprintln!("bitrnn: error: {e}");
        std::process::exit(e.exit_code());
    }
}
