//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with cargo-fuzz)
//! and their corpus replay test (`tests/fuzz_corpus.rs`, run by `cargo test` on stable).
//!
//! Each function takes the fuzzer's raw bytes, runs one piece of bitrnn on them and panics
//! when a property fails; a panic is what the fuzzer reports. Everything else (an input the
//! code refuses cleanly) returns normally.
//!
//! - [`checkpoint_load`]: any bytes as a checkpoint file: [`checkpoint::load`] returns an
//!   error naming the file on one line, or a checkpoint that saves and loads back unchanged.
//! - [`cli_parse`]: any argument vector: the command line parses or is refused by clap, and
//!   every parsed command's flags validate into a ready config or a one-line usage error
//!   that names a flag. Nothing runs.
//! - [`simd_vs_reference`]: any small window (hidden 1..=24, streams 1..=24, 1..=8 steps,
//!   Glorot-sized weights): the SIMD kernels agree with the f64 reference within an error
//!   bound derived from the arithmetic, and produce no NaN or infinity.

use crate::checkpoint;
use crate::cli::{Cli, Command};
use crate::error::Error;
use bitrnn_kernels::simd::{self, Planes, Prepared, Workspace};
use bitrnn_kernels::{Layout, Params, approx, reference};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------
// checkpoint_load
// ---------------------------------------------------------------------------------------

/// A file for one call of [`checkpoint_load`], written and removed by it (the loader only has
/// a file-based API); unique per process and call, so that tests may run calls in parallel.
fn scratch_file() -> PathBuf {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "bitrnn-fuzz-checkpoint-{}-{call}.safetensors",
        std::process::id()
    ))
}

/// `data` as a checkpoint file: the loader refuses it with one line naming the file, or the
/// checkpoint it returns is consistent: it saves ([`checkpoint::to_bytes`], whose shape
/// assertions check it) and loads back equal.
///
/// # Panics
/// When a property fails (or the scratch file in the temp dir cannot be written).
pub fn checkpoint_load(data: &[u8]) {
    /// Removes the scratch file when done, panic or not.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let scratch = Scratch(scratch_file());
    let path = &scratch.0;
    std::fs::write(path, data).expect("the scratch file can be written");
    match checkpoint::load(path) {
        Ok(ck) => {
            let bytes = checkpoint::to_bytes(&ck);
            std::fs::write(path, &bytes).expect("the scratch file can be written");
            let again = checkpoint::load(path).expect("a saved checkpoint loads");
            assert_eq!(
                again, ck,
                "a loaded checkpoint saves and loads back unchanged"
            );
        }
        Err(e) => {
            assert!(
                matches!(e, Error::BadFile { .. } | Error::Io { .. }),
                "a bad checkpoint is a bad file: {e:?}"
            );
            assert_one_line(&e.to_string());
            assert!(
                e.to_string().starts_with(&path.display().to_string()),
                "the error names the file: {e}"
            );
        }
    }
}

fn assert_one_line(message: &str) {
    assert!(
        !message.is_empty() && !message.contains(['\n', '\r']),
        "an error is one non-empty line: {message:?}"
    );
}

// ---------------------------------------------------------------------------------------
// cli_parse
// ---------------------------------------------------------------------------------------

/// `data` as the arguments after `bitrnn`, separated by NUL bytes (on Unix each argument is
/// taken as raw bytes, so non-UTF-8 arguments are tried too).
#[must_use]
pub fn arguments(data: &[u8]) -> Vec<std::ffi::OsString> {
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0)
        .map(|arg| {
            #[cfg(unix)]
            {
                std::os::unix::ffi::OsStringExt::from_vec(arg.to_vec())
            }
            #[cfg(not(unix))]
            {
                String::from_utf8_lossy(arg).into_owned().into()
            }
        })
        .collect()
}

