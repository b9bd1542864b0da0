//! The model's initial weights (`--init`, [`Init`]).
//!
//! - **`default`**: the tanh RNN's as TensorFlow initialises the tutorial's graph:
//!   Glorot-uniform weights and zero biases. The gated cells' as PyTorch initialises `nn.GRU`
//!   and `nn.LSTM`: every weight and bias of the cell `U(-1/sqrt(H), 1/sqrt(H))`; their output
//!   layer as the RNN's (Glorot-uniform `w_hy`, zero `b_y`).
//!
//!   The tutorial's `BasicRNNCell` keeps one kernel of shape `[2 + H, H]` for the input and the
//!   recurrent weights together, so both `w_xh` and `w_hh` are drawn from
//!   `U(-l, l)` with `l = sqrt(6 / ((2 + H) + H))`; the output layer `W` `[H, 2]` uses
//!   `l = sqrt(6 / (H + 2))`.
//! - **`pytorch`**: every tensor as PyTorch initialises `nn.RNN`/`nn.GRU`/`nn.LSTM` and
//!   `nn.Linear`: the cell's weights and biases `U(-1/sqrt(H), 1/sqrt(H))` (PyTorch's
//!   `1/sqrt(hidden_size)` for all of them), the head's `weight` and `bias`
//!   `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = H` (`kaiming_uniform_` with
//!   `a = sqrt(5)` gives that bound). bitrnn's tanh RNN has one hidden bias (`b_h`, saved as
//!   `rnn.bias_ih_l0` with a zero `rnn.bias_hh_l0`): it is drawn as PyTorch draws each of its
//!   two.
//! - **`normal:STD`**: every weight matrix `N(0, STD^2)`, every bias 0: min-char-rnn's
//!   `np.random.randn(...) * 0.01` is `normal:0.01`.
//!
//! The bounds come from the tensors' shapes ([`Layout::ranges`]): the cell's from the hidden
//! size, the head's fan-in from `w_hy`'s length over `b_y`'s (its rows), so that they hold
//! when the layout gains input symbols and classes.
//!
//! All draws come from one generator, in layout order, in f64 then rounded to f32: uniforms
//! from 53 random bits, normals by Box–Muller (`sqrt(-2 ln u1) cos(2 pi u2)`, one normal from
//! two uniforms), so the weights are a function of the seed. The uniforms are IEEE
//! arithmetic, the same everywhere; the normals' f64 `ln` and `cos` come from the platform's
//! libm, which may differ in the last bit between platforms, and that reaches the f32 weight
//! only for a value within one f64 ulp of an f32 rounding boundary (about one draw in 2^29).

use bitrnn_kernels::{Cell, Layout, Params};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// How the initial weights are drawn (`--init`; the module docs have the formulas).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Init {
    /// TensorFlow's Glorot-uniform for the tanh RNN (zero biases), PyTorch's for the gated
    /// cells; Glorot-uniform head, zero `b_y`.
    #[default]
    Default,
    /// PyTorch's `nn.RNN`/`nn.GRU`/`nn.LSTM` and `nn.Linear`, every tensor.
    Pytorch,
    /// Every weight matrix `N(0, std^2)`, every bias 0 (min-char-rnn: `std = 0.01`).
    Normal {
        /// The standard deviation, finite and above 0 ([`crate::config::TrainConfig::new`]
        /// checks it).
        std: f64,
    },
}

impl Init {
    /// The `--init` value: `default`, `pytorch` or `normal:STD`.
    ///
    /// # Errors
    /// The value and the allowed ones, when it is none of them (whether `STD` is allowed is
    /// checked by the config).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Self::Default),
            "pytorch" => Ok(Self::Pytorch),
            _ => s
                .strip_prefix("normal:")
                .and_then(|std| std.trim().parse::<f64>().ok())
                .map(|std| Self::Normal { std })
                .ok_or_else(|| {
                    format!("'{s}': expected default, pytorch or normal:STD (such as normal:0.01)")
                }),
        }
    }
}

impl std::fmt::Display for Init {
    /// The `--init` value, as [`Init::parse`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Pytorch => f.write_str("pytorch"),
            Self::Normal { std } => write!(f, "normal:{std}"),
        }
    }
}

