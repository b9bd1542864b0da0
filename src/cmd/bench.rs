//! `bitrnn bench`: training throughput for a grid of hidden sizes and thread counts, as
//! sample-steps per second (median of timed repeats), GFLOP/s under the FLOP model, and the
//! percentage of the machine's measured f32 FMA peak ([`crate::peak`]).
//!
//! Per (hidden, threads) row: a [`crate::train::Trainer`] on the seed's layout (`--streams` streams of
//! [`BATCH_SIZE`] steps, windows of `--time-step`), a warm-up that also sizes the repeats,
//! `--repeats` timed repeats of whole windows, then one more pass of the same length with
//! phase timing on, whose clock reads therefore never touch the throughput figures.

use crate::cli::{BenchArgs, BenchPlan};
use crate::config::{
    BATCH_SIZE, Cell, Engine, Optimizer, TrainConfig, TrainSettings, default_threads,
};
use crate::error::Result;
use crate::train::PhaseTimes;
use crate::{distributed, peak, plot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Instant;

/// FLOPs of one sample-step of `cell` with hidden size `hidden`: `6 G H^2 + 6HC` for `G`
/// gates and `C = 2` classes (the help text derives it).
#[must_use]
pub fn flops_per_sample_step(cell: Cell, hidden: usize) -> f64 {
    flops_with_classes(cell, hidden, bitrnn_kernels::CLASSES)
}

/// [`flops_per_sample_step`] for `classes` classes: `6 G H^2 + 6 H C`.
#[must_use]
pub fn flops_with_classes(cell: Cell, hidden: usize, classes: usize) -> f64 {
    let (h, g) = (hidden as f64, cell.gates() as f64);
    6.0 * g * h * h + 6.0 * h * classes as f64
}

/// One row of the report (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    #[serde(with = "crate::config::cell_name")]
    pub cell: Cell,
    pub hidden: usize,
    pub threads: usize,
    pub streams: usize,
    pub time_step: usize,
    pub batch_size: usize,
    /// What it trained on: `generator`, or `text FILE` (`--text`), and its `C` classes.
    pub data: String,
    pub classes: usize,
    pub repeats: usize,
    /// Windows per timed repeat.
    pub windows_per_repeat: usize,
    /// Median over the repeats.
    pub sample_steps_per_s: f64,
    pub sample_steps_per_s_min: f64,
    pub sample_steps_per_s_max: f64,
    /// Throughput over the first second of a fresh run (at least 3 windows), what a short
    /// `train` run sees: page faults, the thread team's start, cold caches.
    pub first_second_sample_steps_per_s: f64,
    pub flops_per_sample_step: f64,
    /// `sample_steps_per_s * flops_per_sample_step / 1e9`.
    pub gflops: f64,
    /// The machine's measured f32 FMA peak for `threads` threads (median), with the widest
    /// FMA the CPU has ([`peak::Fma::Machine`]), and its runs' range.
    pub peak_gflops: f64,
    pub peak_gflops_min: f64,
    pub peak_gflops_max: f64,
    /// `100 * gflops / peak_gflops`.
    pub pct_of_peak: f64,
    /// The multiply-add `peak_gflops` was measured with, e.g. "AVX-512 f32x16 FMA".
    pub peak_fma: String,
    /// The peak of this binary's own vector width ([`peak::Fma::Binary`]), and the row's
    /// share of it: below `pct_of_peak`'s roof when the build is narrower than the CPU.
    pub binary_peak_gflops: f64,
    pub pct_of_binary_peak: f64,
    /// `f32` lanes of the kernels' vector in this build.
    pub lanes: usize,
    /// Fractions of the phase pass's wall time (they sum to 1 with `other_share`).
    pub forward_share: f64,
    pub backward_share: f64,
    pub reduction_share: f64,
    pub update_share: f64,
    pub other_share: f64,
    pub simd_level: &'static str,
    pub threads_available: usize,
    pub date: String,
    pub version: &'static str,
}

/// Phase shares of a pass of `wall_s` seconds; see [`BenchRow`] and the help text.
#[must_use]
pub fn shares(pt: &PhaseTimes, wall_s: f64) -> [f64; 5] {
    let thread_s = pt.forward_s + pt.backward_s;
    let (fwd, bwd) = if thread_s > 0.0 {
        (
            pt.parallel_s * pt.forward_s / thread_s,
            pt.parallel_s * pt.backward_s / thread_s,
        )
    } else {
        (0.0, 0.0)
    };
    let parts = [fwd, bwd, pt.reduction_s, pt.update_s].map(|x| x / wall_s);
    let other = (1.0 - parts.iter().sum::<f64>()).max(0.0);
    [parts[0], parts[1], parts[2], parts[3], other]
}