/// `data` ([`arguments`]) through the command line's parser and every validation a command
/// does before it runs, without running anything (`--out` and `--resume` are only looked at,
/// never created or read).
///
/// Properties: no panic; a parsed command's flags either validate into a config that keeps
/// the config's invariants (its memory estimate within the limit, at least one stream and one
/// window, the lags inside the data) or are refused by an [`Error::Usage`] of one line that
/// starts with the flag (`--name`).
///
/// Not covered here (their checks need a file or live in `run`): what `eval --model` and
/// `train --resume` hold (see [`checkpoint_load`]), `train --save`, `profile --seconds`.
///
/// # Panics
/// When a property fails.
pub fn cli_parse(data: &[u8]) {
    let args = arguments(data);
    let cli = match Cli::try_parse_args(std::iter::once("bitrnn".into()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            // Rendering the error (help, version, usage) must not panic either.
            let _ = e.render().to_string();
            return;
        }
    };
    let usage = |r: crate::Result<()>| match r {
        Ok(()) => {}
        Err(Error::Usage(m)) => {
            assert_one_line(&m);
            assert!(
                m.starts_with("--"),
                "a usage error names the flag first: {m}"
            );
        }
        Err(e) => panic!("validation fails with a usage error only: {e:?}"),
    };
    match &cli.command {
        Command::Train(args) => {
            usage(args.model.to_config(args.epochs).map(check_config));
            usage(args.check_paths());
        }
        Command::Profile(args) => usage(args.model.to_config(1).map(check_config)),
        Command::Generate(args) => usage(args.validate()),
        Command::Bench(args) => usage(args.plan().map(|plan| {
            assert!(plan.hidden.iter().chain(&plan.threads).all(|&v| v >= 1));
            assert!(plan.streams >= 1 && plan.time_step >= 1 && plan.repeats >= 1);
        })),
        Command::Verify(args) => usage(args.shapes().map(|shapes| {
            assert!(!shapes.is_empty());
            assert!(
                shapes
                    .iter()
                    .all(|s| s.hidden >= 1 && s.streams >= 1 && s.time_step >= 1)
            );
        })),
        Command::Eval(_) => {}
    }
}

/// The invariants every validated config keeps (what the trainer relies on).
fn check_config(cfg: crate::config::TrainConfig) {
    assert!(
        cfg.streams() >= 1 && cfg.windows_per_epoch() >= 1,
        "{cfg:?}"
    );
    assert!(cfg.time_step <= cfg.batch_size && cfg.batch_size <= cfg.data_size);
    let (a, b) = cfg.lags;
    assert!(a >= 1 && b >= 1 && a != b && a.max(b) < cfg.data_size);
    assert!(cfg.lr.is_finite() && cfg.lr > 0.0);
    assert!(cfg.epochs >= 1 && cfg.threads >= 1 && cfg.hidden >= 1);
    assert!(cfg.memory_bytes().total() <= crate::config::memory_limit());
    let _ = cfg.describe();
    let _ = serde_json::to_string(&cfg).expect("a config serializes");
}

// ---------------------------------------------------------------------------------------
// simd_vs_reference
// ---------------------------------------------------------------------------------------

/// Largest shapes [`simd_vs_reference`] builds: both kernel families (small: hidden <= 8,
/// blocked: above), one to three lane groups with every count of padding lanes.
pub const FUZZ_MAX_HIDDEN: usize = 24;
pub const FUZZ_MAX_STREAMS: usize = 24;
pub const FUZZ_MAX_TIME_STEP: usize = 8;

/// The fuzzer's bytes read as numbers; zeros once they run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    /// A number in [-1, 1) on a grid of 2^-15, from two bytes.
    fn unit(&mut self) -> f64 {
        f64::from(i16::from_le_bytes([self.byte(), self.byte()])) / 32_768.0
    }
}

