//! The training loop allocates nothing per window in steady state, for every cell, with and
//! without worker threads (a counting global allocator; alone in its test binary so that no other test's
//! allocations are counted).

use bitrnn::config::{Cell, TrainConfig, TrainSettings};
use bitrnn::train::Trainer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts every allocation of the process (all threads).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

mod common;
use common::config;

/// Allocations made while `trainer.run(windows)` runs.
fn allocations_in(trainer: &mut Trainer, windows: usize) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    trainer.run(windows, |_| true).expect("trains");
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn steady_state_allocates_nothing_per_window() {
    // 200 streams give 8 shards at hidden 6, 416 streams give 4 shards at hidden 20 (and a
    // gradient large enough for the team to share the reduction: 4 x 532 x 3 additions).
    for (cell, threads, hidden, streams) in [
        (Cell::Rnn, 1, 6, 200),
        (Cell::Rnn, 1, 20, 416),
        (Cell::Rnn, 2, 6, 200),
        (Cell::Rnn, 2, 20, 416),
        (Cell::Gru, 1, 6, 200),
        (Cell::Lstm, 1, 20, 416),
        (Cell::Gru, 2, 20, 416),
        (Cell::Lstm, 2, 6, 200),
    ] {
        // A dropped trainer's pool threads exit asynchronously (rayon does not join them), and
        // their exit allocates: let the previous case's threads finish before counting.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let cfg = TrainConfig::new(TrainSettings {
            cell,
            ..*config(streams * 100, 100, hidden, threads).settings()
        })
        .expect("valid config");
        let mut trainer = Trainer::new(cfg).expect("valid config");
        // Warm up: the first windows fill the plane chunk and start the pool's threads.
        trainer.run(30, |_| true).expect("trains");
        // 40 and 400 windows cross epoch boundaries (20 windows per epoch) and many chunks.
        let short = allocations_in(&mut trainer, 40);
        let long = allocations_in(&mut trainer, 400);
        if threads == 1 {
            assert_eq!(
                (short, long),
                (0, 0),
                "{cell:?}, threads 1, hidden {hidden}: allocations in 40 and 400 windows"
            );
        } else {
            // With workers, each run() forms a team on rayon's pool, which allocates a few
            // times per run (the spawned jobs), and never again per window: ten times the
            // windows, the same count.
            assert!(
                short == long && short <= 8,
                "{cell:?}, threads {threads}, hidden {hidden}: {short} allocations in 40 \
                 windows, {long} in 400"
            );
        }
    }
}
