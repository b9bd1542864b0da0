//! `bitrnn sweep` through the binary, on tiny grids: the rows in grid order, each row equal
//! to `bitrnn train --threads 1` with its settings (final_loss and weights_checksum, bit for
//! bit), the same CSV for any --threads, --resume running only what is missing, Ctrl-C.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;
use common::{TestDir, bitrnn};

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

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

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
    let keys: Vec<String> = rows.iter().map(|r| r[1..6].join(",")).collect();
    assert_eq!(
        keys,
        [
            "1,2,5,6,0",
            "1,2,5,6,1",
            "1,2,2,6,0",
            "1,2,2,6,1",
            "4,5,5,6,0",
            "4,5,5,6,1",
            "4,5,2,6,0",
            "4,5,2,6,1",
        ]
    );
    // Each row is `bitrnn train --threads 1` with its settings.
    for row in [&rows[0], &rows[3], &rows[6]] {
        let train = bitrnn(&[
            "train",
            "--quiet",
            "--json",
            "--threads",
            "1",
            "--data-size",
            "20000",
            "--batch-size",
            "200",
            "--epochs",
            "2",
            "--lags",
            &format!("{},{}", row[1], row[2]),
            "--time-step",
            &row[3],
            "--seed",
            &row[5],
            "--out",
            dir.path("train").to_str().unwrap(),
        ]);
        assert_ok(&train);
        let s: serde_json::Value = serde_json::from_slice(&train.stdout).unwrap();
        let train_loss = s["final_loss"].as_f64().unwrap() as f32;
        let sweep_loss: f32 = row[12].parse().unwrap();
        assert_eq!(train_loss.to_bits(), sweep_loss.to_bits(), "{row:?}");
        assert_eq!(s["weights_checksum"].as_str().unwrap(), row[14], "{row:?}");
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
    let resumed = bitrnn(
        &[
            vec!["sweep", "--out", out.to_str().unwrap()],
            SHAPE.to_vec(),
            args.clone(),
        ]
        .concat(),
    );
    assert_ok(&resumed);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
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
    let bad = text.replacen("adagrad", "adagrad,extra", 1);
    fs::write(&csv, &bad).unwrap();
    let refused = sweep(&out, &args);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("sweep.csv: line 2: 18 fields"), "{stderr}");
    assert_eq!(fs::read_to_string(&csv).unwrap(), bad);
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
        let train = bitrnn(&[
            "train",
            "--quiet",
            "--json",
            "--threads",
            "1",
            "--seed",
            &row[5],
            "--out",
            dir.path("train").to_str().unwrap(),
        ]);
        assert_ok(&train);
        let s: serde_json::Value = serde_json::from_slice(&train.stdout).unwrap();
        let train_loss = s["final_loss"].as_f64().unwrap() as f32;
        assert_eq!(
            train_loss.to_bits(),
            row[12].parse::<f32>().unwrap().to_bits()
        );
        assert_eq!(s["weights_checksum"].as_str().unwrap(), row[14]);
        assert_eq!(
            row[13], "true",
            "the seed rule is learned at time_step 5: {row:?}"
        );
    }
}
