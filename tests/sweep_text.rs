//! `bitrnn sweep` on your own sequences (`--text`, `--inputs`/`--targets`, `--valid`), through
//! the binary on a tiny text: each row is `bitrnn train --threads 1` with the same flags, bit
//! for bit (final_loss, the held-out loss, weights_checksum); the rows show the data, the
//! held-out scores and the unigram level; the generator's flags are refused with a file;
//! `--resume` refuses a sweep.csv of other data and resumes one of the same data.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;
use common::{TestDir, assert_ok, bitrnn, text};

/// 27 streams of 200 bytes for training, 600 held out; 3 epochs.
const SHAPE: [&str; 6] = ["--batch-size", "200", "--epochs", "3", "--valid", "0.1"];

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(ToString::to_string).collect()
}

#[track_caller]
fn assert_one_line(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.lines().count() == 1 && err.starts_with("bitrnn: error: ") && err.contains(needle),
        "want one line naming {needle}: {err}"
    );
}

/// `sweep --quiet --out OUT` with `data` (the data flags), [`SHAPE`] and `extra`.
fn sweep(out: &Path, data: &[&str], extra: &[&str]) -> Output {
    let mut args = strings(&["sweep", "--quiet", "--out", out.to_str().unwrap()]);
    args.extend(strings(data));
    args.extend(strings(&SHAPE));
    args.extend(strings(extra));
    bitrnn(&args)
}

/// sweep.csv as maps from column name to value, one per row.
fn rows(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), header.len(), "{l}");
            header
                .iter()
                .cloned()
                .zip(f.iter().map(|v| v.to_string()))
                .collect()
        })
        .collect()
}

