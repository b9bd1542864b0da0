#!/usr/bin/env python3
"""PyTorch CPU training throughput on a character model, in sample-steps per second.

The workload of `bitrnn train --text FILE --hidden H --time-step T --batch-size B`: the text's
bytes mapped to ids by the sorted alphabet of the bytes that occur (V = C = its size), position
i with input id(byte[i]) and target id(byte[i + 1]), the n - 1 positions cut into
S = (n - 1) // B streams of B steps (stream s = positions s B .. (s + 1) B; the leftover is
unused), trained in windows of T steps with truncated BPTT, the state detached and carried
from window to window, zero at the start of each pass over the streams (an epoch), the mean
cross-entropy over the window, Adagrad with lr 0.1 and TensorFlow's semantics as bitrnn's
(`initial_accumulator_value=0.1`, `eps=0`; PyTorch adds eps outside the square root,
`w -= lr g / (sqrt(acc) + eps)`, bitrnn inside, `sqrt(acc + eps)`: the same with eps 0 and
irrelevant to speed). `torch.set_flush_denormal(True)` and `torch.set_num_threads(--threads)`.
Weights start at PyTorch's defaults. One sample-step is one stream advancing one step, forward +
backward + update, `bitrnn train`'s `sample_steps_per_s`.

Two inputs (`--input`):

- `onehot` (default): `nn.RNN(V, H)` (or `nn.GRU`, `nn.LSTM`, `--cell`) + `nn.Linear(H, C)` fed
  `one_hot(ids, V)`, made per window from the ids (one window of 1000 x 25 x V floats); the
  model bitrnn trains and saves (scripts/pytorch_text_check.py loads it).
- `embedding`: `nn.Embedding(V, H)` + `nn.RNN(H, H)` + `nn.Linear(H, C)`, the usual PyTorch
  form of a character model. Not the same model (an extra trained `[G H, H]` input matrix
  after the embedding), and PyTorch does more work for it when H > V; shown because it is what
  a PyTorch user would write.

Timing: `--warmup` windows, then `--reps` repetitions of a fixed number of windows (about
`--rep-seconds` each, calibrated after the warm-up), timed with time.perf_counter; the figure
is the median repetition's rate (scripts/pytorch_bench.py's `time_windows`). PyTorch's OpenMP
threads spin-wait against other processes on the cores (pytorch_bench.py): the JSON carries
the load average before and after and OMP_WAIT_POLICY.

    python3 scripts/pytorch_text_bench.py --text vim.txt --hidden 128 [--input embedding]

Prints one JSON line. Needs torch and numpy; scripts/text_vs_pytorch.sh runs it against
`bitrnn train` on the same text and shape.
"""

import argparse
import json
import os
import statistics

import text_protocol as tp

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def text_flop_model(cell: str, hidden: int, classes: int) -> int:
    """FLOPs per sample-step of bitrnn's model, forward + backward: `6 G H^2 + 6 H C + 2 G H`
    (scripts/pytorch_bench.py's model with C classes: the recurrent and head GEMMs, the
    one-hot input's column select and its gradient's column add)."""
    g = GATES[cell]
    return 6 * g * hidden * hidden + 6 * hidden * classes + 2 * g * hidden


def shape(positions: int, streams=None, batch_size=None, time_step: int = 25):
    """(streams, batch_size, windows per epoch) of a text of `positions` positions, from
    --streams (batch_size = positions // streams, as long as the streams fit) or
    --batch-size (streams = positions // batch_size, as bitrnn cuts them)."""
    if (streams is None) == (batch_size is None):
        raise ValueError("give exactly one of streams and batch_size")
    if batch_size is None:
        batch_size = positions // streams
    streams = positions // batch_size if batch_size else 0
    if batch_size < time_step or streams < 1:
        raise ValueError(f"{positions} positions: streams of {batch_size} steps give no "
                         f"window of {time_step}")
    return streams, batch_size, batch_size // time_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", required=True)
    ap.add_argument("--cell", choices=sorted(GATES), default="rnn")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--input", choices=("onehot", "embedding"), default="onehot")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--streams", type=int, help="parallel streams (default 1000): "
                      "batch_size = positions // streams")
    size.add_argument("--batch-size", type=int, help="steps per stream, as bitrnn's flag")
    ap.add_argument("--time-step", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=5, help="warm-up windows (default 5)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (default 5)")
    ap.add_argument("--rep-seconds", type=float, default=2.0,
                    help="target length of one repetition (default 2.0)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.streams is None and args.batch_size is None:
        args.streams = 1000

    import torch
    from torch import nn

    import pytorch_bench
    import pytorch_check

    load_before = os.getloadavg()
    data = tp.read_bytes(args.text)
    alphabet = tp.text_alphabet(data)
    ids = tp.text_ids(data, alphabet, args.text)
    v = len(alphabet)
    positions = len(ids) - 1
    try:
        streams, batch_size, windows = shape(positions, args.streams, args.batch_size,
                                             args.time_step)
    except ValueError as e:
        ap.error(str(e))

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    flat = torch.frombuffer(bytearray(ids), dtype=torch.uint8).to(torch.int64)
    x = flat[: streams * batch_size].reshape(streams, batch_size).contiguous()
    y = flat[1: streams * batch_size + 1].reshape(streams, batch_size).contiguous()

    if args.input == "onehot":
        model = pytorch_check.Net(args.hidden, args.cell, v, v)

        def make_input(ids_window):
            return nn.functional.one_hot(ids_window, v).float()
    else:
        model = pytorch_check.Net(args.hidden, args.cell, args.hidden, v)
        model.embed = nn.Embedding(v, args.hidden)
        make_input = model.embed

    class Model(nn.Module):
        """pytorch_bench's Trainer interface: zero_state(streams), forward(input, state)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def zero_state(self, n):
            return self.net.zero_state(n, torch.float32)

        def forward(self, inp, state):
            return self.net(inp, state)

    net = Model(model)
    opt = torch.optim.Adagrad(net.parameters(), lr=args.lr, initial_accumulator_value=0.1,
                              eps=0.0)
    trainer = pytorch_bench.Trainer(net, opt, x, y, args.time_step, make_input)
    reps_windows, seconds = pytorch_bench.time_windows(trainer, args.warmup, args.reps,
                                                       args.rep_seconds)
    rates = [reps_windows * streams * args.time_step / s for s in seconds]
    rate = statistics.median(rates)
    flops = text_flop_model(args.cell, args.hidden, v)
    print(json.dumps({
        "engine": "pytorch",
        "torch": torch.__version__,
        "input": args.input,
        "cell": args.cell,
        "hidden": args.hidden,
        "vocab": v,
        "classes": v,
        "positions": positions,
        "streams": streams,
        "batch_size": batch_size,
        "time_step": args.time_step,
        "windows_per_epoch": windows,
        "threads": args.threads,
        "flush_denormal": True,
        "sample_steps_per_s": rate,
        "min_sample_steps_per_s": min(rates),
        "max_sample_steps_per_s": max(rates),
        "reps": args.reps,
        "windows_per_rep": reps_windows,
        "flops_per_sample_step": flops,
        "gflops": rate * flops / 1e9,
        "loss": trainer.loss,
        "load_before": [round(t, 2) for t in load_before],
        "load_after": [round(t, 2) for t in os.getloadavg()],
        "cpu": pytorch_bench.cpu_name(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }))


if __name__ == "__main__":
    main()
