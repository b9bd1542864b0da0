//! The start-up CPU check: a binary told that the CPU lacks a feature it was compiled for
//! refuses with one line and exit 2, before doing anything.

use std::process::Command;

/// The widest feature this build was compiled for, if any beyond the x86_64 baseline.
fn widest_compiled_feature() -> Option<&'static str> {
    if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        Some("avx512f")
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
        Some("avx2")
    } else if cfg!(all(target_arch = "x86_64", target_feature = "sse4.2")) {
        Some("sse4.2")
    } else {
        None
    }
}

fn bitrnn_lacking(feature: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bitrnn"))
        .args(args)
        .env("BITRNN_CPU_LACKS", feature)
        .output()
        .expect("bitrnn runs")
}

#[test]
fn a_missing_compiled_feature_is_refused_with_one_line() {
    let Some(feature) = widest_compiled_feature() else {
        // The portable build uses nothing beyond the baseline: hiding AVX-512 changes nothing.
        let out = bitrnn_lacking("avx512f", &["--version"]);
        assert!(out.status.success(), "{out:?}");
        return;
    };
    for args in [&["--version"][..], &["train", "--epochs", "1", "--quiet"]] {
        let out = bitrnn_lacking(feature, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("bitrnn: error: "), "{err}");
        assert!(err.contains(feature) && err.contains("rebuild"), "{err}");
        assert!(
            err.contains(bitrnn_kernels::simd_level()),
            "names the level: {err}"
        );
    }
}

#[test]
fn features_the_build_does_not_use_are_not_required() {
    // A feature no build of bitrnn compiles in (it is not in the checked list).
    let out = bitrnn_lacking("sha", &["--version"]);
    assert!(out.status.success(), "{out:?}");
    let version = String::from_utf8(out.stdout).expect("utf-8");
    assert!(version.contains(bitrnn_kernels::simd_level()), "{version}");
}
