//! The register tiles: `M` hidden rows x `N` lane groups of accumulators, fed by one
//! broadcast and an `N`-vector panel per reduction index. The loop nests in
//! [`super::blocked`] cut a step's GEMM into these tiles and dispatch the edge sizes.

use super::{Prepared, Workspace, flush};
use crate::approx;
use crate::lanes::{LANES, Vf32, hsum, transpose_into};

/// Hidden rows per register tile of the step GEMMs: 6 x 2 tiles keep 12 accumulators, the
/// 2-vector panel and one broadcast in the 16 ymm registers of AVX2.
pub(super) const MR: usize = 6;

/// Lane groups per register tile of the step GEMMs: 6 x 4 tiles (24 accumulators, the
/// 4-vector panel and a broadcast: 29 of AVX-512's 32 registers; hidden 256, one thread:
/// 60.9% -> 64.7% of the peak, 2026-12-01), 6 x 2 in AVX2's 16.
pub(super) const NR: usize = if cfg!(target_feature = "avx512f") {
    4
} else {
    2
};

/// Hidden rows (of `dz`) per register tile of the weight-gradient GEMM.
pub(super) const GR: usize = 6;

/// Columns (of `[h; x; 1-x]`) per register tile of the weight-gradient GEMM: 6 x 4 tiles (24
/// accumulators, 10 loads per 24 FMAs) where the build has AVX-512's 32 vector registers
/// (hidden 256, one thread: 58.0% -> 60.9% of the peak, 2026-12-01), 6 x 2 in AVX2's 16. In
/// [`gradient_panels`] the same count is of vectors of columns (`GC LANES` hidden units a
/// column block).
pub(super) const GC: usize = if cfg!(target_feature = "avx512f") {
    4
} else {
    2
};

/// The register tile shared by the step GEMMs: `acc[i][n] += sum_k a[j0+i][k] b[k][g0+n]`
/// for `k < k_len`, with `a`'s block of rows packed `[k][MR]` (`Prepared`'s packed matrices:
/// one pointer, `M` consecutive broadcasts per `k`) and `b` `[k][groups]` vectors (a panel of
/// `N` groups per `k`). Packing took the tile from 41% to 58% of the AVX-512 peak at hidden
/// 256 with the other changes of 2026-12-01 (BENCHMARKS.md).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_tile<const M: usize, const N: usize>(
    acc: &mut [[Vf32; N]; M],
    packed: &[f32],
    b: &[Vf32],
    groups: usize,
    g0: usize,
    k_len: usize,
) {
    for (row, a_k) in b
        .chunks_exact(groups)
        .zip(packed.chunks_exact(MR))
        .take(k_len)
    {
        let panel: &[Vf32; N] = row[g0..g0 + N].try_into().expect("N groups");
        let b = *panel;
        for i in 0..M {
            let a = Vf32::splat(a_k[i]);
            for n in 0..N {
                acc[i][n] = a.mul_add(b[n], acc[i][n]);
            }
        }
    }
}

/// Forward tile: rows `j0..j0+M` of `h_t` for groups `g0..g0+N`.
/// `z = select(x, zx1, zx0) + sum_k w_hh[j][k] h_{t-1}[k]`, `h = tanh(z)`, and
/// `logit += wy_diff[j] h[j]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_tile<const M: usize, const N: usize>(
    w: &Prepared,
    prev: &[Vf32],
    next: &mut [Vf32],
    logit: &mut [Vf32],
    groups: usize,
    j0: usize,
    g0: usize,
) {
    let h = w.hidden;
    let xmask: [_; N] = core::array::from_fn(|n| prev[h * groups + g0 + n].simd_ne(Vf32::ZERO));
    let mut acc: [[Vf32; N]; M] = core::array::from_fn(|i| {
        core::array::from_fn(|n| {
            xmask[n].select(Vf32::splat(w.zx1[j0 + i]), Vf32::splat(w.zx0[j0 + i]))
        })
    });
    let packed = &w.w_hh_packed[j0 * h..][..MR * h];
    gemm_tile(&mut acc, packed, prev, groups, g0, h);
    for i in 0..M {
        let wy = Vf32::splat(w.wy_diff[j0 + i]);
        for n in 0..N {
            let hv = approx::tanh(acc[i][n]);
            next[(j0 + i) * groups + g0 + n] = hv;
            logit[g0 + n] = wy.mul_add(hv, logit[g0 + n]);
        }
    }
}

