//! The flags of `bitrnn bench` and their validation into a [`BenchPlan`].

use super::default_threads;
use crate::config::{BATCH_SIZE, Cell, MAX_DATA_SIZE, MAX_HIDDEN, MAX_THREADS, parse_cell};
use crate::error::{Error, Result};
use crate::output::check_output_file;
use clap::Args;
use std::path::PathBuf;

/// Fewest repeats: a median and a range need a few.
pub const MIN_REPEATS: usize = 5;
/// Most repeats and longest `--seconds` accepted.
pub const MAX_REPEATS: usize = 10_000;
pub const MAX_SECONDS: f64 = 86_400.0;

const AFTER_HELP: &str = "\
FLOP model (SEED.md): one sample-step (one stream advancing one time step, forward + backward
+ update) costs 6GH^2 + 6HC FLOPs for hidden H, C = 2 classes and G gates (rnn 1, gru 3,
lstm 4), i.e. 6GH^2 + 12H: the forward W_hh h (2GH^2) and W_hy h (2HC), the backward dW_hh
(2GH^2), W_hh^T dz (2GH^2), dW_hy (2HC) and W_hy^T dl (2HC), a multiply-add counting 2. The
one-hot input is a gather and the gates' nonlinearities and state updates (O(GH) per
sample-step) are not counted. gflops = median sample-steps/s x (6GH^2 + 12H) / 1e9; pct_of_peak = 100 gflops / peak_gflops,
where peak_gflops is the machine's f32 FMA peak on as many threads with the widest FMA the CPU
has (AVX-512 where present, detected at run time, whatever this binary was built for),
measured at start (median of 5 runs of 0.2 s of independent multiply-add chains per thread);
binary_peak_gflops and pct_of_binary_peak are the same for this build's own vector width
(an AVX2 build on an AVX-512 CPU reaches at most about half of peak_gflops). Other processes
can only lower a peak run: on a busy machine a row can exceed 100% of a peak measured while
they ran (peak_gflops_min/max show the spread). first_second_sample_steps_per_s is the
throughput of the first second of a fresh run (what a short `train` sees: page faults, the
thread team's start); the repeats follow it.

The shares split one extra timed pass: forward and backward divide the parallel region's wall
time in proportion to their thread-seconds; reduction (summing the shards' gradients) and
update (Adagrad) are wall time; other is the rest (bit planes, loss, bookkeeping).

Examples:
  bitrnn bench                                 hidden 6,64,256 x threads 1,all
  bitrnn bench --cell gru,lstm --hidden 64     the gated cells
  bitrnn bench --hidden 6 --threads 2 --json   one JSON object per row
  bitrnn bench --hidden 256 --streams 4096 --threads 1,2,4,8,16 --plot scaling.png
                                               a thread-scaling curve";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct BenchArgs {
    /// Cells to measure, comma-separated: rnn, gru, lstm.
    #[arg(long, value_delimiter = ',', default_value = "rnn", value_parser = parse_cell)]
    pub cell: Vec<Cell>,
    /// Hidden sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "6,64,256")]
    pub hidden: Vec<usize>,
    /// Thread counts to measure, comma-separated [default: 1 and all cores].
    #[arg(long, value_delimiter = ',')]
    pub threads: Option<Vec<usize>>,
    /// Parallel streams (the seed: 250); each is 2000 steps long.
    #[arg(long, default_value_t = 250)]
    pub streams: usize,
    /// Steps per training window (the seed: 5).
    #[arg(long, default_value_t = 5)]
    pub time_step: usize,
    /// Timed seconds per row, split over the repeats (plus a warm-up and a phase pass).
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    pub seconds: f64,
    /// Timed repeats per row (at least 5): the median, min and max are reported.
    #[arg(long, default_value_t = MIN_REPEATS)]
    pub repeats: usize,
    /// One JSON object per row on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the thread scaling (speed-up over the fewest threads, one line per hidden
    /// size, min..max bars) to this PNG file.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Train on this text (a character model: V = C = its alphabet's size) instead of the
    /// generator's bits: the file is cut into --streams streams of (its length / --streams)
    /// steps.
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
}

/// The flags, validated.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub cells: Vec<Cell>,
    /// `--text`: the file, read once.
    pub text: Option<(PathBuf, crate::sequence::Sequence)>,
    pub hidden: Vec<usize>,
    pub threads: Vec<usize>,
    pub streams: usize,
    pub time_step: usize,
    pub seconds: f64,
    pub repeats: usize,
    pub plot: Option<PathBuf>,
}

