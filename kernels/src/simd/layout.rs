//! The kernels' data: the weights as the kernels read them ([`Prepared`]), one shard's
//! buffers ([`Workspace`]: the carried state and the window's activations, in the lane layout
//! drawn in the [module docs](super)), the window's bit planes ([`Planes`]) and what a
//! forward pass measured ([`WindowStats`]).

use super::tiles::MR;
use super::{LANES, SMALL_MAX, groups_for};
use crate::lanes::Vf32;
use crate::params::{Cell, Layout, Params};

/// Weights arranged for the kernels. Rebuilt by [`Prepared::load`] after every update (a copy
/// of the weights, negligible next to a window's work).
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(super) cell: Cell,
    pub(super) hidden: usize,
    /// `w_hh[r][k]`, row-major `[G H][H]` (the small kernels splat it).
    pub(super) w_hh: Vec<f32>,
    /// `w_hh` (`G H x H`) and `w_hh^T` (`H x G H`) packed for the register tiles
    /// ([`pack_rows`]): for each block of `MR` rows, `[k][MR]`, so a tile's broadcasts for one
    /// `k` are `MR` consecutive floats behind one pointer (zero rows pad the last block).
    /// Blocked kernels only.
    pub(super) w_hh_packed: Vec<f32>,
    pub(super) w_hh_t_packed: Vec<f32>,
    /// The start of each gate row's pre-activation for input 0 and 1: `w_x[x][r] + b_ih[r]`
    /// (+ `b_hh[r]` for the gated cells). The GRU's `n` rows start at `b_hn` alone (the
    /// hidden-side term that `r` multiplies); their input side is `nx0`, `nx1`.
    pub(super) zx0: Vec<f32>,
    pub(super) zx1: Vec<f32>,
    /// GRU only: `w_x[x][n_j] + b_in[j]`, the input side of the `n` gate.
    pub(super) nx0: Vec<f32>,
    pub(super) nx1: Vec<f32>,
    /// `w_hy[1][j] - w_hy[0][j]`: the logit difference's weights.
    pub(super) wy_diff: Vec<f32>,
    /// `b_y[1] - b_y[0]`.
    pub(super) by_diff: f32,
    /// The symbols' path ([`super::symbols`]): `V` and `C`, and whether it is on.
    pub(super) symbols: bool,
    pub(super) vocab: usize,
    pub(super) classes: usize,
    /// Symbols: `[V][G H]`, the start of each gate row's pre-activation for each input,
    /// `w_x[x][r] + b_ih[r] (+ b_hh[r])` (the GRU's `n` rows: `b_hn`).
    pub(super) zx: Vec<f32>,
    /// Symbols, GRU: `[V][H]`, `w_x[x][n_j] + b_in[j]`.
    pub(super) nx: Vec<f32>,
    /// Symbols: `w_hy` (`C x H`) and `w_hy^T` (`H x C`) packed for the register tiles.
    pub(super) w_hy_packed: Vec<f32>,
    pub(super) w_hy_t_packed: Vec<f32>,
    /// Symbols: `b_y`, `[C]`.
    pub(super) b_y: Vec<f32>,
}

/// Whether `cell` at `hidden` runs the small kernels on the bits (the tanh RNN up to
/// [`SMALL_MAX`]).
pub(super) const fn is_small(cell: Cell, hidden: usize) -> bool {
    matches!(cell, Cell::Rnn) && hidden <= SMALL_MAX
}

/// Floats of a matrix of `rows` rows and `cols` columns packed by [`pack_rows`].
fn packed_len(rows: usize, cols: usize) -> usize {
    rows.div_ceil(MR) * MR * cols
}

