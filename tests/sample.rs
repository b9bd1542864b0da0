//! Text models end to end, run as the binary: `bitrnn sample` (deterministic for a seed, in
//! the alphabet, a trained model writes its text, greedy is the argmax continuation, ids for
//! the other models, bad input refused on one line with exit 2) and `bitrnn eval` on a text
//! or `.npy` files (below the unigram entropy on its own text, the data flag a symbol model
//! needs, the generator's files scored as the bits are).
//!
//! The model: "the cat sat on the mat. " repeated to about 100 KB, hidden 32, streams of 500
//! in windows of 10, 3 epochs (a fraction of a second); it reaches a held-out accuracy above
//! 0.99.

use std::collections::BTreeSet;
use std::process::Output;

mod common;
use common::{TestDir, bitrnn};

const SENTENCE: &str = "the cat sat on the mat. ";

/// The text and a model trained on it, in `dir`: `(text path, model path)`.
fn cat_model(dir: &TestDir) -> (String, String) {
    let text = dir.write("cat.txt", SENTENCE.repeat(4200).as_bytes());
    let model = dir.path("cat.safetensors");
    let s = |p: &std::path::Path| p.display().to_string();
    let o = bitrnn(&[
        "train",
        "--text",
        &s(&text),
        "--hidden",
        "32",
        "--batch-size",
        "500",
        "--time-step",
        "10",
        "--epochs",
        "3",
        "--quiet",
        "--out",
        &s(&dir.path("run")),
        "--save",
        &s(&model),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (s(&text), s(&model))
}

/// A model of the generator's bits (the seed rule, 40 streams of 500, 3 epochs) in `dir`.
fn bits_model(dir: &TestDir) -> String {
    let model = dir.path("bits.safetensors").display().to_string();
    stdout(&[
        "train",
        "--data-size",
        "20000",
        "--batch-size",
        "500",
        "--epochs",
        "3",
        "--quiet",
        "--out",
        &dir.path("bits-run").display().to_string(),
        "--save",
        &model,
    ]);
    model
}

/// The stdout of a command that must succeed.
#[track_caller]
fn stdout(args: &[&str]) -> Vec<u8> {
    let o = bitrnn(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// The JSON object a command prints.
#[track_caller]
fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&stdout(args)).expect("one JSON object")
}

/// Checks a clean refusal: exit 2, nothing on stdout, one line `bitrnn: error: ...` naming
/// `needle`.
#[track_caller]
fn assert_refused(o: &Output, needle: &str, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}: wrote to stdout");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
    assert!(err.starts_with("bitrnn: error: "), "{what}: {err}");
    assert!(err.contains(needle), "{what}: names {needle:?}: {err}");
}

#[test]
fn sampling_is_deterministic_for_a_seed_and_writes_the_alphabet() {
    let dir = TestDir::new("determinism");
    let (_, m) = cat_model(&dir);
    let draw = |seed: &str, prime: &str| {
        stdout(&[
            "sample",
            "--model",
            &m,
            "--prime",
            prime,
            "--length",
            "400",
            "--temperature",
            "1.5",
            "--seed",
            seed,
        ])
    };
    let a = draw("7", "the ");
    assert_eq!(a, draw("7", "the "), "the same seed, the same text");
    assert_ne!(a, draw("8", "the "), "another seed, another text");
    // The prime, then exactly --length bytes (stdout is not a terminal: no newline).
    assert!(a.starts_with(b"the "));
    assert_eq!(a.len(), 4 + 400);
    let alphabet: BTreeSet<u8> = SENTENCE.bytes().collect();
    assert!(
        a.iter().all(|b| alphabet.contains(b)),
        "{}",
        String::from_utf8_lossy(&a)
    );
    // The default prime (the alphabet has no newline: its first byte, a space) is not
    // printed; the default length is 200.
    let d = stdout(&["sample", "--model", &m]);
    assert_eq!(d.len(), 200);
    assert_eq!(
        d,
        stdout(&["sample", "--model", &m, "--prime", " ", "--seed", "0"])[1..]
    );
}

#[test]
fn a_trained_model_writes_its_text_and_greedy_is_the_argmax_continuation() {
    let dir = TestDir::new("learned");
    let (_, m) = cat_model(&dir);
    let sampled = stdout(&["sample", "--model", &m, "--prime", "the ", "--seed", "1"]);
    let drawn = String::from_utf8(sampled[4..].to_vec()).unwrap();
    assert!(drawn.contains("the "), "{drawn}");
    assert!(drawn.contains("sat on"), "{drawn}");

    // After "the c" the text has one continuation, which a model this good predicts at every
    // step: greedy decoding reproduces it, whatever the seed.
    let greedy = |seed: &str, t: &str| {
        stdout(&[
            "sample",
            "--model",
            &m,
            "--prime",
            "the c",
            "--length",
            "120",
            "--temperature",
            t,
            "--seed",
            seed,
        ])
    };
    let g = greedy("1", "0");
    let text = SENTENCE.repeat(10);
    assert_eq!(String::from_utf8_lossy(&g), &text[..125]);
    assert_eq!(g, greedy("2", "0"), "greedy draws nothing");
    // A temperature near 0 puts all the mass on the argmax.
    assert_eq!(g, greedy("3", "1e-6"));
}

#[test]
fn eval_scores_a_text_model_on_a_text() {
    let dir = TestDir::new("eval-text");
    let (text, m) = cat_model(&dir);
    let r = json(&["eval", "--model", &m, "--text", &text, "--json"]);
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    assert!(num("loss") < 0.5 * num("unigram_loss"), "{r}");
    assert!(num("accuracy") > 0.99, "{r}");
    assert!((num("unigram_loss") - 2.142).abs() < 1e-3, "{r}");
    assert_eq!(r["vocab"], 11);
    assert_eq!(r["classes"], 11);
    assert_eq!(r["data_size"], 4200 * 24 - 1);
    assert_eq!(r["streams"], (4200 * 24 - 1) / 500);
    assert_eq!(r["samples"], (4200 * 24 - 1) / 500 * 500);
    assert_eq!(r["data"], format!("text {text}"));
    assert!(r.get("rule").is_none() && r.get("seed").is_none(), "{r}");
    // A text shorter than one stream: one stream of its whole windows.
    let short = dir.write("short.txt", SENTENCE.repeat(3).as_bytes());
    let short = short.display().to_string();
    let r = json(&["eval", "--model", &m, "--text", &short, "--json"]);
    assert_eq!(
        (r["streams"].clone(), r["samples"].clone()),
        (1.into(), 70.into())
    );
    // The line names the unigram level.
    let line = String::from_utf8(stdout(&["eval", "--model", &m, "--text", &text])).unwrap();
    assert!(line.contains("unigram entropy"), "{line}");
}

#[test]
fn bad_sample_and_eval_input_is_refused_on_one_line() {
    let dir = TestDir::new("refusals");
    let (text, m) = cat_model(&dir);
    let bits = bits_model(&dir);
    let missing = dir.path("missing.safetensors").display().to_string();
    let dog = dir.write("dog.txt", b"the dog sat").display().to_string();
    let tiny = dir.write("tiny.txt", b"the cat").display().to_string();
    let sample_cases = [
        (&m, "--prime", "the dog", "'d' (0x64)"),
        (&m, "--prime", "\n", "'\\n' (0x0a)"),
        (&m, "--prime", "", "--prime ''"),
        (&m, "--temperature", "-1", "--temperature -1"),
        (&m, "--temperature", "nan", "--temperature NaN"),
        (&m, "--temperature", "inf", "--temperature inf"),
        (&m, "--length", "0", "--length 0"),
        (&m, "--length", "100000001", "--length 100000001"),
        (&bits, "--prime", "the", "--prime 'the'"),
        (&bits, "--prime", "0,2", "symbol id 2"),
        (&missing, "--seed", "1", "--model"),
    ];
    for (model, flag, value, needle) in sample_cases {
        let args = ["sample", "--model", model, flag, value];
        assert_refused(&bitrnn(&args), needle, &format!("{args:?}"));
    }
    let eval_cases: [(&[&str], &str); 4] = [
        (&["--model", &m], "--text FILE"),
        (&["--model", &bits, "--text", &text], "no alphabet"),
        (&["--model", &m, "--text", &dog], "dog.txt"),
        (&["--model", &m, "--text", &tiny], "one window"),
    ];
    for (args, needle) in eval_cases {
        let args = [&["eval"], args].concat();
        assert_refused(&bitrnn(&args), needle, &format!("{args:?}"));
    }
}

#[test]
fn other_models_sample_ids() {
    let dir = TestDir::new("ids");
    let bits = bits_model(&dir);
    let draw = |seed: &str| {
        String::from_utf8(stdout(&[
            "sample", "--model", &bits, "--prime", "0,1,1", "--length", "50", "--seed", seed,
        ]))
        .unwrap()
    };
    let a = draw("4");
    assert_eq!(a, draw("4"));
    assert_ne!(a, draw("5"));
    assert!(a.ends_with('\n') && a.lines().count() == 1, "{a:?}");
    let ids: Vec<&str> = a.trim_end().split(',').collect();
    assert_eq!(ids.len(), 3 + 50);
    assert_eq!(ids[..3], ["0", "1", "1"]);
    assert!(ids.iter().all(|&id| id == "0" || id == "1"), "{a}");
}

/// Little-endian `|u1` `.npy` bytes of `ids`.
fn npy_u8(ids: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({},), }}",
        ids.len()
    );
    let pad = (10 + dict.len() + 1).next_multiple_of(64) - (10 + dict.len() + 1);
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&u16::try_from(dict.len() + pad + 1).unwrap().to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    out.extend_from_slice(ids);
    out
}

