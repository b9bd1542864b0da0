//! `bitrnn sweep`: a grid of independent training runs ([`crate::sweep`]), run in parallel
//! over the cores (one run per thread, each single-threaded, so each run's result is
//! `bitrnn train --threads 1`'s), then `sweep.csv`, `sweep.json` and `sweep.png` in `--out`
//! (each whole or not at all).
//!
//! The results are collected in grid order, whatever order the runs finish in: the same flags
//! give the same `sweep.csv` (but its `wall_s` column) for any `--threads`.
//!
//! # Before any work
//!
//! The grid is validated ([`crate::sweep::Grid::new`]) and its training time estimated
//! ([`crate::sweep::estimate_run_s`]); a sweep estimated above an hour is refused (exit 2)
//! unless `--yes` is given, so that a typo in an axis does not start a night's work.
//!
//! # Ctrl-C and --resume
//!
//! SIGINT ([`crate::signal`]) stops starting runs; the runs in flight finish, the outputs are
//! written for every run done, and the command exits with code 130. `--resume` reads
//! `sweep.csv` back, skips the runs whose settings (the first seventeen columns, the cell and
//! the optimizer's settings among them; a file from before those columns is read as rows of
//! the rnn cell and the optimizer's defaults) are there, and
//! writes the old rows followed by the new ones. A `sweep.csv` of runs on other data (another
//! file's `data_checksum`, or the generator's rows for a file and the reverse) is refused
//! with one line: its rows would never match, and the file would mix two data sets.
//!
//! # Your own sequences
//!
//! With a data flag the file is read once ([`crate::cli::SweepArgs::to_grid`]) and every run
//! trains on views of it; the heatmap then has time_step across and hidden down, one panel
//! per cell, its colour running from the best median (dark) to the unigram entropy (pale).

use crate::cli::{MAX_UNASKED_S, SweepArgs};
use crate::cmd::train::describe_levels;
use crate::config::TrainSettings;
use crate::data::ReferenceLevel;
use crate::error::{Error, Result};
use crate::output;
use crate::plot::{self, HeatmapCell, HeatmapPanel};
use crate::sweep::{self, Cell, Grid, RunResult, SweepData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::Instant;

/// What `sweep.json` holds.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    /// What the runs trained on: `generator`, or the file (`text FILE`, `npy X -> Y`).
    data: &'a str,
    /// [`sweep::data_checksum`] of a file's sequence; absent for the generator.
    #[serde(skip_serializing_if = "str::is_empty")]
    data_checksum: &'a str,
    /// The generator's rule; absent for a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    /// The loss `learned` and the cells' medians judge: `held_out_loss` with `--valid`,
    /// else `final_loss`.
    judged: &'static str,
    lags: &'a [(usize, usize)],
    time_steps: &'a [usize],
    hidden: &'a [usize],
    /// The recurrent cells (`--cells`; `cells` below are the heatmap's).
    #[serde(serialize_with = "cell_names")]
    cell_types: &'a [crate::config::Cell],
    seeds: &'a [u64],
    /// The settings every run shares (`lags`, `time_step`, `hidden`, `cell`, `seed` are the
    /// axes').
    shared: &'a TrainSettings,
    /// Runs in the grid, and how many of them are done (in sweep.csv now).
    runs: usize,
    runs_done: usize,
    /// Runs this command trained, and runs it found in sweep.csv (`--resume`).
    runs_trained: usize,
    runs_resumed: usize,
    #[serde(serialize_with = "levels_by_name")]
    reference_levels: &'a [ReferenceLevel],
    /// A run learned when its final_loss is below this.
    learned_below: f64,
    cells: Vec<CellJson>,
    threads: usize,
    /// The estimate made before starting (seconds, for the runs this command trained).
    estimate_s: f64,
    /// Wall time of the whole command.
    wall_s: f64,
    /// Sum of the trained runs' own wall times: what one thread would have taken.
    run_s: f64,
    interrupted: bool,
    simd_level: &'static str,
    version: &'static str,
}

#[derive(Debug, Serialize)]
struct CellJson {
    hidden: usize,
    #[serde(with = "crate::config::cell_name")]
    cell: crate::config::Cell,
    lags: (usize, usize),
    time_step: usize,
    runs: usize,
    median_final_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    median_held_out_loss: Option<f64>,
    learned: usize,
}

