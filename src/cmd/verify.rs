//! `bitrnn verify`: the SIMD engine against the f64 reference, number by number, within
//! tolerances derived from the arithmetic; and the reference's gradient against central
//! finite differences. This module is the command's flags and its table; what is compared
//! and the derivation of every tolerance are in [`crate::verify`].

use crate::cli::VerifyArgs;
use crate::error::{Error, Result};
use crate::verify::{Check, Report, verify_shape};
use bitrnn_kernels::rounding::U;

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
            "\n{} hidden {}{}, {} streams, time_step {}, {} windows from seed {} \
             ({} lane groups in {} shards, {} threads)",
            s.shape.cell.name(),
            s.shape.hidden,
            if s.shape.vocab == 2 && s.shape.classes == 2 {
                String::new()
            } else {
                format!(", {} symbols -> {} classes", s.shape.vocab, s.shape.classes)
            },
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
