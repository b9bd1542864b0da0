//! `bitrnn generate`: the data as NumPy files, for inspection.

use crate::cli::GenerateArgs;
use crate::data::Dataset;
use crate::error::Result;
use crate::{npy, output};

pub fn run(args: &GenerateArgs) -> Result<()> {
    args.validate()?;
    output::ensure_dir(&args.out)?;
    let lags = args.lags();
    let ds = Dataset::generate_rule(args.rule, args.data_size, lags, args.seed);
    npy::write_bits_u8(&args.out.join("x.npy"), ds.x_words(), args.data_size)?;
    npy::write_bits_u8(&args.out.join("y.npy"), ds.y_words(), args.data_size)?;
    eprintln!(
        "wrote {} and {} ({} samples, rule {}, lags {},{}, seed {})",
        args.out.join("x.npy").display(),
        args.out.join("y.npy").display(),
        args.data_size,
        args.rule,
        lags.0,
        lags.1,
        args.seed
    );
    Ok(())
}