/// Packs the row-major `a_rows x a_cols` matrix `a`, or its transpose, for the register
/// tiles: block `b` of the packed matrix `M` holds rows `MR b .. MR b + MR` as `[k][MR]`
/// (rows past the end are zeros).
fn pack_rows(a: &[f32], a_rows: usize, a_cols: usize, transpose: bool, out: &mut [f32]) {
    let (m_rows, m_cols) = if transpose {
        (a_cols, a_rows)
    } else {
        (a_rows, a_cols)
    };
    for (b, block) in out.chunks_exact_mut(MR * m_cols).enumerate() {
        for (k, at_k) in block.chunks_exact_mut(MR).enumerate() {
            for (i, v) in at_k.iter_mut().enumerate() {
                let j = b * MR + i;
                *v = match (j < m_rows, transpose) {
                    (false, _) => 0.0,
                    (true, false) => a[j * a_cols + k],
                    (true, true) => a[k * a_cols + j],
                };
            }
        }
    }
}

impl Prepared {
    /// Buffers for the tanh RNN of hidden size `hidden`; call [`Prepared::load`] before use.
    #[must_use]
    pub fn new(hidden: usize) -> Self {
        Self::with_cell(Cell::Rnn, hidden)
    }

    /// Buffers for `cell` of hidden size `hidden`; call [`Prepared::load`] before use.
    #[must_use]
    pub fn with_cell(cell: Cell, hidden: usize) -> Self {
        Self::build(Layout::of(cell, hidden), false)
    }

    /// Buffers for the symbols' path (`simd::symbols`: any `V` and `C`, inputs as
    /// [`SymbolPlanes`]) of `layout`; call [`Prepared::load`] before use.
    #[must_use]
    pub fn for_symbols(layout: Layout) -> Self {
        Self::build(layout, true)
    }

    /// [`Prepared::for_symbols`] of `layout` where `symbols`, else [`Prepared::with_cell`] of
    /// its cell and hidden size (the bits' kernels): the one choice every caller makes.
    #[must_use]
    pub fn for_path(layout: Layout, symbols: bool) -> Self {
        if symbols {
            Self::for_symbols(layout)
        } else {
            Self::with_cell(layout.cell, layout.hidden)
        }
    }

    fn build(layout: Layout, symbols: bool) -> Self {
        let Layout {
            cell,
            hidden,
            vocab,
            classes,
        } = layout;
        assert!(
            symbols || layout.is_bits(),
            "the bits' kernels have V = C = 2"
        );
        let gh = cell.gates() * hidden;
        let blocked = symbols || !is_small(cell, hidden);
        let sized = |yes: bool, n: usize| vec![0.0; if yes { n } else { 0 }];
        let gru = matches!(cell, Cell::Gru);
        let nx = if matches!(cell, Cell::Gru) { hidden } else { 0 };
        Self {
            cell,
            hidden,
            w_hh: vec![0.0; gh * hidden],
            w_hh_packed: vec![0.0; if blocked { packed_len(gh, hidden) } else { 0 }],
            w_hh_t_packed: vec![0.0; if blocked { packed_len(hidden, gh) } else { 0 }],
            zx0: vec![0.0; gh],
            zx1: vec![0.0; gh],
            nx0: vec![0.0; nx],
            nx1: vec![0.0; nx],
            wy_diff: vec![0.0; hidden],
            by_diff: 0.0,
            symbols,
            vocab,
            classes,
            zx: sized(symbols, vocab * gh),
            nx: sized(symbols && gru, vocab * hidden),
            w_hy_packed: sized(symbols, packed_len(classes, hidden)),
            w_hy_t_packed: sized(symbols, packed_len(hidden, classes)),
            b_y: sized(symbols, classes),
        }
    }

    /// Arranges `p` for the kernels (no allocation).
    pub fn load(&mut self, p: &Params<f32>) {
        self.load_with(p, |a, b| {
            a();
            b();
        });
    }

