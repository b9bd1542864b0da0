#!/usr/bin/env python3
"""Self-test of scripts/pytorch_check.py on synthetic checkpoints of every cell.

Writes safetensors checkpoints in the layout bitrnn's checkpoints use (PyTorch's names and
shapes for rnn / gru / lstm, `bitrnn.*` resume tensors, the `config` metadata with its `cell`
field) from random weights, runs pytorch_check.py on them with random data, and compares its
loss and accuracy with an independent float64 NumPy implementation of the issue's formulas
(GRU: r multiplies the whole hidden-side term, b_hn included; LSTM gates i, f, g, o), walked
window by window with the state carried, and with one unbroken pass over each stream (the
same thing, if the carry is right). Also checks that wrong checkpoints are refused: a
misshapen weight, a missing tensor, an LSTM without bitrnn.cell_state, a cell_state in a GRU.

    python3 scripts/test_pytorch_check.py [--metadata-from model.safetensors]

`--metadata-from` takes the metadata of a real `bitrnn train --save` checkpoint (its config
gains `cell` and the test's hidden size); without it a config of the same fields is written.
Needs torch, numpy and safetensors. Exits non-zero on the first failure.
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
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
CHECK = HERE / "pytorch_check.py"
GATES = {"rnn": 1, "gru": 3, "lstm": 4}

DEFAULT_CONFIG = {
    "data_size": 500000, "batch_size": 2000, "time_step": 5, "hidden": 6, "rule": "tutorial",
    "lags": [1, 2], "lr": 0.1, "optimizer": "adagrad", "seed": 0, "epochs": 3, "threads": 1,
    "engine": "simd",
}


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def reference(cell, w, x, y, batch_size, time_step):
    """Loss and accuracy in float64, plain formulas, window by window, state carried."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    hid = w["fc.weight"].shape[1]
    w_ih, w_hh = w["rnn.weight_ih_l0"], w["rnn.weight_hh_l0"]
    b_ih, b_hh = w["rnn.bias_ih_l0"], w["rnn.bias_hh_l0"]
    streams = len(x) // batch_size
    windows = batch_size // time_step
    xs = x[: streams * batch_size].reshape(streams, batch_size)
    ys = y[: streams * batch_size].reshape(streams, batch_size)
    h = np.zeros((streams, hid))
    c = np.zeros((streams, hid))
    loss, correct = 0.0, 0
    for t in range(windows * time_step):
        gi = w_ih[:, xs[:, t]].T + b_ih  # one-hot input: column select, [streams, G H]
        gh = h @ w_hh.T + b_hh
        if cell == "rnn":
            h = np.tanh(gi + gh)
        elif cell == "gru":
            r = sigmoid(gi[:, :hid] + gh[:, :hid])
            z = sigmoid(gi[:, hid:2 * hid] + gh[:, hid:2 * hid])
            n = np.tanh(gi[:, 2 * hid:] + r * gh[:, 2 * hid:])
            h = (1 - z) * n + z * h
        else:
            g = gi + gh
            i, f = sigmoid(g[:, :hid]), sigmoid(g[:, hid:2 * hid])
            gg, o = np.tanh(g[:, 2 * hid:3 * hid]), sigmoid(g[:, 3 * hid:])
            c = f * c + i * gg
            h = o * np.tanh(c)
        logits = h @ w["fc.weight"].T + w["fc.bias"]
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        loss += (lse - logits[np.arange(streams), ys[:, t]]).sum()
        correct += (logits.argmax(axis=1) == ys[:, t]).sum()
    n = streams * windows * time_step
    return loss / n, correct / n


def unbroken(cell, w, x, y, batch_size, time_step):
    """PyTorch over each stream's windows as one sequence (no window cut): carrying the
    state across windows must give exactly this."""
    sys.path.insert(0, str(HERE))
    import pytorch_check

    net = pytorch_check.Net(w["fc.weight"].shape[1], cell).double()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=True)
    streams = len(x) // batch_size
    steps = (batch_size // time_step) * time_step
    xs = torch.from_numpy(x[: streams * batch_size].astype(np.int64).reshape(streams, batch_size))
    ys = torch.from_numpy(y[: streams * batch_size].astype(np.int64).reshape(streams, batch_size))
    onehot = torch.nn.functional.one_hot(xs[:, :steps], 2).double()
    with torch.no_grad():
        logits, _ = net(onehot, net.zero_state(streams, torch.float64))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 2), ys[:, :steps].reshape(-1))
    return loss.item()


def weights(cell, hid, rng, scale):
    g = GATES[cell]
    w = {
        "rnn.weight_ih_l0": rng.uniform(-scale, scale, (g * hid, 2)),
        "rnn.weight_hh_l0": rng.uniform(-scale, scale, (g * hid, hid)),
        "rnn.bias_ih_l0": rng.uniform(-scale, scale, (g * hid,)),
        "rnn.bias_hh_l0": rng.uniform(-scale, scale, (g * hid,)),
        "fc.weight": rng.uniform(-scale, scale, (2, hid)),
        "fc.bias": rng.uniform(-scale, scale, (2,)),
    }
    return {k: v.astype(np.float32) for k, v in w.items()}