/// The initial weights of `layout` (cell, hidden size, `V` inputs, `C` classes), drawn as
/// `init` says from `seed` (module docs; the bits' fan-in `2` is `V` in the RNN's kernel
/// and `C` in the head).
///
/// The generator is `Xoshiro256PlusPlus::seed_from_u64(seed)` advanced by `long_jump()`, a
/// stream disjoint from the data's (which uses the unjumped and `jump()`ed streams). Draws
/// are in layout order. [`Init::Default`]: `w_x`, `w_hh`, (`b_ih`, `b_hh` for the gated
/// cells), `w_hy` (the weights of every run before `--init` existed, bit for bit);
/// [`Init::Pytorch`]: every tensor; [`Init::Normal`]: the weight matrices `w_x`, `w_hh`,
/// `w_hy`.
#[must_use]
pub fn init_params(init: Init, layout: Layout, seed: u64) -> Params<f32> {
    let (cell, hidden) = (layout.cell, layout.hidden);
    let mut draws = Draws::new(seed);
    let mut p = Params::filled_as(layout, 0.0);
    let [w_x, w_hh, b_ih, b_hh, w_hy, b_y] = p.layout().ranges();
    let h = hidden as f64;
    // The head's fan-in: `w_hy` is [classes][H], `b_y` [classes].
    let head_fan_in = ((w_hy.1 - w_hy.0) / (b_y.1 - b_y.0)) as f64;
    let mut fill = |(start, end): (usize, usize), draw: &mut dyn FnMut(&mut Draws) -> f32| {
        for v in &mut p.data[start..end] {
            *v = draw(&mut draws);
        }
    };
    match init {
        Init::Default => {
            // The RNN's w_xh and w_hh (`U(-l, l)`, `l` Glorot's, the fan-in `2 + H` of the
            // tutorial's kernel [2 + H, H]), or the gated cells' w_ih, w_hh, b_ih and b_hh
            // (`U(-1/sqrt(H), 1/sqrt(H))`): the layout's leading tensors.
            let rows = ((w_x.1 - w_x.0) / (b_ih.1 - b_ih.0)) as f64;
            let (end, limit) = match cell {
                Cell::Rnn => (w_hh.1, (6.0 / ((rows + h) + h)).sqrt()),
                Cell::Gru | Cell::Lstm => (b_hh.1, 1.0 / h.sqrt()),
            };
            fill((0, end), &mut |d| d.uniform(limit));
            // Glorot for `w_hy` [classes][H]: `sqrt(6 / (H + classes))`.
            let classes = (b_y.1 - b_y.0) as f64;
            let out = (6.0 / (h + classes)).sqrt();
            fill(w_hy, &mut |d| d.uniform(out));
        }
        Init::Pytorch => {
            let cell_limit = 1.0 / h.sqrt();
            fill((w_x.0, b_hh.1), &mut |d| d.uniform(cell_limit));
            let head_limit = 1.0 / head_fan_in.sqrt();
            fill((w_hy.0, b_y.1), &mut |d| d.uniform(head_limit));
        }
        Init::Normal { std } => {
            for weights in [w_x, w_hh, w_hy] {
                fill(weights, &mut |d| d.normal(std));
            }
        }
    }
    p
}

/// The initial weights' random numbers: one xoshiro stream, f64 draws rounded to f32.
struct Draws(Xoshiro256PlusPlus);

impl Draws {
    /// The stream of `seed`, long-jumped away from the data's.
    fn new(seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        rng.long_jump();
        Self(rng)
    }

