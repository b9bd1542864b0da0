//! `bitrnn sample`: draws a sequence from a trained model.
//!
//! # The procedure
//!
//! One stream, in `f64`, with the reference cell ([`bitrnn_kernels::reference::forward`] on
//! a window of one stream and one step, so that every cell, the LSTM's cell state included,
//! runs the same formulas as the oracle the SIMD kernels are checked against):
//!
//! 1. The carried state (`h`, and the LSTM's `c`) starts at zero.
//! 2. The prime's symbols are read one at a time, each step carrying the state.
//! 3. After the last symbol read, the logits of the next one are `l = w_hy h + b_y`; the
//!    next symbol is drawn from `p = softmax(l / T)`, computed as `exp((l - max l) / T)`
//!    normalised (no overflow for any `T > 0`), by the inverse CDF of a 53-bit uniform
//!    `u = (next_u64 >> 11) 2^-53` of `Xoshiro256PlusPlus::seed_from_u64(seed)`: the first
//!    class whose cumulative weight exceeds `u` times the total. `T = 0` (greedy) takes the
//!    most probable class (the lowest id of a tie) and draws nothing.
//! 4. The drawn class is read back as the next input, and so on, `--length` times.
//!
//! A class is fed back as an input symbol, so a model must have `C <= V` (a text model's
//! `V = C`, the bits' `2 = 2`); one with more classes than input symbols is refused.
//!
//! # Prime and output
//!
//! A text model (a checkpoint with an alphabet, from `train --text`) reads its prime as
//! text: every byte must be in the alphabet (the first that is not is named). The default
//! prime is a newline when the alphabet has one (a text starts after one, so the model draws
//! the start of a line), else the alphabet's first byte. The output is the prime as given,
//! then the drawn bytes, raw (`write_all`: any byte values), and a newline when stdout is a
//! terminal; a default prime is not printed.
//!
//! Any other model (the generator's bits, `.npy` symbol ids) reads a comma-separated list of
//! ids below `V` (default `0`, not printed) and prints the prime and the drawn ids,
//! comma-separated, on one line.
//!
//! The output is written as it is drawn; a closed pipe (`| head`) ends the command quietly.

use crate::checkpoint::{self, Checkpoint};
use crate::cli::{SampleArgs, Temperature};
use crate::error::{Error, Result};
use crate::output::shown;
use bitrnn_kernels::Params;
use bitrnn_kernels::reference::{self, Window};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use std::io::{self, IsTerminal, Write};
use std::path::Path;

/// One stream of a model, run a symbol at a time in `f64`.
pub struct Sampler {
    params: Params<f64>,
    /// The carried state, `[state_rows * H]`: `h`, then the LSTM's `c`.
    state: Vec<f64>,
    /// The state after the step in progress.
    next: Vec<f64>,
    /// The logits of the next symbol, `w_hy h + b_y` (`C` numbers).
    logits: Vec<f64>,
}

impl Sampler {
    /// `params` in `f64`, the state zero, the logits those of the zero state.
    #[must_use]
    pub fn new(params: &Params<f32>) -> Self {
        let params = params.cast::<f64>();
        let state = vec![0.0; params.layout().state_len(1)];
        let mut s = Self {
            next: state.clone(),
            state,
            logits: vec![0.0; params.classes],
            params,
        };
        s.head();
        s
    }

    /// Reads input symbol `symbol`: one step of the cell from the carried state, then the
    /// logits of the next symbol.
    ///
    /// # Panics
    /// If `symbol` is not below the model's `V`.
    pub fn read(&mut self, symbol: u16) {
        let window = Window {
            streams: 1,
            time_step: 1,
            x: &[symbol],
            y: &[0u16],
        };
        reference::forward(&self.params, &self.state, &window, &mut self.next);
        std::mem::swap(&mut self.state, &mut self.next);
        self.head();
    }

    /// `logits = w_hy h + b_y`.
    fn head(&mut self) {
        let hd = self.params.hidden;
        let h = &self.state[..hd];
        let (w_hy, b_y) = (self.params.w_hy(), self.params.b_y());
        for (c, l) in self.logits.iter_mut().enumerate() {
            *l = b_y[c]
                + w_hy[c * hd..(c + 1) * hd]
                    .iter()
                    .zip(h)
                    .map(|(w, x)| w * x)
                    .sum::<f64>();
        }
    }

    /// The logits of the next symbol.
    #[must_use]
    pub fn logits(&self) -> &[f64] {
        &self.logits
    }

    /// The carried state, `h` then the LSTM's `c`.
    #[must_use]
    pub fn state(&self) -> &[f64] {
        &self.state
    }
}

