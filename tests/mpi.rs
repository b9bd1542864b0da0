//! `bitrnn train` under `mpirun` (feature `mpi`, OpenMPI installed): the weights of 1 to 4
//! ranks, each with 1 or 2 threads, are one process's bit for bit; a checkpoint resumes
//! under another rank count; a rank that fails its checks, or dies, ends the whole job.
#![cfg(feature = "mpi")]

mod common;

use common::{MIN_CHAR_RNN, TestDir, bitrnn};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mpirun -np N bitrnn ARGS` (root allowed: CI runs as root; oversubscribed: more ranks
/// than cores).
fn mpirun_cmd(np: usize, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(np.to_string())
        .arg(env!("CARGO_BIN_EXE_bitrnn"))
        .args(args)
        .env_remove("RUST_BACKTRACE");
    c
}

fn mpirun(np: usize, args: &[String]) -> Output {
    mpirun_cmd(np, args).output().expect("mpirun runs")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// The `weights_checksum` of a successful run's `--json` summary.
fn checksum(out: &Output) -> String {
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().expect("a summary line");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON summary");
    v["weights_checksum"].as_str().unwrap().to_owned()
}

/// One process's checksum, then `np` x `--threads` under mpirun.
fn identical(name: &str, shape: &[&str], ranks: &[usize]) {
    let dir = TestDir::new(name);
    let out = dir.path("out");
    let mut args = strings(&["train", "--quiet", "--json", "--out"]);
    args.push(out.display().to_string());
    args.extend(strings(shape));
    let want = checksum(&bitrnn(&args));
    for &np in ranks {
        for threads in ["1", "2"] {
            let mut a = args.clone();
            a.extend(strings(&["--threads", threads]));
            assert_eq!(
                checksum(&mpirun(np, &a)),
                want,
                "{name}: -np {np} --threads {threads}"
            );
        }
    }
}

#[test]
fn ranks_give_the_single_process_weights_on_the_defaults() {
    identical("defaults", &["--epochs", "2"], &[1, 2, 3, 4]);
}

#[test]
fn ranks_give_the_single_process_weights_at_hidden_64_with_1000_streams() {
    identical(
        "h64",
        &[
            "--hidden",
            "64",
            "--data-size",
            "200000",
            "--batch-size",
            "200",
            "--epochs",
            "1",
        ],
        &[2, 3, 4],
    );
}

/// The ranks step with the run's clip, Adagrad epsilon and accumulator start, from its
/// initial weights: min-char-rnn's settings, and a clip small enough to bind.
#[test]
fn optimizer_settings_give_the_single_process_weights() {
    identical(
        "min-char",
        &[&MIN_CHAR_RNN[..], &["--epochs", "1"]].concat(),
        &[2, 3],
    );
    identical(
        "clip",
        &["--init", "pytorch", "--clip", "0.001", "--epochs", "1"],
        &[2],
    );
}

#[test]
fn gated_cells_give_the_single_process_weights() {
    for cell in ["gru", "lstm"] {
        identical(
            cell,
            &["--cell", cell, "--hidden", "9", "--epochs", "1"],
            &[2, 3],
        );
    }
}

#[test]
fn odd_shapes_and_rank_counts_that_do_not_divide_the_shards() {
    // 333 streams (not whole lane groups), windows of 7, hidden 9; 3 ranks of 8 or 4 shards,
    // 5 ranks (more than some shapes' shards).
    identical(
        "odd",
        &[
            "--hidden",
            "9",
            "--data-size",
            "99999",
            "--batch-size",
            "300",
            "--time-step",
            "7",
            "--epochs",
            "1",
            "--optimizer",
            "sgd",
        ],
        &[3],
    );
    identical(
        "tiny",
        &[
            "--data-size",
            "12000",
            "--batch-size",
            "400",
            "--epochs",
            "1",
        ],
        &[5],
    );
}

#[test]
fn a_checkpoint_resumes_under_another_rank_count() {
    let dir = TestDir::new("resume");
    let ck = dir.path("ck.safetensors");
    let base = |epochs: &str| {
        let mut a = strings(&[
            "train",
            "--quiet",
            "--json",
            "--hidden",
            "16",
            "--data-size",
            "100000",
            "--batch-size",
            "500",
            "--epochs",
            epochs,
            "--out",
        ]);
        a.push(dir.path("out").display().to_string());
        a
    };
    let want = checksum(&bitrnn(&base("2")));
    let mut first = base("1");
    first.extend(["--save".into(), ck.display().to_string()]);
    checksum(&mpirun(2, &first));
    let mut rest = base("2");
    rest.extend(["--resume".into(), ck.display().to_string()]);
    assert_eq!(checksum(&mpirun(3, &rest)), want, "2 ranks, then 3");
    assert_eq!(checksum(&bitrnn(&rest)), want, "2 ranks, then 1 process");
}

#[test]
fn a_rank_that_fails_its_checks_stops_every_rank_with_one_line() {
    let dir = TestDir::new("refuse");
    let out = dir.path("out").display().to_string();
    let missing = dir.path("missing.safetensors").display().to_string();
    // MPMD: rank 1 alone is given a checkpoint that does not exist.
    let bin = env!("CARGO_BIN_EXE_bitrnn");
    let o = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "1", bin])
        .args(["train", "--quiet", "--out", &out])
        .args([":", "-np", "1", bin])
        .args(["train", "--quiet", "--out", &out, "--resume", &missing])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("bitrnn: error:"))
        .collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert_eq!(lines[0], lines[1]);
    assert!(lines[0].contains("rank 1: --resume"), "{stderr}");
    assert!(!dir.path("out").join("summary.json").exists());
}

#[test]
fn a_killed_rank_ends_the_job() {
    let dir = TestDir::new("killed");
    let out = dir.path("out");
    let mut args = strings(&[
        "train", "--quiet", "--hidden", "32", "--epochs", "1000", "--out",
    ]);
    args.push(out.display().to_string());
    let mut child = mpirun_cmd(2, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The ranks are mpirun's children; kill one once both run.
    let start = Instant::now();
    let ranks = loop {
        std::thread::sleep(Duration::from_millis(200));
        let o = Command::new("pgrep")
            .args(["-P", &child.id().to_string(), "bitrnn"])
            .output()
            .unwrap();
        let pids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if pids.len() == 2 {
            break pids;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "ranks did not start"
        );
    };
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill")
        .args(["-KILL", &ranks[1]])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the job hangs after a rank was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    assert!(!out.join("summary.json").exists());
}
