//! Output files: atomic writes leave nothing behind, the loss CSV round-trips, and the loss
//! plot is a well-formed PNG of the promised size whatever the losses look like.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bitrnn::Error;
use bitrnn::data::{ReferenceLevel, Rule};
use bitrnn::output::{ensure_dir, write_atomic, write_atomic_bytes, write_loss_csv};
use bitrnn::plot::{
    HeatmapCell, HeatmapPanel, ScalingSeries, heatmap, loss_plot, moving_average, scaling_plot,
    smoothing_window,
};

mod common;
use common::TestDir;

#[test]
fn write_atomic_leaves_only_the_file() {
    let dir = TestDir::new("atomic-ok");
    let path = dir.path("a.txt");
    write_atomic(&path, |w| w.write_all(b"first")).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first");
    // Replacing an existing file works the same way.
    write_atomic(&path, |w| w.write_all(b"second, longer")).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second, longer");
    write_atomic_bytes(&dir.path("b.bin"), &[0, 1, 2, 255]).unwrap();
    assert_eq!(fs::read(dir.path("b.bin")).unwrap(), [0, 1, 2, 255]);
    assert_eq!(dir.entries(), ["a.txt", "b.bin"]);
}

#[test]
fn write_atomic_error_removes_temp_and_keeps_old_file() {
    let dir = TestDir::new("atomic-err");
    let path = dir.path("a.txt");

    let err = write_atomic(&path, |w| {
        w.write_all(&vec![b'x'; 100_000])?;
        Err(io::Error::other("closure failed"))
    })
    .unwrap_err();
    match err {
        Error::Io { path: p, source } => {
            assert_eq!(p, path);
            assert_eq!(source.to_string(), "closure failed");
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());

    fs::write(&path, b"old").unwrap();
    write_atomic(&path, |w| {
        w.write_all(b"new")?;
        Err(io::Error::other("closure failed"))
    })
    .unwrap_err();
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(dir.entries(), ["a.txt"]);
}

#[test]
fn write_atomic_into_missing_dir_is_an_io_error() {
    let dir = TestDir::new("atomic-nodir");
    let path = dir.path("missing/a.txt");
    let err = write_atomic_bytes(&path, b"x").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing/a.txt"), "{err}");
    assert!(dir.entries().is_empty());
}

#[test]
fn loss_csv_round_trips() {
    let dir = TestDir::new("csv");
    let path = dir.path("loss.csv");
    let losses: Vec<f32> = [
        std::f32::consts::LN_2,
        1.0 / 3.0,
        std::f32::consts::LN_2 / 2.0,
        f32::MIN_POSITIVE,
        1e-30,
        12345.678,
        0.1,
    ]
    .into_iter()
    .cycle()
    .take(23)
    .collect();
    let windows_per_epoch = 5;
    write_loss_csv(&path, &losses, windows_per_epoch).unwrap();

    let text = fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,epoch,loss"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), losses.len());
    for (i, row) in rows.iter().enumerate() {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 3, "{row}");
        assert_eq!(fields[0].parse::<usize>().unwrap(), i);
        assert_eq!(fields[1].parse::<usize>().unwrap(), i / windows_per_epoch);
        let loss: f32 = fields[2].parse().unwrap();
        assert_eq!(loss.to_bits(), losses[i].to_bits(), "{row}");
    }
    assert_eq!(rows[4], format!("4,0,{}", losses[4]));
    assert!(rows[5].starts_with("5,1,"));
    assert!(rows[22].starts_with("22,4,"));
    assert_eq!(dir.entries(), ["loss.csv"]);
}

#[test]
fn loss_csv_edge_cases() {
    let dir = TestDir::new("csv-edge");
    let path = dir.path("loss.csv");
    write_loss_csv(&path, &[], 400).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "step,epoch,loss\n");

    write_loss_csv(&path, &[f32::NAN, f32::INFINITY, 0.5], 2).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "step,epoch,loss\n0,0,NaN\n1,0,inf\n2,1,0.5\n"
    );

    let err = write_loss_csv(&dir.path("zero.csv"), &[0.5], 0).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
    assert_eq!(dir.entries(), ["loss.csv"]);
}

