use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::simd::{self, Prepared, SymbolPlanes, Workspace};
use bitrnn_kernels::{Cell, Layout, Params};
use std::time::Instant;
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (h, v, streams, t_n, cell) = (args[0], args[1], args[2], args[3], Cell::ALL[args[4]]);
    let layout = Layout::with_symbols(cell, h, v, v);
    let mut p = Params::filled_as(layout, 0.0f32);
    let mut s = 1u64;
    for w in &mut p.data {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
        *w = ((s >> 40) as f32 / 16777216.0 - 0.5) * 0.2;
    }
    let mut w = Prepared::for_symbols(layout);
    w.load(&p);
    let mut ws = Workspace::for_symbols(layout, streams, t_n);
    let stride = simd::groups_for(streams) * LANES;
    let x: Vec<u16> = (0..stride * t_n).map(|i| ((i * 7919) % v) as u16).collect();
    let y: Vec<u16> = (0..stride * t_n)
        .map(|i| ((i * 104729) % v) as u16)
        .collect();
    let planes = SymbolPlanes {
        x: &x,
        y: &y,
        stride,
    };
    let mut grad = vec![0.0; layout.len()];
    let n = 20;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        for _ in 0..n {
            simd::forward_backward(&w, &mut ws, &planes, 1e-4, &mut grad);
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let ss = (streams * t_n * n) as f64 / best;
    let g = cell.gates() as f64;
    let hf = h as f64;
    let c = v as f64;
    let flops = 6.0 * g * hf * hf + 6.0 * hf * c;
    println!("{ss:.0} sample-steps/s  {:.1} GFLOP/s", ss * flops / 1e9);
}