    /// [`Prepared::load`], with its two largest pieces of work (packing `w_hh` and packing its
    /// transpose, each `G H^2` numbers) handed to `both`, which runs each closure once, in
    /// any order or at the same time (on two threads: they write disjoint buffers). The
    /// result is the same either way.
    pub fn load_with(
        &mut self,
        p: &Params<f32>,
        both: impl FnOnce(&mut (dyn FnMut() + Send), &mut (dyn FnMut() + Send)),
    ) {
        let (h, cell) = (self.hidden, self.cell);
        assert!(
            p.layout() == Layout::with_symbols(cell, h, self.vocab, self.classes),
            "Prepared::load: cell, hidden size, vocabulary and classes"
        );
        let gh = cell.gates() * h;
        self.w_hh.copy_from_slice(p.w_hh());
        if self.symbols || !is_small(cell, h) {
            let w_hh = &self.w_hh;
            let (packed, packed_t) = (&mut self.w_hh_packed, &mut self.w_hh_t_packed);
            both(&mut || pack_rows(w_hh, gh, h, false, packed), &mut || {
                pack_rows(w_hh, gh, h, true, packed_t)
            });
        }
        if self.symbols {
            self.load_symbols(p);
            return;
        }
        let (w_x, b_ih, b_hh, w_hy, b_y) = (p.w_x(), p.b_ih(), p.b_hh(), p.w_hy(), p.b_y());
        for r in 0..gh {
            let b = if b_hh.is_empty() {
                b_ih[r]
            } else {
                b_ih[r] + b_hh[r]
            };
            self.zx0[r] = w_x[r] + b;
            self.zx1[r] = w_x[gh + r] + b;
        }
        if cell == Cell::Gru {
            for j in 0..h {
                let n = 2 * h + j;
                self.zx0[n] = b_hh[n];
                self.zx1[n] = b_hh[n];
                self.nx0[j] = w_x[n] + b_ih[n];
                self.nx1[j] = w_x[gh + n] + b_ih[n];
            }
        }
        for j in 0..h {
            self.wy_diff[j] = w_hy[h + j] - w_hy[j];
        }
        self.by_diff = b_y[1] - b_y[0];
    }

    /// The symbols' part of [`Prepared::load`]: the input table, the head packed.
    fn load_symbols(&mut self, p: &Params<f32>) {
        let (h, cell, c_n) = (self.hidden, self.cell, self.classes);
        let gh = cell.gates() * h;
        let (w_x, b_ih, b_hh) = (p.w_x(), p.b_ih(), p.b_hh());
        for (zx, w) in self.zx.chunks_exact_mut(gh).zip(w_x.chunks_exact(gh)) {
            for r in 0..gh {
                zx[r] = if b_hh.is_empty() {
                    w[r] + b_ih[r]
                } else {
                    w[r] + (b_ih[r] + b_hh[r])
                };
            }
            if cell == Cell::Gru {
                zx[2 * h..].copy_from_slice(&b_hh[2 * h..]);
            }
        }
        if cell == Cell::Gru {
            for (nx, w) in self.nx.chunks_exact_mut(h).zip(w_x.chunks_exact(gh)) {
                for j in 0..h {
                    nx[j] = w[2 * h + j] + b_ih[2 * h + j];
                }
            }
        }
        pack_rows(p.w_hy(), c_n, h, false, &mut self.w_hy_packed);
        pack_rows(p.w_hy(), c_n, h, true, &mut self.w_hy_t_packed);
        self.b_y.copy_from_slice(p.b_y());
    }

    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    #[must_use]
    pub fn cell(&self) -> Cell {
        self.cell
    }
    /// The parameters' layout these weights are arranged for.
    #[must_use]
    pub fn layout(&self) -> Layout {
        Layout::with_symbols(self.cell, self.hidden, self.vocab, self.classes)
    }
}

/// `n` zero vectors in an allocation with [`PAD`] spare vectors after them, never used: the
/// next allocation starts at least 256 bytes after the last element, so two workspaces (two
/// shards, maybe on two threads) never write to one cache line or one adjacent-line
/// prefetch pair. Without it, a shard's small per-step buffers (`logit`, `dl`: one line at
/// the seed size) could share a line with a neighbour's, and 2 threads ran at the speed of 1
/// in some processes (false sharing).
pub(super) fn padded(n: usize) -> Vec<Vf32> {
    let mut v = Vec::with_capacity(n + PAD);
    v.resize(n, Vf32::ZERO);
    v
}

