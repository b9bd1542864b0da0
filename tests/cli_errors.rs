//! Bad input, run as the binary: every bad flag, path or checkpoint file exits with code 2
//! and no panic; our own errors are exactly one line on stderr naming the input (the flag, or
//! the file's path); clap's parse errors name the flag or value; and a failing command leaves
//! no output behind. Every failing command exits before any work, so this runs in a second or
//! two (one tiny training run makes the checkpoint the bad files are built from).

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;
use common::{TestDir, bitrnn};

/// Who reports the error: bitrnn's validation (one line `bitrnn: error: ...`) or clap's parser
/// (its own format, several lines).
#[derive(Clone, Copy, Debug, PartialEq)]
enum By {
    Us,
    Clap,
}

/// Why `out` is not a clean refusal naming `needle`, if it is not.
fn refusal_problem(out: &Output, by: By, needle: &str) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Some(format!("panicked: {stderr}"));
    }
    if code != Some(2) {
        return Some(format!("exit code {code:?}, want 2; stderr: {stderr}"));
    }
    if !out.stdout.is_empty() {
        return Some(format!(
            "wrote to stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let first = stderr.lines().next().unwrap_or("");
    match by {
        By::Us => {
            if stderr.lines().count() != 1 || !first.starts_with("bitrnn: error: ") {
                return Some(format!("want one line `bitrnn: error: ...`, got: {stderr}"));
            }
            if !first.contains(needle) {
                return Some(format!("the message does not name {needle:?}: {first}"));
            }
        }
        // clap's format: `error: ...` naming the argument, a usage line, a hint (or the help
        // when no command is given).
        By::Clap => {
            if !stderr.contains(needle) {
                return Some(format!("clap's message does not name {needle:?}: {stderr}"));
            }
        }
    }
    None
}

#[track_caller]
fn assert_refused(out: &Output, by: By, needle: &str, what: &str) {
    if let Some(problem) = refusal_problem(out, by, needle) {
        panic!("{what}: {problem}");
    }
}

/// Runs every case and reports all failures at once.
fn check_all(cases: &[(Vec<String>, By, String)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(args, by, needle)| {
            refusal_problem(&bitrnn(args), *by, needle).map(|p| format!("{args:?}: {p}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Runs `command ARGS --out DIR/outI` for every case, checks each refusal, and that none of
/// them left anything in `dir`.
fn check_all_with_out(
    command: &str,
    cases: impl IntoIterator<Item = (Vec<String>, By, String)>,
    dir: &TestDir,
) {
    let cases: Vec<_> = cases
        .into_iter()
        .enumerate()
        .map(|(i, (args, by, needle))| {
            let mut full = vec![command.to_string()];
            full.extend(args);
            full.extend([
                "--out".into(),
                dir.path(&format!("out{i}")).display().to_string(),
            ]);
            (full, by, needle)
        })
        .collect();
    check_all(&cases);
    let left: Vec<_> = fs::read_dir(&dir.0).unwrap().collect();
    assert!(left.is_empty(), "failing commands left {left:?}");
}

fn case(args: &[&str], by: By, needle: &str) -> (Vec<String>, By, String) {
    (
        args.iter().map(|s| (*s).to_string()).collect(),
        by,
        needle.to_string(),
    )
}

/// Bad `train` flags: refused, and the fresh `--out` given with each is never created.
#[test]
fn bad_train_flags_are_refused_and_write_nothing() {
    use By::{Clap, Us};
    let dir = TestDir::new("train-flags");
    let cases = [
        case(
            &["--data-size", "18446744073709551615"],
            Us,
            "--data-size 18446744073709551615",
        ),
        case(
            &["--data-size", "18446744073709551616"],
            Clap,
            "--data-size",
        ),
        case(&["--data-size", "0"], Us, "--data-size 0"),
        case(&["--data-size", "1999"], Us, "--data-size 1999"),
        case(&["--data-size", "-5"], Clap, "'-5'"),
        case(&["--hidden", "0"], Us, "--hidden 0"),
        case(&["--hidden", "4097"], Us, "--hidden 4097"),
        case(&["--hidden", "six"], Clap, "--hidden"),
        case(&["--lr", "nan"], Us, "--lr NaN"),
        case(&["--lr", "inf"], Us, "--lr inf"),
        case(&["--lr=-1"], Us, "--lr -1"),
        case(&["--lr", "0"], Us, "--lr 0"),
        case(&["--lr", "-1"], Clap, "'-1'"),
        case(&["--lr", "1e40"], Clap, "'1e40'"),
        case(&["--lr", "1e-50"], Clap, "'1e-50'"),
        case(&["--lags", "0,1"], Us, "--lags 0,1"),
        case(&["--lags", "3,3"], Us, "--lags 3,3"),
        case(&["--lags", "1"], Clap, "--lags"),
        case(&["--lags", "a,b"], Clap, "--lags"),
        case(&["--lags", "1,2,3"], Clap, "--lags"),
        case(&["--lags", "1,500000"], Us, "--lags 1,500000"),
        case(&["--rule", "r2rt", "--lags", "3,3"], Us, "--lags 3,3"),
        case(&["--rule", "r2rt", "--lags", "0,8"], Us, "--lags 0,8"),
        case(
            &["--rule", "r2rt", "--lags", "3,500000"],
            Us,
            "--lags 3,500000",
        ),
        // r2rt's default lags (3,8) need more than 8 samples.
        case(
            &["--rule", "r2rt", "--data-size", "8", "--batch-size", "8"],
            Us,
            "--lags 3,8",
        ),
        case(&["--rule", "rnn"], Clap, "rnn"),
        case(&["--rule", "R2RT"], Clap, "R2RT"),
        case(&["--rule"], Clap, "--rule"),
        case(&["--time-step", "0"], Us, "--time-step 0"),
        case(&["--time-step", "2001"], Us, "--time-step 2001"),
        case(&["--batch-size", "0"], Us, "--batch-size 0"),
        case(&["--batch-size", "600000"], Us, "--data-size 500000"),
        case(&["--threads", "0"], Us, "--threads 0"),
        case(&["--threads", "1025"], Us, "--threads 1025"),
        case(&["--epochs", "0"], Us, "--epochs 0"),
        case(
            &["--epochs", "18446744073709551615"],
            Us,
            "--epochs 18446744073709551615",
        ),
        case(&["--seed", "-1"], Clap, "'-1'"),
        case(
            &["--clip", "0"],
            Us,
            "--clip 0: must be a finite number above 0",
        ),
        case(&["--clip=-5"], Us, "--clip -5"),
        case(&["--clip", "nan"], Us, "--clip NaN"),
        case(&["--clip", "inf"], Us, "--clip inf"),
        case(&["--clip", "five"], Clap, "--clip"),
        case(&["--clip", "1e40"], Clap, "'1e40'"),
        case(&["--adagrad-eps=-1e-8"], Us, "--adagrad-eps -0.00000001"),
        case(&["--adagrad-eps", "inf"], Us, "--adagrad-eps inf"),
        case(&["--adagrad-eps", "x"], Clap, "--adagrad-eps"),
        case(&["--adagrad-init=-0.1"], Us, "--adagrad-init -0.1"),
        case(&["--adagrad-init", "nan"], Us, "--adagrad-init NaN"),
        case(
            &["--adagrad-init", "0"],
            Us,
            "--adagrad-init 0 with --adagrad-eps 0: Adagrad would divide by zero",
        ),
        case(&["--init", "normal:0"], Us, "--init normal:0: STD must be"),
        case(&["--init", "normal:-0.01"], Us, "--init normal:-0.01"),
        case(&["--init", "normal:inf"], Us, "--init normal:inf"),
        case(&["--init", "glorot"], Clap, "'glorot'"),
        case(&["--init", "normal:"], Clap, "normal:STD"),
        case(&["--optimizer", "adam"], Clap, "adam"),
        case(&["--engine", "gpu"], Clap, "gpu"),
        case(&["--frob"], Clap, "--frob"),
        // Memory: 2^36 samples x hidden 4096 (TiB of activations); one stream of 2^36 steps
        // (as many losses); both far beyond any machine's memory and the 64 GiB cap.
        case(
            &["--hidden", "4096", "--data-size", "68719476736"],
            Us,
            "memory",
        ),
        case(
            &[
                "--data-size",
                "68719476736",
                "--batch-size",
                "68719476736",
                "--time-step",
                "1",
            ],
            Us,
            "memory",
        ),
    ];
    check_all_with_out("train", cases, &dir);
}

/// Bad `sweep` grids: an empty axis, a repeated value, a lag beyond the data, too many runs,
/// a sweep of hours without `--yes`. Refused before any run, writing nothing.
#[test]
fn bad_sweep_grids_are_refused_and_write_nothing() {
    use By::{Clap, Us};
    let dir = TestDir::new("sweep-flags");
    let cases = [
        case(&["--time-steps", ""], Clap, "--time-steps"),
        case(&["--hidden", "4..=1"], Clap, "empty range"),
        case(&["--lags"], Clap, "--lags"),
        case(&["--seeds", "0"], Us, "--seeds 0"),
        case(
            &["--time-steps", "1,2,2"],
            Us,
            "--time-steps: 2 appears twice",
        ),
        case(&["--lags", "1,2", "1..=3"], Us, "--lags: 1,2 appears twice"),
        case(&["--hidden", "6,6"], Us, "--hidden: 6 appears twice"),
        case(
            &["--cells", "gru,lstm,gru"],
            Us,
            "--cells: gru appears twice",
        ),
        case(&["--cells", ""], Us, "--cells: empty"),
        case(&["--cells", "tanh"], Clap, "rnn, gru or lstm"),
        case(&["--lags", "1,500000"], Us, "--lags 1,500000"),
        case(
            &[
                "--lags",
                "1..=3",
                "--data-size",
                "3",
                "--batch-size",
                "1",
                "--time-steps",
                "1",
            ],
            Us,
            "--lags 2,3",
        ),
        case(&["--lags", "3,3"], Us, "--lags 3,3"),
        case(&["--lags", "1..4"], Clap, "A..=B"),
        case(&["--lags", "1..=4+0"], Clap, "gap"),
        case(&["--time-steps", "0,5"], Us, "--time-steps 0"),
        case(&["--time-steps", "2001"], Us, "--time-steps 2001"),
        case(&["--hidden", "0"], Us, "--hidden 0"),
        case(&["--clip", "0"], Us, "--clip 0"),
        case(&["--adagrad-eps=-1"], Us, "--adagrad-eps -1"),
        case(
            &["--adagrad-init", "0"],
            Us,
            "--adagrad-init 0 with --adagrad-eps 0",
        ),
        case(&["--init", "normal:0"], Us, "--init normal:0"),
        case(&["--init", "xavier"], Clap, "'xavier'"),
        case(
            &["--time-steps", "1..=1000000"],
            Clap,
            "more than the 100000",
        ),
        case(
            &[
                "--lags",
                "1..=100",
                "--time-steps",
                "1..=100",
                "--seeds",
                "100",
            ],
            Us,
            "= 1000000 runs",
        ),
        case(&["--seeds", "1000000"], Us, "--seeds 1000000"),
        case(&["--epochs", "0"], Us, "--epochs 0"),
        case(&["--threads", "0"], Us, "--threads 0"),
        case(&["--epochs", "100000"], Us, "pass --yes"),
    ];
    check_all_with_out("sweep", cases, &dir);
}

/// Every other command's bad flags, and bad command lines.
#[test]
fn bad_flags_of_other_commands_are_refused() {
    use By::{Clap, Us};
    let dir = TestDir::new("other-flags");
    let out = dir.path("gen").display().to_string();
    let out = out.as_str();
    check_all(&[
        case(&[], Clap, "Usage"),
        case(&["frobnicate"], Clap, "frobnicate"),
        case(&["--hidden", "6"], Clap, "--hidden"),
        case(
            &["generate", "--data-size", "0", "--out", out],
            Us,
            "--data-size 0",
        ),
        case(
            &["generate", "--lags", "5,5", "--out", out],
            Us,
            "--lags 5,5",
        ),
        case(
            &[
                "generate",
                "--data-size",
                "100",
                "--lags",
                "1,100",
                "--out",
                out,
            ],
            Us,
            "--lags 1,100",
        ),
        case(
            &["generate", "--data-size", "68719476737", "--out", out],
            Us,
            "--data-size 68719476737",
        ),
        case(&["bench", "--hidden", "0,6"], Us, "--hidden 0"),
        case(&["bench", "--hidden", "6,4097"], Us, "--hidden 4097"),
        case(&["bench", "--threads", "1,0"], Us, "--threads 0"),
        case(&["bench", "--hidden", ","], Clap, "--hidden"),
        case(&["bench", "--streams", "0"], Us, "--streams 0"),
        case(
            &["bench", "--plot", "scaling.svg"],
            Us,
            "--plot scaling.svg",
        ),
        case(
            &["bench", "--plot", "/no/such/dir/s.png"],
            Us,
            "--plot /no/such/dir/s.png",
        ),
        case(&["bench", "--time-step", "0"], Us, "--time-step 0"),
        case(&["bench", "--seconds", "nan"], Us, "--seconds NaN"),
        case(&["bench", "--seconds", "-1"], Us, "--seconds -1"),
        case(&["bench", "--repeats", "0"], Us, "--repeats 0"),
        case(&["verify", "--hidden", "0"], Us, "--hidden 0"),
        case(&["verify", "--hidden", "513"], Us, "--hidden 513"),
        case(&["verify", "--streams", "0"], Us, "--streams 0"),
        case(&["verify", "--streams", "100001"], Us, "--streams 100001"),
        case(&["verify", "--time-step", "1001"], Us, "--time-step 1001"),
        case(&["verify", "--steps", "0"], Us, "--steps 0"),
        case(
            &[
                "verify",
                "--streams",
                "100000",
                "--hidden",
                "512",
                "--time-step",
                "1000",
            ],
            Us,
            "memory",
        ),
        case(&["profile", "--seconds", "0"], Us, "--seconds 0"),
        case(&["profile", "--seconds", "inf"], Us, "--seconds inf"),
        case(&["profile", "--hidden", "0"], Us, "--hidden 0"),
        case(&["profile", "--lags", "2,2"], Us, "--lags 2,2"),
        case(&["profile", "--clip", "0"], Us, "--clip 0"),
        case(&["profile", "--init", "normal:0"], Us, "--init normal:0"),
        case(&["profile", "--rule", "tf"], Clap, "tf"),
        case(&["generate", "--rule", "r3rt", "--out", out], Clap, "r3rt"),
        case(
            &["generate", "--rule", "r2rt", "--lags", "8,8", "--out", out],
            Us,
            "--lags 8,8",
        ),
        case(
            &[
                "generate",
                "--rule",
                "r2rt",
                "--data-size",
                "8",
                "--out",
                out,
            ],
            Us,
            "--lags 3,8",
        ),
        case(&["eval"], Clap, "--model"),
        case(
            &["eval", "--model", "m", "--text", "t", "--seed", "3"],
            Clap,
            "--seed",
        ),
        case(
            &[
                "eval",
                "--model",
                "m",
                "--data",
                "d",
                "--inputs",
                "x",
                "--targets",
                "y",
            ],
            Clap,
            "--inputs",
        ),
        case(
            &["eval", "--model", "m", "--targets", "y"],
            Clap,
            "--inputs",
        ),
        case(&["sample"], Clap, "--model"),
        case(
            &["sample", "--model", "m", "--length", "0"],
            Us,
            "--length 0",
        ),
        case(
            &["sample", "--model", "m", "--temperature", "-0.5"],
            Us,
            "--temperature -0.5",
        ),
        case(
            &["sample", "--model", "m", "--temperature", "x"],
            Clap,
            "--temperature",
        ),
    ]);
    assert!(!dir.path("gen").exists(), "generate left its --out behind");
}

/// `--out` must be (or become) a directory, `--save` a file in an existing directory,
/// `--resume` an existing file: refused before any training.
#[test]
fn path_mistakes_are_refused_before_any_work() {
    let dir = TestDir::new("paths");
    let file = dir.write("a-file", b"not a directory");
    let under = file.join("sub");
    let fresh = dir.path("fresh");
    let s = |p: &Path| p.display().to_string();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--epochs",
            "1",
            "--data-size",
            "64",
            "--batch-size",
            "16",
        ];
        args.extend(extra);
        bitrnn(&args)
    };
    for (out, needle) in [(&file, "--out"), (&under, "--out")] {
        let o = train(&["--out", &s(out)]);
        assert_refused(&o, By::Us, needle, &format!("--out {}", out.display()));
    }
    let o = bitrnn(&["generate", "--out", &s(&under)]);
    assert_refused(&o, By::Us, "--out", "generate --out under a file");
    let o = train(&["--out", ""]);
    assert_refused(&o, By::Clap, "--out", "--out ''");

    for (save, what) in [(&under, "under a file"), (&dir.0, "a directory")] {
        let o = train(&["--out", &s(&fresh), "--save", &s(save)]);
        assert_refused(&o, By::Us, "--save", &format!("--save {what}"));
    }
    for (resume, what) in [
        (dir.path("missing.safetensors"), "missing"),
        (dir.0.clone(), "a directory"),
    ] {
        let o = train(&["--out", &s(&fresh), "--resume", &s(&resume)]);
        assert_refused(&o, By::Us, "--resume", &format!("--resume {what}"));
    }
    assert!(!fresh.exists(), "a failing command created --out");
}

/// `eval --model` and `sample --model` with a path that is not a file: a usage error naming
/// the flag.
#[test]
fn eval_model_path_mistakes_are_usage_errors() {
    let dir = TestDir::new("eval-paths");
    let missing = dir.path("missing.safetensors");
    for command in ["eval", "sample"] {
        for (model, what) in [(&missing, "missing"), (&dir.0, "a directory")] {
            let o = bitrnn(&[command, "--model", &model.display().to_string()]);
            assert_refused(&o, By::Us, "--model", &format!("{command} --model {what}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bad checkpoint files, built here from a good one.
// ---------------------------------------------------------------------------------------

/// The header (JSON) and data of a safetensors file.
fn split(bytes: &[u8]) -> (serde_json::Map<String, serde_json::Value>, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join(header: &serde_json::Map<String, serde_json::Value>, data: &[u8]) -> Vec<u8> {
    let text = serde_json::to_vec(header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    out
}

/// `good` with its header edited by `edit` (which may also change the data).
fn edited(
    good: &[u8],
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>, &mut Vec<u8>),
) -> Vec<u8> {
    let (mut header, mut data) = split(good);
    edit(&mut header, &mut data);
    join(&header, &data)
}

/// `good` with the `f32` at `index` of tensor `name` set to `value` (checksums unchanged).
fn with_value(good: &[u8], name: &str, index: usize, value: f32) -> Vec<u8> {
    edited(good, |h, d| {
        let start = h[name]["data_offsets"][0].as_u64().unwrap() as usize + 4 * index;
        d[start..start + 4].copy_from_slice(&value.to_le_bytes());
    })
}

fn with_metadata(good: &[u8], key: &str, value: &str) -> Vec<u8> {
    edited(good, |h, _| {
        h["__metadata__"][key] = serde_json::Value::String(value.into());
    })
}

/// A checkpoint written by `bitrnn train --save`: 8 streams of 32 steps, hidden 3.
fn good_checkpoint(dir: &TestDir) -> Vec<u8> {
    let path = dir.path("good.safetensors");
    let (out, save) = (
        dir.path("good-run").display().to_string(),
        path.display().to_string(),
    );
    let o = bitrnn(&[
        "train",
        "--data-size",
        "256",
        "--batch-size",
        "32",
        "--time-step",
        "4",
        "--hidden",
        "3",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        &out,
        "--save",
        &save,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::read(&path).unwrap()
}

#[test]
fn bad_checkpoints_are_refused_by_eval_sample_and_resume() {
    let dir = TestDir::new("checkpoints");
    let good = good_checkpoint(&dir);
    let (header, data) = split(&good);
    let mut lcg = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..600)
        .map(|_| {
            lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (lcg >> 56) as u8
        })
        .collect();
    let config = header["__metadata__"]["config"]
        .as_str()
        .unwrap()
        .to_string();

    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("three-bytes", vec![1, 2, 3]),
        ("truncated-half", good[..good.len() / 2].to_vec()),
        ("truncated-one-byte", good[..good.len() - 1].to_vec()),
        ("trailing-bytes", [good.as_slice(), &[0; 4]].concat()),
        ("random-bytes", random.clone()),
        (
            "huge-header-length",
            [&u64::MAX.to_le_bytes()[..], &good[8..]].concat(),
        ),
        (
            "header-length-past-end",
            [&(good.len() as u64).to_le_bytes()[..], &good[8..]].concat(),
        ),
        (
            "header-not-json",
            [&8u64.to_le_bytes()[..], b"notjson!"].concat(),
        ),
        ("header-only", good[..good.len() - data.len()].to_vec()),
    ];
    files.push((
        "lying-offsets",
        edited(&good, |h, _| {
            h["bitrnn.losses"]["data_offsets"][1] = serde_json::json!(1_000_000);
        }),
    ));
    files.push((
        "wrong-name",
        edited(&good, |h, _| {
            let t = h.remove("rnn.weight_hh_l0").unwrap();
            h.insert("rnn.weight_hh".into(), t);
        }),
    ));
    files.push((
        "missing-tensor",
        edited(&good, |h, _| drop(h.remove("fc.bias"))),
    ));
    files.push((
        "extra-tensor",
        edited(&good, |h, d| {
            let n = d.len();
            h.insert(
                "extra".into(),
                serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [n, n + 4]}),
            );
            d.extend_from_slice(&[0; 4]);
        }),
    ));
    files.push((
        "wrong-shape",
        edited(&good, |h, _| {
            h["rnn.weight_ih_l0"]["shape"] = serde_json::json!([2, 3])
        }),
    ));
    files.push((
        "wrong-dtype-f64",
        edited(&good, |h, _| {
            h["rnn.weight_hh_l0"]["dtype"] = serde_json::json!("F64");
            h["rnn.weight_hh_l0"]["shape"] = serde_json::json!([9, 1]);
        }),
    ));
    files.push((
        "wrong-dtype-i32",
        edited(&good, |h, _| {
            h["fc.bias"]["dtype"] = serde_json::json!("I32")
        }),
    ));
    files.push((
        "nan-weight",
        with_value(&good, "rnn.weight_hh_l0", 4, f32::NAN),
    ));
    files.push((
        "inf-loss",
        with_value(&good, "bitrnn.losses", 0, f32::INFINITY),
    ));
    files.push((
        "nan-accumulator",
        with_value(&good, "bitrnn.adagrad_accum", 1, f32::NAN),
    ));
    files.push((
        "state-outside-tanh",
        with_value(&good, "bitrnn.hidden_state", 2, 1.5),
    ));
    files.push(("weights-changed", with_value(&good, "fc.bias", 0, 0.75)));
    files.push((
        "no-metadata",
        edited(&good, |h, _| drop(h.remove("__metadata__"))),
    ));
    files.push(("format-gguf", with_metadata(&good, "format", "gguf")));
    files.push((
        "config-not-json",
        with_metadata(&good, "config", "{not json"),
    ));
    files.push((
        "config-hidden-0",
        with_metadata(
            &good,
            "config",
            &config.replace("\"hidden\":3", "\"hidden\":0"),
        ),
    ));
    files.push((
        "config-lr-nan",
        with_metadata(&good, "config", &config.replace("\"lr\":0.1", "\"lr\":NaN")),
    ));
    files.push((
        "epoch-absurd",
        with_metadata(&good, "epoch", "1000000000000000000"),
    ));
    files.push(("window-out-of-range", with_metadata(&good, "window", "8")));

    let mut failures = Vec::new();
    for (name, bytes) in &files {
        let path = dir.write(&format!("{name}.safetensors"), bytes);
        let p = path.display().to_string();
        let out = dir.path(&format!("out-{name}"));
        let runs = [
            ("eval", bitrnn(&["eval", "--model", &p])),
            ("sample", bitrnn(&["sample", "--model", &p])),
            (
                "train --resume",
                bitrnn(&[
                    "train",
                    "--resume",
                    &p,
                    "--epochs",
                    "2",
                    "--quiet",
                    "--out",
                    &out.display().to_string(),
                ]),
            ),
        ];
        for (command, o) in runs {
            if let Some(problem) = refusal_problem(&o, By::Us, &p) {
                failures.push(format!("{command} {name}: {problem}"));
            }
        }
        if out.exists() {
            failures.push(format!("train --resume {name} created {}", out.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        3 * files.len(),
        failures.join("\n")
    );

    // The good file itself is accepted: the refusals above are about the edits.
    let p = dir.write("good-again.safetensors", &good);
    let o = bitrnn(&[
        "eval",
        "--model",
        &p.display().to_string(),
        "--data-size",
        "4096",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Bad eval flags with a good model name the flag.
    for (flag, value, needle) in [
        ("--data-size", "0", "--data-size 0"),
        ("--data-size", "31", "--data-size 31"),
        ("--lags", "0,1", "--lags 0,1"),
        ("--lags", "4,4", "--lags 4,4"),
        ("--threads", "0", "--threads 0"),
        ("--threads", "1025", "--threads 1025"),
    ] {
        let o = bitrnn(&["eval", "--model", &p.display().to_string(), flag, value]);
        assert_refused(&o, By::Us, needle, &format!("eval {flag} {value}"));
    }
    let model = p.display().to_string();
    let o = bitrnn(&["eval", "--model", &model, "--rule", "coin"]);
    assert_refused(&o, By::Clap, "coin", "eval --rule coin");
    let o = bitrnn(&["eval", "--model", &model, "--rule", "r2rt", "--lags", "8,8"]);
    assert_refused(&o, By::Us, "--lags 8,8", "eval --rule r2rt --lags 8,8");
}

/// Bad data for `train` and `sweep` alike: a missing, empty or too short text, `--valid` out
/// of range or leaving too little, a missing `.npy`, `--vocab` without `.npy` data. One line
/// naming the input, exit 2, no `--out` left behind.
#[test]
fn bad_data_is_refused_by_train_and_sweep() {
    use By::Us;
    let files = TestDir::new("bad-data-files");
    let empty = files.write("empty.txt", b"");
    let short = files.write("short.txt", b"abcabcabc");
    let good = files.write("good.txt", &b"the cat sat on the mat. ".repeat(200));
    let missing = files.path("missing.txt");
    let (empty, short, good, missing) = (
        empty.to_str().unwrap(),
        short.to_str().unwrap(),
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    let cases = |time_step: &'static str| {
        vec![
            case(&["--text", empty], Us, "empty.txt: empty file"),
            case(&["--text", short], Us, "short.txt: 8 positions"),
            case(&["--text", missing], Us, "missing.txt"),
            case(
                &["--text", good, "--bytes", "--valid", "1.5"],
                Us,
                "--valid 1.5",
            ),
            case(
                &["--text", good, "--batch-size", "500", "--valid", "0.999"],
                Us,
                "--valid 0.999",
            ),
            // Holds out 5 positions: fewer than one window of the time step.
            case(
                &[
                    "--text",
                    good,
                    "--batch-size",
                    "500",
                    "--valid",
                    "0.001",
                    time_step,
                    "10",
                ],
                Us,
                "--valid 0.001: holds out 5 positions",
            ),
            case(
                &["--data", files.path("nothing").to_str().unwrap()],
                Us,
                "x.npy",
            ),
            case(&["--vocab", "10"], Us, "--vocab and --classes"),
        ]
    };
    let dir = TestDir::new("bad-data");
    check_all_with_out("train", cases("--time-step"), &dir);
    check_all_with_out("sweep", cases("--time-steps"), &dir);
    check_all_with_out(
        "sweep",
        [
            case(
                &["--text", good, "--lags", "1,2"],
                Us,
                "--lags: a setting of the generated bits",
            ),
            case(&["--text", good, "--rule", "seed"], Us, "--rule: a setting"),
            case(
                &["--text", good, "--data-size", "10"],
                Us,
                "--data-size: a setting",
            ),
            case(
                &["--text", good, "--time-steps", "1,2001"],
                Us,
                "--time-steps 2001",
            ),
        ],
        &dir,
    );
}