#[test]
fn ensure_dir_creates_and_rejects_files() {
    let dir = TestDir::new("ensure");
    let nested = dir.path("a/b/c");
    ensure_dir(&nested).unwrap();
    assert!(nested.is_dir());
    // Existing directory: fine.
    ensure_dir(&nested).unwrap();

    let file = dir.path("file");
    fs::write(&file, b"not a dir").unwrap();
    let err = ensure_dir(&file).unwrap_err();
    match &err {
        Error::Usage(msg) => {
            assert!(msg.contains("--out"), "{msg}");
            assert!(msg.contains("exists and is not a directory"), "{msg}");
            assert!(msg.contains(&*file.to_string_lossy()), "{msg}");
        }
        other => panic!("expected Error::Usage, got {other:?}"),
    }
    assert_eq!(err.exit_code(), 2);
    // Below a file: an I/O error naming the path.
    let err = ensure_dir(&file.join("sub")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

/// Checks the PNG signature and the IHDR chunk; returns (width, height).
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = fs::read(path).unwrap();
    assert!(bytes.len() > 33, "{} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[8..12], 13u32.to_be_bytes(), "IHDR length");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    // The last chunk is an empty IEND with its fixed CRC: the file is complete.
    assert_eq!(
        &bytes[bytes.len() - 12..],
        b"\0\0\0\0IEND\xae\x42\x60\x82",
        "IEND"
    );
    (width, height)
}

/// A deterministic loss curve like the tutorial's: from ln 2 down to ln 2 / 2, with noise.
fn synthetic_losses(steps: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..steps)
        .map(|i| {
            // xorshift64*, two uniforms summed: a mild bell-shaped noise.
            let mut uniform = || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
            };
            let noise = (uniform() + uniform() - 1.0) * 0.03;
            let t = i as f32 / 1500.0;
            let progress = 1.0 / (1.0 + (-(t - 1.5) * 3.0).exp());
            let ln2 = std::f32::consts::LN_2;
            let epoch_start_bump = if i % 400 < 3 { 0.02 } else { 0.0 };
            ln2 - (ln2 / 2.0) * progress + noise + epoch_start_bump
        })
        .collect()
}

const TITLE: &str = "hidden 6, lags (1,2), time_step 5, 250 streams x 2000, adagrad lr 0.1";

fn seed_levels() -> Vec<ReferenceLevel> {
    Rule::Seed.reference_levels()
}

#[test]
fn loss_plot_writes_png_for_all_shapes_of_input() {
    let dir = TestDir::new("plot");
    let mut with_gaps = synthetic_losses(3000);
    with_gaps[0] = f32::NAN;
    with_gaps[10] = f32::INFINITY;
    with_gaps[500..520].fill(f32::NAN);
    with_gaps[1000] = f32::NEG_INFINITY;
    with_gaps[1002] = f32::NAN; // leaves a lone finite point at 1001
    let mut spiky = synthetic_losses(800);
    spiky[300] = 50.0;
    spiky[301] = 1e30;
    let cases: Vec<(&str, Vec<f32>, usize)> = vec![
        ("normal", synthetic_losses(2000), 400),
        ("empty", vec![], 400),
        ("single", vec![0.69], 400),
        ("two", vec![0.7, 0.6], 1),
        ("gaps", with_gaps, 400),
        ("all-nan", vec![f32::NAN; 50], 400),
        ("spiky", spiky, 400),
        ("long", synthetic_losses(12_000), 400),
        ("many-epochs", synthetic_losses(5000), 10),
    ];
    let mut expected = Vec::new();
    for (name, losses, windows_per_epoch) in &cases {
        for rule in [Rule::Seed, Rule::R2rt] {
            let name = format!("{name}-{rule}");
            let path = dir.path(&format!("{name}.png"));
            let levels = rule.reference_levels();
            loss_plot(&path, losses, *windows_per_epoch, &levels, TITLE).unwrap();
            assert_eq!(png_size(&path), (1000, 600), "{name}");
            expected.push(format!("{name}.png"));
        }
    }
    expected.sort();
    assert_eq!(dir.entries(), expected, "temporary files left behind");
}