/// Today's date (UTC), `YYYY-MM-DD`, from the system clock.
#[must_use]
pub fn utc_date() -> String {
    date_of(jiff::Timestamp::now())
}

/// The UTC date of `instant`, `YYYY-MM-DD`.
fn date_of(instant: jiff::Timestamp) -> String {
    jiff::tz::Offset::UTC
        .to_datetime(instant)
        .date()
        .to_string()
}

/// Seconds of the first, separately reported, stretch of each row's run.
const FIRST_SECOND_S: f64 = 1.0;

/// The measured roofs for one thread count: the machine's widest FMA and the binary's own.
#[derive(Clone, Copy, Debug)]
struct Peaks {
    machine: peak::Peak,
    binary: peak::Peak,
}

/// Measures one row. `peaks` are the measured peaks for `threads`; `date` goes in the row.
fn bench_row(
    plan: &BenchPlan,
    cell: Cell,
    hidden: usize,
    threads: usize,
    peaks: &Peaks,
    date: &str,
    bar: &ProgressBar,
) -> Result<BenchRow> {
    let settings = TrainSettings {
        data_size: plan.streams * BATCH_SIZE,
        batch_size: BATCH_SIZE,
        time_step: plan.time_step,
        hidden,
        cell,
        threads,
        engine: Engine::Simd,
        optimizer: Optimizer::Adagrad,
        ..TrainSettings::SEED
    };
    let cfg = TrainConfig::new(match &plan.text {
        None => settings,
        Some((_, seq)) => TrainSettings {
            data_size: seq.len(),
            batch_size: seq.len() / plan.streams,
            source: crate::config::Source::Text,
            vocab: seq.vocab(),
            classes: seq.classes(),
            ..settings
        },
    })?;
    let per_window = cfg.sample_steps_per_window() as f64;
    let (batch_size, classes) = (cfg.batch_size, cfg.classes);
    let label = format!("{} hidden {hidden}, threads {threads}", cell.name());
    bar.set_message(format!("{label}: data and warm-up"));
    let data = match &plan.text {
        None => crate::planes::TrainData::generate(&cfg),
        Some((_, seq)) => crate::planes::TrainData::Symbols(seq.clone()),
    };
    let mut trainer = distributed::trainer(cfg, data)?;

    // The first second of a fresh run, as `train` pays it (page faults, the team's start,
    // cold caches), timed on its own and reported; it is also the warm-up, sizing the
    // repeats from its windows (at least 3).
    let repeat_s = plan.seconds / plan.repeats as f64;
    let t0 = Instant::now();
    let mut first_windows = 0usize;
    // Under mpirun the ranks stop together (on rank 0's clock) and time the same windows.
    trainer.run(usize::MAX, |_| {
        first_windows += 1;
        let more = first_windows < 3 || t0.elapsed().as_secs_f64() < FIRST_SECOND_S;
        distributed::from_root(usize::from(more)) == 1
    })?;
    let first_s = t0.elapsed().as_secs_f64();
    let first_second = first_windows as f64 * per_window / first_s;
    let window_s = first_s / first_windows as f64;
    let windows = distributed::from_root(((repeat_s / window_s).round() as usize).max(1));

    let mut rates = Vec::with_capacity(plan.repeats);
    for r in 0..plan.repeats {
        bar.set_message(format!("{label}: repeat {}/{}", r + 1, plan.repeats));
        let t = Instant::now();
        trainer.run(windows, |_| true)?;
        rates.push(windows as f64 * per_window / t.elapsed().as_secs_f64());
    }

    bar.set_message(format!("{label}: phase pass"));
    trainer.set_timing(true);
    let t = Instant::now();
    trainer.run(windows, |_| true)?;
    let wall = t.elapsed().as_secs_f64();
    let pt = trainer.phase_times().expect("timing is on");
    trainer.set_timing(false);
    let [
        forward_share,
        backward_share,
        reduction_share,
        update_share,
        other_share,
    ] = shares(&pt, wall);

    let median = peak::median(&rates);
    let flops = flops_with_classes(cell, hidden, classes);
    let gflops = median * flops / 1e9;
    Ok(BenchRow {
        cell,
        hidden,
        threads,
        streams: plan.streams,
        time_step: plan.time_step,
        batch_size,
        data: plan
            .text
            .as_ref()
            .map_or_else(|| "generator".into(), |t| format!("text {}", t.0.display())),
        classes,
        repeats: plan.repeats,
        windows_per_repeat: windows,
        sample_steps_per_s: median,
        sample_steps_per_s_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        sample_steps_per_s_max: rates.iter().copied().fold(0.0, f64::max),
        first_second_sample_steps_per_s: first_second,
        flops_per_sample_step: flops,
        gflops,
        peak_gflops: peaks.machine.gflops,
        peak_gflops_min: peaks.machine.min_gflops,
        peak_gflops_max: peaks.machine.max_gflops,
        pct_of_peak: 100.0 * gflops / peaks.machine.gflops,
        peak_fma: peak::Fma::Machine.describe(),
        binary_peak_gflops: peaks.binary.gflops,
        pct_of_binary_peak: 100.0 * gflops / peaks.binary.gflops,
        lanes: bitrnn_kernels::lanes::LANES,
        forward_share,
        backward_share,
        reduction_share,
        update_share,
        other_share,
        simd_level: bitrnn_kernels::simd_level(),
        threads_available: default_threads(),
        date: date.to_owned(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `1234567.0` as `1.23 M`, with k/M/G prefixes.
#[must_use]
pub fn si(x: f64) -> String {
    let (v, p) = if x >= 1e9 {
        (x / 1e9, " G")
    } else if x >= 1e6 {
        (x / 1e6, " M")
    } else if x >= 1e3 {
        (x / 1e3, " k")
    } else {
        (x, " ")
    };
    let digits = if v >= 100.0 { 1 } else { 2 };
    format!("{v:.digits$}{p}")
}

fn table_header(plan: &BenchPlan, peaks: &BTreeMap<usize, Peaks>, date: &str) -> String {
    let mut s = format!(
        "bitrnn bench {}  {date}  SIMD: {}  {} thread(s) available\n",
        env!("CARGO_PKG_VERSION"),
        bitrnn_kernels::simd_level(),
        default_threads()
    );
    s += &format!(
        "{} streams x {BATCH_SIZE} steps, time_step {}; median of {} repeats over {} s per row; \
         FLOP model 6GH^2 + 12H per sample-step (G gates)\n",
        plan.streams, plan.time_step, plan.repeats, plan.seconds
    );
    let show = |p: &peak::Peak| {
        format!(
            "{} thread(s) {:.1} GFLOP/s [{:.1}, {:.1}]",
            p.threads, p.gflops, p.min_gflops, p.max_gflops
        )
    };
    let machine: Vec<String> = peaks.values().map(|p| show(&p.machine)).collect();
    let binary: Vec<String> = peaks.values().map(|p| show(&p.binary)).collect();
    s += &format!(
        "machine peak ({}; %peak is against it): {}\n",
        peak::Fma::Machine.describe(),
        machine.join(", ")
    );
    s += &format!(
        "this build's peak ({}): {}\n\n",
        peak::Fma::Binary.describe(),
        binary.join(", ")
    );
    s += &format!(
        "{:>4} {:>6} {:>7}  {:>33}  {:>7} {:>6} {:>6}  {:>4} {:>4} {:>4} {:>4} {:>5}",
        "cell",
        "hidden",
        "threads",
        "sample-steps/s  median [min, max]",
        "GFLOP/s",
        "peak",
        "%peak",
        "fwd",
        "bwd",
        "red",
        "upd",
        "other"
    );
    s
}

fn table_row(r: &BenchRow) -> String {
    let pct = |x: f64| format!("{:.0}%", 100.0 * x);
    format!(
        "{:>4} {:>6} {:>7}  {:>33}  {:>7.2} {:>6.1} {:>5.1}%  {:>4} {:>4} {:>4} {:>4} {:>5}",
        r.cell.name(),
        r.hidden,
        r.threads,
        format!(
            "{}  [{}, {}]",
            si(r.sample_steps_per_s),
            si(r.sample_steps_per_s_min),
            si(r.sample_steps_per_s_max)
        ),
        r.gflops,
        r.peak_gflops,
        r.pct_of_peak,
        pct(r.forward_share),
        pct(r.backward_share),
        pct(r.reduction_share),
        pct(r.update_share),
        pct(r.other_share)
    )
}

/// The rows as one scaling series per (cell, hidden size), by increasing thread count.
fn scaling_series(rows: &[BenchRow]) -> Vec<plot::ScalingSeries> {
    let mut by_shape: BTreeMap<(&str, usize), Vec<&BenchRow>> = BTreeMap::new();
    for r in rows {
        by_shape
            .entry((r.cell.name(), r.hidden))
            .or_default()
            .push(r);
    }
    let one_cell = by_shape.keys().all(|k| k.0 == "rnn");
    by_shape
        .into_iter()
        .map(|((cell, hidden), mut rows)| {
            rows.sort_by_key(|r| r.threads);
            plot::ScalingSeries {
                label: if one_cell {
                    format!("hidden {hidden}")
                } else {
                    format!("{cell} hidden {hidden}")
                },
                points: rows
                    .iter()
                    .map(|r| {
                        (
                            r.threads,
                            r.sample_steps_per_s,
                            r.sample_steps_per_s_min,
                            r.sample_steps_per_s_max,
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let plan = args.plan()?;
    let date = utc_date();
    let root = distributed::is_root();
    let show = root && std::io::stderr().is_terminal();
    let rows = plan.cells.len() * plan.hidden.len() * plan.threads.len();
    let bar = if show {
        let bar = ProgressBar::with_draw_target(Some(rows as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} rows  {elapsed}  {msg}")
                .expect("static template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    // The peaks first, while nothing else of ours runs.
    let mut peaks = BTreeMap::new();
    for &threads in &plan.threads {
        bar.set_message(format!(
            "measuring the f32 FMA peaks on {threads} thread(s)"
        ));
        peaks.entry(threads).or_insert_with(|| {
            let measure =
                |fma| peak::measure(fma, threads, peak::DEFAULT_REPEAT, peak::DEFAULT_REPEATS);
            Peaks {
                machine: measure(peak::Fma::Machine),
                binary: measure(peak::Fma::Binary),
            }
        });
    }

    let mut first = true;
    let mut over_peak = false;
    let mut measured = Vec::with_capacity(rows);
    for (&cell, &hidden) in plan
        .cells
        .iter()
        .flat_map(|c| plan.hidden.iter().map(move |h| (c, h)))
    {
        for &threads in &plan.threads {
            let row = bench_row(&plan, cell, hidden, threads, &peaks[&threads], &date, &bar)?;
            bar.inc(1);
            // Rows print as they are measured; the table's header goes with the first.
            bar.suspend(|| {
                if !root {
                    // Under mpirun rank 0 alone reports.
                } else if args.json {
                    println!("{}", serde_json::to_string(&row).expect("a row serializes"));
                } else {
                    if first {
                        println!("{}", table_header(&plan, &peaks, &date));
                    }
                    println!("{}", table_row(&row));
                }
            });
            first = false;
            over_peak |= row.pct_of_peak > 100.0;
            measured.push(row);
        }
    }
    bar.finish_and_clear();
    if !root {
        return Ok(());
    }
    if let Some(path) = &plan.plot {
        let title = format!(
            "bitrnn thread scaling: {} streams, time_step {}, {} cores, {date}",
            plan.streams,
            plan.time_step,
            default_threads()
        );
        plot::scaling_plot(path, &scaling_series(&measured), &title)?;
        eprintln!("wrote {}", crate::output::shown(path));
    }
    if over_peak && !args.json {
        println!(
            "note: a row above 100% of peak ran faster than the peak measured at start: other \
             processes were running then; rerun on an idle machine"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_model_matches_seed_md() {
        // SEED.md: 288 FLOPs per sample-step at H = 6.
        assert_eq!(flops_per_sample_step(Cell::Rnn, 6), 288.0);
        assert_eq!(
            flops_per_sample_step(Cell::Rnn, 64),
            6.0 * 4096.0 + 12.0 * 64.0
        );
        // Gated cells: G = 3 and 4 times the recurrent GEMMs' FLOPs, the head's unchanged.
        assert_eq!(
            flops_per_sample_step(Cell::Gru, 64),
            18.0 * 4096.0 + 12.0 * 64.0
        );
        assert_eq!(flops_per_sample_step(Cell::Lstm, 6), 24.0 * 36.0 + 72.0);
    }

    #[test]
    fn civil_dates() {
        let day = |days: i64| date_of(jiff::Timestamp::from_second(days * 86_400).unwrap());
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(11_016), "2000-02-29");
        assert_eq!(day(19_723), "2024-01-01");
        assert_eq!(day(-1), "1969-12-31");
        let today = utc_date();
        assert!(
            today.len() == 10 && today.as_bytes()[4] == b'-' && today.as_bytes()[7] == b'-',
            "{today}"
        );
    }

    #[test]
    fn shares_sum_to_one() {
        let pt = PhaseTimes {
            forward_s: 3.0,
            backward_s: 1.0,
            parallel_s: 2.0,
            reduction_s: 0.5,
            update_s: 0.25,
        };
        let s = shares(&pt, 4.0);
        assert_eq!(s, [0.375, 0.125, 0.125, 0.0625, 0.3125]);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(123_456_789.0), "123.5 M");
        assert_eq!(si(950.0), "950.0 ");
    }
}
