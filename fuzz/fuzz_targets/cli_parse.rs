//! Any argument vector (NUL-separated): parsed and validated, never a panic; nothing runs.
//! The checks live in `bitrnn::fuzzing::cli_parse`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitrnn::fuzzing::cli_parse(data));
