//! The cost of the trainer's per-window synchronisation: one round of a [`Team`] (publish,
//! one empty unit per member claimed by whoever is ready, wait for all), in rounds per second.
//!
//! `cargo bench --bench team -- --warm-up-time 1 --measurement-time 3`
//!
//! A seed-size window is ~14 us of work on one core; a round's cost is what a window pays on
//! top of its share of that work for running on a team.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use bitrnn::team::with_team;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn rounds(c: &mut Criterion) {
    let mut group = c.benchmark_group("team round");
    group.throughput(Throughput::Elements(1));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cores.max(2) - 1)
        .build()
        .expect("pool");
    for members in [1, 2, 4, 8, 16].into_iter().filter(|&m| m <= cores) {
        let work = AtomicUsize::new(0);
        with_team(&pool, members, |team| {
            group.bench_function(format!("{members} member(s), empty job"), |b| {
                b.iter(|| {
                    team.run(members, &|u| {
                        work.fetch_add(black_box(u), Ordering::Relaxed);
                    });
                });
            });
        });
        // Every unit ran in every round: the sum of unit indices per round, times rounds.
        let per_round: usize = (0..members).sum();
        assert_eq!(work.load(Ordering::Relaxed) % per_round.max(1), 0);
    }
    group.finish();
}

criterion_group!(benches, rounds);
criterion_main!(benches);