/// Spare vectors after each workspace buffer: 256 bytes.
pub(super) const PAD: usize = 256 / core::mem::size_of::<Vf32>();

/// One shard's buffers for the whole run: the carried state and the window's activations.
/// Allocated once; the kernels never allocate.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub(super) cell: Cell,
    pub(super) hidden: usize,
    pub(super) streams: usize,
    pub(super) groups: usize,
    pub(super) time_step: usize,
    /// `[t][H + 2][groups]`, see the module docs.
    pub(super) hbuf: Vec<Vf32>,
    /// `[t][G H][groups]`: the gradient of the loss with respect to the gate
    /// pre-activations (`dL/dz_t` for the RNN; the hidden side's for the GRU).
    pub(super) dz: Vec<Vf32>,
    /// `[t][groups]`.
    pub(super) dl: Vec<Vf32>,
    /// `[t][groups]`: y as 0.0/1.0.
    pub(super) y: Vec<Vf32>,
    /// `[groups]`: the running logit difference of the current step.
    pub(super) logit: Vec<Vf32>,
    /// `[groups]`: 1.0 in lanes of real streams, 0.0 in padding lanes.
    pub(super) valid: Vec<Vf32>,
    /// Small kernels only: the weights splatted into vectors (see `splat_small`).
    pub(super) splat: Vec<Vf32>,
    /// Small kernels only: per-lane gradient accumulators of the window,
    /// `[H][H + 2]` for `[dw_hh | dw_xh[1] | dw_xh[0]]`, then `[H]` for `dw_hy[1]`, then 1 for
    /// `db_y[1]`.
    pub(super) gacc: Vec<Vf32>,
    /// Gated cells (see [`super::gated`]): `[t][G H][groups]`, the gates' activations.
    pub(super) gates: Vec<Vf32>,
    /// LSTM: `[t][H][groups]` for `t = 0..=T`, `c_{t-1}` (`cbuf[0]` = the carried cell state).
    pub(super) cbuf: Vec<Vf32>,
    /// Gated cells: `[t][H][groups]`, the LSTM's `tanh(c_t)`, the GRU's `W_hn h_{t-1} + b_hn`.
    pub(super) aux: Vec<Vf32>,
    /// GRU: `[t][H][groups]`, the gradient of the `n` gate's pre-activation (its input side).
    pub(super) dn: Vec<Vf32>,
    /// Gated cells: `[G H][groups]`, a step's pre-activations (forward) or `dL/dh` (backward).
    pub(super) pre: Vec<Vf32>,
    /// Gated cells: `[H][groups]`, the gradient carried to the previous step outside the
    /// recurrent GEMM (the LSTM's `dc f`, the GRU's `dh z`).
    pub(super) carry: Vec<Vf32>,
    /// Gated cells and the symbols' path: the weight gradients' scratch
    /// ([`super::tiles::gradient_panels`]): a panel of one state row's column block per
    /// stream, then the accumulators of the GEMMs' rows (`dz`'s, and the logits' on the
    /// symbols' path) for one column block.
    pub(super) bt: Vec<Vf32>,
    /// Gated cells and the symbols' path: `[KC][NR]`, the step GEMMs' `b` panel copied
    /// contiguous ([`super::tiles::pack_panel_b`]).
    pub(super) panel: Vec<Vf32>,
    /// The symbols' path ([`super::symbols`]): `V`, `C`, and whether it is on.
    pub(super) symbols: bool,
    pub(super) vocab: usize,
    pub(super) classes: usize,
    /// Symbols: `[t][groups * LANES]`, the window's input symbols and target classes.
    pub(super) xs: Vec<u16>,
    pub(super) ys: Vec<u16>,
    /// Symbols: `[C][groups]`, a step's logits.
    pub(super) logits: Vec<Vf32>,
    /// Symbols: `[2][groups]`, the softmax's per-group maxima and sums.
    pub(super) soft: Vec<Vf32>,
    /// Symbols, GRU: `[H][groups]`, a step's `n` gate input side `w_x[x][n_j] + b_in[j]`.
    pub(super) nin: Vec<Vf32>,
}

