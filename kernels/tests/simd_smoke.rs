use bitrnn_kernels::{Params, reference, simd};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn uniform(&mut self, a: f64) -> f64 {
        (self.next() as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) * a
    }
}

#[test]
fn smoke() {
    for &(h, s, t) in &[(6, 250, 5), (1, 1, 1), (5, 13, 3), (17, 9, 4), (33, 40, 7)] {
        let mut rng = Lcg(h as u64 * 1000 + s as u64);
        let mut p = Params::<f32>::zeros(h);
        for v in p.data.iter_mut() {
            *v = rng.uniform(1.0) as f32;
        }
        let h0: Vec<f32> = (0..s * h).map(|_| rng.uniform(0.9) as f32).collect();
        let x: Vec<u8> = (0..s * t).map(|_| (rng.next() & 1) as u8).collect();
        let y: Vec<u8> = (0..s * t).map(|_| (rng.next() & 1) as u8).collect();
        let groups = simd::groups_for(s);
        let mut xp = vec![0u8; t * groups];
        let mut yp = vec![0u8; t * groups];
        for tt in 0..t {
            for ss in 0..s {
                xp[tt * groups + ss / 8] |= x[tt * s + ss] << (ss % 8);
                yp[tt * groups + ss / 8] |= y[tt * s + ss] << (ss % 8);
            }
        }
        let p64 = p.cast::<f64>();
        let h064: Vec<f64> = h0.iter().map(|&v| v as f64).collect();
        let mut g_ref = Params::<f64>::zeros(h);
        let mut hl_ref = vec![0.0; s * h];
        let win = reference::Window { streams: s, time_step: t, x: &x, y: &y };
        let loss_ref = reference::forward_backward(&p64, &h064, &win, &mut g_ref, &mut hl_ref);

        let mut w = simd::Prepared::new(h);
        w.load(&p);
        let mut ws = simd::Workspace::new(h, s, t);
        ws.load_state(&h0);
        let mut grad = vec![f32::NAN; p.data.len()];
        let scale = 1.0 / (s * t) as f32;
        let st = simd::forward_backward(&w, &mut ws, &simd::Planes { x: &xp, y: &yp, stride: groups }, scale, &mut grad);
        let loss = st.loss_sum / (s * t) as f64;
        let mut hl = vec![0f32; s * h];
        ws.store_state(&mut hl);
        let maxerr_h = hl.iter().zip(&hl_ref).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        let maxerr_g = grad.iter().zip(&g_ref.data).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        let maxg = g_ref.data.iter().map(|v| v.abs()).fold(0.0, f64::max);
        println!("h={h} s={s} t={t}: loss {loss} vs {loss_ref}; h err {maxerr_h:e}; grad err {maxerr_g:e} (max |g| {maxg:e})");
        assert!((loss - loss_ref).abs() < 1e-5);
        assert!(maxerr_h < 1e-5);
        assert!(maxerr_g < 1e-5 * maxg.max(1e-3), "grad err");
    }
}