/// Each row of a text sweep (two hidden sizes, two cells, two time steps, two seeds) is
/// `bitrnn train --threads 1` with the same flags on the same text, bit for bit; the rows
/// and sweep.json show the data, the held-out scores and the unigram level.
#[test]
fn text_rows_equal_train_bit_for_bit() {
    let dir = TestDir::new("rows");
    let book = dir.write("book.txt", &text(6_000));
    let book = book.to_str().unwrap();
    let out = dir.path("sweep");
    let grid = [
        "--hidden",
        "4,8",
        "--cells",
        "rnn,gru",
        "--time-steps",
        "5,10",
        "--seeds",
        "2",
        "--threads",
        "2",
    ];
    assert_ok(&sweep(&out, &["--text", book], &grid));
    let rows = rows(&out);
    assert_eq!(rows.len(), 16);
    let keys: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["hidden"], r["cell"], r["time_step"], r["seed"]
            )
        })
        .collect();
    assert_eq!(
        keys[..5],
        [
            "4 rnn 5 0",
            "4 rnn 5 1",
            "4 rnn 10 0",
            "4 rnn 10 1",
            "4 gru 5 0"
        ]
    );
    for r in &rows {
        assert_eq!(r["data"], format!("text {book}"));
        assert_eq!((r["rule"].as_str(), r["lag_a"].as_str()), ("", ""));
        assert_eq!(r["data_checksum"].len(), 16);
        assert_eq!(
            (r["vocab"].as_str(), r["data_size"].as_str()),
            ("14", "5999")
        );
        assert!(!r["held_out_loss"].is_empty() && !r["held_out_accuracy"].is_empty());
    }
    for r in [&rows[0], &rows[7], &rows[13]] {
        let train_out = dir.path("train");
        let mut args = strings(&[
            "train",
            "--quiet",
            "--json",
            "--threads",
            "1",
            "--text",
            book,
        ]);
        args.extend(strings(&SHAPE));
        for flag in ["hidden", "cell", "time_step", "seed"] {
            args.extend([format!("--{}", flag.replace('_', "-")), r[flag].clone()]);
        }
        args.extend(["--out".into(), train_out.display().to_string()]);
        let train = bitrnn(&args);
        assert_ok(&train);
        let s: serde_json::Value = serde_json::from_slice(&train.stdout).unwrap();
        let bits = |v: &serde_json::Value| (v.as_f64().unwrap() as f32).to_bits();
        let parsed = |k: &str| r[k].parse::<f32>().unwrap().to_bits();
        assert_eq!(bits(&s["final_loss"]), parsed("final_loss"), "{r:?}");
        assert_eq!(
            bits(&s["held_out"]["final_loss"]),
            parsed("held_out_loss"),
            "{r:?}"
        );
        assert_eq!(
            bits(&s["held_out"]["accuracy"][2]),
            parsed("held_out_accuracy"),
            "{r:?}"
        );
        assert_eq!(
            s["weights_checksum"].as_str().unwrap(),
            r["weights_checksum"],
            "{r:?}"
        );
        let unigram = s["reference_levels"]["unigram"].as_f64().unwrap();
        assert_eq!(r["nothing_learned"].parse::<f64>().unwrap(), unigram);
        let learned = r["held_out_loss"].parse::<f64>().unwrap() < 0.9 * unigram;
        assert_eq!(r["learned"], learned.to_string());
    }
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["data"], format!("text {book}"));
    assert_eq!(json["judged"], "held_out_loss");
    assert_eq!(json["cells"].as_array().unwrap().len(), 8);
    assert!(json["cells"][0]["median_held_out_loss"].as_f64().unwrap() > 0.0);
    assert!(json.get("rule").is_none());
    let png = fs::read(out.join("sweep.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

/// `.npy` ids sweep too, and the generator's flags are refused with a file, one line each.
#[test]
fn npy_ids_sweep_and_generator_flags_are_refused() {
    let dir = TestDir::new("npy");
    let book = dir.write("book.txt", &text(3_000));
    let book = book.to_str().unwrap();
    for (flag, value) in [
        ("--lags", "1,2"),
        ("--rule", "r2rt"),
        ("--data-size", "1000"),
    ] {
        let refused = sweep(&dir.path("out"), &["--text", book, flag, value], &[]);
        assert_one_line(
            &refused,
            &format!("{flag}: a setting of the generated bits"),
        );
    }
    let vocab = sweep(&dir.path("out"), &["--vocab", "10"], &[]);
    assert_one_line(&vocab, "--vocab and --classes");
    assert!(!dir.path("out").exists());
    // `bitrnn generate` writes the generator's bits as x.npy and y.npy: a two-symbol sweep.
    let data = dir.path("bits");
    let data = data.to_str().unwrap();
    assert_ok(&bitrnn(&["generate", "--data-size", "4000", "--out", data]));
    let out = dir.path("sweep");
    assert_ok(&sweep(
        &out,
        &["--data", data],
        &["--hidden", "4", "--time-steps", "5", "--seeds", "1"],
    ));
    let rows = rows(&out);
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["data"].starts_with("npy "), "{:?}", rows[0]);
    assert_eq!(
        (rows[0]["vocab"].as_str(), rows[0]["classes"].as_str()),
        ("2", "2")
    );
}

/// `--resume` on the same text (moved: the data are matched by their checksum) runs nothing
/// again; on another text, or without the text, it is refused with one line.
#[test]
fn resume_matches_the_data() {
    let dir = TestDir::new("resume");
    let book = dir.write("book.txt", &text(3_000));
    let out = dir.path("sweep");
    let grid = ["--hidden", "4", "--time-steps", "5,10", "--seeds", "1"];
    assert_ok(&sweep(&out, &["--text", book.to_str().unwrap()], &grid));
    let first = rows(&out);
    let moved = dir.path("moved.txt");
    fs::rename(&book, &moved).unwrap();
    let mut more = grid.to_vec();
    more.push("--resume");
    let again = sweep(&out, &["--text", moved.to_str().unwrap()], &more);
    assert_ok(&again);
    assert_eq!(rows(&out), first);
    let mut other = text(3_000);
    other[100] = b'x';
    let other = dir.write("other.txt", &other);
    let refused = sweep(&out, &["--text", other.to_str().unwrap()], &more);
    assert_one_line(&refused, "--resume: ");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("holds runs on text"));
    let generator = bitrnn(&["sweep", "--resume", "--out", out.to_str().unwrap()]);
    assert_one_line(&generator, "not on generator");
    assert_eq!(rows(&out), first);
}
