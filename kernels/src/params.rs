//! The model's parameters (and, with the same layout, their gradients and optimizer state)
//! as one flat vector, so that reductions, optimizer updates, checksums and comparisons are
//! plain loops over a slice.
//!
//! Layout for hidden size `H` and `CLASSES = 2` (`x` is the input symbol, `c` the class):
//!
//! | tensor | shape     | index        | meaning                                  |
//! |--------|-----------|--------------|------------------------------------------|
//! | `w_xh` | [2][H]    | `x*H + j`    | input weight: column `x` of the one-hot  |
//! | `w_hh` | [H][H]    | `j*H + k`    | `z_j += w_hh[j][k] * h_k`                |
//! | `b_h`  | [H]       | `j`          | hidden bias                              |
//! | `w_hy` | [2][H]    | `c*H + j`    | `logit_c += w_hy[c][j] * h_j`            |
//! | `b_y`  | [2]       | `c`          | output bias                              |
//!
//! `P = H^2 + 5H + 2` numbers in all.

use crate::real::Real;

/// Number of output classes (and of input symbols): the data are bits.
pub const CLASSES: usize = 2;

/// The names of the five tensors, in layout order.
pub const TENSOR_NAMES: [&str; 5] = ["w_xh", "w_hh", "b_h", "w_hy", "b_y"];

/// Offsets of the tensors inside the flat vector for one hidden size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub hidden: usize,
}

impl Layout {
    #[must_use]
    pub const fn new(hidden: usize) -> Self {
        Self { hidden }
    }
    /// Total number of parameters, `H^2 + 5H + 2`.
    #[must_use]
    pub const fn len(self) -> usize {
        let h = self.hidden;
        h * h + 5 * h + 2
    }
    #[must_use]
    pub const fn is_empty(self) -> bool {
        false
    }
    /// `(start, end)` of each tensor, in the order of [`TENSOR_NAMES`].
    #[must_use]
    pub const fn ranges(self) -> [(usize, usize); 5] {
        let h = self.hidden;
        let w_xh = (0, CLASSES * h);
        let w_hh = (w_xh.1, w_xh.1 + h * h);
        let b_h = (w_hh.1, w_hh.1 + h);
        let w_hy = (b_h.1, b_h.1 + CLASSES * h);
        let b_y = (w_hy.1, w_hy.1 + CLASSES);
        [w_xh, w_hh, b_h, w_hy, b_y]
    }
}

/// Parameters, gradients or optimizer state: one flat vector in the [`Layout`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F> {
    pub hidden: usize,
    pub data: Vec<F>,
}

macro_rules! tensor_accessors {
    ($($name:ident, $name_mut:ident, $i:expr;)*) => {$(
        #[must_use]
        pub fn $name(&self) -> &[F] {
            let (a, b) = self.layout().ranges()[$i];
            &self.data[a..b]
        }
        pub fn $name_mut(&mut self) -> &mut [F] {
            let (a, b) = self.layout().ranges()[$i];
            &mut self.data[a..b]
        }
    )*};
}

impl<F: Real> Params<F> {
    /// All zeros.
    #[must_use]
    pub fn zeros(hidden: usize) -> Self {
        Self {
            hidden,
            data: vec![F::ZERO; Layout::new(hidden).len()],
        }
    }
    /// Every entry set to `value` (Adagrad's accumulator starts at 0.1).
    #[must_use]
    pub fn filled(hidden: usize, value: F) -> Self {
        Self {
            hidden,
            data: vec![value; Layout::new(hidden).len()],
        }
    }
    /// From a flat vector; `None` when the length does not match `hidden`.
    #[must_use]
    pub fn from_vec(hidden: usize, data: Vec<F>) -> Option<Self> {
        (data.len() == Layout::new(hidden).len()).then_some(Self { hidden, data })
    }
    #[must_use]
    pub const fn layout(&self) -> Layout {
        Layout::new(self.hidden)
    }
    /// The same parameters in another precision.
    #[must_use]
    pub fn cast<G: Real>(&self) -> Params<G> {
        Params {
            hidden: self.hidden,
            data: self.data.iter().map(|v| G::from_f64(v.to_f64())).collect(),
        }
    }
    /// `(name, slice)` for each tensor, in layout order.
    pub fn tensors(&self) -> impl Iterator<Item = (&'static str, &[F])> {
        TENSOR_NAMES
            .into_iter()
            .zip(self.layout().ranges())
            .map(|(n, (a, b))| (n, &self.data[a..b]))
    }
    tensor_accessors! {
        w_xh, w_xh_mut, 0;
        w_hh, w_hh_mut, 1;
        b_h, b_h_mut, 2;
        w_hy, w_hy_mut, 3;
        b_y, b_y_mut, 4;
    }
}