/// What a forward pass over one window measured, summed over the shard's real streams and
/// the window's steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Sum of the per-sample cross-entropy losses.
    pub loss_sum: f64,
    /// Number of samples whose more probable class was the target.
    pub correct: f64,
}

impl Workspace {
    /// Buffers for the tanh RNN: `streams` streams (any count >= 1), hidden size `hidden`,
    /// windows of `time_step` steps. The carried state starts at zero.
    #[must_use]
    pub fn new(hidden: usize, streams: usize, time_step: usize) -> Self {
        Self::with_cell(Cell::Rnn, hidden, streams, time_step)
    }

    /// Buffers for `cell`: `streams` streams (any count >= 1), hidden size `hidden`, windows
    /// of `time_step` steps. The carried state starts at zero.
    #[must_use]
    pub fn with_cell(cell: Cell, hidden: usize, streams: usize, time_step: usize) -> Self {
        Self::build(Layout::of(cell, hidden), false, streams, time_step)
    }

    /// Buffers for the symbols' path (`simd::symbols`) of `layout` (any `V` and `C`):
    /// `streams` streams, windows of `time_step` steps, the carried state at zero.
    #[must_use]
    pub fn for_symbols(layout: Layout, streams: usize, time_step: usize) -> Self {
        Self::build(layout, true, streams, time_step)
    }

    /// [`Workspace::for_symbols`] of `layout` where `symbols`, else [`Workspace::with_cell`]
    /// of its cell and hidden size (the bits' kernels), as [`Prepared::for_path`].
    #[must_use]
    pub fn for_path(layout: Layout, symbols: bool, streams: usize, time_step: usize) -> Self {
        if symbols {
            Self::for_symbols(layout, streams, time_step)
        } else {
            Self::with_cell(layout.cell, layout.hidden, streams, time_step)
        }
    }

    fn build(layout: Layout, symbols: bool, streams: usize, time_step: usize) -> Self {
        let Layout {
            cell,
            hidden,
            vocab,
            classes,
        } = layout;
        assert!(
            hidden >= 1 && streams >= 1 && time_step >= 1,
            "Workspace::new: empty shape"
        );
        assert!(
            symbols || layout.is_bits(),
            "the bits' kernels have V = C = 2"
        );
        let groups = groups_for(streams);
        let rows = hidden + 2;
        let gh = cell.gates() * hidden;
        let small = !symbols && is_small(cell, hidden);
        let gated = cell != Cell::Rnn;
        let lstm = cell == Cell::Lstm;
        let gru = cell == Cell::Gru;
        let sized = |yes: bool, n: usize| if yes { padded(n) } else { Vec::new() };
        let mut valid = padded(groups);
        for (g, v) in valid.iter_mut().enumerate() {
            *v = Vf32::new(core::array::from_fn(|lane| {
                if g * LANES + lane < streams { 1.0 } else { 0.0 }
            }));
        }
        Self {
            cell,
            hidden,
            streams,
            groups,
            time_step,
            hbuf: padded((time_step + 1) * rows * groups),
            dz: padded(time_step * gh * groups),
            dl: padded(time_step * if symbols { classes } else { 1 } * groups),
            y: padded(time_step * groups),
            logit: padded(groups),
            valid,
            splat: sized(small, hidden * hidden + 3 * hidden),
            gacc: sized(small, hidden * rows + hidden + 1),
            gates: sized(gated, time_step * gh * groups),
            cbuf: sized(lstm, (time_step + 1) * hidden * groups),
            aux: sized(gated, time_step * hidden * groups),
            dn: sized(gru, time_step * hidden * groups),
            pre: sized(gated || symbols, gh * groups),
            carry: sized(gated, hidden * groups),
            bt: sized(
                gated || symbols,
                super::tiles::panels_scratch(groups, gh + if symbols { classes } else { 0 }),
            ),
            panel: sized(gated || symbols, super::tiles::KC * super::tiles::NR),
            symbols,
            vocab,
            classes,
            xs: vec![
                0;
                if symbols {
                    time_step * groups * LANES
                } else {
                    0
                }
            ],
            ys: vec![
                0;
                if symbols {
                    time_step * groups * LANES
                } else {
                    0
                }
            ],
            logits: sized(symbols, classes * groups),
            soft: sized(symbols, 2 * groups),
            nin: sized(symbols && gru, hidden * groups),
        }
    }

