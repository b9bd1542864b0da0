//! What the integration tests share.

// Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use bitrnn::config::{TrainConfig, TrainSettings};
use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Karpathy's min-char-rnn's optimizer and initial weights as `train` flags (its learning
/// rate, 0.1, is the default): `np.random.randn(...) * 0.01` weights and zero biases,
/// `np.clip(dparam, -5, 5)`, Adagrad from a zero memory with `1e-8` under the square root.
pub const MIN_CHAR_RNN: [&str; 8] = [
    "--init",
    "normal:0.01",
    "--clip",
    "5",
    "--adagrad-eps",
    "1e-8",
    "--adagrad-init",
    "0",
];

/// A fresh directory under the system temp dir (named after the test crate, the process and
/// `name`), removed on drop.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "bitrnn-{}-{}-{name}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Writes `bytes` to the file `name` in the directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, bytes).unwrap();
        p
    }
    /// The names in the directory, sorted, hidden temporary files included.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the `bitrnn` binary with `args` (without `RUST_BACKTRACE`, so that a panic's
/// message is the same wherever the tests run) and returns what it did.
pub fn bitrnn<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitrnn"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the bitrnn binary runs")
}

/// The seed's settings with another shape: `data_size / batch_size` streams, windows of 5
/// steps, 2 epochs.
pub fn settings(
    data_size: usize,
    batch_size: usize,
    hidden: usize,
    threads: usize,
) -> TrainSettings {
    TrainSettings {
        data_size,
        batch_size,
        time_step: 5,
        hidden,
        threads,
        epochs: 2,
        ..TrainSettings::SEED
    }
}

/// [`settings`], validated.
pub fn config(data_size: usize, batch_size: usize, hidden: usize, threads: usize) -> TrainConfig {
    valid(settings(data_size, batch_size, hidden, threads))
}

/// `settings` validated (a test's settings are valid).
pub fn valid(settings: TrainSettings) -> TrainConfig {
    TrainConfig::new(settings).expect("valid test settings")
}

/// Panics with the exit code and stderr unless the command succeeded.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A text with structure a small model learns in a few epochs: short sentences drawn from
/// a few words, so that the next byte is often predictable (within a word) and sometimes
/// not (the next word).
pub fn text(bytes: usize) -> Vec<u8> {
    let words = [
        "the ", "cat ", "sat ", "on ", "a ", "mat ", "and ", "dog ", "ran. ",
    ];
    let mut state = 12_345u64;
    let mut out = Vec::with_capacity(bytes + 8);
    while out.len() < bytes {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(words[(state >> 33) as usize % words.len()].as_bytes());
    }
    out.truncate(bytes);
    out
}
