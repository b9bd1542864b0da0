//! The program `bitrnn`: check the CPU, parse, run, map errors to one line on stderr and an
//! exit code.

fn main() {
    let run = || bitrnn::cmd::run(bitrnn::cli::Cli::parse_args());
    if let Err(e) = bitrnn::cpu::check().and_then(|()| run()) {
        eprintln!("bitrnn: error: {e}");
        std::process::exit(e.exit_code());
    }
}