/// One window decoded from the fuzzer's bytes. Every number is an `f32` (held in f64), so
/// that both engines start from the same values.
#[derive(Clone, Debug)]
pub struct FuzzWindow {
    pub streams: usize,
    pub time_step: usize,
    pub params: Params<f64>,
    /// `[streams][hidden]`, in [-1, 1].
    pub h0: Vec<f64>,
    /// `[time_step][streams]`, 0 or 1.
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

impl FuzzWindow {
    /// Bytes 0-2: hidden `1 + b % 24`, streams `1 + b % 24`, time_step `1 + b % 8`; then two
    /// bytes per weight (`|w| <= 1/sqrt(hidden)`, Glorot-sized), two per carried-state value
    /// (in [-1, 1)), and the bits of x and y, one byte per 8 of them.
    #[must_use]
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader(data);
        let hidden = 1 + usize::from(r.byte()) % FUZZ_MAX_HIDDEN;
        let streams = 1 + usize::from(r.byte()) % FUZZ_MAX_STREAMS;
        let time_step = 1 + usize::from(r.byte()) % FUZZ_MAX_TIME_STEP;
        let scale = 1.0 / (hidden as f64).sqrt();
        let mut params = Params::zeros(hidden);
        for w in &mut params.data {
            *w = f64::from((scale * r.unit()) as f32);
        }
        let h0 = (0..streams * hidden).map(|_| r.unit()).collect();
        let n = streams * time_step;
        let mut bits = |n: usize| {
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                let b = r.byte();
                v.extend((0..8).map(|i| (b >> i) & 1).take(n - v.len()));
            }
            v
        };
        let x = bits(n);
        let y = bits(n);
        Self {
            streams,
            time_step,
            params,
            h0,
            x,
            y,
        }
    }

    #[must_use]
    pub fn hidden(&self) -> usize {
        self.params.hidden
    }

    fn window(&self) -> reference::Window<'_> {
        reference::Window {
            streams: self.streams,
            time_step: self.time_step,
            x: &self.x,
            y: &self.y,
        }
    }

    /// The x and y bit planes of the kernels: bit `s % 8` of byte `t * groups + s / 8` is
    /// stream `s` at step `t`; padding bits are 0.
    fn planes(&self) -> (Vec<u8>, Vec<u8>) {
        let stride = simd::plane_bytes(self.streams);
        let pack = |bits: &[u8]| {
            let mut plane = vec![0u8; self.time_step * stride];
            for t in 0..self.time_step {
                for s in 0..self.streams {
                    plane[t * stride + s / 8] |= bits[t * self.streams + s] << (s % 8);
                }
            }
            plane
        };
        (pack(&self.x), pack(&self.y))
    }
}

/// Unit roundoff of f32.
const U: f64 = 1.0 / 16_777_216.0;

/// `gamma(n) = n u / (1 - n u)`: the relative error of `n` roundings in a row (Higham,
/// *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 3.1).
fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Relative error of `approx::exp` and `approx::ln` (an ulp is at most `2u` of the value).
const EXP_REL: f64 = 2.0 * U * approx::EXP_MAX_ULP as f64;
const LN_REL: f64 = 2.0 * U * approx::LN_MAX_ULP as f64;
/// The head's probability `p1 = 1/(1 + e)` or `e/(1 + e)`: `exp`'s error, passed on at most
/// once, and 3 roundings (`1 + e`, the division, `e * q`), one spare.
const P1_REL: f64 = EXP_REL + 4.0 * U * (1.0 + 8.0 * U);
/// The head's loss `max(s, 0) + ln(1 + e)` (with Fast2Sum's correction of `1 + e`): `exp`'s
/// and `ln`'s errors and 6 roundings (derived in `kernels/tests/simd.rs`).
const LOSS_REL: f64 = EXP_REL + LN_REL + 6.0 * U * (1.0 + 8.0 * U);
/// Slack for the f64 reference's own rounding (`gamma_64(n)` for the longest chain here,
/// a few hundred operations, is below 1e-13) against the magnitudes summed.
const F64_SLACK: f64 = 1e-12;

