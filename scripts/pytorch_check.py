#!/usr/bin/env python3
"""Evaluate a bitrnn checkpoint in PyTorch, with the protocol of `bitrnn eval`.

The checkpoint (`bitrnn train --save FILE`) is a safetensors file whose tensors are the state
dict of a recurrent layer + `nn.Linear(H, 2)` under the attributes `rnn` and `fc`, plus
`bitrnn.*` tensors for resuming. The layer is chosen by the `cell` field of the config
metadata (absent means `rnn`):

    rnn   nn.RNN(2, H) (tanh)  rnn.weight_ih_l0 [H, 2]   rnn.weight_hh_l0 [H, H]   biases [H]
    gru   nn.GRU(2, H)         rnn.weight_ih_l0 [3H, 2]  rnn.weight_hh_l0 [3H, H]  biases [3H]
    lstm  nn.LSTM(2, H)        rnn.weight_ih_l0 [4H, 2]  rnn.weight_hh_l0 [4H, H]  biases [4H]

(gates in PyTorch's order: the GRU's r, z, n, the LSTM's i, f, g, o), all with
batch_first=True, and `fc.weight` [2, H], `fc.bias` [2]. The carried state is
`bitrnn.hidden_state` [streams, H] and, for the LSTM only, `bitrnn.cell_state` [streams, H];
their presence and shapes are checked. This script drops the `bitrnn.*` tensors and loads the
rest with `load_state_dict(..., strict=True)`, so a missing, misnamed or misshapen tensor is
an error.

The data is not regenerated here (no RNG is reimplemented): it is read from the x.npy and
y.npy that `bitrnn generate` writes. The protocol is `bitrnn eval`'s: the sequence is cut
into data_size // batch_size streams of batch_size steps (batch_size and time_step from the
checkpoint's config), each walked in batch_size // time_step windows of time_step steps, the
state (h, and for the LSTM also c) zero at the start and carried from window to window; loss
is the mean
cross-entropy and accuracy the fraction of argmax predictions equal to the target.

Two ways to run it:

    # by hand: generate the evaluation data, evaluate in both, compare
    bitrnn train --save model.st
    bitrnn generate --data-size 500000 --lags 1,2 --seed 1 --out evaldata
    bitrnn eval --model model.st --data-size 500000 --lags 1,2 --seed 1 --json
    python3 scripts/pytorch_check.py --model model.st --data evaldata

    # or let the script call bitrnn with eval's defaults (500000 samples, the checkpoint's
    # lags, the training seed + 1) and compare the two losses itself
    python3 scripts/pytorch_check.py --model model.st --bitrnn target/release/bitrnn

A text model (`bitrnn train --text`: V = C = the alphabet's size, `nn.RNN(V, H)` +
`nn.Linear(H, C)`) is checked by scripts/pytorch_text_check.py, which uses this script's
`Net` and `load_model` (both take V and C from the config's `vocab` and `classes`, 2 where
absent); this script refuses it.

Needs torch, numpy and safetensors (pip install torch numpy safetensors).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

import text_protocol


CELLS = ("rnn", "gru", "lstm")
# Gate blocks of H rows in weight_ih, weight_hh and the biases.
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


class Net(nn.Module):
    """The tutorial's model: a recurrent layer over the one-hot input, a dense layer to the
    logits.

    `cell` "rnn" is the tutorial's tanh RNN; "gru" and "lstm" are PyTorch's gated cells.
    `vocab` input symbols (one-hot) and `classes` logits: 2 and 2 for the generator's bits,
    the alphabet's size for a text model (the config's `vocab` and `classes`).
    `state` is h [1, streams, H] for rnn and gru, the pair (h, c) for the LSTM.
    """

    def __init__(self, hidden: int, cell: str = "rnn", vocab: int = 2, classes: int = 2):
        super().__init__()
        if cell == "rnn":
            self.rnn = nn.RNN(vocab, hidden, nonlinearity="tanh", batch_first=True)
        elif cell == "gru":
            self.rnn = nn.GRU(vocab, hidden, batch_first=True)
        elif cell == "lstm":
            self.rnn = nn.LSTM(vocab, hidden, batch_first=True)
        else:
            raise ValueError(f"unknown cell {cell!r} (expected one of {', '.join(CELLS)})")
        self.cell = cell
        self.hidden = hidden
        self.vocab = vocab
        self.classes = classes
        self.fc = nn.Linear(hidden, classes)

    def zero_state(self, streams: int, dtype: torch.dtype):
        h = torch.zeros(1, streams, self.hidden, dtype=dtype)
        if self.cell == "lstm":
            return (h, torch.zeros_like(h))
        return h

    def forward(self, x, state):
        out, state = self.rnn(x, state)
        return self.fc(out), state


def cell_of(config: dict) -> str:
    """The config's cell: the `cell` field, "rnn" where absent (checkpoints from before it)."""
    cell = config.get("cell", "rnn")
    if cell not in CELLS:
        sys.exit(f"config cell {cell!r}: expected one of {', '.join(CELLS)}")
    return cell


