#!/usr/bin/env python3
"""PyTorch CPU training throughput on bitrnn's workload, in sample-steps per second.

One sample-step is one stream advancing one time step, forward + backward + update: the
unit of `bitrnn bench`. The workload is the seed's (SEED.md): `--streams` parallel streams
of the one-hot bit sequence, trained in windows of `--time-step` steps with truncated BPTT
(the state, h or the LSTM's (h, c), detached and carried from window to window, zero at the
start of each pass over the streams' `--batch-size` steps), the model `nn.RNN(2, H)` (tanh) /
`nn.GRU(2, H)` / `nn.LSTM(2, H)` with batch_first=True + `nn.Linear(H, 2)`, mean
cross-entropy over the window, Adagrad with lr 0.1 and TensorFlow's semantics (accumulator
starts at 0.1, `w -= lr g / sqrt(acc)`: PyTorch's `initial_accumulator_value=0.1`, `eps=0`).
The data are fair random bits with the tutorial's targets (lags 1, 2: `y[t] = !x[t-1]` when
`x[t-1] == x[t-2]`, else a fair coin), so the model learns as in training. Weights start at
PyTorch's defaults (the speed does not depend on them). `torch.set_flush_denormal(True)` is
on: without it the tanh RNN slows about 20x late in training (SEED.md).

Measure on an idle machine: with other processes on the cores, PyTorch's OpenMP threads
spin-wait and 2 threads ran 15-30x slower than 1 thread (2026-12-01, load 5 on 2 cores:
tanh H 64, 19 k/s with 2 threads, 354 k/s with 1; `OMP_WAIT_POLICY=PASSIVE` gave 277 k/s with
2). The JSON carries the load average before and after and OMP_WAIT_POLICY.

Timing: `--warmup` windows, then `--reps` repetitions of a fixed number of windows (chosen
after the warm-up, by timing doubling runs, so that one repetition takes about
`--rep-seconds`), each timed with
`time.perf_counter`; the figure is the median repetition's rate (min and max are printed too).

FLOP model, per sample-step, forward + backward (a multiply-add is 2 FLOPs), for hidden H,
C = 2 classes and G gate blocks (rnn 1, gru 3, lstm 4):

    6 G H^2 + 6 H C + 2 G H
    forward:  W_hh h           2 G H^2   head W_fc h         2 H C   input column  G H adds
    backward: dW_hh += dz h^T  2 G H^2   dW_fc += dy h^T     2 H C   dW_ih column  G H adds
              dh = W_hh^T dz   2 G H^2   dh += W_fc^T dy     2 H C

The one-hot input makes `W_ih x` a column select (G H adds forward, G H adds into dW_ih's
column backward). Biases, gate nonlinearities, the gates' elementwise products, softmax and the
optimizer are not counted. `flops_matmul` (6 G H^2 + 6 H C) is the model of `bitrnn bench`
(6H^2 + 6HC for the tanh cell); `gflops` adds the one-hot column's 2 G H.

Prints one JSON line. Example:

    python3 scripts/pytorch_bench.py --cell lstm --hidden 64
    for c in rnn gru lstm; do for h in 6 64 256; do
        python3 scripts/pytorch_bench.py --cell $c --hidden $h; done; done

Needs torch and numpy (pip install torch numpy).
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
from torch import nn

CLASSES = 2
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def flop_model(cell: str, hidden: int, classes: int = CLASSES) -> dict:
    """FLOPs per sample-step, forward + backward (see the module doc)."""
    g, h, c = GATES[cell], hidden, classes
    matmul = 6 * g * h * h + 6 * h * c
    input_adds = 2 * g * h
    return {"matmul": matmul, "input_adds": input_adds, "total": matmul + input_adds}


class Net(nn.Module):
    def __init__(self, cell: str, hidden: int):
        super().__init__()
        if cell == "rnn":
            self.rnn = nn.RNN(2, hidden, nonlinearity="tanh", batch_first=True)
        elif cell == "gru":
            self.rnn = nn.GRU(2, hidden, batch_first=True)
        else:
            self.rnn = nn.LSTM(2, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, CLASSES)
        self.cell = cell
        self.hidden = hidden

    def zero_state(self, streams: int):
        h = torch.zeros(1, streams, self.hidden)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def forward(self, x, state):
        out, state = self.rnn(x, state)
        return self.fc(out), state


def detach(state):
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def make_data(streams: int, length: int, seed: int):
    """One-hot inputs [streams, length, 2] and targets [streams, length], the tutorial's rule
    with lags 1, 2 along each stream's own sequence."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(streams, length), dtype=np.int64)
    y = rng.integers(0, 2, size=(streams, length), dtype=np.int64)
    forced = x[:, 1:-1] == x[:, :-2]
    y[:, 2:] = np.where(forced, 1 - x[:, 1:-1], y[:, 2:])
    xs = torch.from_numpy(x)
    return nn.functional.one_hot(xs, 2).float().contiguous(), torch.from_numpy(y)


