//! The model's parameters (and, with the same layout, their gradients and optimizer state)
//! as one flat vector, so that reductions, optimizer updates, checksums and comparisons are
//! plain loops over a slice.
//!
//! Layout for a cell with `G` gates ([`Cell::gates`]: 1 for the tanh RNN, 3 for the GRU, 4
//! for the LSTM), hidden size `H`, `V` input symbols and `C` classes (`V = C = 2` for the
//! bit data; `x` is the input symbol, `c` the class, `r` a gate row, `r = gate * H + j`):
//!
//! | tensor | shape     | index        | meaning                                             |
//! |--------|-----------|--------------|-----------------------------------------------------|
//! | `w_x`  | `[V][G H]` | `x*G*H + r`  | input weight: column `x` of the one-hot (`w_xh` for the RNN, `w_ih` for the gated cells) |
//! | `w_hh` | `[G H][H]` | `r*H + k`    | `a_r += w_hh[r][k] * h_k`                            |
//! | `b_ih` | `[G H]`   | `r`          | input-side bias (`b_h`, the only hidden bias, for the RNN) |
//! | `b_hh` | `[G H]`   | `r`          | hidden-side bias: gated cells only (the GRU's `r` multiplies `b_hn`) |
//! | `w_hy` | `[C][H]`  | `c*H + j`    | `logit_c += w_hy[c][j] * h_j`                        |
//! | `b_y`  | `[C]`     | `c`          | output bias                                         |
//!
//! Gates are in PyTorch's order: the GRU's `r, z, n`, the LSTM's `i, f, g, o`.
//! `P = G H^2 + V G H + G H (+ G H) + C H + C` numbers in all (`H^2 + 5H + 2` for the bit
//! RNN).

use crate::real::Real;

/// Number of output classes (and of input symbols) of the bit data, the seed's: the default
/// of a [`Layout`]. Models over other vocabularies set `vocab` and `classes`.
pub const CLASSES: usize = 2;

/// The largest vocabulary and number of classes: symbol ids fit in a `u16`.
pub const MAX_SYMBOLS: usize = 65_536;

/// The recurrent cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `h' = tanh(w_xh[x] + w_hh h + b_h)`, the seed's cell.
    #[default]
    Rnn,
    /// PyTorch's `nn.GRU`: gates `r, z, n`,
    /// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) n + z h`.
    Gru,
    /// PyTorch's `nn.LSTM`: gates `i, f, g, o`, `c' = f c + i g`, `h' = o tanh(c')`.
    Lstm,
}

impl Cell {
    /// Every cell, in the order of [`Cell::name`]'s list.
    pub const ALL: [Self; 3] = [Self::Rnn, Self::Gru, Self::Lstm];

    /// Gate blocks of `H` rows in `w_x`, `w_hh` and the biases.
    #[must_use]
    pub const fn gates(self) -> usize {
        match self {
            Self::Rnn => 1,
            Self::Gru => 3,
            Self::Lstm => 4,
        }
    }
    /// Vectors of `H` numbers in one stream's carried state: `h` (and the LSTM's `c`).
    #[must_use]
    pub const fn state_rows(self) -> usize {
        match self {
            Self::Lstm => 2,
            _ => 1,
        }
    }
    /// The name used on the command line, in checkpoints and in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rnn => "rnn",
            Self::Gru => "gru",
            Self::Lstm => "lstm",
        }
    }
    /// The PyTorch module the checkpoint's `rnn.*` tensors load into.
    #[must_use]
    pub const fn torch_module(self) -> &'static str {
        match self {
            Self::Rnn => "nn.RNN",
            Self::Gru => "nn.GRU",
            Self::Lstm => "nn.LSTM",
        }
    }
}

/// The names of the six tensors, in layout order, for the tanh RNN (its `b_hh` is empty).
pub const TENSOR_NAMES: [&str; 6] = ["w_xh", "w_hh", "b_h", "b_hh", "w_hy", "b_y"];
/// The names of the six tensors, in layout order, for the gated cells.
pub const GATED_TENSOR_NAMES: [&str; 6] = ["w_ih", "w_hh", "b_ih", "b_hh", "w_hy", "b_y"];

/// Offsets of the tensors inside the flat vector for one cell and hidden size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub cell: Cell,
    pub hidden: usize,
    /// Input symbols `V` (the rows of `w_x`).
    pub vocab: usize,
    /// Output classes `C` (the rows of `w_hy`).
    pub classes: usize,
}

