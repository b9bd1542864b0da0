//! Any bytes as a checkpoint file: refused with one line naming the file, or loaded consistently.
//! The checks live in `bitrnn::fuzzing::checkpoint_load`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitrnn::fuzzing::checkpoint_load(data));
