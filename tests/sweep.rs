//! `bitrnn sweep` through the binary, on tiny grids: the rows in grid order, each row equal
//! to `bitrnn train --threads 1` with its settings (final_loss and weights_checksum, bit for
//! bit), the same CSV for any --threads, --resume running only what is missing, Ctrl-C.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;
use common::{MIN_CHAR_RNN, TestDir, assert_ok, bitrnn};

/// 100 streams of 200 steps, 2 epochs: a few milliseconds per run.
const SHAPE: [&str; 6] = [
    "--data-size",
    "20000",
    "--batch-size",
    "200",
    "--epochs",
    "2",
];

fn sweep(out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["sweep", "--quiet", "--out"]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.push(out.display().to_string());
    args.extend(SHAPE.iter().map(ToString::to_string));
    args.extend(extra.iter().map(ToString::to_string));
    bitrnn(&args)
}

/// `sweep --resume` with the report on stderr (not `--quiet`), which it returns.
#[track_caller]
fn resume(out: &Path, extra: &[&str]) -> String {
    let args = [
        &["sweep", "--resume", "--out", out.to_str().unwrap()],
        &SHAPE[..],
        extra,
    ]
    .concat();
    let resumed = bitrnn(&args);
    assert_ok(&resumed);
    String::from_utf8_lossy(&resumed.stderr).into_owned()
}

/// Columns of a row of [`rows`] (`wall_s` removed).
const SEED: usize = 6;
/// `clip`, `adagrad_eps`, `adagrad_init`, `init`.
const OPTIM: std::ops::Range<usize> = 13..17;
/// `data`, `data_checksum`, `vocab`, `classes`, `valid`.
const DATA: std::ops::Range<usize> = 17..22;
const FINAL_LOSS: usize = 22;
/// `held_out_loss`, `held_out_accuracy`, `nothing_learned`.
const HELD_OUT: std::ops::Range<usize> = 23..26;
const LEARNED: usize = 26;
const CHECKSUM: usize = 27;

/// The CSV's rows as fields, without the `wall_s` column (the one that may differ).
fn rows(dir: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(dir.join("sweep.csv")).expect("sweep.csv is written");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let wall = header.iter().position(|&h| h == "wall_s").unwrap();
    lines
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(ToString::to_string).collect();
            assert_eq!(f.len(), header.len(), "{l}");
            f.remove(wall);
            f
        })
        .collect()
}

/// Asserts that `row` (of [`rows`], a run of `shape`'s flags) is `bitrnn train --threads 1`
/// with its settings: the same final_loss and weights_checksum, bit for bit.
#[track_caller]
fn assert_row_is_train(row: &[String], shape: &[&str], train_out: &Path) {
    let mut args: Vec<String> = ["train", "--quiet", "--json", "--threads", "1"]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.extend(shape.iter().map(ToString::to_string));
    args.extend([
        "--lags".into(),
        format!("{},{}", row[1], row[2]),
        "--time-step".into(),
        row[3].clone(),
        "--hidden".into(),
        row[4].clone(),
        "--cell".into(),
        row[5].clone(),
        "--seed".into(),
        row[SEED].clone(),
        "--out".into(),
        train_out.display().to_string(),
    ]);
    for (flag, value) in ["--clip", "--adagrad-eps", "--adagrad-init", "--init"]
        .into_iter()
        .zip(&row[OPTIM])
    {
        if value != "off" {
            args.extend([flag.to_string(), value.clone()]);
        }
    }
    let train = bitrnn(&args);
    assert_ok(&train);
    let s: serde_json::Value = serde_json::from_slice(&train.stdout).unwrap();
    let train_loss = s["final_loss"].as_f64().unwrap() as f32;
    let sweep_loss: f32 = row[FINAL_LOSS].parse().unwrap();
    assert_eq!(train_loss.to_bits(), sweep_loss.to_bits(), "{row:?}");
    assert_eq!(
        s["weights_checksum"].as_str().unwrap(),
        row[CHECKSUM],
        "{row:?}"
    );
}

const GRID: [&str; 7] = [
    "--lags",
    "1,2",
    "4,5",
    "--time-steps",
    "5,2",
    "--seeds",
    "2",
];