    /// The parameters' layout of this workspace's model.
    #[must_use]
    pub fn layout(&self) -> Layout {
        Layout::with_symbols(self.cell, self.hidden, self.vocab, self.classes)
    }
    /// Whether this workspace runs the symbols' path.
    #[must_use]
    pub fn symbols(&self) -> bool {
        self.symbols
    }

    #[must_use]
    pub fn cell(&self) -> Cell {
        self.cell
    }
    #[must_use]
    pub fn streams(&self) -> usize {
        self.streams
    }
    #[must_use]
    pub fn groups(&self) -> usize {
        self.groups
    }
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    #[must_use]
    pub fn time_step(&self) -> usize {
        self.time_step
    }

    /// Zeroes the carried state (the start of an epoch).
    pub fn reset(&mut self) {
        let n = self.hidden * self.groups;
        self.hbuf[..n].fill(Vf32::ZERO);
        if self.cell == Cell::Lstm {
            self.cbuf[..n].fill(Vf32::ZERO);
        }
    }

    /// Numbers in one stream's carried state: `h`, and the LSTM's `c` after it.
    fn state_width(&self) -> usize {
        self.cell.state_rows() * self.hidden
    }

    /// Row `j` of the carried state, `groups` vectors (`h` rows, then the LSTM's `c` rows).
    fn state_row(&self, j: usize) -> &[Vf32] {
        let (h, g) = (self.hidden, self.groups);
        if j < h {
            &self.hbuf[j * g..(j + 1) * g]
        } else {
            &self.cbuf[(j - h) * g..(j - h + 1) * g]
        }
    }

    /// Sets the carried state from `state` laid out `[streams][state_rows * hidden]` (the
    /// reference's layout: `h`, then the LSTM's `c`); padding lanes are zeroed.
    pub fn load_state(&mut self, state: &[f32]) {
        let width = self.state_width();
        assert_eq!(
            state.len(),
            self.streams * width,
            "load_state: [streams][state_rows * hidden]"
        );
        self.reset();
        let (h, groups) = (self.hidden, self.groups);
        for s in 0..self.streams {
            for j in 0..width {
                let v = state[s * width + j];
                let row = if j < h {
                    &mut self.hbuf[j * groups..]
                } else {
                    &mut self.cbuf[(j - h) * groups..]
                };
                row[s / LANES].as_mut_array()[s % LANES] = v;
            }
        }
    }

    /// Writes the carried state to `state`, laid out `[streams][state_rows * hidden]`.
    pub fn store_state(&self, state: &mut [f32]) {
        let width = self.state_width();
        assert_eq!(
            state.len(),
            self.streams * width,
            "store_state: [streams][state_rows * hidden]"
        );
        for s in 0..self.streams {
            for j in 0..width {
                state[s * width + j] = self.state_row(j)[s / LANES].as_array()[s % LANES];
            }
        }
    }