/// `.npy` models: one with more classes than input symbols cannot feed its draws back; one
/// scored on its files needs them, bounded by its V and C.
#[test]
fn npy_models_sample_when_classes_are_inputs_and_eval_on_their_files() {
    let dir = TestDir::new("npy");
    let x: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 13 % 3) as u8).collect();
    let y: Vec<u8> = (0..6000).map(|i| x[i] + 2 * u8::from(i % 2 == 0)).collect();
    let s = |p: std::path::PathBuf| p.display().to_string();
    let xs = s(dir.write("x.npy", &npy_u8(&x)));
    let ys = s(dir.write("y.npy", &npy_u8(&y)));
    let m = s(dir.path("m.safetensors"));
    stdout(&[
        "train",
        "--inputs",
        &xs,
        "--targets",
        &ys,
        "--batch-size",
        "500",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        &s(dir.path("run")),
        "--save",
        &m,
    ]);
    assert_refused(
        &bitrnn(&["sample", "--model", &m]),
        "C = 5 classes from V = 3",
        "sample, C > V",
    );
    assert_refused(
        &bitrnn(&["eval", "--model", &m]),
        "--data DIR or --inputs",
        "eval without data",
    );
    let r = json(&[
        "eval",
        "--model",
        &m,
        "--inputs",
        &xs,
        "--targets",
        &ys,
        "--json",
    ]);
    assert_eq!(
        (r["vocab"].clone(), r["classes"].clone()),
        (3.into(), 5.into())
    );
    assert!(r["unigram_loss"].as_f64().unwrap() > 0.0, "{r}");
    // Ids above the model's V are the reader's refusal, naming the file.
    let wide = s(dir.write("wide.npy", &npy_u8(&[0, 1, 3].repeat(2000))));
    assert_refused(
        &bitrnn(&["eval", "--model", &m, "--inputs", &wide, "--targets", &ys]),
        "wide.npy",
        "eval, an input id >= V",
    );
}