/// Backward tile: rows `j0..j0+M` of `dz_t` for groups `g0..g0+N`:
/// `dz_t = flush((wy_diff[j] dl_t + sum_i w_hh[i][j] dz_{t+1}[i]) * (1 - h_t^2))`; the sum is
/// empty at the window's last step (`dz_next` empty).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_tile<const M: usize, const N: usize>(
    w: &Prepared,
    dz_next: &[Vf32],
    dz: &mut [Vf32],
    h_t: &[Vf32],
    dl: &[Vf32],
    groups: usize,
    j0: usize,
    g0: usize,
) {
    let h = w.hidden;
    let k_len = if dz_next.is_empty() { 0 } else { h };
    let mut acc: [[Vf32; N]; M] = core::array::from_fn(|i| {
        core::array::from_fn(|n| Vf32::splat(w.wy_diff[j0 + i]) * dl[g0 + n])
    });
    let packed = &w.w_hh_t_packed[j0 * h..][..MR * h];
    gemm_tile(&mut acc, packed, dz_next, groups, g0, k_len);
    for i in 0..M {
        for n in 0..N {
            let hv = h_t[(j0 + i) * groups + g0 + n];
            let d = acc[i][n] * hv.mul_neg_add(hv, Vf32::ONE);
            dz[(j0 + i) * groups + g0 + n] = flush(d);
        }
    }
}

