//! Checkpoints end to end: a trained model round-trips exactly, a resumed run is bit for bit
//! the run that was never stopped (through the library and through `bitrnn train --resume`),
//! bad files are refused with exit code 2 and one line on stderr, and `bitrnn eval` scores a
//! model trained with the defaults as a model that learned the rule.

use std::fs;
use std::path::Path;
use std::process::Output;

use bitrnn::checkpoint::{self, Checkpoint};
use bitrnn::config::{Cell, Engine, Rule, TrainConfig, TrainSettings};
use bitrnn::model;
use bitrnn::train::{Progress, Trainer};

mod common;
use common::{MIN_CHAR_RNN, TestDir, bitrnn};

fn small(hidden: usize, engine: Engine, epochs: usize) -> TrainConfig {
    TrainConfig::new(TrainSettings {
        data_size: 20_000,
        batch_size: 500,
        time_step: 5,
        hidden,
        epochs,
        threads: 2,
        engine,
        ..TrainSettings::SEED
    })
    .unwrap()
}

/// Runs `steps` windows, returning their losses.
fn train_steps(t: &mut Trainer, steps: usize) -> Vec<f32> {
    (0..steps).map(|_| t.step().unwrap()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Trains `total` windows straight, and `first` windows, then saves, loads and restores
/// into a fresh trainer (with another thread count) and trains the rest: everything must be
/// identical bit for bit.
fn assert_resume_is_exact(cfg: &TrainConfig, first: usize, total: usize, dir: &TestDir) {
    let mut straight = Trainer::new(cfg.clone()).unwrap();
    let straight_losses = train_steps(&mut straight, total);

    let mut a = Trainer::new(cfg.clone()).unwrap();
    let losses = train_steps(&mut a, first);
    let path = dir.path("mid.safetensors");
    checkpoint::save(&path, &Checkpoint::of_trainer(&a, &losses)).unwrap();
    drop(a);

    let ck = checkpoint::load(&path).unwrap();
    let mut b = Trainer::new(
        TrainConfig::new(TrainSettings {
            threads: 1,
            ..*ck.config.settings()
        })
        .unwrap(),
    )
    .unwrap();
    let mut losses = ck.losses;
    b.restore(ck.params, ck.accumulator, ck.progress, &ck.hidden_state);
    losses.extend(train_steps(&mut b, total - first));

    let what = format!("{cfg:?}, resumed after {first} of {total} windows");
    assert_eq!(
        model::checksum(b.params()),
        model::checksum(straight.params()),
        "{what}"
    );
    assert_eq!(
        bits(&b.params().data),
        bits(&straight.params().data),
        "{what}"
    );
    assert_eq!(
        bits(&b.accumulator().data),
        bits(&straight.accumulator().data),
        "{what}"
    );
    assert_eq!(
        bits(&b.carried_state()),
        bits(&straight.carried_state()),
        "{what}"
    );
    assert_eq!(bits(&losses), bits(&straight_losses), "{what}");
    assert_eq!(b.progress(), straight.progress(), "{what}");
}

#[test]
fn a_trained_model_round_trips_exactly() {
    let dir = TestDir::new("roundtrip");
    let cfg = small(6, Engine::Simd, 2);
    let mut t = Trainer::new(cfg).unwrap();
    let losses = train_steps(&mut t, 130);
    let ck = Checkpoint::of_trainer(&t, &losses);
    assert_eq!(
        ck.progress,
        Progress {
            epoch: 1,
            window: 30
        }
    );
    let path = dir.path("a.safetensors");
    checkpoint::save(&path, &ck).unwrap();
    let back = checkpoint::load(&path).unwrap();
    assert_eq!(back, ck);
    // Saving what was loaded gives the same bytes.
    let again = dir.path("b.safetensors");
    checkpoint::save(&again, &back).unwrap();
    assert_eq!(fs::read(&path).unwrap(), fs::read(&again).unwrap());
}

#[test]
fn resuming_is_bit_for_bit_at_epoch_ends_and_mid_epoch() {
    let dir = TestDir::new("resume-lib");
    // 40 streams x 500 steps, 100 windows per epoch.
    for (hidden, engine) in [(6, Engine::Simd), (11, Engine::Simd), (3, Engine::Scalar)] {
        let cfg = small(hidden, engine, 3);
        assert_resume_is_exact(&cfg, 100, 300, &dir);
        assert_resume_is_exact(&cfg, 137, 300, &dir);
    }
}

/// The gated cells round-trip through a checkpoint (their `b_hh`, the LSTM's cell state) and
/// resume bit for bit, with the SIMD and the scalar engine.
#[test]
fn gated_cells_round_trip_and_resume_bit_for_bit() {
    let dir = TestDir::new("resume-gated");
    for cell in [Cell::Gru, Cell::Lstm] {
        for (hidden, engine) in [(5, Engine::Simd), (19, Engine::Simd), (3, Engine::Scalar)] {
            let cfg = TrainConfig::new(TrainSettings {
                cell,
                ..*small(hidden, engine, 2).settings()
            })
            .unwrap();
            assert_resume_is_exact(&cfg, 137, 200, &dir);
            let mut t = Trainer::new(cfg).unwrap();
            let losses = train_steps(&mut t, 30);
            let ck = Checkpoint::of_trainer(&t, &losses);
            let path = dir.path("gated.safetensors");
            checkpoint::save(&path, &ck).unwrap();
            assert_eq!(
                checkpoint::load(&path).unwrap(),
                ck,
                "{cell:?} hidden {hidden}"
            );
        }
    }
}

#[test]
fn resuming_the_seed_shape_is_bit_for_bit() {
    let dir = TestDir::new("resume-seed");
    let cfg = TrainConfig::new(TrainSettings {
        epochs: 2,
        threads: 2,
        ..TrainSettings::SEED
    })
    .unwrap();
    assert_resume_is_exact(&cfg, 400, 800, &dir);
    assert_resume_is_exact(&cfg, 555, 800, &dir);
}

/// The r2rt rule round-trips through a checkpoint, and resuming an r2rt run is bit for bit
/// the run that was never stopped.
#[test]
fn an_r2rt_run_round_trips_and_resumes_bit_for_bit() {
    let dir = TestDir::new("resume-r2rt");
    let cfg = TrainConfig::new(TrainSettings {
        rule: Rule::R2rt,
        lags: (3, 8),
        time_step: 10,
        ..*small(5, Engine::Simd, 3).settings()
    })
    .unwrap();
    let mut t = Trainer::new(cfg.clone()).unwrap();
    let losses = train_steps(&mut t, 70);
    let ck = Checkpoint::of_trainer(&t, &losses);
    let path = dir.path("r2rt.safetensors");
    checkpoint::save(&path, &ck).unwrap();
    let back = checkpoint::load(&path).unwrap();
    assert_eq!(back, ck);
    assert_eq!((back.config.rule, back.config.lags), (Rule::R2rt, (3, 8)));
    // The rule changes the data, so the run: the same settings with the seed rule differ.
    let mut seed = Trainer::new(
        TrainConfig::new(TrainSettings {
            rule: Rule::Seed,
            ..*cfg.settings()
        })
        .unwrap(),
    )
    .unwrap();
    assert_ne!(bits(&train_steps(&mut seed, 70)), bits(&losses));

    assert_resume_is_exact(&cfg, 50, 150, &dir);
    assert_resume_is_exact(&cfg, 77, 150, &dir);
}

/// The checkpoint `bytes` with `key` cut out of its config. The config is JSON inside the
/// header's JSON, its quotes escaped there; the header length (the first 8 bytes,
/// little-endian) shrinks by the key's length, and the tensors' offsets, relative to the
/// data, stay valid.
fn without_config_key(bytes: &[u8], key: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the config has the key");
    let mut old = bytes[..at].to_vec();
    old.extend_from_slice(&bytes[at + key.len()..]);
    let n = u64::from_le_bytes(old[..8].try_into().unwrap()) - key.len() as u64;
    old[..8].copy_from_slice(&n.to_le_bytes());
    old
}

/// A checkpoint written before `--rule` existed has no `rule` key in its config: it loads as
/// the seed rule, and saving it again writes the key.
#[test]
fn a_checkpoint_without_a_rule_key_is_the_seed_rule() {
    let dir = TestDir::new("no-rule-key");
    let mut t = Trainer::new(small(4, Engine::Simd, 1)).unwrap();
    let losses = train_steps(&mut t, 20);
    let path = dir.path("new.safetensors");
    checkpoint::save(&path, &Checkpoint::of_trainer(&t, &losses)).unwrap();
    let old = without_config_key(&fs::read(&path).unwrap(), br#"\"rule\":\"seed\","#);
    let old_path = dir.write("old.safetensors", &old);
    let ck = checkpoint::load(&old_path).unwrap();
    assert_eq!(ck.config.rule, Rule::Seed);
    assert_eq!(ck, checkpoint::load(&path).unwrap());
}

/// A checkpoint written before `--clip`, `--adagrad-eps`, `--adagrad-init` and `--init`
/// existed loads as the run of their defaults (no clip, eps 0, accumulator from 0.1, the
/// default init), which it was, and resumes as such.
#[test]
fn a_checkpoint_without_the_optimizer_keys_has_their_defaults() {
    let dir = TestDir::new("no-optim-keys");
    let cfg = small(4, Engine::Simd, 1);
    let mut t = Trainer::new(cfg.clone()).unwrap();
    let losses = train_steps(&mut t, 20);
    let path = dir.path("new.safetensors");
    checkpoint::save(&path, &Checkpoint::of_trainer(&t, &losses)).unwrap();
    let old = without_config_key(
        &fs::read(&path).unwrap(),
        br#"\"clip\":null,\"adagrad_eps\":0.0,\"adagrad_init\":0.1,\"init\":\"default\","#,
    );
    let ck = checkpoint::load(&dir.write("old.safetensors", &old)).unwrap();
    assert_eq!(ck.config, cfg);
    assert_eq!(ck, checkpoint::load(&path).unwrap());
}

/// min-char-rnn's settings (`--init normal:0.01 --clip 5 --adagrad-eps 1e-8 --adagrad-init
/// 0`) and the other init and clip choices round-trip through a checkpoint, and resuming is
/// bit for bit the run that was never stopped, with both engines and a gated cell.
#[test]
fn the_optimizer_and_init_settings_resume_bit_for_bit() {
    use bitrnn::config::{Init, Optimizer};
    let dir = TestDir::new("resume-optim");
    let min_char = |hidden, engine| TrainSettings {
        clip: Some(5.0),
        adagrad_eps: 1e-8,
        adagrad_init: 0.0,
        init: Init::Normal { std: 0.01 },
        ..*small(hidden, engine, 2).settings()
    };
    for settings in [
        min_char(6, Engine::Simd),
        min_char(3, Engine::Scalar),
        TrainSettings {
            cell: Cell::Lstm,
            ..min_char(5, Engine::Simd)
        },
        TrainSettings {
            init: Init::Pytorch,
            clip: Some(0.01),
            ..*small(11, Engine::Simd, 2).settings()
        },
        TrainSettings {
            optimizer: Optimizer::Sgd,
            clip: Some(0.02),
            init: Init::Pytorch,
            ..*small(4, Engine::Scalar, 2).settings()
        },
    ] {
        let cfg = TrainConfig::new(settings).unwrap();
        assert_resume_is_exact(&cfg, 137, 200, &dir);
        // The clip changes the run (it is not a no-op at these sizes).
        let unclipped = TrainConfig::new(TrainSettings {
            clip: None,
            ..settings
        })
        .unwrap();
        let (mut a, mut b) = (Trainer::new(cfg).unwrap(), Trainer::new(unclipped).unwrap());
        let (la, lb) = (train_steps(&mut a, 50), train_steps(&mut b, 50));
        if settings.clip.is_some_and(|c| c < 1.0) {
            assert_ne!(bits(&la), bits(&lb), "{settings:?}");
        }
    }
}

// ---- through the binary ----

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "bitrnn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// Exit code 2, exactly one line on stderr (the error), no panic; returns the line.
fn assert_usage_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("bitrnn: error: "), "{err}");
    err
}

const SMALL: [&str; 6] = [
    "--data-size",
    "20000",
    "--batch-size",
    "500",
    "--hidden",
    "7",
];

fn train(dir: &TestDir, out: &str, extra: &[&str]) -> serde_json::Value {
    let out_dir = dir.path(out);
    let mut args = vec![
        "train",
        "--quiet",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    stdout_json(&bitrnn(&args))
}

#[test]
fn train_resume_matches_training_straight() {
    let dir = TestDir::new("resume-cli");
    let p = |f: &str| dir.path(f).to_str().unwrap().to_string();
    let (straight, part, resumed) = (p("straight.st"), p("part.st"), p("resumed.st"));
    let (straight, part, resumed) = (straight.as_str(), part.as_str(), resumed.as_str());

    let mut args = SMALL.to_vec();
    args.extend(["--epochs", "5", "--save", straight]);
    let s = train(&dir, "straight", &args);

    let mut args = SMALL.to_vec();
    args.extend(["--epochs", "2", "--save", part, "--threads", "1"]);
    let k = train(&dir, "part", &args);
    assert_ne!(k["weights_checksum"], s["weights_checksum"]);

    // The model flags come from the checkpoint: none are given here.
    let r = train(
        &dir,
        "resumed",
        &["--resume", part, "--epochs", "5", "--save", resumed],
    );
    assert_eq!(r["weights_checksum"], s["weights_checksum"]);
    assert_eq!(r["config"], s["config"]);
    assert_eq!(r["steps"], s["steps"]);
    assert_eq!(r["epoch_loss"], s["epoch_loss"]);
    assert_eq!(r["final_loss"], s["final_loss"]);
    assert_eq!(r["first_epoch"], 2);
    assert_eq!(r["epoch_sample_steps_per_s"].as_array().unwrap().len(), 3);
    assert_eq!(r["resumed_from"], part);
    assert_eq!(s["first_epoch"], 0);
    assert!(s["resumed_from"].is_null());
    // The whole run's losses, and the same checkpoint bytes (same --threads in the config).
    assert_eq!(
        fs::read(dir.path("resumed/loss.csv")).unwrap(),
        fs::read(dir.path("straight/loss.csv")).unwrap()
    );
    assert_eq!(fs::read(resumed).unwrap(), fs::read(straight).unwrap());

    // A model flag that disagrees with the checkpoint, or fewer epochs than it has: exit 2.
    // (--out points into the test directory in case a refusal is missed.)
    let o = dir.path("refused");
    let o = o.to_str().unwrap();
    let e = assert_usage_error(&bitrnn(&[
        "train", "--quiet", "--out", o, "--resume", part, "--hidden", "8",
    ]));
    assert!(e.contains("--hidden 8 (the checkpoint has 7)"), "{e}");
    let e = assert_usage_error(&bitrnn(&[
        "train", "--quiet", "--out", o, "--resume", part, "--lags", "2,1", "--seed", "5",
    ]));
    assert!(e.contains("--lags (2, 1)") && e.contains("--seed 5"), "{e}");
    let e = assert_usage_error(&bitrnn(&[
        "train", "--quiet", "--out", o, "--resume", part, "--epochs", "1",
    ]));
    assert!(e.contains("already trained 2 epoch(s)"), "{e}");
    // A flag equal to the checkpoint's value is fine.
    let mut args = SMALL.to_vec();
    args.extend(["--resume", part, "--epochs", "3"]);
    let r3 = train(&dir, "resumed3", &args);
    assert_eq!(r3["steps"], 3 * 100);
}

/// min-char-rnn's settings through the binary: summary.json shows them, `--resume` without
/// flags keeps them (the weights of training straight), a flag that disagrees with the
/// checkpoint is refused naming the flag and both values, and one that agrees is accepted.
#[test]
fn min_char_rnn_settings_resume_through_the_binary() {
    let dir = TestDir::new("resume-min-char");
    let p = |f: &str| dir.path(f).to_str().unwrap().to_string();
    let (straight, part) = (p("straight.st"), p("part.st"));
    let min_char = MIN_CHAR_RNN;
    let run = |out: &str, extra: &[&str]| {
        let mut args = SMALL.to_vec();
        args.extend(min_char);
        args.extend(extra);
        train(&dir, out, &args)
    };
    let s = run("straight", &["--epochs", "3", "--save", &straight]);
    let c = &s["config"];
    assert_eq!(
        (
            &c["init"],
            &c["clip"],
            &c["adagrad_eps"],
            &c["adagrad_init"]
        ),
        (
            &serde_json::json!("normal:0.01"),
            &serde_json::json!(5.0),
            &serde_json::json!(1e-8),
            &serde_json::json!(0.0)
        ),
        "{c}"
    );
    run("part", &["--epochs", "1", "--save", &part]);
    let r = train(&dir, "resumed", &["--resume", &part, "--epochs", "3"]);
    assert_eq!(r["weights_checksum"], s["weights_checksum"]);
    assert_eq!(r["config"], s["config"]);
    assert_eq!(r["epoch_loss"], s["epoch_loss"]);
    // The defaults' run is another run.
    let d = train(
        &dir,
        "defaults",
        &[SMALL.as_slice(), &["--epochs", "3"]].concat(),
    );
    assert_ne!(d["weights_checksum"], s["weights_checksum"]);
    assert!(d["config"]["clip"].is_null(), "{}", d["config"]);

    let o = p("refused");
    for (flag, value, want) in [
        ("--clip", "3", "--clip 3.0 (the checkpoint has 5.0)"),
        (
            "--init",
            "pytorch",
            "--init pytorch (the checkpoint has normal:0.01)",
        ),
        (
            "--adagrad-eps",
            "1e-6",
            "--adagrad-eps 1e-6 (the checkpoint has 1e-8)",
        ),
        (
            "--adagrad-init",
            "0.5",
            "--adagrad-init 0.5 (the checkpoint has 0.0)",
        ),
    ] {
        let e = assert_usage_error(&bitrnn(&[
            "train", "--quiet", "--out", &o, "--resume", &part, "--epochs", "3", flag, value,
        ]));
        assert!(e.contains(want), "{e}");
    }
    let mut args = vec!["--resume", part.as_str(), "--epochs", "2"];
    args.extend(min_char);
    assert_eq!(train(&dir, "agreeing", &args)["steps"], 2 * 100);
}

/// `--rule r2rt` through the binary: the summary's config and reference levels, `--resume`
/// without flags keeps the rule (the same weights as training straight), and `eval` scores
/// on r2rt data by default and names r2rt's levels.
#[test]
fn an_r2rt_run_resumes_and_evaluates_through_the_binary() {
    let dir = TestDir::new("r2rt-cli");
    let p = |f: &str| dir.path(f).to_str().unwrap().to_string();
    let (straight, part) = (p("straight.st"), p("part.st"));
    let base = [SMALL.as_slice(), &["--rule", "r2rt", "--time-step", "10"]].concat();

    let args = [base.as_slice(), &["--epochs", "3", "--save", &straight]].concat();
    let s = train(&dir, "straight", &args);
    assert_eq!(s["config"]["rule"], "r2rt");
    assert_eq!(s["config"]["lags"], serde_json::json!([3, 8]));
    let levels = s["reference_levels"].as_object().unwrap();
    let names: Vec<&str> = levels.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 3, "{levels:?}");
    for (name, want) in [
        ("both_lags", 0.4545),
        ("lag_a_only", 0.5192),
        ("nothing_learned", 0.6616),
    ] {
        assert!(
            (levels[name].as_f64().unwrap() - want).abs() < 5e-5,
            "{name}: {levels:?}"
        );
    }

    let args = [base.as_slice(), &["--epochs", "1", "--save", &part]].concat();
    train(&dir, "part", &args);
    let r = train(&dir, "resumed", &["--resume", &part, "--epochs", "3"]);
    assert_eq!(r["weights_checksum"], s["weights_checksum"]);
    assert_eq!(r["config"]["rule"], "r2rt");
    // Naming the checkpoint's rule is no conflict; another rule is.
    let r = train(
        &dir,
        "resumed2",
        &["--resume", &part, "--epochs", "3", "--rule", "r2rt"],
    );
    assert_eq!(r["weights_checksum"], s["weights_checksum"]);
    let o = bitrnn(&[
        "train",
        "--quiet",
        "--out",
        &p("bad"),
        "--resume",
        &part,
        "--lags",
        "2,9",
    ]);
    assert!(assert_usage_error(&o).contains("--lags (2, 9) (the checkpoint has (3, 8))"));

    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--model", straight.as_str(), "--data-size", "20000"];
        args.extend_from_slice(extra);
        bitrnn(&args)
    };
    let e = stdout_json(&eval(&["--json"]));
    assert_eq!(
        (e["rule"].as_str(), e["lags"].clone()),
        (Some("r2rt"), serde_json::json!([3, 8]))
    );
    let o = eval(&[]);
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.contains("rule r2rt, lags 3,8"), "{line}");
    assert!(line.contains("0.4545/0.75 = both lags learned, 0.5192/0.75 = lag a only, 0.6616/0.625 = nothing learned"), "{line}");
    // Another rule takes its own default lags.
    let e = stdout_json(&eval(&["--json", "--rule", "seed"]));
    assert_eq!(
        (e["rule"].as_str(), e["lags"].clone()),
        (Some("seed"), serde_json::json!([1, 2]))
    );
}

