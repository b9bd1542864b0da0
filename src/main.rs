//! The program `bitrnn`: check the CPU, parse, run, map errors to one line on stderr and an
//! exit code.

fn main() {
    let run = || bitrnn::cmd::run(bitrnn::cli::Cli::parse_args());
    // MPI (feature `mpi`, under mpirun) lives until the command is done.
    let result = {
        let _session = bitrnn::distributed::init();
        bitrnn::cpu::check().and_then(|()| run())
    };
    if let Err(e) = result {
        eprintln!("bitrnn: error: {e}");
        std::process::exit(e.exit_code());
    }
}
