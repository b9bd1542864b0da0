//! The users' tools, run as the binary: `bench` (its JSON keys and the roofline arithmetic),
//! `profile`, `verify` (default shapes and another one), and bad flags (exit 2, a message
//! naming the flag). Nothing here asserts a speed.

mod common;
use common::bitrnn;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bench_json_has_the_roofline_keys() {
    let out = bitrnn(&[
        "bench",
        "--hidden",
        "6",
        "--threads",
        "1",
        "--seconds",
        "0.5",
        "--repeats",
        "5",
        "--json",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object per row: {stdout}");
    let row: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
    for key in [
        "hidden",
        "threads",
        "streams",
        "time_step",
        "sample_steps_per_s",
        "sample_steps_per_s_min",
        "sample_steps_per_s_max",
        "gflops",
        "peak_gflops",
        "peak_gflops_min",
        "peak_gflops_max",
        "pct_of_peak",
        "forward_share",
        "backward_share",
        "reduction_share",
        "update_share",
        "other_share",
        "simd_level",
    ] {
        assert!(row.get(key).is_some(), "missing {key}: {row}");
    }
    let num = |k: &str| {
        row[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} is a number: {row}"))
    };
    assert_eq!(row["hidden"], 6);
    assert_eq!(row["threads"], 1);
    assert_eq!(row["streams"], 250);
    assert_eq!(row["time_step"], 5);
    let (rate, gflops, peak, pct) = (
        num("sample_steps_per_s"),
        num("gflops"),
        num("peak_gflops"),
        num("pct_of_peak"),
    );
    assert!(num("sample_steps_per_s_min") <= rate && rate <= num("sample_steps_per_s_max"));
    // The FLOP model: 6H^2 + 12H = 288 at H = 6.
    assert!((gflops - rate * 288.0 / 1e9).abs() <= 1e-9 * gflops);
    assert!(peak > 0.0 && gflops > 0.0);
    assert!(num("peak_gflops_min") <= peak && peak <= num("peak_gflops_max"));
    assert!(pct > 0.0 && pct < 100.0, "pct_of_peak {pct}");
    assert!((pct - 100.0 * gflops / peak).abs() <= 1e-9 * pct);
    let shares: f64 = ["forward", "backward", "reduction", "update", "other"]
        .iter()
        .map(|s| num(&format!("{s}_share")))
        .sum();
    assert!((shares - 1.0).abs() < 1e-6, "shares sum to {shares}");
}

#[test]
fn profile_runs_the_hot_loop() {
    let out = bitrnn(&["profile", "--seconds", "0.3"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("windows") && stdout.contains("sample-steps/s"),
        "{stdout}"
    );
}

#[test]
fn verify_passes_on_the_default_shapes() {
    let out = bitrnn(&["verify"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("hidden 6, 250 streams, time_step 5"),
        "{stdout}"
    );
    assert!(stdout.contains("hidden 64"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn verify_passes_on_another_shape_as_json() {
    let out = bitrnn(&[
        "verify",
        "--hidden",
        "9",
        "--streams",
        "13",
        "--time-step",
        "3",
        "--steps",
        "4",
        "--seed",
        "7",
        "--json",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one object");
    assert_eq!(report["pass"], true);
    let shape = &report["shapes"][0];
    assert_eq!(shape["hidden"], 9);
    assert_eq!(shape["streams"], 13);
    let checks = shape["checks"].as_array().unwrap();
    // loss, 5 gradients, 5 parameters, the state.
    assert_eq!(checks.len(), 12);
    for c in checks.iter().chain(shape["fd_checks"].as_array().unwrap()) {
        let ratio = c["ratio"].as_f64().unwrap();
        assert!(c["pass"] == true && ratio <= 1.0, "{c}");
        assert!(c["tol"].as_f64().unwrap() > 0.0, "{c}");
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "--hidden", "0"], "--hidden"),
        (&["bench", "--hidden", "5000"], "--hidden"),
        (&["bench", "--hidden", ""], "--hidden"),
        (&["bench", "--threads", "0"], "--threads"),
        (&["bench", "--threads", "2000"], "--threads"),
        (&["bench", "--streams", "0"], "--streams"),
        (&["bench", "--seconds", "0"], "--seconds"),
        (&["bench", "--seconds", "nan"], "--seconds"),
        (&["bench", "--seconds", "-1"], "--seconds"),
        (&["bench", "--repeats", "2"], "--repeats"),
        (&["bench", "--time-step", "0"], "--time-step"),
        (&["profile", "--seconds", "inf"], "--seconds"),
        (
            &["profile", "--seconds", "0.1", "--hidden", "0"],
            "--hidden",
        ),
        (&["verify", "--hidden", "0"], "--hidden"),
        (&["verify", "--steps", "0"], "--steps"),
        (&["verify", "--streams", "x"], "--streams"),
    ];
    for (args, flag) in cases {
        let out = bitrnn(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed {}",
            text(&out.stdout)
        );
    }
}