    /// 53 random bits as `k 2^-53`, `k` in `[0, 2^53)`.
    fn bits53(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `U(-limit, limit)`: 53 random bits -> [0, 1) -> [-limit, limit).
    fn uniform(&mut self, limit: f64) -> f32 {
        ((2.0 * self.bits53() - 1.0) * limit) as f32
    }

    /// `N(0, std^2)` by Box–Muller from two uniforms: `u1` in `(0, 1]` (so `ln u1` is finite),
    /// `u2` in `[0, 1)`.
    fn normal(&mut self, std: f64) -> f32 {
        let u1 = 1.0 - self.bits53();
        let u2 = self.bits53();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (z * std) as f32
    }
}

/// FNV-1a over the bits of the weights: equal checksums mean bit-identical weights.
#[must_use]
pub fn checksum(p: &Params<f32>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for v in &p.data {
        for b in v.to_bits().to_le_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--init default` draws the weights of every run before `--init` existed, bit for bit:
    /// the checksums of the three cells' initial weights, as the code before the choice drew
    /// them (the same on every build: no vector arithmetic is involved).
    #[test]
    fn the_default_init_is_unchanged() {
        let sums: Vec<String> = Cell::ALL
            .into_iter()
            .map(|cell| checksum(&init_params(Init::Default, Layout::of(cell, 6), 0)))
            .collect();
        assert_eq!(
            sums,
            ["6e3bbe5f02df2d54", "39af707857bd5942", "fb5f1cc198a82039"]
        );
    }

    /// `--init pytorch`: every entry of the cell within `1/sqrt(H)` and of the head within
    /// `1/sqrt(fan_in)`, `fan_in = H` (both rounded to f32, as the draws are: rounding is
    /// monotone), every tensor drawn (the biases too), and the range used: the largest
    /// `|v|` of `n` uniform draws is below `0.95 l` with probability `0.95^n`, under `1e-5`
    /// for the fewest entries checked, the tanh cell's 238 at hidden 14.
    #[test]
    fn the_pytorch_init_respects_its_bounds() {
        for cell in Cell::ALL {
            for hidden in [1, 6, 14, 37] {
                let p = init_params(Init::Pytorch, Layout::of(cell, hidden), 3);
                let limit = (1.0 / (hidden as f64).sqrt()) as f32;
                let ranges = p.layout().ranges();
                let (cell_part, head) = (&p.data[..ranges[3].1], &p.data[ranges[4].0..ranges[5].1]);
                for (what, part) in [("cell", cell_part), ("head", head)] {
                    let largest = part.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    assert!(
                        largest <= limit,
                        "{cell:?} {hidden} {what}: {largest} > {limit}"
                    );
                    if what == "cell" && hidden >= 14 {
                        assert!(largest > 0.95 * limit, "{cell:?} {hidden}: {largest}");
                    }
                }
                for (name, t) in p.tensors() {
                    assert!(
                        t.iter().all(|&v| v != 0.0),
                        "{cell:?} {hidden}: {name} not drawn"
                    );
                }
            }
        }
    }

    /// `--init normal:0.01` on the 66,560 weights of hidden 256 (`w_xh` 512, `w_hh` 65,536,
    /// `w_hy` 512): every bias 0, and the draws' mean, variance, fourth moment and share
    /// within one standard deviation those of `N(0, 0.01^2)` within 6 standard errors (for
    /// `n` normal draws: the mean's `std / sqrt(n)`; `s^2 / std^2`'s `sqrt(2 / n)`;
    /// `m4 / std^4`'s `sqrt((105 - 9) / n)`; the share's `sqrt(p (1 - p) / n)`,
    /// `p = 0.682689`; a uniform draw of the same variance has 0.577 within one deviation
    /// and `m4 = 1.8`, far outside). A false alarm has odds of about 1e-8 per check; the
    /// draws are a fixed seed's anyway.
    #[test]
    fn the_normal_init_has_the_right_moments() {
        let std = 0.01;
        for seed in [0, 1] {
            let p = init_params(Init::Normal { std }, Layout::new(256), seed);
            let weights: Vec<f64> = [p.w_xh(), p.w_hh(), p.w_hy()]
                .concat()
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            assert!(p.b_h().iter().chain(p.b_y()).all(|&b| b == 0.0));
            let n = weights.len() as f64;
            assert_eq!(n, 66_560.0);
            let mean = weights.iter().sum::<f64>() / n;
            let moment = |k: i32| weights.iter().map(|v| (v / std).powi(k)).sum::<f64>() / n;
            let within = weights.iter().filter(|v| v.abs() < std).count() as f64 / n;
            let p1 = 0.682_689;
            for (what, got, want, se) in [
                ("mean / std", mean / std, 0.0, 1.0 / n.sqrt()),
                ("variance / std^2", moment(2), 1.0, (2.0 / n).sqrt()),
                ("m4 / std^4", moment(4), 3.0, (96.0 / n).sqrt()),
                ("share within std", within, p1, (p1 * (1.0 - p1) / n).sqrt()),
            ] {
                assert!(
                    (got - want).abs() <= 6.0 * se,
                    "seed {seed}, {what}: {got} vs {want} (6 se = {})",
                    6.0 * se
                );
            }
        }
        // Every cell: the weight matrices drawn, the biases 0, the same seed the same draws.
        for cell in Cell::ALL {
            let p = init_params(Init::Normal { std: 0.5 }, Layout::of(cell, 5), 9);
            assert_eq!(
                p,
                init_params(Init::Normal { std: 0.5 }, Layout::of(cell, 5), 9)
            );
            assert_ne!(
                p,
                init_params(Init::Normal { std: 0.5 }, Layout::of(cell, 5), 10)
            );
            for (name, t) in p.tensors() {
                let is_bias = name.starts_with("b_");
                assert!(
                    t.iter().all(|&v| (v == 0.0) == is_bias && v.is_finite()),
                    "{cell:?}: {name}"
                );
            }
        }
    }

    #[test]
    fn init_values_parse_and_print_as_the_flag() {
        for (s, init) in [
            ("default", Init::Default),
            ("pytorch", Init::Pytorch),
            ("normal:0.01", Init::Normal { std: 0.01 }),
            ("normal:1e-2", Init::Normal { std: 0.01 }),
            ("normal:-1", Init::Normal { std: -1.0 }),
        ] {
            assert_eq!(Init::parse(s), Ok(init), "{s}");
            assert_eq!(Init::parse(&init.to_string()), Ok(init), "{s}");
        }
        assert_eq!(Init::Normal { std: 0.01 }.to_string(), "normal:0.01");
        for bad in [
            "",
            "Default",
            "normal",
            "normal:",
            "normal:x",
            "uniform:1",
            "glorot",
        ] {
            let e = Init::parse(bad).unwrap_err();
            assert!(e.contains("expected default, pytorch or normal:STD"), "{e}");
        }
    }
}