#[test]
fn scaling_speedups_are_relative_to_the_fewest_threads() {
    let from_one = ScalingSeries {
        label: "hidden 256".into(),
        points: vec![
            (1, 100.0, 90.0, 110.0),
            (2, 190.0, 180.0, 200.0),
            (4, 300.0, 300.0, 300.0),
        ],
    };
    assert_eq!(
        from_one.speedups(),
        [
            (1.0, 1.0, 0.9, 1.1),
            (2.0, 1.9, 1.8, 2.0),
            (4.0, 3.0, 3.0, 3.0)
        ]
    );
    // A series that starts at 2 threads counts its first row as 2 threads' worth.
    let from_two = ScalingSeries {
        label: "hidden 6".into(),
        points: vec![(2, 200.0, 200.0, 200.0), (8, 600.0, 500.0, 700.0)],
    };
    assert_eq!(
        from_two.speedups(),
        [(2.0, 2.0, 2.0, 2.0), (8.0, 6.0, 5.0, 7.0)]
    );
    assert!(
        ScalingSeries {
            label: String::new(),
            points: vec![]
        }
        .speedups()
        .is_empty()
    );
}

#[test]
fn scaling_plot_writes_png_for_all_shapes_of_input() {
    let dir = TestDir::new("scaling");
    let curve = |label: &str, points: &[(usize, f64)]| ScalingSeries {
        label: label.into(),
        points: points
            .iter()
            .map(|&(t, r)| (t, r, r * 0.9, r * 1.2))
            .collect(),
    };
    let cases = vec![
        ("none", vec![]),
        ("one-row", vec![curve("hidden 6", &[(1, 9e7)])]),
        (
            "sixteen",
            vec![
                curve(
                    "hidden 64",
                    &[(1, 1.0), (2, 2.0), (4, 3.9), (8, 7.5), (16, 14.0)],
                ),
                curve("hidden 256", &[(1, 1.0), (2, 1.9), (16, 11.7)]),
            ],
        ),
        (
            "superlinear",
            vec![curve("hidden 256", &[(1, 1.0), (2, 2.9)])],
        ),
    ];
    let mut expected = Vec::new();
    for (name, series) in &cases {
        let path = dir.path(&format!("{name}.png"));
        scaling_plot(&path, series, "thread scaling").unwrap();
        assert_eq!(png_size(&path), (1000, 600), "{name}");
        expected.push(format!("{name}.png"));
    }
    expected.sort();
    assert_eq!(dir.entries(), expected, "temporary files left behind");
    let err = scaling_plot(&dir.path("missing/s.png"), &cases[2].1, "x").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

#[test]
fn loss_plot_errors_leave_nothing_behind() {
    let dir = TestDir::new("plot-err");
    let err = loss_plot(
        &dir.path("missing/loss.png"),
        &[0.5, 0.4],
        400,
        &seed_levels(),
        TITLE,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());

    let err = loss_plot(&dir.path("loss.png"), &[0.5, 0.4], 0, &seed_levels(), TITLE).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

/// A heatmap panel of `rows x columns` cells: values across the levels, one not done, one
/// diverged.
fn heat_panel(rows: usize, columns: usize) -> HeatmapPanel {
    HeatmapPanel {
        title: "hidden 6".into(),
        rows_name: "lags (a,b)".into(),
        rows: (1..=rows).map(|a| format!("{a},{}", a + 1)).collect(),
        columns: (1..=columns).map(|t| t.to_string()).collect(),
        cells: (0..rows * columns)
            .map(|i| HeatmapCell {
                value: match i {
                    0 => None,
                    1 => Some(f64::NAN),
                    _ => Some(0.3 + 0.45 * (i % 7) as f64 / 6.0),
                },
                label: format!("{}/5", i % 6),
            })
            .collect(),
    }
}

#[test]
fn heatmap_writes_png_for_small_large_and_many_panels() {
    let dir = TestDir::new("heatmap");
    for (name, panels, levels) in [
        (
            "one.png",
            vec![heat_panel(1, 1)],
            Rule::Seed.reference_levels(),
        ),
        (
            "seed.png",
            vec![heat_panel(12, 12)],
            Rule::Seed.reference_levels(),
        ),
        (
            "three.png",
            vec![heat_panel(4, 5); 3],
            Rule::R2rt.reference_levels(),
        ),
        (
            "huge.png",
            vec![heat_panel(300, 400); 20],
            Rule::Seed.reference_levels(),
        ),
    ] {
        let path = dir.path(name);
        heatmap(
            &path,
            &panels,
            &levels,
            TITLE,
            "cell: median, seeds learned",
            "median final loss",
        )
        .unwrap();
        let (w, h) = png_size(&path);
        assert!(
            (700..=8000).contains(&w) && (360..=8000).contains(&h),
            "{name}: {w} x {h}"
        );
    }
    // Cells that do not match the panel's shape: refused, nothing written.
    let mut bad = heat_panel(2, 2);
    bad.cells.pop();
    let err = heatmap(&dir.path("bad.png"), &[bad], &seed_levels(), TITLE, "", "").unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
    assert!(!dir.path("bad.png").exists());
}

/// The naive oracle: the mean of the finite values in the clipped centred window.
fn naive_moving_average(losses: &[f32], window: usize) -> Vec<f32> {
    let half = window / 2;
    (0..losses.len())
        .map(|i| {
            if !losses[i].is_finite() {
                return f32::NAN;
            }
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(losses.len());
            let finite: Vec<f64> = losses[lo..hi]
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| f64::from(v))
                .collect();
            (finite.iter().sum::<f64>() / finite.len() as f64) as f32
        })
        .collect()
}

#[test]
fn moving_average_matches_naive_oracle() {
    let mut losses = synthetic_losses(1000);
    losses[3] = f32::NAN;
    losses[400..410].fill(f32::INFINITY);
    // A diverging step: later windows must not lose their digits to it.
    losses[600] = 1e30;
    for window in [1, 2, 3, 4, 10, 100, 999, 1000, 5000] {
        let fast = moving_average(&losses, window);
        let naive = naive_moving_average(&losses, window);
        assert_eq!(fast.len(), losses.len());
        for (i, (f, n)) in fast.iter().zip(&naive).enumerate() {
            if n.is_nan() {
                assert!(f.is_nan(), "window {window}, step {i}: {f}");
            } else {
                // Prefix sums and direct sums differ by rounding in f64 only.
                assert!(
                    (f - n).abs() <= 1e-6,
                    "window {window}, step {i}: {f} vs {n}"
                );
            }
        }
    }
    assert_eq!(moving_average(&[], 10), Vec::<f32>::new());
    assert_eq!(moving_average(&[0.25; 7], 4), vec![0.25; 7]);
    assert_eq!(moving_average(&losses[..5], 1)[4], losses[4]);
    assert_eq!(smoothing_window(400), 100);
    assert_eq!(smoothing_window(1), 1);
}

/// Renders the example figure for a person to look at:
/// `BITRNN_EXAMPLE_PLOT=/tmp/example_loss.png cargo test --test output -- --ignored`.
#[test]
#[ignore = "writes an example image for inspection"]
fn render_example_plot() {
    let path = std::env::var_os("BITRNN_EXAMPLE_PLOT").map_or_else(
        || std::env::temp_dir().join("example_loss.png"),
        PathBuf::from,
    );
    loss_plot(&path, &synthetic_losses(12_000), 400, &seed_levels(), TITLE).unwrap();
    assert_eq!(png_size(&path), (1000, 600));
    eprintln!("wrote {}", path.display());
}