impl BenchArgs {
    /// Checks every flag; the error names the flag, the value and what is allowed.
    pub fn plan(&self) -> Result<BenchPlan> {
        let usage = |m: String| Err(Error::Usage(m));
        let threads = self
            .threads
            .clone()
            .unwrap_or_else(|| dedup(vec![1, default_threads()]));
        check_list("--hidden", &self.hidden, MAX_HIDDEN)?;
        check_list("--threads", &threads, MAX_THREADS)?;
        let max_streams = MAX_DATA_SIZE / BATCH_SIZE;
        if self.streams == 0 || self.streams > max_streams {
            return usage(format!(
                "--streams {}: must be between 1 and {max_streams}",
                self.streams
            ));
        }
        if self.time_step == 0 || self.time_step > BATCH_SIZE {
            return usage(format!(
                "--time-step {}: must be between 1 and {BATCH_SIZE} (the stream length)",
                self.time_step
            ));
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= MAX_SECONDS) {
            return usage(format!(
                "--seconds {}: must be a number above 0 and at most {MAX_SECONDS}",
                self.seconds
            ));
        }
        if !(MIN_REPEATS..=MAX_REPEATS).contains(&self.repeats) {
            return usage(format!(
                "--repeats {}: must be between {MIN_REPEATS} and {MAX_REPEATS}",
                self.repeats
            ));
        }
        if let Some(path) = &self.plot {
            check_output_file("--plot", path, Some("png"), None)?;
        }
        let mut cells = self.cell.clone();
        cells.dedup();
        let text = match &self.text {
            None => None,
            Some(path) => {
                let source = crate::source::DataSource::Text {
                    path: path.clone(),
                    all_bytes: false,
                };
                let seq = source.read(None, None, None)?.expect("a text source reads");
                let stream_len = seq.len() / self.streams;
                if stream_len < self.time_step {
                    return usage(format!(
                        "--text {}: {} positions in --streams {} streams are {stream_len} steps \
                         each, fewer than --time-step {}; use fewer streams",
                        path.display(),
                        seq.len(),
                        self.streams,
                        self.time_step
                    ));
                }
                Some((path.clone(), seq))
            }
        };
        Ok(BenchPlan {
            cells,
            text,
            plot: self.plot.clone(),
            hidden: self.hidden.clone(),
            threads,
            streams: self.streams,
            time_step: self.time_step,
            seconds: self.seconds,
            repeats: self.repeats,
        })
    }
}

/// `v` without repeated values, first occurrences kept in order.
fn dedup(v: Vec<usize>) -> Vec<usize> {
    let mut out = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn check_list(flag: &str, v: &[usize], max: usize) -> Result<()> {
    if v.is_empty() {
        return Err(Error::Usage(format!(
            "{flag}: empty list; give one or more values between 1 and {max}, comma-separated"
        )));
    }
    if let Some(bad) = v.iter().find(|&&x| x == 0 || x > max) {
        return Err(Error::Usage(format!(
            "{flag} {bad}: each value must be between 1 and {max}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BenchArgs {
        BenchArgs {
            cell: vec![Cell::Rnn],
            hidden: vec![6],
            threads: Some(vec![1]),
            streams: 250,
            time_step: 5,
            seconds: 1.0,
            repeats: 5,
            json: false,
            plot: None,
            text: None,
        }
    }

    #[test]
    fn plan_rejects_bad_flags_naming_them() {
        let cases: Vec<(BenchArgs, &str)> = vec![
            (
                BenchArgs {
                    hidden: vec![],
                    ..args()
                },
                "--hidden",
            ),
            (
                BenchArgs {
                    hidden: vec![6, 0],
                    ..args()
                },
                "--hidden 0",
            ),
            (
                BenchArgs {
                    hidden: vec![4097],
                    ..args()
                },
                "--hidden 4097",
            ),
            (
                BenchArgs {
                    threads: Some(vec![]),
                    ..args()
                },
                "--threads",
            ),
            (
                BenchArgs {
                    threads: Some(vec![1025]),
                    ..args()
                },
                "--threads 1025",
            ),
            (
                BenchArgs {
                    streams: 0,
                    ..args()
                },
                "--streams 0",
            ),
            (
                BenchArgs {
                    time_step: 0,
                    ..args()
                },
                "--time-step 0",
            ),
            (
                BenchArgs {
                    time_step: 2001,
                    ..args()
                },
                "--time-step 2001",
            ),
            (
                BenchArgs {
                    seconds: 0.0,
                    ..args()
                },
                "--seconds 0",
            ),
            (
                BenchArgs {
                    seconds: f64::NAN,
                    ..args()
                },
                "--seconds NaN",
            ),
            (
                BenchArgs {
                    seconds: f64::INFINITY,
                    ..args()
                },
                "--seconds inf",
            ),
            (
                BenchArgs {
                    repeats: 4,
                    ..args()
                },
                "--repeats 4",
            ),
            (
                BenchArgs {
                    plot: Some("scaling.svg".into()),
                    ..args()
                },
                "--plot scaling.svg",
            ),
            (
                BenchArgs {
                    plot: Some("/no/such/dir/scaling.png".into()),
                    ..args()
                },
                "--plot /no/such/dir/scaling.png",
            ),
        ];
        for (a, flag) in cases {
            match a.plan() {
                Err(Error::Usage(m)) => assert!(m.starts_with(flag), "{m} (expected {flag})"),
                other => panic!("{flag}: expected a usage error, got {other:?}"),
            }
        }
        assert!(args().plan().is_ok());
    }

    #[test]
    fn default_threads_are_one_and_all_cores() {
        let p = BenchArgs {
            threads: None,
            ..args()
        }
        .plan()
        .unwrap();
        assert_eq!(p.threads[0], 1);
        assert_eq!(*p.threads.last().unwrap(), default_threads());
    }
}
