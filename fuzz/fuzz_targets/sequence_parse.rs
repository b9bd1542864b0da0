//! Any bytes as a text or a `.npy` array of symbol ids (byte 0 picks the reader): refused with
//! one line naming the file, or read into a consistent sequence whose windows match plain
//! indexing. The checks live in `bitrnn::fuzzing::sequence_parse`, shared with
//! `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitrnn::fuzzing::sequence_parse(data));