def check_state_tensors(path: str, tensors: dict, config: dict, cell: str):
    """The carried state's tensors: hidden_state [streams, H], cell_state only for the LSTM."""
    hidden = config["hidden"]
    # Training streams: the positions before the held-out tail (--valid), in batch_size each.
    want = {"bitrnn.hidden_state": [text_protocol.train_streams(config), hidden]}
    if cell == "lstm":
        want["bitrnn.cell_state"] = want["bitrnn.hidden_state"]
    elif "bitrnn.cell_state" in tensors:
        sys.exit(f"{path}: bitrnn.cell_state in a {cell} checkpoint (only the LSTM has one)")
    for name, shape in want.items():
        if name not in tensors:
            sys.exit(f"{path}: no {name} tensor (a {cell} checkpoint carries it)")
        if list(tensors[name].shape) != shape:
            sys.exit(f"{path}: {name} has shape {list(tensors[name].shape)}, expected {shape}")


def load_model(path: str, dtype: torch.dtype):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    if not meta or meta.get("format") != "bitrnn-checkpoint":
        sys.exit(f"{path}: not a bitrnn checkpoint (no bitrnn metadata)")
    config = json.loads(meta["config"])
    cell = cell_of(config)
    tensors = load_file(path)
    check_state_tensors(path, tensors, config, cell)
    state = {k: v for k, v in tensors.items() if not k.startswith("bitrnn.")}
    net = Net(config["hidden"], cell, config.get("vocab", 2), config.get("classes", 2))
    net.load_state_dict(state, strict=True)
    return net.to(dtype).eval(), config


@torch.no_grad()
def evaluate(net, x, y, batch_size, time_step, dtype):
    streams = len(x) // batch_size
    windows = batch_size // time_step
    used = streams * batch_size
    xs = torch.from_numpy(x[:used].astype(np.int64).reshape(streams, batch_size))
    ys = torch.from_numpy(y[:used].astype(np.int64).reshape(streams, batch_size))
    onehot = nn.functional.one_hot(xs, net.vocab).to(dtype)
    state = net.zero_state(streams, dtype)
    loss_sum, correct = 0.0, 0
    for w in range(windows):
        t = slice(w * time_step, (w + 1) * time_step)
        logits, state = net(onehot[:, t], state)
        target = ys[:, t]
        loss_sum += nn.functional.cross_entropy(
            logits.reshape(-1, net.classes).double(), target.reshape(-1), reduction="sum"
        ).item()
        correct += (logits.argmax(-1) == target).sum().item()
    n = streams * windows * time_step
    return {
        "loss": loss_sum / n,
        "accuracy": correct / n,
        "samples": n,
        "streams": streams,
        "windows": windows,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint from bitrnn train --save")
    ap.add_argument("--data", help="directory with x.npy and y.npy from bitrnn generate")
    ap.add_argument(
        "--bitrnn",
        help="bitrnn binary: generate the data with eval's defaults and compare with "
        "`bitrnn eval --json` (instead of --data)",
    )
    ap.add_argument("--double", action="store_true", help="run the model in float64")
    ap.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest accepted |loss difference| with --bitrnn (default 1e-4)",
    )
    args = ap.parse_args()
    if (args.data is None) == (args.bitrnn is None):
        ap.error("give exactly one of --data and --bitrnn")

    torch.set_flush_denormal(True)
    dtype = torch.float64 if args.double else torch.float32
    net, config = load_model(args.model, dtype)
    if config.get("source", "generator") != "generator":
        sys.exit(
            f"{args.model}: a model trained on {config['source']} data; this script checks the "
            "generator's bit models (for a text model: scripts/pytorch_text_check.py)"
        )

    theirs = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.bitrnn:
            out = subprocess.run(
                [args.bitrnn, "eval", "--model", args.model, "--json"],
                check=True,
                capture_output=True,
                text=True,
            )
            theirs = json.loads(out.stdout)
            lags = f"{theirs['lags'][0]},{theirs['lags'][1]}"
            subprocess.run(
                [
                    args.bitrnn, "generate", "--data-size", str(theirs["data_size"]),
                    "--lags", lags, "--seed", str(theirs["seed"]), "--out", tmp,
                ],
                check=True,
                capture_output=True,
            )
            data = Path(tmp)
        else:
            data = Path(args.data)
        x = np.load(data / "x.npy")
        y = np.load(data / "y.npy")

    ours = evaluate(net, x, y, config["batch_size"], config["time_step"], dtype)
    ours["cell"] = net.cell
    ours["dtype"] = str(dtype).removeprefix("torch.")
    ours["torch"] = torch.__version__
    print(json.dumps({"pytorch": ours, "bitrnn": theirs}))
    if theirs is not None:
        diff = abs(ours["loss"] - theirs["loss"])
        print(
            f"loss: pytorch {ours['loss']:.7f}  bitrnn {theirs['loss']:.7f}  "
            f"|diff| {diff:.2e};  accuracy: pytorch {ours['accuracy']:.6f}  "
            f"bitrnn {theirs['accuracy']:.6f}",
            file=sys.stderr,
        )
        if diff > args.tolerance or ours["samples"] != theirs["samples"]:
            sys.exit(f"MISMATCH: loss differs by {diff:.2e} (tolerance {args.tolerance})")


if __name__ == "__main__":
    main()
