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
        // One write of the whole line: under mpirun the ranks' stderr and mpirun's own
        // messages share one stream, and `eprintln!` may write a line in pieces.
        use std::io::Write;
        let line = format!("bitrnn: error: {e}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        std::process::exit(e.exit_code());
    }
}