#[test]
fn rows_are_in_grid_order_and_equal_train_bit_for_bit() {
    let dir = TestDir::new("grid");
    let out = dir.path("sweep");
    let mut extra = GRID.to_vec();
    extra.extend(["--threads", "2"]);
    assert_ok(&sweep(&out, &extra));
    let rows = rows(&out);
    let keys: Vec<String> = rows.iter().map(|r| r[1..=SEED].join(",")).collect();
    assert_eq!(
        keys,
        [
            "1,2,5,6,rnn,0",
            "1,2,5,6,rnn,1",
            "1,2,2,6,rnn,0",
            "1,2,2,6,rnn,1",
            "4,5,5,6,rnn,0",
            "4,5,5,6,rnn,1",
            "4,5,2,6,rnn,0",
            "4,5,2,6,rnn,1",
        ]
    );
    // Each row is `bitrnn train --threads 1` with its settings.
    for row in [&rows[0], &rows[3], &rows[6]] {
        assert_row_is_train(row, &SHAPE, &dir.path("train"));
    }
    // The outputs: a PNG, a summary with one cell per (lags, time_step).
    let png = fs::read(out.join("sweep.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["runs"], 8);
    assert_eq!(json["runs_done"], 8);
    assert_eq!(json["cells"].as_array().unwrap().len(), 4);
    assert_eq!(json["interrupted"], false);
    // One thread, the same rows.
    let one = dir.path("one");
    let mut extra = GRID.to_vec();
    extra.extend(["--threads", "1"]);
    assert_ok(&sweep(&one, &extra));
    assert_eq!(self::rows(&one), rows);
}

#[test]
fn resume_runs_only_what_is_missing() {
    let dir = TestDir::new("resume");
    let out = dir.path("sweep");
    assert_ok(&sweep(&out, &GRID));
    let full = rows(&out);
    // Keep the header and the first five rows: three runs are missing.
    let csv = out.join("sweep.csv");
    let text = fs::read_to_string(&csv).unwrap();
    let kept: Vec<&str> = text.lines().take(6).collect();
    fs::write(&csv, kept.join("\n") + "\n").unwrap();
    let mut args = GRID.to_vec();
    args.push("--resume");
    let stderr = resume(&out, &GRID);
    assert!(stderr.contains("5 already in"), "{stderr}");
    assert!(stderr.contains("3 run(s) trained"), "{stderr}");
    assert_eq!(rows(&out), full);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(
        (json["runs_trained"].clone(), json["runs_resumed"].clone()),
        (3.into(), 5.into())
    );
    // Everything done: nothing runs.
    let again = sweep(&out, &args);
    assert_ok(&again);
    assert_eq!(rows(&out), full);
    // A corrupt sweep.csv is refused with one line, and left as it was.
    let bad = text.replacen(",adagrad,", ",adagrad,extra,", 1);
    fs::write(&csv, &bad).unwrap();
    let refused = sweep(&out, &args);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("sweep.csv: line 2: 31 fields"), "{stderr}");
    assert_eq!(fs::read_to_string(&csv).unwrap(), bad);
}

/// `--cells`: the rows of each cell in grid order (hidden, cell, lags, time_step, seed), a
/// gated cell's row equal to `bitrnn train --threads 1 --cell ...` bit for bit, the cell in
/// sweep.json, and --resume matching on the cell.
#[test]
fn gated_cell_rows_equal_train_with_that_cell_bit_for_bit() {
    let dir = TestDir::new("cells");
    let out = dir.path("sweep");
    let grid = [
        "--lags",
        "1,2",
        "--time-steps",
        "5",
        "--seeds",
        "2",
        "--cells",
        "gru,rnn,lstm",
    ];
    assert_ok(&sweep(&out, &grid));
    let rows = rows(&out);
    let keys: Vec<String> = rows.iter().map(|r| r[5..=SEED].join(",")).collect();
    assert_eq!(
        keys,
        ["gru,0", "gru,1", "rnn,0", "rnn,1", "lstm,0", "lstm,1"]
    );
    for row in [&rows[1], &rows[4]] {
        assert_row_is_train(row, &SHAPE, &dir.path("train"));
    }
    // The cells differ: a gated cell's weights are not the rnn's.
    assert_ne!(rows[0][CHECKSUM], rows[2][CHECKSUM]);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(
        json["cell_types"],
        serde_json::json!(["gru", "rnn", "lstm"])
    );
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
    assert_eq!(cells[2]["cell"], "lstm");
    assert_eq!(cells[2]["runs"], 2);
    // --resume matches on the cell: two of the three cells, in another order, are all done.
    let mut more = grid.to_vec();
    more[7] = "lstm,gru";
    let stderr = resume(&out, &more);
    assert!(stderr.contains("4 already in"), "{stderr}");
    assert!(stderr.contains("0 run(s) trained"), "{stderr}");
}

/// The rows of a sweep.csv in an older format: the first six lines (the header and five
/// runs) with the columns at `drop` removed.
fn old_format(text: &str, drop: &[usize]) -> String {
    let old: Vec<String> = text
        .lines()
        .take(6)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let kept: Vec<&str> = (0..f.len())
                .filter(|i| !drop.contains(i))
                .map(|i| f[i])
                .collect();
            kept.join(",")
        })
        .collect();
    old.join("\n") + "\n"
}

