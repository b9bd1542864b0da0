//! Any small window: the SIMD kernels within a derived error bound of the f64 reference.
//! The checks live in `bitrnn::fuzzing::simd_vs_reference`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitrnn::fuzzing::simd_vs_reference(data));
