//! Any small window over symbols (V input symbols, C classes): the SIMD kernels' symbols'
//! path within the rounding model's tolerances of the f64 reference. The checks live in
//! `bitrnn::fuzzing::symbols_vs_reference`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bitrnn::fuzzing::symbols_vs_reference(data));
