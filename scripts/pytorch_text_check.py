#!/usr/bin/env python3
"""Score a bitrnn character model's held-out tail in PyTorch and compare with bitrnn's.

A text model (`bitrnn train --text FILE --valid F --save M.safetensors`) is the state dict of
`nn.RNN(V, H)` (tanh; `nn.GRU(V, H)`, `nn.LSTM(V, H)` for `--cell gru`, `lstm`) fed one-hot
vectors of the V input symbols, + `nn.Linear(H, C)`, V = C = the alphabet's size:

    rnn.weight_ih_l0 [G H, V]   rnn.weight_hh_l0 [G H, H]   rnn.bias_ih_l0, rnn.bias_hh_l0 [G H]
    fc.weight [C, H]            fc.bias [C]

(G = 1, 3, 4 gate blocks; the tanh RNN's bias_hh is zeros), plus the `bitrnn.*` resume
tensors, and the metadata `config` (JSON: vocab, classes, valid, batch_size, time_step,
data_size = positions, ...) and `alphabet` (JSON: the byte of each symbol id). This script
loads the model with `load_state_dict(strict=True)` (scripts/pytorch_check.py's `Net` and
`load_model`, the same checks), reads the text with the checkpoint's alphabet, and scores the
held-out tail with the protocol of `bitrnn train --valid` (scripts/text_protocol.py: the last
round(F (n - 1)) positions, streams of batch_size positions or one stream of the whole tail,
windows of time_step, the state zero at the start and carried, the mean cross-entropy).

It scores two PyTorch forms of the same model, both must agree with bitrnn:

- `onehot`: `nn.RNN(V, H)` + `nn.Linear(H, C)`, the input `one_hot(ids, V)`, as saved;
- `embedding`: `nn.Embedding(V, G H)` + `nn.RNN(G H, H)` + `nn.Linear(H, C)`, the embedding
  weight `rnn.weight_ih_l0.T` (row k is the input column of symbol k), the recurrent layer's
  `weight_ih_l0` the identity, `bias_ih_l0` kept, so the layer sees exactly
  `weight_ih x + bias_ih`. (For the tanh RNN, G = 1: `nn.Embedding(V, H)` + `nn.RNN(H, H)`.)

bitrnn's figure is the `held_out.final_loss` of the run's summary.json (the loss of the final
weights, which the checkpoint holds; the summary's `weights_checksum` must match the
checkpoint's). Acceptance: the same loss to 1e-5 relative (`--tolerance`).

    # by hand
    bitrnn train --text vim.txt --hidden 128 --time-step 25 --batch-size 1000 --valid 0.05 \\
        --epochs 3 --save m.safetensors --out run
    python3 scripts/pytorch_text_check.py --model m.safetensors --text vim.txt \\
        --summary run/summary.json

    # or let the script train with bitrnn (into a temporary directory) and compare
    python3 scripts/pytorch_text_check.py --bitrnn target/release/bitrnn --text vim.txt \\
        --hidden 128 --valid 0.05 --epochs 3 [--cell gru]

Prints one JSON line (both forms' loss, accuracy, positions; bitrnn's held_out) and a line
per form on stderr; exits 1 on a mismatch. Needs torch, numpy and safetensors.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import text_protocol as tp

try:
    import torch
    from torch import nn
except ImportError:  # the protocol and the argument parsing work without it (the tests)
    torch = None
    nn = None


def embedding_net(net):
    """The `embedding` form of a loaded one-hot `Net` (see the module doc): a module with
    `.embed` = nn.Embedding(V, G H), `.rnn` over G H inputs, `.fc`, loaded with strict=True
    from the one-hot model's state dict."""
    import pytorch_check

    sd = net.state_dict()
    gh = sd["rnn.weight_ih_l0"].shape[0]
    dtype = sd["rnn.weight_ih_l0"].dtype

    class EmbeddingNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(net.vocab, gh)
            # The recurrent layer of the same cell over G H inputs.
            self.rnn = pytorch_check.Net(net.hidden, net.cell, gh, net.classes).rnn
            self.fc = nn.Linear(net.hidden, net.classes)
            self.cell, self.hidden = net.cell, net.hidden
            self.vocab, self.classes = net.vocab, net.classes

        def zero_state(self, streams, dtype):
            return net.zero_state(streams, dtype)

        def forward(self, ids, state):
            out, state = self.rnn(self.embed(ids), state)
            return self.fc(out), state

    emb = EmbeddingNet().to(dtype)
    state = dict(sd)
    state["embed.weight"] = sd["rnn.weight_ih_l0"].t().contiguous()
    state["rnn.weight_ih_l0"] = torch.eye(gh, dtype=dtype)
    emb.load_state_dict(state, strict=True)
    return emb.eval()


def ids_tensor(ids: bytes, streams: int, stream_len: int):
    """[streams, stream_len] int64 from the first streams * stream_len ids."""
    flat = torch.frombuffer(bytearray(ids[: streams * stream_len]), dtype=torch.uint8)
    return flat.to(torch.int64).reshape(streams, stream_len)


def evaluate(net, inputs: bytes, targets: bytes, streams: int, stream_len: int, time_step: int,
             dtype, embedding: bool = False):
    """The held-out protocol: `streams` streams of `stream_len`, windows of `time_step`, the
    state zero at the start and carried; mean cross-entropy (accumulated in float64) and the
    fraction of positions whose target has the largest logit (bitrnn counts a tie as
    correct; here argmax takes the first, so a tie may differ)."""
    xs = ids_tensor(inputs, streams, stream_len)
    ys = ids_tensor(targets, streams, stream_len)
    windows = stream_len // time_step
    state = net.zero_state(streams, dtype)
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for w in range(windows):
            t = slice(w * time_step, (w + 1) * time_step)
            x = xs[:, t] if embedding else nn.functional.one_hot(xs[:, t], net.vocab).to(dtype)
            logits, state = net(x, state)
            target = ys[:, t]
            loss_sum += nn.functional.cross_entropy(
                logits.reshape(-1, net.classes).double(), target.reshape(-1), reduction="sum"
            ).item()
            correct += (logits.argmax(-1) == target).sum().item()
    n = streams * windows * time_step
    return {"loss": loss_sum / n, "accuracy": correct / n, "positions": n, "streams": streams,
            "stream_len": stream_len, "windows": windows}


