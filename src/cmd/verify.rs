//! `bitrnn verify`: the SIMD engine against the f64 reference, number by number, within
//! tolerances derived from the arithmetic; and the reference's gradient against central
//! finite differences. This module is the command's flags and its table; what is compared
//! and the derivation of every tolerance are in [`crate::verify`].

use crate::error::{Error, Result};
use crate::verify::{
    Check, DEFAULT_SHAPES, MAX_HIDDEN, MAX_STEPS, MAX_STREAMS, MAX_TIME_STEP, Report, Shape,
    verify_shape,
};
use bitrnn_kernels::rounding::U;
use clap::Args;

const AFTER_HELP: &str = "\
Without --hidden, --streams and --time-step, two shapes are checked: the seed (hidden 6, 250
streams, time_step 5) and hidden 64 with 210 streams. Each window, the f64 reference starts
from the SIMD trainer's own weights, accumulator and state, so every error is one window's.

Tolerances: every compared number has its own, from the probabilistic model of rounding
(each f32 operation off by a factor 1 + d, |d| <= u = 2^-24, independent, mean zero;
Higham & Mary 2019): 16 replicas of the window's error propagation along the exact f64
trajectory, every rounding a random sign times its bound, give each result's standard
deviation; the tolerance is 10 of them (Student's t, 16 degrees of freedom: exceeded with
probability 3e-8), plus, in the worst case, the sums' roundings (gamma(k) = k u / (1 - k u)
times the sum of the terms' magnitudes), the flush of gradients below 2^-64 and the Adagrad
step's own roundings. The approximate tanh, exp and ln enter with their measured maxima
(approx::TANH_MAX_ULP, TANH_MAX_ABS, EXP_MAX_ULP, LN_MAX_ULP). The derivation is in the
documentation of src/cmd/verify.rs.

The finite-difference check of the reference compares with the Richardson value
(4 D(eps) - D(2eps)) / 3, eps = 2^-13 max(1,|w|), within 2 (|D(2eps) - D(eps)| / 3 + 1.5 rho
/ eps), rho = 2^-29 x the f32 loss tolerance for the f64 rounding.

Exit status: 0 when every error is within its tolerance, 1 otherwise.";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct VerifyArgs {
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

impl VerifyArgs {
    /// The shapes to check, validated; the error names the flag, the value and the range.
    pub fn shapes(&self) -> Result<Vec<Shape>> {
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
        if self.hidden.is_none() && self.streams.is_none() && self.time_step.is_none() {
            return Ok(DEFAULT_SHAPES.to_vec());
        }
        let d = DEFAULT_SHAPES[0];
        Ok(vec![Shape {
            hidden: self.hidden.unwrap_or(d.hidden),
            streams: self.streams.unwrap_or(d.streams),
            time_step: self.time_step.unwrap_or(d.time_step),
        }])
    }
}

fn print_table(report: &Report) {
    println!(
        "bitrnn verify: the SIMD engine ({}) against the f64 reference",
        report.simd_level
    );
    println!(
        "tolerance: each number's own, 10 standard deviations of its f32 rounding error \
         (u = 2^-24, `bitrnn verify --help`);\nrel = max|err| / max|reference|; \
         err/tol <= 1 passes"
    );
    for s in &report.shapes {
        println!(
            "\nhidden {}, {} streams, time_step {}, {} windows from seed {} \
             ({} lane groups in {} shards, {} threads)",
            s.shape.hidden,
            s.shape.streams,
            s.shape.time_step,
            s.steps,
            s.seed,
            s.lane_groups,
            s.shards,
            s.threads,
        );
        println!(
            "  {:<12} {:>7} {:>11} {:>11} {:>11} {:>9}",
            "check", "entries", "max abs err", "max rel err", "tolerance", "err/tol"
        );
        let row = |c: &Check| {
            println!(
                "  {:<12} {:>7} {:>11.3e} {:>11.3e} {:>11.3e} {:>9.4}  {}",
                c.name,
                c.entries,
                c.max_abs_err,
                c.max_rel_err,
                c.tol,
                c.ratio,
                if c.pass { "ok" } else { "FAIL" }
            );
        };
        s.checks.iter().for_each(row);
        println!(
            "  finite differences of the f64 reference at window {}, {} entries \
             (eps = 2^-13 max(1,|w|)):",
            s.fd_window, s.fd_entries
        );
        s.fd_checks.iter().for_each(row);
    }
}

pub fn run(args: &VerifyArgs) -> Result<()> {
    let shapes = args.shapes()?;
    let mut reports = Vec::with_capacity(shapes.len());
    for shape in shapes {
        reports.push(verify_shape(shape, args.steps, args.seed)?);
    }
    let report = Report {
        pass: reports.iter().all(|r| r.pass),
        simd_level: bitrnn_kernels::simd_level(),
        unit_roundoff: U,
        shapes: reports,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("the report serializes")
        );
    } else {
        print_table(&report);
    }
    let failed: Vec<String> = report
        .shapes
        .iter()
        .flat_map(|s| {
            s.checks
                .iter()
                .chain(&s.fd_checks)
                .filter(|c| !c.pass)
                .map(move |c| {
                    format!(
                        "{} at hidden {} ({:.3}x its tolerance)",
                        c.name, s.shape.hidden, c.ratio
                    )
                })
        })
        .collect();
    if failed.is_empty() {
        if !args.json {
            println!("\nPASS: every error is within its tolerance");
        }
        Ok(())
    } else {
        Err(Error::VerifyFailed(format!(
            "{} check(s) above tolerance: {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_default_to_two_and_reject_bad_flags() {
        let a = VerifyArgs {
            hidden: None,
            streams: None,
            time_step: None,
            steps: 3,
            seed: 0,
            json: false,
        };
        assert_eq!(a.shapes().unwrap(), DEFAULT_SHAPES.to_vec());
        let one = VerifyArgs {
            hidden: Some(9),
            ..a
        };
        let nine = Shape {
            hidden: 9,
            streams: 250,
            time_step: 5,
        };
        assert_eq!(one.shapes().unwrap(), vec![nine]);
        let bad = [
            (
                VerifyArgs {
                    hidden: Some(0),
                    ..a
                },
                "--hidden 0",
            ),
            (
                VerifyArgs {
                    hidden: Some(513),
                    ..a
                },
                "--hidden 513",
            ),
            (VerifyArgs { steps: 0, ..a }, "--steps 0"),
            (
                VerifyArgs {
                    time_step: Some(0),
                    ..a
                },
                "--time-step 0",
            ),
            (
                VerifyArgs {
                    streams: Some(MAX_STREAMS + 1),
                    ..a
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
