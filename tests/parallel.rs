//! Data-parallel training: the weights are bit-for-bit identical for any thread count, for
//! shapes with few streams, stream counts that are not a multiple of 8 and more shards than
//! threads.

use bitrnn::config::{Cell, Engine, Optimizer, TrainConfig, TrainSettings};
use bitrnn::engine::PARALLEL_UPDATE;
use bitrnn::train::Trainer;
mod common;
use common::{config, settings, valid};

/// Trains `epochs` epochs and returns the bits of the final weights. Teams as large as
/// `--threads` form even where the machine has fewer cores.
fn train_bits(cfg: TrainConfig) -> Vec<u32> {
    let windows = cfg.epochs * cfg.windows_per_epoch();
    let threads = cfg.threads;
    let mut trainer = Trainer::new(cfg).expect("valid config");
    trainer.set_max_team(threads);
    let ran = trainer
        .run(windows, |loss| loss.is_finite())
        .expect("trains");
    assert_eq!(ran, windows);
    trainer.params().data.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn weights_are_identical_for_any_thread_count() {
    // (data_size, batch_size, hidden): the seed's stream count; 37 streams (not a multiple of
    // 8, fewer shards than 4 threads); 3 streams (one lane group); a blocked-kernel size with
    // several shards; 1000 streams (8 shards); 832 streams at hidden 100 (8 shards and a
    // gradient large enough that the team shares its reduction).
    let shapes = [
        (50_000, 200, 6),
        (37 * 100, 100, 6),
        (3 * 100, 100, 5),
        (416 * 50, 50, 17),
        (1000 * 20, 20, 9),
        (832 * 20, 20, 100),
    ];
    for (data_size, batch_size, hidden) in shapes {
        let one = train_bits(config(data_size, batch_size, hidden, 1));
        for threads in [2, 3, 4] {
            let many = train_bits(config(data_size, batch_size, hidden, threads));
            assert!(
                one == many,
                "data_size {data_size}, batch_size {batch_size}, hidden {hidden}: weights \
                 differ between 1 and {threads} threads"
            );
        }
    }
}

#[test]
fn gated_cells_are_identical_for_any_thread_count() {
    for cell in [Cell::Gru, Cell::Lstm] {
        for (data_size, batch_size, hidden) in [(37 * 100, 100, 6), (416 * 20, 20, 17)] {
            let cfg = |threads| {
                valid(TrainSettings {
                    cell,
                    ..settings(data_size, batch_size, hidden, threads)
                })
            };
            let one = train_bits(cfg(1));
            for threads in [2, 3, 4] {
                assert!(
                    one == train_bits(cfg(threads)),
                    "{cell:?} hidden {hidden}: weights differ between 1 and {threads} threads"
                );
            }
        }
    }
}

#[test]
fn shared_update_and_packing_give_the_one_thread_weights() {
    // An LSTM of hidden 128 has more than PARALLEL_UPDATE parameters: with a team the
    // optimizer step and the packing of w_hh are split among the members.
    for optimizer in [Optimizer::Adagrad, Optimizer::Sgd] {
        let cfg = |threads| {
            valid(TrainSettings {
                cell: Cell::Lstm,
                optimizer,
                ..settings(256 * 20, 20, 128, threads)
            })
        };
        assert!(cfg(1).layout().len() >= PARALLEL_UPDATE);
        let one = train_bits(cfg(1));
        assert!(
            one == train_bits(cfg(2)),
            "{optimizer:?}: the shared step differs from one thread's"
        );
    }
}

#[test]
fn scalar_engine_is_deterministic_too() {
    let cfg = valid(TrainSettings {
        engine: Engine::Scalar,
        ..settings(4_000, 100, 4, 1)
    });
    assert_eq!(train_bits(cfg.clone()), train_bits(cfg));
}