impl Layout {
    /// The tanh RNN's layout.
    #[must_use]
    pub const fn new(hidden: usize) -> Self {
        Self::of(Cell::Rnn, hidden)
    }
    /// `cell` over the bits: two input symbols and two classes.
    #[must_use]
    pub const fn of(cell: Cell, hidden: usize) -> Self {
        Self::with_symbols(cell, hidden, CLASSES, CLASSES)
    }
    /// `cell` over `vocab` input symbols and `classes` classes.
    #[must_use]
    pub const fn with_symbols(cell: Cell, hidden: usize, vocab: usize, classes: usize) -> Self {
        Self {
            cell,
            hidden,
            vocab,
            classes,
        }
    }
    /// Whether this is the bit data's model (`V = C = 2`), the one the bit-plane kernels run.
    #[must_use]
    pub const fn is_bits(self) -> bool {
        self.vocab == CLASSES && self.classes == CLASSES
    }
    /// Rows of the gate pre-activations, `G H`.
    #[must_use]
    pub const fn gate_rows(self) -> usize {
        self.cell.gates() * self.hidden
    }
    /// Total number of parameters.
    #[must_use]
    pub const fn len(self) -> usize {
        self.ranges()[5].1
    }
    #[must_use]
    pub const fn is_empty(self) -> bool {
        false
    }
    /// `(start, end)` of each tensor, in the order of [`Layout::names`] (the RNN's `b_hh` is
    /// the empty range at the end of `b_h`).
    #[must_use]
    pub const fn ranges(self) -> [(usize, usize); 6] {
        let h = self.hidden;
        let gh = self.gate_rows();
        let w_x = (0, self.vocab * gh);
        let w_hh = (w_x.1, w_x.1 + gh * h);
        let b_ih = (w_hh.1, w_hh.1 + gh);
        let b_hh_len = if matches!(self.cell, Cell::Rnn) {
            0
        } else {
            gh
        };
        let b_hh = (b_ih.1, b_ih.1 + b_hh_len);
        let w_hy = (b_hh.1, b_hh.1 + self.classes * h);
        let b_y = (w_hy.1, w_hy.1 + self.classes);
        [w_x, w_hh, b_ih, b_hh, w_hy, b_y]
    }
    /// The tensors' names, in layout order.
    #[must_use]
    pub const fn names(self) -> [&'static str; 6] {
        match self.cell {
            Cell::Rnn => TENSOR_NAMES,
            _ => GATED_TENSOR_NAMES,
        }
    }
    /// `(name, (start, end))` of each non-empty tensor, in layout order.
    pub fn tensors(self) -> impl Iterator<Item = (&'static str, (usize, usize))> {
        self.names()
            .into_iter()
            .zip(self.ranges())
            .filter(|(_, (a, b))| b > a)
    }
    /// Numbers in the carried state of `streams` streams, `[streams][state_rows * H]`.
    #[must_use]
    pub const fn state_len(self, streams: usize) -> usize {
        streams * self.cell.state_rows() * self.hidden
    }
}

/// Parameters, gradients or optimizer state: one flat vector in the [`Layout`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F> {
    pub hidden: usize,
    pub cell: Cell,
    /// Input symbols `V` and classes `C` ([`Layout`]).
    pub vocab: usize,
    pub classes: usize,
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
    /// All zeros, the tanh RNN.
    #[must_use]
    pub fn zeros(hidden: usize) -> Self {
        Self::filled_as(Layout::new(hidden), F::ZERO)
    }
    /// Every entry set to `value`, the tanh RNN (Adagrad's accumulator starts at 0.1).
    #[must_use]
    pub fn filled(hidden: usize, value: F) -> Self {
        Self::filled_as(Layout::new(hidden), value)
    }
    /// Every entry of `layout` set to `value`.
    #[must_use]
    pub fn filled_as(layout: Layout, value: F) -> Self {
        Self {
            hidden: layout.hidden,
            cell: layout.cell,
            vocab: layout.vocab,
            classes: layout.classes,
            data: vec![value; layout.len()],
        }
    }
    /// From a flat vector; `None` when the length does not match `layout`.
    #[must_use]
    pub fn from_vec_as(layout: Layout, data: Vec<F>) -> Option<Self> {
        (data.len() == layout.len()).then_some(Self {
            hidden: layout.hidden,
            cell: layout.cell,
            vocab: layout.vocab,
            classes: layout.classes,
            data,
        })
    }
    /// From a flat vector, the tanh RNN; `None` when the length does not match `hidden`.
    #[must_use]
    pub fn from_vec(hidden: usize, data: Vec<F>) -> Option<Self> {
        Self::from_vec_as(Layout::new(hidden), data)
    }
    #[must_use]
    pub const fn layout(&self) -> Layout {
        Layout::with_symbols(self.cell, self.hidden, self.vocab, self.classes)
    }
    /// The same parameters in another precision.
    #[must_use]
    pub fn cast<G: Real>(&self) -> Params<G> {
        Params {
            hidden: self.hidden,
            cell: self.cell,
            vocab: self.vocab,
            classes: self.classes,
            data: self.data.iter().map(|v| G::from_f64(v.to_f64())).collect(),
        }
    }
    /// `(name, slice)` for each non-empty tensor, in layout order.
    pub fn tensors(&self) -> impl Iterator<Item = (&'static str, &[F])> {
        self.layout()
            .tensors()
            .map(|(n, (a, b))| (n, &self.data[a..b]))
    }
    tensor_accessors! {
        w_x, w_x_mut, 0;
        w_hh, w_hh_mut, 1;
        b_ih, b_ih_mut, 2;
        b_hh, b_hh_mut, 3;
        w_hy, w_hy_mut, 4;
        b_y, b_y_mut, 5;
    }
    /// The RNN's name for [`Params::w_x`].
    #[must_use]
    pub fn w_xh(&self) -> &[F] {
        self.w_x()
    }
    pub fn w_xh_mut(&mut self) -> &mut [F] {
        self.w_x_mut()
    }
    /// The RNN's name for [`Params::b_ih`].
    #[must_use]
    pub fn b_h(&self) -> &[F] {
        self.b_ih()
    }
    pub fn b_h_mut(&mut self) -> &mut [F] {
        self.b_ih_mut()
    }
}