/// Weight-gradient tile: `out[i][c] = sum over lanes, steps t and groups g of
/// a_t[j0+i][g] * hbuf_{t+shift}[c0+c][g]`, written as `(row j0+i, column c0+c)` to `emit`.
/// `a` is `[t][a_rows][groups]` (`dz`: the gate pre-activations' gradient against `h_{t-1}`,
/// shift 0; the symbols' logits' `dl` against `h_t`, shift 1).
// Not inlined: inlined into the loop nest with its 11 sibling sizes, its accumulators were
// kept on the stack (a store after every FMA: 2.4x the time of the other two GEMMs at hidden
// 256, perf, 2026-12-01); on its own they stay in registers.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_tile<const M: usize, const N: usize>(
    ws: &Workspace,
    a: &[Vf32],
    a_rows: usize,
    shift: usize,
    j0: usize,
    c0: usize,
    emit: &mut impl FnMut(usize, usize, f32),
) {
    let (h, groups) = (ws.hidden, ws.groups);
    let rows = h + 2;
    let mut acc = [[Vf32::ZERO; N]; M];
    for t in 0..ws.time_step {
        let dz = &a[t * a_rows * groups..(t + 1) * a_rows * groups];
        let hb = &ws.hbuf[(t + shift) * rows * groups..(t + shift + 1) * rows * groups];
        let a_rows: [&[Vf32]; M] = core::array::from_fn(|i| &dz[(j0 + i) * groups..][..groups]);
        let b_rows: [&[Vf32]; N] = core::array::from_fn(|n| &hb[(c0 + n) * groups..][..groups]);
        for g in 0..groups {
            let b: [Vf32; N] = core::array::from_fn(|n| b_rows[n][g]);
            for i in 0..M {
                let a = a_rows[i][g];
                for n in 0..N {
                    acc[i][n] = a.mul_add(b[n], acc[i][n]);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (n, v) in row.iter().enumerate() {
            emit(j0 + i, c0 + n, hsum(*v));
        }
    }
}

/// One GEMM of a window's weight gradients (the gated cells' `dw_hh`, the symbols' path's
/// `dw_hh` and `dw_hy`): `out[r][c] = sum_t sum_s a_t[r][s] h_{t + shift}[c][s]` over the
/// window's `steps` and the shard's real streams `s`, for `r < rows` and the `H` columns
/// (`out` is `[rows][H]`). `a` is `[t][rows][groups]` (`dz` against `h_{t-1}`: shift 0; the
/// logits' `dl` against `h_t`: shift 1; `h_{t+shift}` is `hbuf[t + shift]`).
pub(super) struct GradGemm<'a> {
    pub a: &'a [Vf32],
    pub rows: usize,
    pub shift: usize,
    pub out: &'a mut [f32],
}

/// Vectors of scratch [`gradient_panels`] needs for `rows` output rows in all.
pub(super) fn panels_scratch(groups: usize, rows: usize) -> usize {
    (groups * LANES + rows) * GC
}

/// The weight-gradient GEMMs of a window ([`GradGemm`]) with the columns in the lanes and one
/// reduction over the window's sample-steps (no lane sums). Column blocks of [`GC`] vectors
/// outer; then per state row `hbuf[t']`, its block is packed once, transposed per stream
/// (`panel[s][n]`: the `LANES` columns `(v0 + n) LANES ..` of stream `s`, 16 x 16 transposes)
/// into `scratch`, where it stays in L1 (`S GC` vectors: 32 KB for 128 streams of AVX-512)
/// while the row tiles of every GEMM that reads `h_{t'}` pass over it ([`panel_tile`]); the
/// tiles' accumulators wait in `scratch` between state rows. Each output is one chain of
/// FMAs in `(t, s)` order, whatever the blocking (deterministic; the chain of the whole
/// window's per-stream transpose this replaced, which cost 13% of a character model's time
/// at hidden 128 and missed L1).
pub(super) fn gradient_panels(
    ws: &Workspace,
    scratch: &mut [Vf32],
    steps: usize,
    gemms: &mut [GradGemm<'_>],
) {
    let (h, groups, streams) = (ws.hidden, ws.groups, ws.streams);
    let rows = h + 2;
    let kv = h.div_ceil(LANES);
    let total: usize = gemms.iter().map(|g| g.rows).sum();
    let last_state = gemms.iter().map(|g| g.shift).max().unwrap_or(0) + steps;
    let (panel, acc) = scratch[..panels_scratch(groups, total)].split_at_mut(groups * LANES * GC);
    for v0 in (0..kv).step_by(GC) {
        let nb = GC.min(kv - v0);
        acc[..total * nb].fill(Vf32::ZERO);
        for state in 0..last_state {
            let hb = &ws.hbuf[state * rows * groups..][..h * groups];
            pack_panel(hb, h, groups, v0, nb, panel);
            let mut base = 0;
            for gemm in gemms.iter() {
                if let Some(t) = state.checked_sub(gemm.shift).filter(|&t| t < steps) {
                    let a_t: &[f32] = bytemuck::cast_slice(
                        &gemm.a[t * gemm.rows * groups..][..gemm.rows * groups],
                    );
                    let acc = &mut acc[base * nb..(base + gemm.rows) * nb];
                    for r0 in (0..gemm.rows).step_by(GR) {
                        let mr = GR.min(gemm.rows - r0);
                        dispatch_tile!(
                            panel_tile,
                            mr,
                            nb,
                            acc,
                            a_t,
                            groups * LANES,
                            r0,
                            panel,
                            streams
                        );
                    }
                }
                base += gemm.rows;
            }
        }
        let mut base = 0;
        for gemm in gemms.iter_mut() {
            for r in 0..gemm.rows {
                for n in 0..nb {
                    let c0 = (v0 + n) * LANES;
                    let k = LANES.min(h - c0);
                    let v = acc[(base + r) * nb + n].to_array();
                    // (copy_from_slice called memmove: 2% of an LSTM's time at hidden 256.)
                    assign::<f32, LANES>(&mut gemm.out[r * h + c0..][..k], &v[..k]);
                }
            }
            base += gemm.rows;
        }
    }
}

/// Column block `v0..v0 + nb` (vectors of `LANES` hidden units) of the state rows `hb`
/// (`[H][groups]`) per stream: `panel[s][n]` holds units `(v0 + n) LANES ..` of stream `s`,
/// zero past `H`.
fn pack_panel(hb: &[Vf32], h: usize, groups: usize, v0: usize, nb: usize, panel: &mut [Vf32]) {
    for n in 0..nb {
        let c0 = (v0 + n) * LANES;
        let units = LANES.min(h - c0);
        for g in 0..groups {
            transpose_into(
                &hb[c0 * groups + g..],
                groups,
                units,
                &mut panel[g * LANES * nb + n..],
                nb,
            );
        }
    }
}

/// The weight gradients' register tile: `acc[r0 + i][n] += sum_{s < streams} a[r0 + i][s]
/// panel[s][n]` (`acc` `[rows][N]`, `a` one step's rows of `stride` floats, the stream's
/// gradient read as a scalar and broadcast; `panel` [`pack_panel`]'s, `N` vectors a stream).
/// `M + N` loads per `M N` FMAs, all from L1.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(super) fn panel_tile<const M: usize, const N: usize>(
    acc: &mut [Vf32],
    a: &[f32],
    stride: usize,
    r0: usize,
    panel: &[Vf32],
    streams: usize,
) {
    let mut c: [[Vf32; N]; M] =
        core::array::from_fn(|i| core::array::from_fn(|n| acc[(r0 + i) * N + n]));
    let rows: [&[f32]; M] = core::array::from_fn(|i| &a[(r0 + i) * stride..][..streams]);
    for (s, b_s) in panel[..streams * N].chunks_exact(N).enumerate() {
        let b: [Vf32; N] = core::array::from_fn(|n| b_s[n]);
        for i in 0..M {
            let a = Vf32::splat(rows[i][s]);
            for n in 0..N {
                c[i][n] = a.mul_add(b[n], c[i][n]);
            }
        }
    }
    for (i, row) in c.iter().enumerate() {
        for (n, v) in row.iter().enumerate() {
            acc[(r0 + i) * N + n] = *v;
        }
    }
}

/// Reduction indices per pass of the gated cells' step GEMMs: a panel of `NR` groups of `KC`
/// rows of `h` (or `dz`) is 32 KB with AVX-512's 4 x 64-byte vectors, kept in the 48 KB L1
/// while all the row blocks stream past it; the accumulators go to memory and back between
/// passes (`MR NR` vectors per `MR KC NR` FMAs).
pub(super) const KC: usize = 128;

/// Gated cells' forward tile, one pass over `k0..k0 + kc`: rows `r0..r0+M` of a step's gate
/// pre-activations for groups `g0..g0+N`, `pre = select(x, zx1, zx0) + sum_k w_hh[r][k]
/// h_{t-1}[k]` (no epilogue: the gates of one unit are `H` rows apart, so the cell's
/// nonlinearities run in a pass of their own, [`super::gated`]). The first pass starts from
/// the input column and biases (`x` read from `prev`), the others from `pre`. `panel`:
/// `h_{t-1}`'s rows `k0..k0 + kc` for the tile's groups, [`pack_panel_b`]'s copy.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn preact_tile<const M: usize, const N: usize>(
    w: &Prepared,
    prev: &[Vf32],
    panel: &[Vf32],
    pre: &mut [Vf32],
    groups: usize,
    r0: usize,
    g0: usize,
    k0: usize,
    kc: usize,
) {
    let h = w.hidden;
    let at = |i: usize, n: usize| (r0 + i) * groups + g0 + n;
    let mut acc: [[Vf32; N]; M] = if k0 == 0 {
        let xmask: [_; N] = core::array::from_fn(|n| prev[h * groups + g0 + n].simd_ne(Vf32::ZERO));
        core::array::from_fn(|i| {
            core::array::from_fn(|n| {
                xmask[n].select(Vf32::splat(w.zx1[r0 + i]), Vf32::splat(w.zx0[r0 + i]))
            })
        })
    } else {
        core::array::from_fn(|i| core::array::from_fn(|n| pre[at(i, n)]))
    };
    let packed = &w.w_hh_packed[r0 * h + k0 * MR..][..MR * kc];
    gemm_tile(&mut acc, packed, panel, N, 0, kc);
    for (i, row) in acc.iter().enumerate() {
        for (n, v) in row.iter().enumerate() {
            pre[at(i, n)] = *v;
        }
    }
}

/// Copies the step GEMM's `b` block `b[k0..k0 + kc][g0..g0 + nr]` (`b` `[k][groups]`)
/// into `panel` as `[kc][nr]`, contiguous. Read in place, the block's rows are `groups`
/// vectors apart: at 8 and 16 lane groups (512 B and 1 KB) its 128 x 4 lines fall into a
/// quarter or less of L1's sets and evict each other, so every row tile of the GEMM read its
/// panel from L2 again (gated cells, hidden 256, 2 threads: LSTM 1.02x to 1.06x, GRU 1.02x
/// to 1.04x, 2026-12-02). Not for the blocked RNN, whose tiles run the whole reduction (a
/// `[H][NR]` panel, 64 KB at hidden 256, does not fit L1 either: 0.98x to 0.99x).
pub(super) fn pack_panel_b(
    panel: &mut [Vf32],
    b: &[Vf32],
    groups: usize,
    k0: usize,
    kc: usize,
    g0: usize,
    nr: usize,
) {
    for (dst, row) in panel
        .chunks_exact_mut(nr)
        .zip(b[k0 * groups..].chunks_exact(groups))
        .take(kc)
    {
        // (copy_from_slice called memmove per row: 3.4% of an LSTM's time at hidden 64.)
        assign::<Vf32, NR>(dst, &row[g0..g0 + nr]);
    }
}

/// `dst = src` (equal lengths), by one array assignment where they are `N` long: a
/// `copy_from_slice` of a run-time length calls memmove, which costs more than the copy for
/// the few hundred bytes of a tile's row.
#[inline(always)]
fn assign<T: Copy, const N: usize>(dst: &mut [T], src: &[T]) {
    if let (Ok(d), Ok(s)) = (<&mut [T; N]>::try_from(&mut *dst), <&[T; N]>::try_from(src)) {
        *d = *s;
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// What a symbols' path GEMM ([`super::symbols::gemm_acc`]) does with each finished tile of
/// sums: leave them in `out`, or also run the tanh RNN's elementwise step on them while they
/// are in L1 (no pass of its own over the step's rows).
pub(super) enum Finish<'a> {
    Out,
    /// `h[r][g] = tanh(sum)`, flushed below 2^-64 (the forward step).
    Tanh(&'a mut [Vf32]),
    /// `dz[r][g] = sum (1 - h[r][g]^2)`, flushed (the backward step, `sum` = `dL/dh_t`).
    TanhDerivative {
        h: &'a [Vf32],
        dz: &'a mut [Vf32],
    },
}

impl Finish<'_> {
    /// Applies the step to rows `r0..r0 + mr`, groups `g0..g0 + nr` of `out`.
    #[inline(always)]
    pub(super) fn tile(
        &mut self,
        out: &[Vf32],
        groups: usize,
        r0: usize,
        mr: usize,
        g0: usize,
        nr: usize,
    ) {
        for r in r0..r0 + mr {
            let at = r * groups + g0;
            let sums = &out[at..at + nr];
            match self {
                Finish::Out => return,
                Finish::Tanh(h) => {
                    for (hv, &z) in h[at..at + nr].iter_mut().zip(sums) {
                        *hv = flush(approx::tanh(z));
                    }
                }
                Finish::TanhDerivative { h, dz } => {
                    for ((d, &s), &hv) in dz[at..at + nr].iter_mut().zip(sums).zip(&h[at..at + nr])
                    {
                        *d = flush(s * hv.mul_neg_add(hv, Vf32::ONE));
                    }
                }
            }
        }
    }
}

/// The symbols' path's tile ([`super::symbols::gemm_acc`]), one pass over `k0..k0 + kc`:
/// `out[r][g] += sum_k a[r][k] b[k][g]` for rows `r0..r0+M` and groups `g0..g0+N`, `a`
/// packed (`k_dim` columns); `b`'s rows `k0..` given as `b_panel`, rows `stride` vectors
/// apart, the tile's groups from `b_g0` (in place: `b[k0 * groups..]`, `groups`, `g0`; or a
/// [`pack_panel_b`] copy: `N`, 0).
// Not inlined: in the loop nest with its sibling sizes and the finish step the accumulators
// stayed in memory (1.5x the GEMM's time, 2026-12-02).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(super) fn acc_tile<const M: usize, const N: usize>(
    packed: &[f32],
    k_dim: usize,
    b_panel: &[Vf32],
    stride: usize,
    b_g0: usize,
    out: &mut [Vf32],
    groups: usize,
    r0: usize,
    g0: usize,
    k0: usize,
    kc: usize,
) {
    let at = |i: usize, n: usize| (r0 + i) * groups + g0 + n;
    let mut acc: [[Vf32; N]; M] = core::array::from_fn(|i| core::array::from_fn(|n| out[at(i, n)]));
    gemm_tile(
        &mut acc,
        &packed[r0 * k_dim + k0 * MR..][..MR * kc],
        b_panel,
        stride,
        b_g0,
        kc,
    );
    for (i, row) in acc.iter().enumerate() {
        for (n, v) in row.iter().enumerate() {
            out[at(i, n)] = *v;
        }
    }
}

/// Gated cells' backward tile, one pass over `k0..k0 + kc`: rows `j0..j0+M` of `dL/dh_t` for
/// groups `g0..g0+N`, `dh = wy_diff[j] dl_t + sum_r w_hh[r][j] dz_{t+1}[r]` (`kc = 0` at the
/// window's last step, where the sum is empty). The first pass starts from the head's term,
/// the others from `dh`. `panel`: `dz_{t+1}`'s rows `k0..k0 + kc` for the tile's groups,
/// [`pack_panel_b`]'s copy.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn dh_tile<const M: usize, const N: usize>(
    w: &Prepared,
    panel: &[Vf32],
    dh: &mut [Vf32],
    dl: &[Vf32],
    groups: usize,
    j0: usize,
    g0: usize,
    k0: usize,
    kc: usize,
) {
    let gh = w.cell.gates() * w.hidden;
    let at = |i: usize, n: usize| (j0 + i) * groups + g0 + n;
    let mut acc: [[Vf32; N]; M] = if k0 == 0 {
        core::array::from_fn(|i| {
            core::array::from_fn(|n| Vf32::splat(w.wy_diff[j0 + i]) * dl[g0 + n])
        })
    } else {
        core::array::from_fn(|i| core::array::from_fn(|n| dh[at(i, n)]))
    };
    if kc > 0 {
        let packed = &w.w_hh_t_packed[j0 * gh + k0 * MR..][..MR * kc];
        gemm_tile(&mut acc, packed, panel, N, 0, kc);
    }
    for (i, row) in acc.iter().enumerate() {
        for (n, v) in row.iter().enumerate() {
            dh[at(i, n)] = *v;
        }
    }
}

const _: () = assert!(
    MR == 6 && NR <= 4 && GR == 6 && GC <= 4,
    "dispatch_tile covers tiles up to 6 x 4"
);
