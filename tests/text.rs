//! Training on your own sequences (`--text`, `--inputs`/`--targets`, `--valid`), end to end:
//!
//! - a character model of a small repetitive text learns it (the loss and the held-out loss
//!   fall well below the text's unigram entropy) with every cell;
//! - the weights are the same for any `--threads` (the symbols' path through the shards and
//!   the reduction), and a run resumed from its checkpoint is bit for bit the run that was
//!   never stopped, the alphabet carried in the checkpoint;
//! - the scalar engine (the reference in f32) and the SIMD engine agree on a text run;
//! - `.npy` ids with `V != C` train;
//! - bad data and flags are refused on one line naming them, with exit 2.

use std::fs;

use bitrnn::config::{Cell, Engine, TrainSettings};
use bitrnn::planes::TrainData;
use bitrnn::source::{self, DataSource};
use bitrnn::train::Trainer;
use serde_json::Value;

mod common;
use common::{TestDir, bitrnn, text};

fn summary(dir: &TestDir) -> Value {
    serde_json::from_slice(&fs::read(dir.path("out/summary.json")).unwrap()).unwrap()
}

fn run_ok(args: &[String]) {
    let out = bitrnn(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_string()).collect()
}

/// Every cell learns the text: the final training loss and the held-out loss are well below
/// the unigram entropy (the loss of knowing only the bytes' frequencies).
#[test]
fn a_character_model_learns_a_text() {
    let dir = TestDir::new("learns");
    let file = dir.write("text.txt", &text(60_000));
    for cell in ["rnn", "gru", "lstm"] {
        run_ok(&args(&[
            "train",
            "--text",
            file.to_str().unwrap(),
            "--cell",
            cell,
            "--hidden",
            "32",
            "--time-step",
            "10",
            "--batch-size",
            "1000",
            "--valid",
            "0.1",
            "--epochs",
            "8",
            "--threads",
            "2",
            "--quiet",
            "--out",
            dir.path("out").to_str().unwrap(),
        ]));
        let s = summary(&dir);
        let unigram = s["reference_levels"]["unigram"].as_f64().unwrap();
        let final_loss = s["final_loss"].as_f64().unwrap();
        let held = s["held_out"]["final_loss"].as_f64().unwrap();
        assert_eq!(s["config"]["source"], "text");
        assert_eq!(s["held_out"]["epochs"].as_array().unwrap().len(), 8);
        // 14 distinct bytes: the unigram entropy is about 2.4 nats; within a word the next
        // byte is certain, so a model that learned the words is far below it.
        assert!(unigram > 2.0, "{cell}: unigram entropy {unigram}");
        assert!(
            final_loss < 0.6 * unigram && held < 0.6 * unigram,
            "{cell}: loss {final_loss}, held-out {held}, unigram {unigram}"
        );
        let csv = fs::read_to_string(dir.path("out/loss.csv")).unwrap();
        assert!(csv.starts_with("step,epoch,loss,valid_loss,valid_accuracy\n"));
        assert_eq!(csv.lines().filter(|l| !l.ends_with(",,")).count(), 1 + 8);
    }
}

/// The settings and data of a small text run.
fn text_run(
    dir: &TestDir,
    cell: Cell,
    threads: usize,
    engine: Engine,
) -> (TrainSettings, TrainData) {
    let file = dir.write("t.txt", &text(20_000));
    let settings = TrainSettings {
        batch_size: 400,
        time_step: 8,
        hidden: 19,
        cell,
        epochs: 2,
        threads,
        engine,
        ..TrainSettings::SEED
    };
    let source = DataSource::Text {
        path: file,
        all_bytes: false,
    };
    let (settings, data) = source::load(settings, &source, false, (None, None)).unwrap();
    (settings, data.train)
}

fn trained(dir: &TestDir, cell: Cell, threads: usize, engine: Engine) -> Trainer {
    let (settings, data) = text_run(dir, cell, threads, engine);
    let cfg = bitrnn::config::TrainConfig::new(settings).unwrap();
    let params = bitrnn::model::init_params(cfg.init, cfg.layout(), cfg.seed);
    let mut t = Trainer::with_params(cfg.clone(), data, params).unwrap();
    t.set_max_team(threads);
    t.run(cfg.epochs * cfg.windows_per_epoch(), |_| true)
        .unwrap();
    t
}

#[test]
fn any_thread_count_gives_the_same_weights() {
    let dir = TestDir::new("threads");
    for cell in Cell::ALL {
        let one = trained(&dir, cell, 1, Engine::Simd);
        for threads in [2, 3] {
            let other = trained(&dir, cell, threads, Engine::Simd);
            assert_eq!(
                bitrnn::model::checksum(one.params()),
                bitrnn::model::checksum(other.params()),
                "{cell:?}: --threads {threads}"
            );
        }
    }
}

/// The scalar reference (f32) and the SIMD kernels train the same model on a text: after two
/// epochs (100 updates) their weights are within a few 1e-4 of each other.
#[test]
fn scalar_and_simd_engines_agree() {
    let dir = TestDir::new("engines");
    for cell in Cell::ALL {
        let simd = trained(&dir, cell, 1, Engine::Simd);
        let scalar = trained(&dir, cell, 1, Engine::Scalar);
        let worst = simd
            .params()
            .data
            .iter()
            .zip(&scalar.params().data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 2e-3,
            "{cell:?}: the engines' weights differ by {worst}"
        );
    }
}

