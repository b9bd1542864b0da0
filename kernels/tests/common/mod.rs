//! What the kernels' test files share: the random source and a random window with its
//! parameters and carried state. Each test file adds its own methods to [`Case`].

// Each test file is its own crate and uses only part of this.
#![allow(dead_code)]

use bitrnn_kernels::{Params, reference};

/// Knuth's MMIX linear congruential generator: the tests' only source of randomness, so a
/// seed reproduces a case exactly. Only the high bits are used (the low bits of an LCG with a
/// power-of-two modulus have short periods).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
    /// Uniform in [0, 1), 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// Uniform in `[-a, a)`, rounded to f32 so that every engine and precision starts from
    /// the same number.
    pub fn symmetric_f32(&mut self, a: f64) -> f64 {
        f64::from(((2.0 * self.uniform() - 1.0) * a) as f32)
    }
    /// A fair bit, 0 or 1.
    pub fn bit(&mut self) -> u8 {
        u8::from(self.next_u64() >> 63 == 1)
    }
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32) as usize) % n
    }
    pub fn pick(&mut self, options: &[f64]) -> f64 {
        options[self.below(options.len())]
    }
}

/// One window with its parameters and carried state, every number an f32 (held in f64), so
/// that the same case runs exactly in both precisions and in both engines.
#[derive(Clone, Debug)]
pub struct Case {
    pub streams: usize,
    pub time_step: usize,
    pub params: Params<f64>,
    /// `[streams][hidden]`.
    pub h0: Vec<f64>,
    /// `[time_step][streams]`, 0 or 1.
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

impl Case {
    /// Weights uniform in `[-weight, weight]`, `h0` in (-1, 1), fair-coin bits.
    pub fn random(hidden: usize, streams: usize, time_step: usize, weight: f64, seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let mut params = Params::zeros(hidden);
        for w in &mut params.data {
            *w = rng.symmetric_f32(weight);
        }
        let h0 = (0..streams * hidden)
            .map(|_| rng.symmetric_f32(0.999))
            .collect();
        let mut case = Self {
            streams,
            time_step,
            params,
            h0,
            x: Vec::new(),
            y: Vec::new(),
        };
        case.new_data(&mut rng);
        case
    }
    /// Fresh bits for the next window.
    pub fn new_data(&mut self, rng: &mut Lcg) {
        let n = self.streams * self.time_step;
        self.x = (0..n).map(|_| rng.bit()).collect();
        self.y = (0..n).map(|_| rng.bit()).collect();
    }
    pub fn hidden(&self) -> usize {
        self.params.hidden
    }
    pub fn samples(&self) -> usize {
        self.streams * self.time_step
    }
    pub fn window(&self) -> reference::Window<'_> {
        reference::Window {
            streams: self.streams,
            time_step: self.time_step,
            x: &self.x,
            y: &self.y,
        }
    }
}