/// A bits model scored on `bitrnn generate`'s files (the symbols' path) agrees with the same
/// data generated in eval (the bit planes' path).
#[test]
fn a_bits_model_scores_generated_files_as_it_scores_generated_bits() {
    let dir = TestDir::new("generated");
    let m = bits_model(&dir);
    let generated = dir.path("gen").display().to_string();
    stdout(&[
        "generate",
        "--data-size",
        "30000",
        "--seed",
        "9",
        "--out",
        &generated,
    ]);
    let bits = json(&[
        "eval",
        "--model",
        &m,
        "--data-size",
        "30000",
        "--seed",
        "9",
        "--json",
    ]);
    let files = json(&["eval", "--model", &m, "--data", &generated, "--json"]);
    for k in ["samples", "streams", "windows", "data_size"] {
        assert_eq!(bits[k], files[k], "{k}");
    }
    let (a, b) = (
        bits["loss"].as_f64().unwrap(),
        files["loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-5 * a, "loss {a} (bits) vs {b} (files)");
    let (a, b) = (
        bits["accuracy"].as_f64().unwrap(),
        files["accuracy"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-4, "accuracy {a} (bits) vs {b} (files)");
    assert!((files["unigram_loss"].as_f64().unwrap() - 2f64.ln()).abs() < 0.01);
}