/// A sweep.csv written before `--cells` (no `cell` column) resumes as the rnn cell's rows,
/// one written before `--clip`, `--adagrad-eps`, `--adagrad-init` and `--init` as rows of
/// their defaults, and one written before the data flags as the generator's rows; the
/// rewritten file has every column.
#[test]
fn a_sweep_csv_from_before_cells_resumes_as_rnn() {
    let dir = TestDir::new("old-csv");
    let out = dir.path("sweep");
    assert_ok(&sweep(&out, &GRID));
    let full = rows(&out);
    let csv = out.join("sweep.csv");
    let text = fs::read_to_string(&csv).unwrap();
    let data: Vec<usize> = DATA.chain(HELD_OUT).collect();
    let optim: Vec<usize> = OPTIM.chain(data.iter().copied()).collect();
    for (drop, header_start) in [
        (
            data.clone(),
            "rule,lag_a,lag_b,time_step,hidden,cell,seed,epochs,data_size,batch_size,lr,\
             optimizer,engine,clip,adagrad_eps,adagrad_init,init,final_loss,",
        ),
        (
            optim.clone(),
            "rule,lag_a,lag_b,time_step,hidden,cell,seed,",
        ),
        (
            [vec![5], optim].concat(),
            "rule,lag_a,lag_b,time_step,hidden,seed,",
        ),
    ] {
        // The old format; the last three runs missing.
        let old = old_format(&text, &drop);
        assert!(old.starts_with(header_start), "{old}");
        assert!(!old.contains("data_checksum"), "{old}");
        fs::write(&csv, old).unwrap();
        let stderr = resume(&out, &GRID);
        assert!(stderr.contains("5 already in"), "{stderr}");
        assert!(stderr.contains("3 run(s) trained"), "{stderr}");
        assert_eq!(rows(&out), full);
    }
}

/// min-char-rnn's settings in a sweep: every row is `bitrnn train --threads 1` with them,
/// bit for bit; the rows show them; `--resume` with another `--clip` matches none of the
/// rows (they are other runs) and trains the grid again.
#[test]
fn optimizer_settings_reach_every_run_and_the_resume_key() {
    let dir = TestDir::new("optim");
    let out = dir.path("sweep");
    let min_char = [
        &GRID[..2],
        &["--time-steps", "5", "--seeds", "2"],
        &MIN_CHAR_RNN,
    ]
    .concat();
    assert_ok(&sweep(&out, &min_char));
    let rows = rows(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][OPTIM], ["5", "0.00000001", "0", "normal:0.01"]);
    for row in &rows {
        assert_row_is_train(row, &SHAPE, &dir.path("train"));
    }
    let mut other = min_char.clone();
    let clip = other.iter().position(|&f| f == "--clip").unwrap();
    other[clip + 1] = "0.001";
    let stderr = resume(&out, &other);
    assert!(stderr.contains("2 run(s) trained"), "{stderr}");
    let all = self::rows(&out);
    assert_eq!(all.len(), 4);
    assert_eq!(all[2][OPTIM.start], "0.001");
    assert_ne!(all[2][CHECKSUM], all[0][CHECKSUM]);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["shared"]["clip"], 0.001);
    assert_eq!(json["shared"]["init"], "normal:0.01");
}

#[cfg(unix)]
#[test]
fn ctrl_c_finishes_the_runs_in_flight_and_writes_what_is_done() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = TestDir::new("interrupt");
    let out = dir.path("sweep");
    // 60 runs of about 100 ms each on two threads: still running after 300 ms.
    let grid = [
        "sweep",
        "--data-size",
        "100000",
        "--batch-size",
        "1000",
        "--epochs",
        "40",
        "--lags",
        "1..=6",
        "--time-steps",
        "2,5",
        "--seeds",
        "5",
        "--threads",
        "2",
        "--out",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitrnn"))
        .args(grid)
        .arg(&out)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.starts_with("bitrnn sweep: 60 runs"), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let done = rows(&out);
    assert!(!done.is_empty() && done.len() < 60, "{} rows", done.len());
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    assert_eq!(json["runs_done"], done.len());
    assert!(out.join("sweep.png").is_file());
    // --resume runs the rest.
    let rest = bitrnn(&[&grid[..], &[out.to_str().unwrap(), "--resume", "--quiet"]].concat());
    assert_ok(&rest);
    assert_eq!(rows(&out).len(), 60);
    assert_eq!(rows(&out)[..done.len()], done[..]);
}

/// The acceptance check at the seed's full shape: the default sweep's row for lags 1,2 and
/// time_step 5 is `bitrnn train --threads 1 --seed S` for each of the five seeds.
#[test]
fn the_seed_row_equals_train_for_every_seed() {
    let dir = TestDir::new("seed-row");
    let out = dir.path("sweep");
    let run = bitrnn(&[
        "sweep",
        "--quiet",
        "--lags",
        "1,2",
        "--time-steps",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ok(&run);
    let rows = rows(&out);
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert_row_is_train(row, &[], &dir.path("train"));
        assert_eq!(
            row[LEARNED], "true",
            "the seed rule is learned at time_step 5: {row:?}"
        );
    }
}