def relative_diff(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / max(abs(theirs), 1e-30)


def compare(results: dict, bitrnn: dict, held: int, tolerance: float):
    """Mismatch messages (empty when every form agrees with bitrnn's held-out loss)."""
    bad = []
    if bitrnn.get("positions") != held:
        bad.append(f"bitrnn held out {bitrnn.get('positions')} positions, the protocol {held}")
    for form, r in results.items():
        d = relative_diff(r["loss"], bitrnn["final_loss"])
        if not d <= tolerance:
            bad.append(f"{form}: loss {r['loss']:.9g} vs bitrnn {bitrnn['final_loss']:.9g}, "
                       f"relative difference {d:.2e} > {tolerance:g}")
    return bad


def train_with_bitrnn(args, tmp: Path):
    """Runs `bitrnn train --text ... --valid ... --save` into tmp; returns (model, summary)."""
    model, out = tmp / "model.safetensors", tmp / "run"
    cmd = [args.bitrnn, "train", "--text", args.text, "--cell", args.cell,
           "--hidden", str(args.hidden), "--time-step", str(args.time_step),
           "--batch-size", str(args.batch_size), "--valid", str(args.valid),
           "--epochs", str(args.epochs), "--seed", str(args.seed), "--threads", str(args.threads),
           "--save", str(model), "--out", str(out), "--quiet"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return model, out / "summary.json"


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", required=True, help="the text the model was trained on")
    ap.add_argument("--model", help="a text checkpoint from bitrnn train --text --valid --save")
    ap.add_argument("--summary", help="the run's summary.json: compare with held_out.final_loss")
    ap.add_argument("--bitrnn", help="bitrnn binary: train a model on --text first (instead "
                    "of --model) and compare with its summary")
    g = ap.add_argument_group("training with --bitrnn")
    g.add_argument("--cell", choices=("rnn", "gru", "lstm"), default="rnn")
    g.add_argument("--hidden", type=int, default=32)
    g.add_argument("--time-step", type=int, default=25)
    g.add_argument("--batch-size", type=int, default=1000)
    g.add_argument("--valid", type=float, default=0.05)
    g.add_argument("--epochs", type=int, default=2)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=2)
    ap.add_argument("--double", action="store_true", help="run the model in float64")
    ap.add_argument("--tolerance", type=float, default=1e-5,
                    help="largest accepted relative loss difference (default 1e-5)")
    return ap


def main(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    if (args.model is None) == (args.bitrnn is None):
        ap.error("give exactly one of --model and --bitrnn")
    if args.bitrnn and args.summary:
        ap.error("--summary comes from the run with --bitrnn")
    if torch is None:
        sys.exit("pytorch_text_check.py needs torch (pip install torch numpy safetensors)")
    import pytorch_check

    torch.set_flush_denormal(True)
    dtype = torch.float64 if args.double else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        model, summary = args.model, args.summary
        if args.bitrnn:
            model, summary = train_with_bitrnn(args, Path(tmp))
        try:
            config, alphabet = tp.text_model_info(model)
            ids = tp.text_ids(tp.read_bytes(args.text), alphabet, args.text)
            inputs, targets, streams, stream_len = tp.held_out_part(ids, config, args.text)
        except tp.ProtocolError as e:
            sys.exit(str(e))
        net, _ = pytorch_check.load_model(str(model), dtype)
        meta, _, _ = tp.read_header(model)
        bitrnn = None
        if summary:
            s = json.loads(Path(summary).read_text())
            if s.get("weights_checksum") != meta.get("weights_checksum"):
                sys.exit(f"{summary}: weights_checksum {s.get('weights_checksum')} is not the "
                         f"checkpoint's {meta.get('weights_checksum')}: not the same run")
            if not s.get("held_out"):
                sys.exit(f"{summary}: no held_out (the run had no --valid)")
            bitrnn = s["held_out"]

    t = config["time_step"]
    results = {
        "onehot": evaluate(net, inputs, targets, streams, stream_len, t, dtype),
        "embedding": evaluate(embedding_net(net), inputs, targets, streams, stream_len, t, dtype,
                              embedding=True),
    }
    held = len(inputs)
    print(json.dumps({"pytorch": results, "held_out_positions": held, "cell": net.cell,
                      "vocab": net.vocab, "hidden": net.hidden,
                      "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__,
                      "bitrnn": bitrnn}))
    for form, r in results.items():
        line = f"{form:9}: held-out loss pytorch {r['loss']:.9f}"
        if bitrnn is not None:
            line += (f"  bitrnn {bitrnn['final_loss']:.9f}  |diff| "
                     f"{abs(r['loss'] - bitrnn['final_loss']):.2e} (relative "
                     f"{relative_diff(r['loss'], bitrnn['final_loss']):.2e})")
        print(line + f"; accuracy {r['accuracy']:.6f} on {r['positions']} positions "
              f"({streams} x {stream_len})", file=sys.stderr)
    if bitrnn is not None:
        bad = compare(results, bitrnn, held, args.tolerance)
        if bad:
            sys.exit("MISMATCH: " + "; ".join(bad))


if __name__ == "__main__":
    main()
