//! Replays every committed fuzz corpus file (`fuzz/corpus/TARGET/*`) through the checks of its
//! fuzz target ([`bitrnn::fuzzing`]), so that `cargo test` on stable keeps the fuzzers'
//! properties and their findings (each fixed finding is added to its corpus) without
//! cargo-fuzz or a nightly toolchain.

use std::fs;
use std::path::{Path, PathBuf};

/// The corpus files of `target`, sorted (at least `min` of them: an empty or misplaced corpus
/// must not pass silently).
fn corpus(target: &str, min: usize) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "{}: {} files, expected at least {min}",
        dir.display(),
        files.len()
    );
    files
}

/// Runs `check` on every file of `target`'s corpus, naming the file that fails.
fn replay(target: &str, min: usize, check: fn(&[u8])) {
    for path in corpus(target, min) {
        let bytes = fs::read(&path).expect("a corpus file is readable");
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{} fails its fuzz check", path.display());
    }
}

#[test]
fn checkpoint_load_corpus() {
    replay("checkpoint_load", 20, bitrnn::fuzzing::checkpoint_load);
}

#[test]
fn cli_parse_corpus() {
    replay("cli_parse", 20, bitrnn::fuzzing::cli_parse);
}

#[test]
fn sequence_parse_corpus() {
    replay("sequence_parse", 20, bitrnn::fuzzing::sequence_parse);
}

#[test]
fn simd_vs_reference_corpus() {
    replay("simd_vs_reference", 10, bitrnn::fuzzing::simd_vs_reference);
}

#[test]
fn symbols_vs_reference_corpus() {
    replay(
        "symbols_vs_reference",
        10,
        bitrnn::fuzzing::symbols_vs_reference,
    );
}

/// The corpus holds valid checkpoints written by bitrnn itself (so the fuzzer starts from
/// files that get past every check), and they still load: a format change that breaks them
/// shows here first.
#[test]
fn checkpoint_corpus_has_loadable_checkpoints() {
    let valid: Vec<PathBuf> = corpus("checkpoint_load", 20)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("valid_"))
        })
        .collect();
    assert!(valid.len() >= 2, "{valid:?}");
    for path in valid {
        if let Err(e) = bitrnn::checkpoint::load(&path) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// A finding of the `checkpoint_load` fuzzer (AddressSanitizer run, seconds in): a tensor
/// name holding a newline (the JSON escape `\n`) is echoed raw in the loader's "unexpected
/// tensor" error, which then spans two lines on stderr (and a name holding `\u001b` would
/// reach the terminal as an escape sequence). Fixed in `Error`'s `Display`, which escapes
/// control characters.
#[test]
fn finding_tensor_name_with_newline_stays_one_line() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint_load/valid_h2_sgd");
    let good = fs::read(path).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&good[8..8 + n]).unwrap();
    let entry = header.remove("bitrnn.hidden_state").unwrap();
    header.insert("bitr\n.hidden_state".into(), entry);
    let text = serde_json::to_vec(&header).unwrap();
    let mut bad = (text.len() as u64).to_le_bytes().to_vec();
    bad.extend_from_slice(&text);
    bad.extend_from_slice(&good[8 + n..]);
    bitrnn::fuzzing::checkpoint_load(&bad);
}