def write_checkpoint(path, cell, w, config, metadata, drop=(), extra=None):
    hid = config["hidden"]
    streams = config["data_size"] // config["batch_size"]
    tensors = {k: torch.from_numpy(v) for k, v in w.items()}
    accum = sum(v.size for v in w.values())
    tensors["bitrnn.adagrad_accum"] = torch.full((accum,), 0.1)
    tensors["bitrnn.hidden_state"] = torch.zeros(streams, hid)
    if cell == "lstm":
        tensors["bitrnn.cell_state"] = torch.zeros(streams, hid)
    tensors["bitrnn.losses"] = torch.zeros(0)
    for name in drop:
        del tensors[name]
    tensors.update(extra or {})
    meta = dict(metadata)
    cfg = dict(config)
    if cell != "rnn" or "cell" in cfg:
        cfg["cell"] = cell
    meta["config"] = json.dumps(cfg)
    save_file(tensors, str(path), metadata=meta)


def run_check(model, data, double=True):
    cmd = [sys.executable, str(CHECK), "--model", str(model), "--data", str(data)]
    if double:
        cmd.append("--double")
    return subprocess.run(cmd, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metadata-from", help="a real bitrnn checkpoint: copy its metadata")
    args = ap.parse_args()

    if args.metadata_from:
        with safe_open(args.metadata_from, framework="pt") as f:
            metadata = f.metadata()
        base = json.loads(metadata["config"])
    else:
        base = dict(DEFAULT_CONFIG)
        metadata = {"format": "bitrnn-checkpoint", "format_version": "1", "epoch": "3",
                    "window": "0", "weights_checksum": "synthetic", "state_checksum": "synthetic",
                    "producer": "test_pytorch_check.py"}
    base.pop("cell", None)

    rng = np.random.default_rng(12)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Small data keeps the float64 reference quick: 40 streams of 100, windows of 7
        # (100 // 7 = 14 windows, 2 steps per stream unused: eval's cut).
        config = dict(base, data_size=4000, batch_size=100, time_step=7)
        x = rng.integers(0, 2, 4000).astype(np.uint8)
        y = rng.integers(0, 2, 4000).astype(np.uint8)
        np.save(tmp / "x.npy", x)
        np.save(tmp / "y.npy", y)

        for cell in ("rnn", "gru", "lstm"):
            for hid in (1, 6, 17):
                cfg = dict(config, hidden=hid)
                # Large enough weights that the gates and the carry matter, not so large that
                # a chaotic tanh RNN amplifies float32 rounding past the tolerance.
                w = weights(cell, hid, rng, scale=min(1.5, 3.0 / np.sqrt(hid)))
                model = tmp / f"{cell}{hid}.safetensors"
                write_checkpoint(model, cell, w, cfg, metadata)
                for double in (True, False):
                    out = run_check(model, tmp, double)
                    if out.returncode != 0:
                        print(f"FAIL {cell} H={hid}: {out.stderr.strip()}")
                        failures += 1
                        continue
                    ours = json.loads(out.stdout)["pytorch"]
                    ref_loss, ref_acc = reference(cell, w, x, y, 100, 7)
                    full = unbroken(cell, w, x, y, 100, 7)
                    tol = 1e-12 if double else 1e-5
                    ok = (abs(ours["loss"] - ref_loss) <= tol * max(1.0, ref_loss)
                          and abs(full - ref_loss) <= 1e-12
                          and ours["cell"] == cell
                          and ours["samples"] == 40 * 14 * 7
                          and (not double or ours["accuracy"] == ref_acc))
                    failures += not ok
                    print(f"{'ok  ' if ok else 'FAIL'} {cell:4} H={hid:2} {ours['dtype']}: "
                          f"loss {ours['loss']:.12f} reference {ref_loss:.12f} "
                          f"unbroken {full:.12f} accuracy {ours['accuracy']:.6f}/{ref_acc:.6f}")

        # Wrong checkpoints are refused.
        cfg = dict(config, hidden=6)
        bad = {
            "gru with an rnn-shaped weight_hh": ("gru", {"rnn.weight_hh_l0": np.zeros((6, 6), np.float32)}, (), None),
            "lstm without cell_state": ("lstm", {}, ("bitrnn.cell_state",), None),
            "gru with a cell_state": ("gru", {}, (), {"bitrnn.cell_state": torch.zeros(40, 6)}),
            "lstm without fc.bias": ("lstm", {}, ("fc.bias",), None),
            "lstm with hidden_state [streams, 4H]": ("lstm", {}, (), {"bitrnn.hidden_state": torch.zeros(40, 24)}),
            "unknown cell": ("sru", {}, (), None),
        }
        for what, (cell, replace, drop, extra) in bad.items():
            w = weights(cell if cell in GATES else "rnn", 6, rng, 1.0)
            w.update(replace)
            model = tmp / "bad.safetensors"
            write_checkpoint(model, cell, w, cfg, metadata, drop, extra)
            out = run_check(model, tmp)
            ok = out.returncode != 0
            failures += not ok
            msg = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "(accepted)"
            print(f"{'ok  ' if ok else 'FAIL'} refused: {what}: {msg[:150]}")

    print("PASS" if failures == 0 else f"{failures} FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