/// The window's exact values (along the f64 trajectory) and a bound on the SIMD engine's
/// distance from each.
struct Bound {
    loss_sum: f64,
    loss_sum_tol: f64,
    correct: f64,
    ambiguous: f64,
    /// `h_{T-1}`, `[streams][hidden]`, and its bound.
    state: Vec<f64>,
    state_tol: Vec<f64>,
    /// The gradient (the [`Params`] layout), its bound, and the sum of the magnitudes of what
    /// the reference adds up for it (the scale of the reference's own rounding).
    grad: Vec<f64>,
    grad_tol: Vec<f64>,
    ref_mag: Vec<f64>,
}

/// A running forward error bound along the window's f64 trajectory: entrywise, with the tanh
/// slope of each step (simpler than the property tests' bound in `kernels/tests/simd.rs`,
/// which also tracks 2-norms; this one is rigorous for any weights but only informative
/// where `|w_hh|` times the slopes does not grow much over the window, which the Glorot-sized
/// weights of [`FuzzWindow`] and at most 8 steps keep true for most windows).
///
/// Notation: `E` bounds the error of the SIMD engine's `h` entry by entry, `Z` that of `dz`;
/// `|.|` of an exact value; `terms` the sum of the magnitudes (error included) of what a dot
/// product adds. Per stream, step and unit:
///
/// - `z = (w_xh[x] + b_h) + sum_k w_hh[j][k] h_k`: at most `2H + 4` roundings along any
///   summation order with or without FMA (the prepared `w_xh + b_h`, a product and an
///   addition per term), so `e(z) = gamma(2H + 4) terms + sum_k |w_hh[j][k]| E_k`.
/// - `h = tanh(z)`: the slope of tanh on `[z - e, z + e]` is at most
///   `s = min(1, 1 - h^2 + 2|h| e)`, and `approx::tanh` adds at most `TANH_MAX_ULP` ulp of
///   its result and at most `TANH_MAX_ABS`: `E = s e(z) + min(ulps, abs)`.
/// - `d = (b_y[1] - b_y[0]) + sum_j (w_hy[1][j] - w_hy[0][j]) h_j`: as `z`, with one more
///   rounding for the prepared differences: `gamma(2H + 5)`.
/// - Loss `softplus(±d)`: slope at most 1, then [`LOSS_REL`] and the cap of `|d|` at 80
///   (`e^-80`). `p1 = sigmoid(d)`: slope at most 1/4, then [`P1_REL`] and the cap.
///   `dl = (p1 - y) fl(1/N)`: 3 roundings of a value at most `1/N`, then the flush (2^-64).
///   A sample's prediction may differ where `|d| <= e(d)`.
///
/// Backward (steps descending; `dz'` of the next step, 0 after the last):
///
/// - `dh = wy_j dl + sum_i w_hh[i][j] dz'_i`:
///   `e(dh) = gamma(2H + 5) terms + |wy_j| e(dl) + sum_i |w_hh[i][j]| Z'_i`.
/// - `g = 1 - h^2`: `e(g) = (2|h| + E) E + 2u`; `dz = fl(dh g)`, flushed:
///   `Z = e(dh) (g + e(g)) (1 + u) + |dh| e(g) + u |dh| (g + e(g)) + 2^-64`.
///
/// Gradients: an entry sums `N = S T` products `a b` (`a` = `dz` or `dl`, `b` = `h` or 1, `x`
/// exact); each carries `e(a) (|b| + E_b) + |a| E_b`, and the summation adds
/// `gamma(N + 6) sum |a b|`-sized terms (per lane `G T <= N` accumulations, one product
/// rounding, three levels of the lane sum, one for `b_h = dw_xh[0] + dw_xh[1]`, one spare).
/// The loss sum likewise.
fn bound(w: &FuzzWindow) -> Bound {
    let p = &w.params;
    let (hd, s_n, t_n) = (p.hidden, w.streams, w.time_step);
    let n = s_n * t_n;
    let inv_n = 1.0 / n as f64;
    let (w_xh, w_hh, b_h, w_hy, b_y) = (p.w_xh(), p.w_hh(), p.b_h(), p.w_hy(), p.b_y());
    let wy: Vec<f64> = (0..hd).map(|j| w_hy[hd + j] - w_hy[j]).collect();
    let by = b_y[1] - b_y[0];
    let (dot, head_dot) = (gamma(2 * hd + 4), gamma(2 * hd + 5));
    let tanh_ulp = f64::from(approx::TANH_MAX_ULP);
    let tanh_abs = f64::from(approx::TANH_MAX_ABS);
    let tiny = f64::from(f32::from_bits(1));
    let cap = (-80f64).exp() * (1.0 + EXP_REL);
    let flush = f64::from(simd::FLUSH);
    let sum_gamma = gamma(n + 6);

    let len = Layout::new(hd).len();
    let mut grad = vec![0.0; len];
    let mut grad_err = vec![0.0; len];
    let mut grad_mag = vec![0.0; len];
    let mut ref_mag = vec![0.0; len];
    let (mut loss_sum, mut loss_err, mut loss_mag) = (0.0, 0.0, 0.0);
    let (mut correct, mut ambiguous) = (0.0, 0.0);
    let mut state = vec![0.0; s_n * hd];
    let mut state_tol = vec![0.0; s_n * hd];
    let ranges = p.layout().ranges();
    let (r_xh, r_hh, r_bh, r_hy, r_by) = (
        ranges[0].0,
        ranges[1].0,
        ranges[2].0,
        ranges[3].0,
        ranges[4].0,
    );

    for s in 0..s_n {
        // h[t + 1], e[t + 1]: h_t and its bound; [0] the carried state (exact).
        let mut h = vec![vec![0.0; hd]; t_n + 1];
        let mut e = vec![vec![0.0; hd]; t_n + 1];
        h[0].copy_from_slice(&w.h0[s * hd..(s + 1) * hd]);
        let (mut dl, mut e_dl) = (vec![0.0; t_n], vec![0.0; t_n]);
        for t in 0..t_n {
            let x = usize::from(w.x[t * s_n + s]);
            let y = f64::from(w.y[t * s_n + s]);
            for j in 0..hd {
                let zx = w_xh[x * hd + j] + b_h[j];
                let (mut z, mut terms, mut carried) = (zx, zx.abs(), 0.0);
                for k in 0..hd {
                    let wjk = w_hh[j * hd + k];
                    z += wjk * h[t][k];
                    terms += wjk.abs() * (h[t][k].abs() + e[t][k]);
                    carried += wjk.abs() * e[t][k];
                }
                let e_z = dot * terms + carried;
                let hv = z.tanh();
                let slope = (1.0 - hv * hv + 2.0 * hv.abs() * e_z).min(1.0);
                let e_tanh = (tanh_ulp * (2.0 * U * (hv.abs() + slope * e_z) + tiny)).min(tanh_abs);
                h[t + 1][j] = hv;
                e[t + 1][j] = slope * e_z + e_tanh;
            }
            let (mut d, mut terms, mut carried) = (by, by.abs(), 0.0);
            for j in 0..hd {
                d += wy[j] * h[t + 1][j];
                terms += wy[j].abs() * (h[t + 1][j].abs() + e[t + 1][j]);
                carried += wy[j].abs() * e[t + 1][j];
            }
            let e_d = head_dot * terms + carried;
            let sgn = if y == 1.0 { -d } else { d };
            let loss = sgn.max(0.0) + (-sgn.abs()).exp().ln_1p();
            let e_loss = e_d + LOSS_REL * (loss + e_d) + cap;
            loss_sum += loss;
            loss_err += e_loss;
            loss_mag += loss + e_loss;
            let p1 = 1.0 / (1.0 + (-d).exp());
            let e_p1 = e_d / 4.0 + P1_REL + cap;
            dl[t] = (p1 - y) * inv_n;
            e_dl[t] = (e_p1 + 3.0 * U * (1.0 + e_p1) * (1.0 + 4.0 * U)) * inv_n + flush;
            if (d >= 0.0) == (y == 1.0) {
                correct += 1.0;
            }
            if d.abs() <= e_d {
                ambiguous += 1.0;
            }
        }
        state[s * hd..(s + 1) * hd].copy_from_slice(&h[t_n]);
        state_tol[s * hd..(s + 1) * hd].copy_from_slice(&e[t_n]);

        // Backward. `dz_mag` is the sum of the magnitudes of what the reference adds up for
        // `dz` (it sums both classes' `w_hy[c][j] dl[c]`, whose f64 rounding does not cancel
        // where `w_hy[1][j] = w_hy[0][j]`): the scale of the reference's own error.
        let (mut dz_next, mut z_next, mut mag_next) = (vec![0.0; hd], vec![0.0; hd], vec![0.0; hd]);
        let (mut dz, mut z_err, mut dz_mag) = (vec![0.0; hd], vec![0.0; hd], vec![0.0; hd]);
        for t in (0..t_n).rev() {
            let x = usize::from(w.x[t * s_n + s]);
            let (hc, ec) = (&h[t + 1], &e[t + 1]);
            for j in 0..hd {
                let mut dh = wy[j] * dl[t];
                let mut terms = wy[j].abs() * (dl[t].abs() + e_dl[t]);
                let mut carried = wy[j].abs() * e_dl[t];
                let mut mag = (w_hy[j].abs() + w_hy[hd + j].abs()) * 2.0 * inv_n;
                for i in 0..hd {
                    let wij = w_hh[i * hd + j];
                    dh += wij * dz_next[i];
                    terms += wij.abs() * (dz_next[i].abs() + z_next[i]);
                    carried += wij.abs() * z_next[i];
                    mag += wij.abs() * mag_next[i];
                }
                dz_mag[j] = mag;
                let e_dh = head_dot * terms + carried;
                let g = 1.0 - hc[j] * hc[j];
                let e_g = (2.0 * hc[j].abs() + ec[j]) * ec[j] + 2.0 * U;
                dz[j] = dh * g;
                z_err[j] = e_dh * (g + e_g) * (1.0 + U)
                    + dh.abs() * e_g
                    + U * dh.abs() * (g + e_g)
                    + flush;
            }
            // The terms of this step and stream, into their gradient entries; `am` is the
            // reference's magnitude of `a` (see `dz_mag`).
            let mut add = |i: usize, (a, ea, am): (f64, f64, f64), b: f64, eb: f64| {
                grad[i] += a * b;
                grad_err[i] += ea * (b.abs() + eb) + a.abs() * eb;
                grad_mag[i] += (a.abs() + ea) * (b.abs() + eb);
                ref_mag[i] += (a.abs() + ea + am) * (b.abs() + eb);
            };
            let (hp, ep) = (&h[t], &e[t]);
            let (up, down) = (
                (dl[t], e_dl[t], 2.0 * inv_n),
                (-dl[t], e_dl[t], 2.0 * inv_n),
            );
            for j in 0..hd {
                let a = (dz[j], z_err[j], dz_mag[j]);
                for k in 0..hd {
                    add(r_hh + j * hd + k, a, hp[k], ep[k]);
                }
                add(r_xh + x * hd + j, a, 1.0, 0.0);
                add(r_bh + j, a, 1.0, 0.0);
                add(r_hy + hd + j, up, hc[j], ec[j]);
                add(r_hy + j, down, hc[j], ec[j]);
            }
            add(r_by + 1, up, 1.0, 0.0);
            add(r_by, down, 1.0, 0.0);
            std::mem::swap(&mut dz, &mut dz_next);
            std::mem::swap(&mut z_err, &mut z_next);
            std::mem::swap(&mut dz_mag, &mut mag_next);
        }
    }
    let grad_tol = grad_err
        .iter()
        .zip(&grad_mag)
        .map(|(err, mag)| err + sum_gamma * mag)
        .collect();
    Bound {
        loss_sum,
        loss_sum_tol: loss_err + gamma(n + 4) * loss_mag,
        correct,
        ambiguous,
        state,
        state_tol,
        grad,
        grad_tol,
        ref_mag,
    }
}