/// The class chosen from `logits` (module docs, step 3): greedy, or drawn from
/// `softmax(logits / t)` with one 53-bit uniform of `rng`. `weights`: scratch, resized here.
pub fn choose(
    logits: &[f64],
    temperature: Temperature,
    rng: &mut Xoshiro256PlusPlus,
    weights: &mut Vec<f64>,
) -> usize {
    let argmax = logits
        .iter()
        .enumerate()
        .fold(0, |best, (c, &l)| if l > logits[best] { c } else { best });
    let Temperature::Scaled(t) = temperature else {
        return argmax;
    };
    let max = logits[argmax];
    weights.clear();
    weights.extend(logits.iter().map(|&l| ((l - max) / t).exp()));
    let total: f64 = weights.iter().sum();
    let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * total;
    let mut cumulative = 0.0;
    for (c, &w) in weights.iter().enumerate() {
        cumulative += w;
        if u < cumulative {
            return c;
        }
    }
    // Rounding left `u` at the total: the last class that can be drawn.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(argmax)
}

/// Runs `params` over `prime` from a zero state, then draws `length` symbols (module docs),
/// passing each to `emit` as it is drawn; stops at `emit`'s first error.
///
/// # Errors
/// `emit`'s error.
///
/// # Panics
/// If `prime` is empty or holds an id not below `V`, or the model has more classes than
/// input symbols.
pub fn sample(
    params: &Params<f32>,
    prime: &[u16],
    length: usize,
    temperature: Temperature,
    seed: u64,
    mut emit: impl FnMut(u16) -> io::Result<()>,
) -> io::Result<()> {
    assert!(!prime.is_empty(), "a prime of at least one symbol");
    assert!(params.classes <= params.vocab, "classes usable as inputs");
    let mut model = Sampler::new(params);
    for &x in prime {
        model.read(x);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut weights = Vec::with_capacity(params.classes);
    for i in 0..length {
        let c = choose(model.logits(), temperature, &mut rng, &mut weights) as u16;
        emit(c)?;
        if i + 1 < length {
            model.read(c);
        }
    }
    Ok(())
}

/// What the model reads first, and whether it is printed (a prime given on the command line
/// is; a default one is not).
struct Prime {
    ids: Vec<u16>,
    given: bool,
}

/// The prime of `args` for the model in `ck` (module docs: text for a text model, ids
/// otherwise).
fn prime(args: &SampleArgs, ck: &Checkpoint) -> Result<Prime> {
    let vocab = ck.params.vocab;
    let Some(given) = &args.prime else {
        let ids = match &ck.alphabet {
            Some(a) => vec![a.iter().position(|&b| b == b'\n').unwrap_or(0) as u16],
            None => vec![0],
        };
        return Ok(Prime { ids, given: false });
    };
    let shown_prime = given.to_string_lossy();
    if given.is_empty() {
        return Err(Error::Usage(
            "--prime '': empty; give at least one symbol, or leave --prime out for the default"
                .into(),
        ));
    }
    if let Some(alphabet) = &ck.alphabet {
        let mut ids = Vec::with_capacity(given.len());
        for (offset, &b) in given.as_encoded_bytes().iter().enumerate() {
            let Some(id) = alphabet.iter().position(|&a| a == b) else {
                return Err(Error::Usage(format!(
                    "--prime '{shown_prime}': byte '{}' (0x{b:02x}) at offset {offset} is not \
                     in the alphabet of the model {} ({} bytes: '{}'); give text of those bytes",
                    b.escape_ascii(),
                    shown(&args.model),
                    alphabet.len(),
                    alphabet.escape_ascii()
                )));
            };
            ids.push(id as u16);
        }
        return Ok(Prime { ids, given: true });
    }
    let what = crate::cmd::eval::trained_on(ck.config.source);
    let bad = |why: String| {
        Error::Usage(format!(
            "--prime '{shown_prime}': {why}; the model {} was trained on {what}, so the prime \
             is a comma-separated list of symbol ids below V = {vocab}, such as 0,1,1",
            shown(&args.model)
        ))
    };
    let text = given.to_str().ok_or_else(|| bad("not UTF-8".into()))?;
    let ids = text
        .split(',')
        .map(|item| match item.trim().parse::<u64>() {
            Ok(id) if id < vocab as u64 => Ok(id as u16),
            Ok(id) => Err(bad(format!("symbol id {id} is not below V = {vocab}"))),
            Err(_) => Err(bad(format!("'{}' is not a symbol id", item.trim()))),
        })
        .collect::<Result<Vec<u16>>>()?;
    Ok(Prime { ids, given: true })
}

/// Writes symbols as the model's output: raw bytes of a text model's alphabet, or ids
/// separated by commas.
struct Out<'a, W: Write> {
    w: W,
    alphabet: Option<&'a [u8]>,
    /// Ids written so far (a comma goes before every one but the first).
    written: usize,
}

impl<W: Write> Out<'_, W> {
    fn symbol(&mut self, id: u16) -> io::Result<()> {
        match self.alphabet {
            Some(a) => self.w.write_all(&[a[usize::from(id)]]),
            None => {
                let sep = if self.written > 0 { "," } else { "" };
                self.written += 1;
                write!(self.w, "{sep}{id}")
            }
        }
    }
}

/// The refusal of a model whose classes cannot all be read back as inputs.
fn check_classes(path: &Path, params: &Params<f32>) -> Result<()> {
    if params.classes > params.vocab {
        return Err(Error::Usage(format!(
            "--model {}: the model predicts C = {} classes from V = {} input symbols; sampling \
             reads each drawn class back as the next input, so it needs C <= V",
            shown(path),
            params.classes,
            params.vocab
        )));
    }
    Ok(())
}

