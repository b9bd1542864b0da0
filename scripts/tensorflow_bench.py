#!/usr/bin/env python3
"""TensorFlow CPU training throughput on the seed's workload (SEED.md), in sample-steps/s.

The tutorial's stack: TensorFlow graph mode (`tf.compat.v1`, a `Session`), its tanh RNN written
out step by step as in the tutorial (`h = tanh([x_t one-hot, h] W + b)`, then a dense layer to
2 logits), mean sparse softmax cross-entropy over the window, `AdagradOptimizer(0.1)`
(accumulator from 0.1: the semantics bitrnn reproduces), the final state fed back as the next
window's initial state (truncated BPTT, zero at the start of each pass over the streams). The
data are the tutorial's: fair random bits, targets `!x[t-1]` when `x[t-1] == x[t-2]`, else a
coin. One sample-step is one stream advancing one time step, forward + backward + update: the
unit of `bitrnn bench`. Glorot-uniform weights, zero biases (TensorFlow's defaults).

Timing: `--warmup` windows, then `--reps` repetitions of a fixed number of windows (about
`--rep-seconds` each), the median repetition's rate is the figure (min and max printed too).
Threads: `--threads` for both of the session's thread pools (intra- and inter-op).

    /work/venv-tf/bin/python scripts/tensorflow_bench.py --hidden 6 --threads 2

Prints one JSON line. Needs tensorflow and numpy (pip install tensorflow).
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def tutorial_data(size, rng):
    """The seed's bits: x fair coins; y[t] = !x[t-1] when x[t-1] == x[t-2], else a coin."""
    x = rng.integers(0, 2, size, dtype=np.int32)
    y = rng.integers(0, 2, size, dtype=np.int32)
    forced = np.zeros(size, dtype=bool)
    forced[2:] = x[1:-1] == x[:-2]
    y[2:][forced[2:]] = 1 - x[1:-1][forced[2:]]
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=6)
    ap.add_argument("--streams", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=2000, help="steps per stream")
    ap.add_argument("--time-step", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=200, help="windows before timing")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rep-seconds", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    h_n, b_n, t_n = a.hidden, a.streams, a.time_step
    rng = np.random.default_rng(a.seed)
    x_all, y_all = tutorial_data(b_n * a.batch_size, rng)
    x_all = x_all.reshape(b_n, a.batch_size)
    y_all = y_all.reshape(b_n, a.batch_size)
    windows_per_pass = a.batch_size // t_n

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.set_random_seed(a.seed)
    x = tf.compat.v1.placeholder(tf.int32, [b_n, t_n])
    y = tf.compat.v1.placeholder(tf.int32, [b_n, t_n])
    h0 = tf.compat.v1.placeholder(tf.float32, [b_n, h_n])
    glorot = tf.compat.v1.glorot_uniform_initializer()
    w = tf.compat.v1.get_variable("W", [2 + h_n, h_n], initializer=glorot)
    b = tf.compat.v1.get_variable("b", [h_n], initializer=tf.compat.v1.zeros_initializer())
    v = tf.compat.v1.get_variable("V", [h_n, 2], initializer=glorot)
    c = tf.compat.v1.get_variable("c", [2], initializer=tf.compat.v1.zeros_initializer())
    inputs = tf.unstack(tf.one_hot(x, 2), axis=1)
    state, outputs = h0, []
    for x_t in inputs:
        state = tf.tanh(tf.matmul(tf.concat([x_t, state], 1), w) + b)
        outputs.append(state)
    logits = [tf.matmul(o, v) + c for o in outputs]
    labels = tf.unstack(y, num=t_n, axis=1)
    losses = [
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=lg)
        for lab, lg in zip(labels, logits)
    ]
    loss = tf.reduce_mean(losses)
    train = tf.compat.v1.train.AdagradOptimizer(0.1).minimize(loss)

    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=a.threads, inter_op_parallelism_threads=a.threads
    )
    with tf.compat.v1.Session(config=config) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        zero = np.zeros((b_n, h_n), np.float32)
        st = {"state": zero, "w": 0, "loss": 0.0}

        def run(n):
            for _ in range(n):
                wi = st["w"] % windows_per_pass
                if wi == 0:
                    st["state"] = zero
                sl = slice(wi * t_n, (wi + 1) * t_n)
                st["loss"], st["state"], _ = sess.run(
                    [loss, state, train],
                    {x: x_all[:, sl], y: y_all[:, sl], h0: st["state"]},
                )
                st["w"] += 1

        run(a.warmup)
        n = 16
        while True:
            t0 = time.perf_counter()
            run(n)
            dt = time.perf_counter() - t0
            if dt >= a.rep_seconds / 4:
                break
            n *= 2
        n = max(1, int(n * a.rep_seconds / dt))
        rates = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            run(n)
            rates.append(n * b_n * t_n / (time.perf_counter() - t0))
    print(
        json.dumps(
            {
                "engine": f"tensorflow {tf.__version__} graph",
                "hidden": h_n,
                "threads": a.threads,
                "streams": b_n,
                "time_step": t_n,
                "windows_per_rep": n,
                "sample_steps_per_s": statistics.median(rates),
                "sample_steps_per_s_min": min(rates),
                "sample_steps_per_s_max": max(rates),
                "last_loss": float(st["loss"]),
                "load_average": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
