//! Ctrl-C during `bitrnn train`: the run stops after the window in progress, writes complete
//! outputs and a resumable checkpoint for the steps it ran, and exits with code 130; resuming
//! that checkpoint gives the run that was never interrupted, bit for bit.
#![cfg(unix)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::TestDir;

/// 20 streams of 2000 steps, 400 windows per epoch: a few milliseconds per epoch, so
/// `EPOCHS` take minutes and the run is surely interrupted mid-way.
const SHAPE: [&str; 8] = [
    "--data-size",
    "40000",
    "--batch-size",
    "2000",
    "--hidden",
    "6",
    "--threads",
    "2",
];
const EPOCHS: usize = 50_000;
const WINDOWS_PER_EPOCH: usize = 400;

fn summary(dir: &Path) -> serde_json::Value {
    let text = fs::read_to_string(dir.join("summary.json")).expect("summary.json is written");
    serde_json::from_str(&text).expect("summary.json parses")
}

#[test]
fn ctrl_c_writes_complete_outputs_and_exits_130() {
    let dir = TestDir::new("interrupt");
    let (out, save) = (dir.path("run"), dir.path("run.safetensors"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitrnn"))
        .arg("train")
        .args(SHAPE)
        .args(["--epochs", &EPOCHS.to_string(), "--out"])
        .arg(&out)
        .arg("--save")
        .arg(&save)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .expect("bitrnn starts");
    // The first line on stderr comes once the handler is installed, just before training.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.starts_with("bitrnn train:"), "{first}");
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{first}{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
    assert_eq!(
        rest.lines().last(),
        Some("bitrnn: error: interrupted"),
        "{rest}"
    );

    // The outputs are complete and agree with each other.
    let s = summary(&out);
    let steps = s["steps"].as_u64().unwrap() as usize;
    assert!(
        (1..EPOCHS * WINDOWS_PER_EPOCH).contains(&steps),
        "steps {steps}"
    );
    let csv = fs::read_to_string(out.join("loss.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("step,epoch,loss"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), steps, "one loss.csv row per step");
    for (i, row) in rows.iter().enumerate() {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f.len(), 3, "{row}");
        assert_eq!(f[0].parse::<usize>().unwrap(), i);
        assert!(f[2].parse::<f32>().unwrap().is_finite(), "{row}");
    }
    assert_eq!(
        s["epoch_loss"].as_array().unwrap().len(),
        steps / WINDOWS_PER_EPOCH,
        "epoch_loss covers the complete epochs"
    );
    let png = fs::read(out.join("loss.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "loss.png is a PNG");
    let ck = bitrnn::checkpoint::load(&save).expect("the checkpoint loads");
    assert_eq!(ck.losses.len(), steps);
    assert_eq!(
        ck.progress.epoch * WINDOWS_PER_EPOCH + ck.progress.window,
        steps
    );
    assert_eq!(
        bitrnn::model::checksum(&ck.params),
        s["weights_checksum"].as_str().unwrap()
    );

    // Resuming to the end of the next epoch gives the uninterrupted run of as many epochs.
    let epochs = (ck.progress.epoch + 1).to_string();
    let run = |extra: &[&std::ffi::OsStr], name: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_bitrnn"))
            .arg("train")
            .args(extra)
            .args(["--epochs", &epochs, "--quiet", "--out"])
            .arg(dir.path(name))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        summary(&dir.path(name))
    };
    let resumed = run(&["--resume".as_ref(), save.as_os_str()], "resumed");
    let shape: Vec<&std::ffi::OsStr> = SHAPE.iter().map(|s| s.as_ref()).collect();
    let straight = run(&shape, "straight");
    assert_eq!(resumed["weights_checksum"], straight["weights_checksum"]);
    assert_eq!(resumed["final_loss"], straight["final_loss"]);
    assert_eq!(resumed["epoch_loss"], straight["epoch_loss"]);
}
