//! The reference over `V` input symbols and `C` classes (the symbols' path's oracle): every
//! gradient entry against f64 central differences, for every cell, with `V` and `C` not
//! multiples of anything convenient; and the softmax head's identity `sum_c dL/db_y[c] = 0`
//! (the softmax's gradient `p - onehot(y)` sums to 0 over the classes of every sample).

use bitrnn_kernels::testing::{Case, central_difference};
use bitrnn_kernels::{Cell, Layout};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn cell(i: usize) -> Cell {
    Cell::ALL[i % Cell::ALL.len()]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    /// Every gradient entry of small cases (H 1..=4, S 1..=3, T 1..=3, V in {3, 5, 67}, C in
    /// {3, 7, 67}, weights U(-1, 1)) against the central difference of the f64 loss.
    #[test]
    fn gradient_matches_central_differences(
        which in 0usize..3,
        hidden in 1usize..=4,
        vocab in prop::sample::select(vec![3usize, 5, 67]),
        classes in prop::sample::select(vec![3usize, 7, 67]),
        streams in 1usize..=3,
        time_step in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let layout = Layout::with_symbols(cell(which), hidden, vocab, classes);
        let case = Case::random_layout(layout, streams, time_step, 1.0, seed);
        let (loss, grad, _) = case.run::<f64>();
        let mut params = case.params.clone();
        for (i, &g) in grad.iter().enumerate() {
            let (fd, tol) = central_difference(&case, &mut params, i, loss, g);
            prop_assert!(
                (g - fd).abs() <= tol,
                "{layout:?} entry {i}: backward {g:e}, central difference {fd:e}, tolerance {tol:e}"
            );
        }
    }

    /// The output bias's gradient sums to 0 over the classes (to f64 rounding: `S T C`
    /// terms of magnitude at most `1 / (S T)`), and the gradient of every `w_x` row of a
    /// symbol that never occurs is exactly 0.
    #[test]
    fn head_gradient_sums_to_zero(
        which in 0usize..3,
        hidden in 1usize..=6,
        classes in 2usize..=100,
        streams in 1usize..=4,
        time_step in 1usize..=4,
        seed in any::<u64>(),
    ) {
        let layout = Layout::with_symbols(cell(which), hidden, 50, classes);
        let case = Case::random_layout(layout, streams, time_step, 1.0, seed);
        let (_, grad, _) = case.run::<f64>();
        let [r_x, _, _, _, _, r_by] = layout.ranges();
        let sum: f64 = grad[r_by.0..r_by.1].iter().sum();
        prop_assert!(sum.abs() <= 4.0 * classes as f64 * f64::EPSILON, "sum {sum:e}");
        let gh = layout.gate_rows();
        for v in 0..50 {
            if !case.x.iter().any(|&x| usize::from(x) == v) {
                prop_assert!(grad[r_x.0 + v * gh..][..gh].iter().all(|&g| g == 0.0));
            }
        }
    }
}