fn cell_names<S: serde::Serializer>(
    cells: &&[crate::config::Cell],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(cells.iter().map(|c| c.name()))
}

fn levels_by_name<S: serde::Serializer>(
    levels: &&[ReferenceLevel],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(levels.len()))?;
    for level in *levels {
        map.serialize_entry(level.name, &level.loss)?;
    }
    map.end()
}

/// `seconds` as `42 s`, `12 min` or `3.4 h`.
#[must_use]
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// The heatmap's panels. The generator's: one per hidden size and cell (the cells of one
/// hidden size side by side), lags down, time steps across; the titles name the cell unless
/// only rnn is swept. A file's (no lags): one per cell, hidden sizes down, time steps across.
fn panels(grid: &Grid, cells: &[Cell]) -> Vec<HeatmapPanel> {
    let square = |c: &Cell| HeatmapCell {
        value: (c.runs > 0).then_some(c.median_judged_loss()),
        label: if c.runs == 0 {
            String::new()
        } else {
            format!("{}/{}", c.learned, c.runs)
        },
    };
    let columns: Vec<String> = grid.time_steps.iter().map(ToString::to_string).collect();
    if grid.base().symbols() {
        return grid
            .cells
            .iter()
            .map(|&cell| HeatmapPanel {
                title: cell.name().to_string(),
                rows_name: "hidden".into(),
                rows: grid.hidden.iter().map(ToString::to_string).collect(),
                columns: columns.clone(),
                cells: cells
                    .iter()
                    .filter(|c| c.cell == cell)
                    .map(square)
                    .collect(),
            })
            .collect();
    }
    let name_cells = grid.cells != [crate::config::Cell::Rnn];
    grid.hidden
        .iter()
        .flat_map(|&hidden| grid.cells.iter().map(move |&cell| (hidden, cell)))
        .map(|(hidden, cell)| HeatmapPanel {
            title: if name_cells {
                format!("{}, hidden {hidden}", cell.name())
            } else {
                format!("hidden {hidden}")
            },
            rows_name: "lags (a,b)".into(),
            rows: grid.lags.iter().map(|(a, b)| format!("{a},{b}")).collect(),
            columns: columns.clone(),
            cells: cells
                .iter()
                .filter(|c| c.hidden == hidden && c.cell == cell)
                .map(square)
                .collect(),
        })
        .collect()
}

/// The levels the heatmap's colour runs between, lowest first: the rule's for the
/// generator; for a file the best median (or, when no cell is below it, the learned
/// threshold), the threshold, and the unigram entropy (nothing learned).
fn heat_levels(
    levels: &[ReferenceLevel],
    threshold: f64,
    cells: &[Cell],
    file: bool,
) -> Vec<ReferenceLevel> {
    if !file {
        return levels.to_vec();
    }
    let mark = |name, label, loss| ReferenceLevel {
        name,
        label,
        loss,
        accuracy: f64::NAN,
    };
    let best = cells
        .iter()
        .filter(|c| c.runs > 0)
        .map(Cell::median_judged_loss)
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    // Short labels: the colour bar's column is narrow.
    let learned = mark("learned_below", "learned below", threshold);
    let mut out = if best < threshold {
        vec![mark("best", "best median", best), learned]
    } else {
        vec![learned]
    };
    out.extend(levels.iter().map(|l| ReferenceLevel {
        label: "unigram entropy",
        ..*l
    }));
    out
}

/// `sweep.json`'s entry of a cell.
fn cell_json(c: &Cell) -> CellJson {
    let finite = |v: f64| v.is_finite().then_some(v);
    CellJson {
        hidden: c.hidden,
        cell: c.cell,
        lags: c.lags,
        time_step: c.time_step,
        runs: c.runs,
        median_final_loss: finite(c.median_final_loss),
        median_held_out_loss: finite(c.median_held_out_loss),
        learned: c.learned,
    }
}

