//! The flags of `bitrnn verify` and their validation into the [`VerifyShape`]s to check.

use crate::config::{Cell, parse_cell};
use crate::error::{Error, Result};
use clap::Args;

/// Limits of the flags: the f64 reference and the error replicas are plain loops, and the
/// replicas keep `16 (H^2 + 5H + 2)` numbers for the gradient and `16 (T + 1) H` per stream.
pub const MAX_HIDDEN: usize = 512;
pub const MAX_STREAMS: usize = 100_000;
pub const MAX_TIME_STEP: usize = 1_000;
pub const MAX_STEPS: usize = 100_000;

/// The shapes checked when no shape flag is given, for each `--cell`: the seed (the small
/// kernels, several shards, 6 padding lanes), a blocked-kernel size (27 lane groups, enough
/// for two shards at the blocked kernels' minimum shard size; 6 padding lanes) and a size
/// that is a multiple of neither the lane width nor the register tiles (hidden 37, 90
/// streams: 6 or 10 padding lanes).
pub const DEFAULT_SHAPES: [(usize, usize, usize); 3] = [(6, 250, 5), (64, 210, 5), (37, 90, 4)];

const AFTER_HELP: &str = "\
Without --hidden, --streams and --time-step, three shapes are checked for each --cell: the
seed (hidden 6, 250 streams, time_step 5), hidden 64 with 210 streams, and hidden 37 with 90
streams and time_step 4. Each window, the f64 reference starts from the SIMD trainer's own
weights, accumulator and state, so every error is one window's.

Tolerances: every compared number has its own, from the probabilistic model of rounding
(each f32 operation off by a factor 1 + d, |d| <= u = 2^-24, independent, mean zero;
Higham & Mary 2019): 16 replicas of the window's error propagation along the exact f64
trajectory, every rounding a random sign times its bound, give each result's standard
deviation; the tolerance is 10 of them (Student's t, 16 degrees of freedom: exceeded with
probability 3e-8), plus, in the worst case, the sums' roundings (gamma(k) = k u / (1 - k u)
times the sum of the terms' magnitudes), the flush of gradients below 2^-64 and the Adagrad
step's own roundings. The approximate tanh, exp and ln enter with their measured maxima
(approx::TANH_MAX_ULP, TANH_MAX_ABS, EXP_MAX_ULP, LN_MAX_ULP). The derivation is in the
documentation of src/verify.rs. For --cell gru and lstm the same model runs operation by
operation through the reference's formulas (bitrnn_kernels::rounding::Rounded), every
operation's rounding a random sign times its bound in each of 16 replicas.

The finite-difference check of the reference compares with the Richardson value
(4 D(eps) - D(2eps)) / 3, eps = 2^-13 max(1,|w|), within 2 (|D(2eps) - D(eps)| / 3 + 1.5 rho
/ eps), rho = 2^-29 x the f32 loss tolerance for the f64 rounding.

Exit status: 0 when every error is within its tolerance, 1 otherwise.";

#[derive(Clone, Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct VerifyArgs {
    /// Cells to check, comma-separated: rnn, gru, lstm.
    #[arg(long, value_delimiter = ',', default_value = "rnn", value_parser = parse_cell)]
    pub cell: Vec<Cell>,
    /// Hidden units, at most 512 (alone or with --streams/--time-step: check this one shape)
    /// [default: 6].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Parallel streams [default: 250].
    #[arg(long)]
    pub streams: Option<usize>,
    /// Steps per window [default: 5].
    #[arg(long)]
    pub time_step: Option<usize>,
    /// Input symbols V: with --classes, check the symbols' path (the kernels of --text and
    /// .npy data) on random ids instead of the bits' kernels [default: 2].
    #[arg(long, default_value_t = 2)]
    pub vocab: usize,
    /// Classes C (see --vocab) [default: 2].
    #[arg(long, default_value_t = 2)]
    pub classes: usize,
    /// Training windows to run and compare.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Seed of the data and the initial weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub use crate::verify::Shape as VerifyShape;

impl VerifyArgs {
    /// The shapes to check, validated; the error names the flag, the value and the range.
    pub fn shapes(&self) -> Result<Vec<VerifyShape>> {
        let check = |flag: &str, v: Option<usize>, max: usize| match v {
            Some(x) if x == 0 || x > max => Err(Error::Usage(format!(
                "{flag} {x}: must be between 1 and {max}"
            ))),
            _ => Ok(()),
        };
        check("--hidden", self.hidden, MAX_HIDDEN)?;
        check("--streams", self.streams, MAX_STREAMS)?;
        check("--time-step", self.time_step, MAX_TIME_STEP)?;
        check("--steps", Some(self.steps), MAX_STEPS)?;
        check("--vocab", Some(self.vocab), bitrnn_kernels::MAX_SYMBOLS)?;
        if self.classes < 2 || self.classes > bitrnn_kernels::MAX_SYMBOLS {
            return Err(Error::Usage(format!(
                "--classes {}: must be between 2 and {}",
                self.classes,
                bitrnn_kernels::MAX_SYMBOLS
            )));
        }
        let sizes = if self.hidden.is_none() && self.streams.is_none() && self.time_step.is_none() {
            DEFAULT_SHAPES.to_vec()
        } else {
            let d = DEFAULT_SHAPES[0];
            vec![(
                self.hidden.unwrap_or(d.0),
                self.streams.unwrap_or(d.1),
                self.time_step.unwrap_or(d.2),
            )]
        };
        let mut cells = self.cell.clone();
        cells.dedup();
        Ok(cells
            .iter()
            .flat_map(|&cell| {
                sizes
                    .iter()
                    .map(move |&(hidden, streams, time_step)| VerifyShape {
                        cell,
                        hidden,
                        streams,
                        time_step,
                        vocab: self.vocab,
                        classes: self.classes,
                    })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_default_to_two_and_reject_bad_flags() {
        let a = VerifyArgs {
            cell: vec![Cell::Rnn],
            hidden: None,
            streams: None,
            time_step: None,
            vocab: 2,
            classes: 2,
            steps: 3,
            seed: 0,
            json: false,
        };
        assert_eq!(a.shapes().unwrap().len(), DEFAULT_SHAPES.len());
        let one = VerifyArgs {
            hidden: Some(9),
            ..a.clone()
        };
        let nine = VerifyShape {
            cell: Cell::Rnn,
            hidden: 9,
            streams: 250,
            time_step: 5,
            vocab: 2,
            classes: 2,
        };
        assert_eq!(one.shapes().unwrap(), vec![nine]);
        let bad = [
            (
                VerifyArgs {
                    hidden: Some(0),
                    ..a.clone()
                },
                "--hidden 0",
            ),
            (
                VerifyArgs {
                    hidden: Some(513),
                    ..a.clone()
                },
                "--hidden 513",
            ),
            (
                VerifyArgs {
                    steps: 0,
                    ..a.clone()
                },
                "--steps 0",
            ),
            (
                VerifyArgs {
                    time_step: Some(0),
                    ..a.clone()
                },
                "--time-step 0",
            ),
            (
                VerifyArgs {
                    streams: Some(MAX_STREAMS + 1),
                    ..a.clone()
                },
                "--streams",
            ),
        ];
        for (args, flag) in bad {
            match args.shapes() {
                Err(Error::Usage(m)) => assert!(m.starts_with(flag), "{m}"),
                other => panic!("{flag}: {other:?}"),
            }
        }
    }
}