    /// Whether any number in any of the workspace's buffers is subnormal, for the tests of
    /// the no-denormal design ([module docs](super)).
    #[must_use]
    pub fn has_subnormal(&self) -> bool {
        [
            &self.hbuf,
            &self.dz,
            &self.dl,
            &self.y,
            &self.logit,
            &self.splat,
            &self.gacc,
            &self.gates,
            &self.cbuf,
            &self.aux,
            &self.dn,
            &self.pre,
            &self.carry,
            &self.logits,
            &self.nin,
        ]
        .into_iter()
        .flat_map(|b| b.iter())
        .flat_map(|v| v.to_array())
        .any(f32::is_subnormal)
    }

    /// The whole carried state including padding lanes, for tests of their inertness.
    #[must_use]
    pub fn raw_state(&self) -> &[Vf32] {
        &self.hbuf[..self.hidden * self.groups]
    }
    /// Mutable access to the whole carried state including padding lanes. Padding lanes must
    /// hold finite values small enough that `w_hh * v` cannot overflow (anything in [-1, 1],
    /// the range of tanh, is safe): an infinite `z` there would make `h` NaN, and `0 * NaN`
    /// would reach the gradient. [`Workspace::reset`], [`Workspace::load_state`] and the
    /// kernels themselves only ever put zeros or tanh outputs there.
    pub fn raw_state_mut(&mut self) -> &mut [Vf32] {
        let n = self.hidden * self.groups;
        &mut self.hbuf[..n]
    }
}

/// The inputs of one shard for one window: bit planes, [`LANE_BYTES`](crate::lanes::LANE_BYTES) bytes per lane group
/// per step. Bit `i % 8` of `x[t * stride + g * LANE_BYTES + i / 8]` is the input of stream
/// `LANES g + i` at step `t` (the layout of `bitrnn::data::Dataset::fill_planes` viewed as
/// bytes, offset to the shard's first group); `stride` is in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Planes<'a> {
    pub x: &'a [u8],
    pub y: &'a [u8],
    pub stride: usize,
}

/// The inputs of one shard for one window as symbol ids, for models over `V` input symbols
/// and `C` classes other than the bits' two: `x[t * stride + s]` is the input symbol (`< V`)
/// and `y[t * stride + s]` the target class (`< C`) of the shard's stream `s` at step `t`
/// (offset to the shard's first stream). Both hold whole lane groups per step (`stride >=
/// groups * LANES`); the padding streams' entries are 0.
#[derive(Clone, Copy, Debug)]
pub struct SymbolPlanes<'a> {
    pub x: &'a [u16],
    pub y: &'a [u16],
    pub stride: usize,
}

/// A shard's inputs for one window: bit planes (the bits' kernels) or symbol ids (the
/// symbols' path). The kernels' entry points take either (`&Planes`, `&SymbolPlanes` or
/// `Inputs`).
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a> {
    Bits(Planes<'a>),
    Symbols(SymbolPlanes<'a>),
}

impl<'a> Inputs<'a> {
    /// The inputs of a shard whose first lane group is `first_group` of these.
    #[must_use]
    pub fn offset(self, first_group: usize) -> Self {
        match self {
            Self::Bits(p) => Self::Bits(Planes {
                x: &p.x[first_group * crate::lanes::LANE_BYTES..],
                y: &p.y[first_group * crate::lanes::LANE_BYTES..],
                stride: p.stride,
            }),
            Self::Symbols(p) => Self::Symbols(SymbolPlanes {
                x: &p.x[first_group * LANES..],
                y: &p.y[first_group * LANES..],
                stride: p.stride,
            }),
        }
    }
}

impl<'a> From<&Planes<'a>> for Inputs<'a> {
    fn from(p: &Planes<'a>) -> Self {
        Self::Bits(*p)
    }
}
impl<'a> From<&SymbolPlanes<'a>> for Inputs<'a> {
    fn from(p: &SymbolPlanes<'a>) -> Self {
        Self::Symbols(*p)
    }
}
impl<'a> From<&Inputs<'a>> for Inputs<'a> {
    fn from(p: &Inputs<'a>) -> Self {
        *p
    }
}