pub fn run(args: &SampleArgs) -> Result<()> {
    let temperature = args.check()?;
    crate::output::check_input_file("--model", &args.model)?;
    let ck = checkpoint::load(&args.model)?;
    check_classes(&args.model, &ck.params)?;
    let prime = prime(args, &ck)?;
    let stdout = io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = Out {
        w: io::BufWriter::new(stdout.lock()),
        alphabet: ck.alphabet.as_deref(),
        written: 0,
    };
    let written = (|| {
        if prime.given {
            match (&args.prime, out.alphabet) {
                (Some(text), Some(_)) => out.w.write_all(text.as_encoded_bytes())?,
                _ => prime.ids.iter().try_for_each(|&id| out.symbol(id))?,
            }
        }
        sample(
            &ck.params,
            &prime.ids,
            args.length,
            temperature,
            args.seed,
            |c| out.symbol(c),
        )?;
        if out.alphabet.is_none() || terminal {
            out.w.write_all(b"\n")?;
        }
        out.w.flush()
    })();
    match written {
        // A reader that has seen enough (`| head`) is not an error.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io(Path::new("stdout"), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrnn_kernels::{Cell, Layout};

    fn model(cell: Cell, vocab: usize, classes: usize) -> Params<f32> {
        crate::model::init_params(
            crate::model::Init::Pytorch,
            Layout::with_symbols(cell, 5, vocab, classes),
            7,
        )
    }

    /// Reading symbols one at a time carries the state exactly as one window over all of
    /// them: the reference's `h_last` (with the LSTM's `c`), and the head's logits.
    #[test]
    fn stepping_carries_the_state_of_one_long_window() {
        for cell in Cell::ALL {
            let p = model(cell, 4, 3);
            let xs: Vec<u16> = vec![0, 3, 1, 1, 2, 0, 3];
            let mut s = Sampler::new(&p);
            for &x in &xs {
                s.read(x);
            }
            let p64 = p.cast::<f64>();
            let zeros = vec![0.0; p64.layout().state_len(1)];
            let mut last = zeros.clone();
            let ys = vec![0u16; xs.len()];
            let window = Window {
                streams: 1,
                time_step: xs.len(),
                x: &xs,
                y: &ys,
            };
            reference::forward(&p64, &zeros, &window, &mut last);
            assert_eq!(s.state(), &last[..], "{cell:?}");
            let h = &last[..5];
            for c in 0..3 {
                let l: f64 =
                    p64.b_y()[c] + (0..5).map(|j| p64.w_hy()[c * 5 + j] * h[j]).sum::<f64>();
                assert!((s.logits()[c] - l).abs() < 1e-12, "{cell:?} class {c}");
            }
        }
    }

    #[test]
    fn greedy_takes_the_argmax_and_a_tiny_temperature_agrees() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut w = Vec::new();
        let logits = [0.5, 2.0, -1.0, 2.0 - 1e-3];
        assert_eq!(choose(&logits, Temperature::Greedy, &mut rng, &mut w), 1);
        for _ in 0..100 {
            let c = choose(&logits, Temperature::Scaled(1e-6), &mut rng, &mut w);
            assert_eq!(c, 1);
        }
        // A tie goes to the lowest id.
        assert_eq!(
            choose(&[1.0, 3.0, 3.0], Temperature::Greedy, &mut rng, &mut w),
            1
        );
        // Huge logits at a tiny temperature do not overflow.
        let c = choose(
            &[1e300, -1e300],
            Temperature::Scaled(1e-300),
            &mut rng,
            &mut w,
        );
        assert_eq!(c, 0);
    }

    /// The draws follow softmax(l / T): counts within 5 sigma of the probabilities.
    #[test]
    fn draws_follow_the_softmax() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut w = Vec::new();
        let logits = [1.0f64, 0.0, 2.0, -0.5];
        for t in [0.5, 1.0, 3.0] {
            let e: Vec<f64> = logits.iter().map(|l| (l / t).exp()).collect();
            let z: f64 = e.iter().sum();
            let n = 200_000;
            let mut counts = [0usize; 4];
            for _ in 0..n {
                counts[choose(&logits, Temperature::Scaled(t), &mut rng, &mut w)] += 1;
            }
            for c in 0..4 {
                let p = e[c] / z;
                let sigma = (n as f64 * p * (1.0 - p)).sqrt();
                let dev = (counts[c] as f64 - n as f64 * p).abs();
                assert!(dev < 5.0 * sigma, "T {t} class {c}: {counts:?}");
            }
        }
    }

    #[test]
    fn a_seed_fixes_the_draws() {
        let p = model(Cell::Gru, 6, 6);
        let run = |seed| {
            let mut v = Vec::new();
            sample(&p, &[1, 2], 300, Temperature::Scaled(1.5), seed, |c| {
                v.push(c);
                Ok(())
            })
            .unwrap();
            v
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        assert_eq!(run(5).len(), 300);
        assert!(run(9).iter().all(|&c| c < 6));
    }
}
