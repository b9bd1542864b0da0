//! The CPU features this binary was compiled for, checked against the CPU it runs on before
//! anything else runs.
//!
//! `.cargo/config.toml` builds for `target-cpu=native`, so a binary copied to an older CPU
//! (or a build cached from another machine) would die on its first AVX-512 instruction with
//! SIGILL. [`check`] compares the features the compiler was allowed to use
//! (`cfg!(target_feature)`) with those the CPU reports (`is_x86_feature_detected!`) and
//! refuses with one line naming what is missing and how to rebuild. It is called first in
//! `main`, before any of the program's own vector code. (The check is compiled for the same
//! target, so in principle the compiler may use a wider instruction in it too; it is a few
//! comparisons and a string, which LLVM has no reason to vectorise with AVX-512.)
//!
//! `BITRNN_CPU_LACKS=feature[,feature...]` makes the check treat those features as absent:
//! the test of the refusal on a machine that has them all.

use crate::error::{Error, Result};

/// The environment variable that hides CPU features from [`check`], for tests.
pub const LACKS_VAR: &str = "BITRNN_CPU_LACKS";

/// `(name, compiled in, present on this CPU)` for every x86_64 feature a build of bitrnn may
/// use (the levels x86-64-v2, v3 and v4, and the AVX-512 extensions `native` adds).
#[cfg(target_arch = "x86_64")]
fn features() -> Vec<(&'static str, bool, bool)> {
    macro_rules! list {
        ($($f:tt),* $(,)?) => {
            vec![$(($f, cfg!(target_feature = $f), is_x86_feature_detected!($f))),*]
        };
    }
    list![
        "sse3",
        "ssse3",
        "sse4.1",
        "sse4.2",
        "popcnt",
        "cmpxchg16b",
        "avx",
        "avx2",
        "fma",
        "bmi1",
        "bmi2",
        "lzcnt",
        "movbe",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512cd",
        "avx512dq",
        "avx512vl",
        "avx512vbmi",
        "avx512vbmi2",
        "avx512vnni",
        "avx512bitalg",
        "avx512vpopcntdq",
        "avx512ifma",
        "avx512bf16",
        "vpclmulqdq",
        "vaes",
        "gfni",
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn features() -> Vec<(&'static str, bool, bool)> {
    Vec::new()
}

/// The compiled-in features the CPU lacks, honouring [`LACKS_VAR`].
#[must_use]
pub fn missing() -> Vec<&'static str> {
    let hidden = std::env::var(LACKS_VAR).unwrap_or_default();
    let hidden: Vec<&str> = hidden.split(',').map(str::trim).collect();
    features()
        .into_iter()
        .filter(|&(name, compiled, present)| compiled && (!present || hidden.contains(&name)))
        .map(|(name, _, _)| name)
        .collect()
}

/// Refuses to run on a CPU that lacks a feature this binary was compiled for.
///
/// # Errors
/// [`Error::Usage`] naming the missing features, the build's SIMD level and how to rebuild.
pub fn check() -> Result<()> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "this binary was built for CPU features that this CPU lacks: {} (SIMD: {}); \
         rebuild on this machine (`cargo build --release` builds for the CPU it runs on), \
         or build a portable binary: RUSTFLAGS=\"-C target-cpu=x86-64-v3\" for any AVX2 CPU, \
         RUSTFLAGS=\"\" for any x86_64",
        missing.join(", "),
        bitrnn_kernels::simd_level()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_feature_is_present_on_the_build_machine() {
        // Tests run on the machine that built them: nothing compiled in can be missing,
        // unless the environment hides it.
        if std::env::var_os(LACKS_VAR).is_none() {
            assert_eq!(missing(), Vec::<&str>::new());
        }
    }

    #[test]
    fn the_level_of_the_kernels_is_among_the_compiled_features() {
        let compiled: Vec<&str> = features()
            .into_iter()
            .filter(|f| f.1)
            .map(|f| f.0)
            .collect();
        if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
            assert!(compiled.contains(&"avx512f"));
        }
        if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
            assert!(compiled.contains(&"avx2"));
        }
    }
}