#[test]
fn train_and_eval_refuse_bad_checkpoints() {
    let dir = TestDir::new("bad-cli");
    let good_path = dir.path("good.st");
    let mut args = SMALL.to_vec();
    args.extend(["--epochs", "1", "--save", good_path.to_str().unwrap()]);
    train(&dir, "good", &args);
    let good = fs::read(&good_path).unwrap();

    let mut random = Vec::with_capacity(5000);
    let mut s: u32 = 0x1234_5678;
    for _ in 0..5000 {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        random.push((s >> 24) as u8);
    }
    let mut huge_header = (1u64 << 40).to_le_bytes().to_vec();
    huge_header.extend_from_slice(&good[8..]);
    // One bit flipped in the weights (rnn.weight_hh_l0, just before the last tensor), and in
    // the losses (before the fc. and rnn. tensors, 372 bytes at hidden 7).
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last - 100] ^= 0x40;
    let mut flipped_loss = good.clone();
    flipped_loss[last - 400] ^= 0x01;
    let cases: [(&str, Vec<u8>, &str); 7] = [
        ("empty", Vec::new(), "empty file"),
        ("random", random, "absurd"),
        ("truncated", good[..good.len() - 10].to_vec(), "truncated"),
        ("header", huge_header, "absurd"),
        ("json", good[..200].to_vec(), "truncated"),
        ("flipped", flipped, "weights_checksum mismatch"),
        ("flipped-loss", flipped_loss, "state_checksum mismatch"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.path(&format!("{name}.st"));
        fs::write(&path, &bytes).unwrap();
        let p = path.to_str().unwrap();
        for args in [
            vec!["eval", "--model", p],
            vec![
                "train",
                "--quiet",
                "--resume",
                p,
                "--out",
                dir.path("o").to_str().unwrap(),
            ],
        ] {
            let e = assert_usage_error(&bitrnn(&args));
            assert!(e.contains(p), "{name}: names the file: {e}");
            assert!(e.contains(needle), "{name}: {e}");
        }
    }
    // A missing file is a usage error naming the flag (exit 2), also one line.
    let out = bitrnn(&["eval", "--model", dir.path("none.st").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1);
    assert!(err.contains("--model"), "{err}");
}

#[test]
fn eval_reports_json_and_refuses_bad_flags() {
    let dir = TestDir::new("eval-cli");
    let model = dir.path("m.st");
    let m = model.to_str().unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--epochs", "2", "--seed", "41", "--save", m]);
    let s = train(&dir, "m", &args);

    let r = stdout_json(&bitrnn(&["eval", "--model", m, "--json"]));
    for key in [
        "model",
        "loss",
        "accuracy",
        "samples",
        "data_size",
        "lags",
        "seed",
        "streams",
        "batch_size",
        "time_step",
        "windows",
        "hidden",
        "train_seed",
        "trained_epochs",
        "weights_checksum",
    ] {
        assert!(r.get(key).is_some(), "eval --json has {key}: {r}");
    }
    assert_eq!(r["seed"], 42, "the default seed is the training seed + 1");
    assert_eq!(r["train_seed"], 41);
    assert_eq!(r["data_size"], 500_000);
    assert_eq!(r["batch_size"], 500);
    assert_eq!(r["streams"], 1000);
    assert_eq!(r["windows"], 100);
    assert_eq!(r["samples"], 500_000);
    assert_eq!(r["hidden"], 7);
    assert_eq!(r["lags"], serde_json::json!([1, 2]));
    assert_eq!(r["trained_epochs"], 2);
    assert_eq!(r["weights_checksum"], s["weights_checksum"]);

    // Explicit settings are used; the same settings give the same figures.
    let args = [
        "eval",
        "--model",
        m,
        "--json",
        "--data-size",
        "30000",
        "--lags",
        "5,6",
        "--seed",
        "3",
    ];
    let r = stdout_json(&bitrnn(&args));
    assert_eq!(r["data_size"], 30_000);
    assert_eq!(r["seed"], 3);
    assert_eq!(r["lags"], serde_json::json!([5, 6]));
    assert_eq!(r, stdout_json(&bitrnn(&args)));

    // Without --json: one readable line on stdout.
    let out = bitrnn(&["eval", "--model", m]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.contains("loss ") && line.contains("accuracy "),
        "{line}"
    );

    for (args, needle) in [
        (vec!["--data-size", "100"], "--data-size 100"),
        (vec!["--lags", "3,3"], "--lags 3,3"),
        (vec!["--lags", "x"], "expected two positive integers"),
        (vec!["--seed", "x"], "--seed"),
    ] {
        let mut all = vec!["eval", "--model", m];
        all.extend(args);
        let out = bitrnn(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(needle), "{all:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // --model is required.
    assert_eq!(bitrnn(&["eval"]).status.code(), Some(2));
}

#[test]
fn a_model_trained_with_the_defaults_learns_the_rule() {
    let dir = TestDir::new("defaults");
    let model = dir.path("default.st");
    let m = model.to_str().unwrap();
    let s = train(&dir, "default", &["--save", m]);
    assert_eq!(s["steps"], 4000);
    let r = stdout_json(&bitrnn(&["eval", "--model", m, "--json"]));
    let (loss, accuracy) = (r["loss"].as_f64().unwrap(), r["accuracy"].as_f64().unwrap());
    assert!(accuracy >= 0.74, "accuracy {accuracy}");
    assert!(loss <= 0.36, "loss {loss}");
    // Fresh data: the seed is not the training seed.
    assert_eq!(r["seed"], 1);
    // The unlearnable lags from the same model: no better than chance.
    let r = stdout_json(&bitrnn(&["eval", "--model", m, "--json", "--lags", "5,6"]));
    assert!(r["accuracy"].as_f64().unwrap() < 0.55, "{r}");
}

#[test]
fn checkpoint_path_mistakes_fail_before_training() {
    let dir = TestDir::new("save-path");
    let out = dir.path("o");
    let o = out.to_str().unwrap();
    let missing = dir.path("no/such/dir/m.st");
    let e = assert_usage_error(&bitrnn(&[
        "train",
        "--quiet",
        "--out",
        o,
        "--save",
        missing.to_str().unwrap(),
    ]));
    assert!(e.contains("--save"), "{e}");
    let e = assert_usage_error(&bitrnn(&[
        "train",
        "--quiet",
        "--out",
        o,
        "--save",
        dir.0.to_str().unwrap(),
    ]));
    assert!(e.contains("--save"), "{e}");
    assert!(!Path::new(o).join("summary.json").exists());
}