/// Refuses to resume from `previous` rows of runs on other data than `data`.
fn check_same_data(
    csv: &std::path::Path,
    previous: &[RunResult],
    grid: &Grid,
    data: &SweepData,
) -> Result<()> {
    let other = previous
        .iter()
        .find(|r| r.settings.source != grid.base().source || r.data_checksum != data.checksum());
    match other {
        None => Ok(()),
        Some(r) => Err(Error::Usage(format!(
            "--resume: {} holds runs on {}{}, not on {}{}; give the same data, another --out, \
             or drop --resume",
            output::shown(csv),
            r.data,
            checksum_note(&r.data_checksum),
            data.name(),
            checksum_note(data.checksum()),
        ))),
    }
}

fn checksum_note(checksum: &str) -> String {
    if checksum.is_empty() {
        String::new()
    } else {
        format!(" (data_checksum {checksum})")
    }
}

pub fn run(args: &SweepArgs) -> Result<()> {
    let start = Instant::now();
    let (grid, data) = args.to_grid()?;
    let file = grid.base().symbols();
    let threads = args.thread_count()?;
    let csv_path = args.out.join("sweep.csv");
    let previous = if args.resume && csv_path.is_file() {
        sweep::read_csv(&csv_path)?
    } else {
        Vec::new()
    };
    check_same_data(&csv_path, &previous, &grid, &data)?;
    let done: HashSet<String> = previous
        .iter()
        .map(|r| sweep::settings_key(&r.settings, &r.data_checksum))
        .collect();
    let todo: Vec<TrainSettings> = grid
        .runs()
        .into_iter()
        .filter(|s| !done.contains(&sweep::settings_key(s, data.checksum())))
        .collect();
    let resumed = grid.len() - todo.len();
    let estimate_s =
        todo.iter().map(sweep::estimate_run_s).sum::<f64>() / threads.min(todo.len()).max(1) as f64;
    let cell_axis = if grid.cells.len() > 1 {
        format!(" x {} cells", grid.cells.len())
    } else {
        String::new()
    };
    let lag_axis = if file {
        String::new()
    } else {
        format!("{} lags x ", grid.lags.len())
    };
    let shape = format!(
        "{} runs ({lag_axis}{} time steps x {} hidden{cell_axis} x {} seeds), {} epochs each",
        grid.len(),
        grid.time_steps.len(),
        grid.hidden.len(),
        grid.seeds.len(),
        grid.base().epochs
    );
    if estimate_s > MAX_UNASKED_S && !args.yes {
        return Err(Error::Usage(format!(
            "--lags x --time-steps x --hidden x --cells x --seeds x --epochs: {} runs of {} epochs, \
             estimated at about {} on {threads} thread(s) (more than an hour); pass --yes to \
             start it, or shorten an axis",
            todo.len(),
            grid.base().epochs,
            human_seconds(estimate_s)
        )));
    }
    sweep::check_concurrent_memory(
        &grid,
        threads.min(todo.len()).max(1),
        crate::config::memory_limit(),
    )?;
    output::ensure_dir(&args.out)?;
    let levels = data.levels(grid.base());
    let threshold = data.learned_below(grid.base());
    let base = grid.base();
    let source = if file {
        format!(
            "data {} ({} positions{}, {} symbols -> {} classes)",
            data.name(),
            base.data_size,
            if base.valid > 0.0 {
                format!(", the last {} held out", base.data_size - base.train_size())
            } else {
                String::new()
            },
            base.vocab,
            base.classes
        )
    } else {
        format!("rule {}", base.rule)
    };
    // Before the first line on stderr: who waits for that line may send SIGINT at once.
    crate::signal::install();
    if !args.quiet {
        eprintln!(
            "bitrnn sweep: {shape}, {source}{}, {threads} thread(s){}; estimated at most {}",
            if grid.cells == [crate::config::Cell::Rnn] {
                String::new()
            } else {
                let names: Vec<&str> = grid.cells.iter().map(|c| c.name()).collect();
                format!(", cell {}", names.join(","))
            },
            if resumed > 0 {
                format!(", {resumed} already in {}", output::shown(&csv_path))
            } else {
                String::new()
            },
            human_seconds(estimate_s)
        );
    }
    let show = !args.quiet && std::io::stderr().is_terminal();
    let bar = if show {
        let bar = ProgressBar::new(todo.len() as u64);
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {elapsed} < {eta}")
                .expect("static template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("bitrnn-sweep-{i}"))
        .build()
        .map_err(|e| Error::Usage(format!("--threads {threads}: {e}")))?;
    // One run per item, handed out one at a time: a run is milliseconds to seconds, and
    // after Ctrl-C no new run starts. Every run borrows the one copy of a file's data.
    let outcomes: Vec<Option<Result<RunResult>>> = pool.install(|| {
        todo.par_iter()
            .with_max_len(1)
            .map(|&settings| {
                if crate::signal::interrupted() {
                    return None;
                }
                let result = sweep::run_one(settings, &data, threshold);
                bar.inc(1);
                Some(result)
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut trained = Vec::with_capacity(outcomes.len());
    for outcome in outcomes.into_iter().flatten() {
        trained.push(outcome?);
    }
    let interrupted = trained.len() < todo.len();
    let runs_trained = trained.len();
    let run_s: f64 = trained.iter().map(|r| r.wall_s).sum();
    let mut all = previous;
    all.extend(trained);
    let cells = sweep::cells(&grid, data.checksum(), &all);
    let runs_done = cells.iter().map(|c| c.runs).sum();
    sweep::write_csv(&csv_path, &all)?;
    let judged = if base.valid > 0.0 {
        "held-out loss"
    } else {
        "final loss"
    };
    let title = format!(
        "median {judged} over {} seed(s), {}, {} epochs, {} streams x {}, {:?} lr {}",
        grid.seeds.len(),
        if file {
            // The files' names without their directories ("text a.txt", "npy x.npy -> y.npy"):
            // the title is one line.
            data.name()
                .split(' ')
                .map(|word| word.rsplit(['/', '\\']).next().unwrap_or(word))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            format!("rule {}", base.rule)
        },
        base.epochs,
        base.streams(),
        base.batch_size,
        base.optimizer,
        base.lr
    )
    .replace("Adagrad", "adagrad")
    .replace("Sgd", "sgd")
        + &base.describe_optim();
    plot::heatmap(
        &args.out.join("sweep.png"),
        &panels(&grid, &cells),
        &heat_levels(&levels, threshold, &cells, file),
        &title,
        &format!("cell: median {judged}, seeds learned (below {threshold:.4})"),
        &format!("median {judged}"),
    )?;
    let learned_cells = cells
        .iter()
        .filter(|c| c.runs > 0 && c.learned * 2 > c.runs)
        .count();
    let summary = Summary {
        data: data.name(),
        data_checksum: data.checksum(),
        rule: (!file).then(|| base.rule.name()),
        judged: if base.valid > 0.0 {
            "held_out_loss"
        } else {
            "final_loss"
        },
        lags: if file { &[] } else { &grid.lags },
        time_steps: &grid.time_steps,
        hidden: &grid.hidden,
        cell_types: &grid.cells,
        seeds: &grid.seeds,
        shared: base,
        runs: grid.len(),
        runs_done,
        runs_trained,
        runs_resumed: resumed,
        reference_levels: &levels,
        learned_below: threshold,
        cells: cells.iter().map(cell_json).collect(),
        threads,
        estimate_s,
        wall_s: start.elapsed().as_secs_f64(),
        run_s,
        interrupted,
        simd_level: bitrnn_kernels::simd_level(),
        version: env!("CARGO_PKG_VERSION"),
    };
    let json = serde_json::to_string(&summary).expect("summary serializes");
    output::write_atomic_bytes(&args.out.join("sweep.json"), format!("{json}\n").as_bytes())?;
    if !args.quiet {
        eprintln!(
            "{runs_trained} run(s) trained in {:.1} s ({:.1} s of runs on {threads} thread(s)); \
             {runs_done}/{} done; {learned_cells}/{} cells learned in most seeds ({}{}); wrote {}/{{sweep.csv,sweep.json,sweep.png}}",
            start.elapsed().as_secs_f64(),
            run_s,
            grid.len(),
            cells.len(),
            if file {
                format!("{threshold:.4} = learned, ")
            } else {
                String::new()
            },
            describe_levels(&levels),
            output::shown(&args.out)
        );
    }
    if interrupted {
        return Err(Error::Interrupted);
    }
    Ok(())
}