class Trainer:
    """Truncated BPTT over `x` [streams, steps, ...] and `y` [streams, steps] in windows of
    `time_step`, the state detached and carried, zero at the start of each pass over the
    steps. `make_input` turns a window's slice of `x` into the model's input (the identity
    here; scripts/pytorch_text_bench.py makes one-hot vectors of symbol ids per window)."""

    def __init__(self, net, opt, x, y, time_step, make_input=None):
        self.net, self.opt, self.x, self.y, self.t = net, opt, x, y, time_step
        self.make_input = make_input or (lambda v: v)
        self.windows = x.shape[1] // time_step
        self.window = 0
        self.state = net.zero_state(x.shape[0])
        self.loss = float("nan")

    def run(self, windows: int):
        net, opt, t = self.net, self.opt, self.t
        for _ in range(windows):
            if self.window == self.windows:
                self.window = 0
                self.state = net.zero_state(self.x.shape[0])
            s = slice(self.window * t, (self.window + 1) * t)
            logits, state = net(self.make_input(self.x[:, s]), self.state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                               self.y[:, s].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.state = detach(state)
            self.window += 1
        self.loss = loss.item()


def time_windows(trainer, warmup: int, reps: int, rep_seconds: float):
    """`warmup` windows, then `reps` timed repetitions of a fixed number of windows, chosen
    after the warm-up by timing doubling runs so that one repetition takes about
    `rep_seconds`. Returns (windows per repetition, seconds of each repetition)."""
    trainer.run(warmup)
    # Calibrate after the warm-up (whose first windows pay for allocation and first calls):
    # double the windows until a run takes a tenth of a repetition, then scale.
    windows = 1
    while True:
        start = time.perf_counter()
        trainer.run(windows)
        took = time.perf_counter() - start
        if took >= rep_seconds / 10 or windows >= 1 << 20:
            break
        windows *= 2
    windows = max(1, round(windows * rep_seconds / took))
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        trainer.run(windows)
        seconds.append(time.perf_counter() - start)
    return windows, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", choices=sorted(GATES), default="rnn")
    ap.add_argument("--hidden", type=int, default=6)
    ap.add_argument("--streams", type=int, default=250)
    ap.add_argument("--time-step", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=2000,
                    help="steps per stream before the state is reset (default 2000, the seed's)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50, help="warm-up windows (default 50)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (default 5)")
    ap.add_argument("--rep-seconds", type=float, default=1.0,
                    help="target length of one repetition (default 1.0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-flush-denormal", action="store_true",
                    help="leave denormals on (shows the cliff late in training)")
    args = ap.parse_args()
    if args.time_step < 1 or args.batch_size < args.time_step:
        ap.error("need 1 <= --time-step <= --batch-size")

    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    flush = not args.no_flush_denormal
    torch.set_flush_denormal(flush)
    torch.manual_seed(args.seed)

    net = Net(args.cell, args.hidden)
    opt = torch.optim.Adagrad(net.parameters(), lr=args.lr, initial_accumulator_value=0.1, eps=0.0)
    x, y = make_data(args.streams, args.batch_size, args.seed)
    trainer = Trainer(net, opt, x, y, args.time_step)

    windows, seconds = time_windows(trainer, args.warmup, args.reps, args.rep_seconds)
    per_window_steps = args.streams * args.time_step
    rates = [windows * per_window_steps / s for s in seconds]
    rate = statistics.median(rates)
    flops = flop_model(args.cell, args.hidden)

    print(json.dumps({
        "engine": "pytorch",
        "torch": torch.__version__,
        "cell": args.cell,
        "hidden": args.hidden,
        "streams": args.streams,
        "time_step": args.time_step,
        "threads": args.threads,
        "flush_denormal": flush,
        "sample_steps_per_s": rate,
        "min_sample_steps_per_s": min(rates),
        "max_sample_steps_per_s": max(rates),
        "reps": args.reps,
        "windows_per_rep": windows,
        "flops_per_sample_step": flops["total"],
        "flops_matmul": flops["matmul"],
        "flops_input_adds": flops["input_adds"],
        "gflops": rate * flops["total"] / 1e9,
        "loss": trainer.loss,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "cpu": cpu_name(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }))


if __name__ == "__main__":
    main()