/// `--save` then `--resume` through the binary: the checkpoint keeps the alphabet, and the
/// resumed run's weights are the uninterrupted run's.
#[test]
fn resumed_text_run_is_the_uninterrupted_run() {
    let dir = TestDir::new("resume");
    let file = dir.write("t.txt", &text(30_000));
    let f = file.to_str().unwrap();
    let out = dir.path("out");
    let o = out.to_str().unwrap();
    let common = [
        "--hidden",
        "16",
        "--time-step",
        "10",
        "--batch-size",
        "500",
        "--valid",
        "0.1",
    ];
    let straight = dir.path("straight.safetensors");
    let half = dir.path("half.safetensors");
    let resumed = dir.path("resumed.safetensors");
    let mut a = args(&[
        "train", "--text", f, "--epochs", "4", "--quiet", "--out", o, "--save",
    ]);
    a.push(straight.to_str().unwrap().into());
    a.extend(args(&common));
    run_ok(&a);
    let whole = summary(&dir)["weights_checksum"].clone();
    let mut b = args(&[
        "train", "--text", f, "--epochs", "2", "--quiet", "--out", o, "--save",
    ]);
    b.push(half.to_str().unwrap().into());
    b.extend(args(&common));
    run_ok(&b);
    let ck = bitrnn::checkpoint::load(&half).unwrap();
    let alphabet = ck.alphabet.expect("a text model keeps its alphabet");
    let mut bytes = text(30_000);
    bytes.sort_unstable();
    bytes.dedup();
    assert_eq!(alphabet, bytes, "the sorted set of the text's bytes");
    let mut c = args(&[
        "train", "--text", f, "--epochs", "4", "--quiet", "--out", o, "--save",
    ]);
    c.push(resumed.to_str().unwrap().into());
    c.push("--resume".into());
    c.push(half.to_str().unwrap().into());
    run_ok(&c);
    assert_eq!(summary(&dir)["weights_checksum"], whole);
    // Without --text the resume is refused, naming the flag to give.
    let mut d = args(&["train", "--epochs", "4", "--quiet", "--out", o, "--resume"]);
    d.push(half.to_str().unwrap().into());
    let refused = bitrnn(&d);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--text FILE") && err.lines().count() == 1,
        "{err}"
    );
}

/// `.npy` ids with 300 input symbols (u16) and 7 classes train; `--vocab` bounds the inputs.
#[test]
fn npy_ids_train() {
    let dir = TestDir::new("npy");
    let n = 6_000usize;
    let x: Vec<u16> = (0..n).map(|i| ((i * 7919) % 300) as u16).collect();
    // The class is a function of the input (learnable): x mod 7.
    let y: Vec<u8> = x.iter().map(|&v| (v % 7) as u8).collect();
    let npy = |name: &str, descr: &str, bytes: &[u8], len: usize| {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
        let mut header = dict.into_bytes();
        let total = 10 + header.len() + 1;
        header.resize(header.len() + total.next_multiple_of(64) - total, b' ');
        header.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(bytes);
        dir.write(name, &out)
    };
    let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let xs = npy("x.npy", "<u2", &xb, n);
    let ys = npy("y.npy", "|u1", &y, n);
    run_ok(&args(&[
        "train",
        "--inputs",
        xs.to_str().unwrap(),
        "--targets",
        ys.to_str().unwrap(),
        "--hidden",
        "16",
        "--time-step",
        "5",
        "--batch-size",
        "200",
        "--epochs",
        "6",
        "--lr",
        "0.3",
        "--quiet",
        "--out",
        dir.path("out").to_str().unwrap(),
    ]));
    let s = summary(&dir);
    assert_eq!(s["config"]["vocab"], 300);
    assert_eq!(s["config"]["classes"], 7);
    let unigram = s["reference_levels"]["unigram"].as_f64().unwrap();
    let loss = s["final_loss"].as_f64().unwrap();
    assert!(loss < 0.5 * unigram, "loss {loss}, unigram {unigram}");
}

/// Bad data and data flags: one line naming the input, exit 2, nothing written.
#[test]
fn bad_data_is_refused() {
    let dir = TestDir::new("bad");
    let empty = dir.write("empty.txt", b"");
    let short = dir.write("short.txt", b"abcabcabc");
    let good = dir.write("good.txt", &text(5_000));
    let out = dir.path("out");
    let o = out.to_str().unwrap();
    let missing = dir.path("missing.txt");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            args(&["train", "--text", empty.to_str().unwrap(), "--out", o]),
            "empty.txt",
        ),
        (
            args(&["train", "--text", short.to_str().unwrap(), "--out", o]),
            "short.txt",
        ),
        (
            args(&["train", "--text", missing.to_str().unwrap(), "--out", o]),
            "missing.txt",
        ),
        (
            args(&[
                "train",
                "--text",
                good.to_str().unwrap(),
                "--data-size",
                "1000",
                "--out",
                o,
            ]),
            "--data-size",
        ),
        (
            args(&[
                "train",
                "--text",
                good.to_str().unwrap(),
                "--batch-size",
                "500",
                "--valid",
                "1.5",
                "--out",
                o,
            ]),
            "--valid",
        ),
        (
            args(&[
                "train",
                "--text",
                good.to_str().unwrap(),
                "--batch-size",
                "500",
                "--valid",
                "0.999",
                "--out",
                o,
            ]),
            "--valid",
        ),
        (args(&["train", "--vocab", "10", "--out", o]), "--vocab"),
    ];
    for (a, needle) in cases {
        let r = bitrnn(&a);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{a:?}: {err}");
        assert!(
            err.lines().count() == 1 && err.contains(needle) && !err.contains("panicked"),
            "{a:?}: want one line naming {needle}: {err}"
        );
        assert!(!out.exists(), "{a:?}: wrote {o}");
    }
}