/// `data` as one window ([`FuzzWindow::decode`]) through the SIMD kernels and the f64
/// reference.
///
/// Properties: the SIMD engine writes every gradient entry (the buffer starts as NaN) and
/// produces only finite numbers; its loss, accuracy count, carried state and gradient are
/// within `bound`'s tolerance of the reference (plus `F64_SLACK` for the reference's own
/// rounding); `forward` (evaluation) gives the same loss, accuracy and state bit for bit.
/// The bound's own f64 trajectory is checked against the reference too.
///
/// # Panics
/// When a property fails.
pub fn simd_vs_reference(data: &[u8]) {
    let w = FuzzWindow::decode(data);
    let hd = w.hidden();
    let n = w.streams * w.time_step;
    let what = format!(
        "hidden {hd}, {} streams, time_step {}",
        w.streams, w.time_step
    );

    // The SIMD engine, as the trainer drives one shard.
    let p32: Params<f32> = w.params.cast();
    let mut prepared = Prepared::new(hd);
    prepared.load(&p32);
    let h0_32: Vec<f32> = w.h0.iter().map(|&v| v as f32).collect();
    let (xp, yp) = w.planes();
    let planes = Planes {
        x: &xp,
        y: &yp,
        stride: simd::plane_bytes(w.streams),
    };
    let mut ws = Workspace::new(hd, w.streams, w.time_step);
    ws.load_state(&h0_32);
    let mut grad = vec![f32::NAN; Layout::new(hd).len()];
    let stats = simd::forward_backward(&prepared, &mut ws, &planes, 1.0 / n as f32, &mut grad);
    let mut state = vec![f32::NAN; w.streams * hd];
    ws.store_state(&mut state);

    let mut eval = Workspace::new(hd, w.streams, w.time_step);
    eval.load_state(&h0_32);
    let eval_stats = simd::forward(&prepared, &mut eval, &planes);
    let mut eval_state = vec![f32::NAN; w.streams * hd];
    eval.store_state(&mut eval_state);
    assert_eq!(
        eval_stats, stats,
        "{what}: forward and forward_backward disagree"
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&eval_state),
        bits(&state),
        "{what}: forward and forward_backward carry different states"
    );

    assert!(
        stats.loss_sum.is_finite() && stats.correct.is_finite(),
        "{what}: {stats:?}"
    );
    if let Some(i) = grad.iter().chain(&state).position(|v| !v.is_finite()) {
        panic!("{what}: non-finite output at index {i} of gradient ++ state");
    }

    // The reference.
    let mut ref_grad = Params::<f64>::zeros(hd);
    let mut ref_state = vec![0.0; w.streams * hd];
    let ref_loss =
        reference::forward_backward(&w.params, &w.h0, &w.window(), &mut ref_grad, &mut ref_state);
    let ref_loss_sum = ref_loss * n as f64;

    let b = bound(&w);
    let near = |a: f64, b: f64, mag: f64| (a - b).abs() <= F64_SLACK * (mag + 1.0);
    assert!(
        near(b.loss_sum, ref_loss_sum, b.loss_sum),
        "{what}: the bound's trajectory left the reference"
    );
    for (i, (g, r)) in b.grad.iter().zip(&ref_grad.data).enumerate() {
        assert!(
            near(*g, *r, b.ref_mag[i]),
            "{what}: bound vs reference, grad {i}"
        );
    }
    for (i, (s, r)) in b.state.iter().zip(&ref_state).enumerate() {
        assert!(near(*s, *r, 1.0), "{what}: bound vs reference, state {i}");
    }

    let err = (stats.loss_sum - ref_loss_sum).abs();
    let tol = b.loss_sum_tol + F64_SLACK * (b.loss_sum + 1.0);
    assert!(
        err <= tol,
        "{what}: loss_sum {} vs {ref_loss_sum}: error {err:e} > {tol:e}",
        stats.loss_sum
    );
    assert!(
        (stats.correct - b.correct).abs() <= b.ambiguous,
        "{what}: correct {} vs {} ({} ambiguous)",
        stats.correct,
        b.correct,
        b.ambiguous
    );
    for (i, (&s, r)) in state.iter().zip(&ref_state).enumerate() {
        let err = (f64::from(s) - r).abs();
        let tol = b.state_tol[i] + F64_SLACK;
        assert!(
            err <= tol,
            "{what}: state {i}: {s} vs {r}: error {err:e} > {tol:e}"
        );
    }
    let names = p32.layout().ranges();
    for (i, (&g, r)) in grad.iter().zip(&ref_grad.data).enumerate() {
        let err = (f64::from(g) - r).abs();
        let tol = b.grad_tol[i] + F64_SLACK * b.ref_mag[i];
        let tensor = names
            .iter()
            .position(|&(lo, hi)| (lo..hi).contains(&i))
            .unwrap_or(0);
        assert!(
            err <= tol,
            "{what}: grad {} entry {i}: {g} vs {r}: error {err:e} > {tol:e}",
            bitrnn_kernels::TENSOR_NAMES[tensor]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_short_inputs_are_fine() {
        checkpoint_load(&[]);
        checkpoint_load(&[1, 2, 3]);
        cli_parse(&[]);
        cli_parse(b"train\0--hidden\x000");
        simd_vs_reference(&[]);
        simd_vs_reference(&[255; 7]);
    }

    #[test]
    fn arguments_split_on_nul() {
        assert_eq!(arguments(b"a\0b\0"), ["a", "b", ""]);
        assert!(arguments(b"").is_empty());
    }

    /// The bound means something: on random windows (random bytes: Glorot-sized weights
    /// uniform in `[-1/sqrt(H), 1/sqrt(H)]`, all shapes alike) the largest gradient tolerance
    /// is below 1e-3 of the gradient's largest entry in most windows (measured: 78%) and
    /// below 0.1 in nearly all (96%), so a layout or indexing bug, an error the size of a
    /// gradient entry, cannot hide under it. The exceptions are the longest windows of the
    /// largest hidden sizes (the entrywise bound grows like `(|w_hh| slope)^T`; the property
    /// tests' bound also tracks 2-norms to do better there).
    #[test]
    fn bound_is_informative_on_random_windows() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut tight, mut useful, total) = (0, 0, 300);
        for _ in 0..total {
            let bytes: Vec<u8> = (0..4000).map(|_| next() as u8).collect();
            let b = bound(&FuzzWindow::decode(&bytes));
            let largest = b.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            let tol = b.grad_tol.iter().fold(0.0f64, |m, t| m.max(*t));
            tight += usize::from(tol < 1e-3 * largest);
            useful += usize::from(tol < 0.1 * largest);
            simd_vs_reference(&bytes);
        }
        println!(
            "of {total} windows, tolerance < 1e-3 (0.1) of the largest gradient entry: {tight} ({useful})"
        );
        assert!(
            tight * 10 >= total * 7 && useful * 10 >= total * 9,
            "{tight}, {useful} of {total}"
        );
    }

    /// The decoded window covers the shapes it promises.
    #[test]
    fn decode_reaches_every_shape_and_the_weight_bound() {
        let w = FuzzWindow::decode(&[23, 23, 7, 0xff, 0x7f, 0x00, 0x80]);
        assert_eq!((w.hidden(), w.streams, w.time_step), (24, 24, 8));
        let a = 1.0 / 24f64.sqrt();
        // f32 rounding may step a weight over the bound by half an ulp.
        assert!(w.params.data.iter().all(|v| v.abs() <= a * (1.0 + U)));
        assert!((w.params.data[0] - a).abs() < 1e-4 && w.params.data[1] == f64::from(-a as f32));
        assert_eq!(w.x.len(), 24 * 8);
    }
}
