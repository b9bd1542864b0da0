#!/usr/bin/env python3
"""Tests of the character-model scripts: text_protocol.py, pytorch_text_check.py,
pytorch_text_bench.py.

Three parts, each run when what it needs is there and reported as skipped otherwise:

1. The protocol, with the standard library alone: Rust's rounding of the held-out length
   (half away from zero, where Python's round() goes to even), the held-out cut (streams of
   batch_size, else one stream of whole windows), the alphabet and the ids, the refusals (a
   byte outside the alphabet, a text of another length, a model without a held-out tail), the
   safetensors reader, the bench's shape and FLOP model.
2. Against bitrnn itself, still without torch (needs the binary: $BITRNN, else
   target/release/bitrnn under $CARGO_TARGET_DIR or the repository): trains small text models
   of every cell with --valid (a tail of several streams, and one shorter than a stream) and
   recomputes the held-out loss from the checkpoint in plain float64 Python, the formulas
   written out here (tanh RNN; GRU with r multiplying the whole hidden term, b_hn included;
   LSTM gates i, f, g, o); it must equal summary.json's held_out.final_loss to 1e-5 relative.
3. With torch (and numpy, safetensors): pytorch_text_check.py on synthetic checkpoints
   written here (every cell; the one-hot and embedding forms against the plain reference to
   1e-12 in float64), a summary off by 1e-4 relative refused, a summary of another run, a
   model without an alphabet and a text with a foreign byte refused; with the binary too,
   the end-to-end `--bitrnn` mode for every cell.

    python3 scripts/test_pytorch_text_check.py            # parts 1 (and 2 with the binary)
    /work/venv-torch/bin/python scripts/test_pytorch_text_check.py   # all three

Exits non-zero when a check fails (a skipped part is not a failure).
"""

import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
from array import array
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import pytorch_text_bench  # noqa: E402  (imports torch only in main)
import text_protocol as tp  # noqa: E402

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
FAILURES = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        FAILURES.append(what)


def refused(fn, *args, contains=""):
    try:
        fn(*args)
    except tp.ProtocolError as e:
        return contains in str(e)
    return False


# ---------------------------------------------------------------------------------------
# Plain-Python model, float64
# ---------------------------------------------------------------------------------------


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def rows(flat, shape):
    if len(shape) == 1:
        return list(flat)
    return [list(flat[r * shape[1]:(r + 1) * shape[1]]) for r in range(shape[0])]


def reference_loss(cell, w, inputs, targets, streams, stream_len, time_step):
    """The held-out protocol in plain float64: each stream from a zero state over its first
    (stream_len // time_step) * time_step positions (carrying the state across windows is
    the same as one unbroken pass). `w`: name -> (flat values, shape). Returns (loss,
    accuracy, positions)."""
    w_ih = rows(*w["rnn.weight_ih_l0"])
    w_hh = rows(*w["rnn.weight_hh_l0"])
    b_ih, b_hh = w["rnn.bias_ih_l0"][0], w["rnn.bias_hh_l0"][0]
    fc_w, fc_b = rows(*w["fc.weight"]), w["fc.bias"][0]
    hid = len(w_hh[0])
    gh = len(w_hh)
    steps = (stream_len // time_step) * time_step
    loss, correct = 0.0, 0
    for s in range(streams):
        h, c = [0.0] * hid, [0.0] * hid
        for t in range(steps):
            x, y = inputs[s * stream_len + t], targets[s * stream_len + t]
            gi = [w_ih[r][x] + b_ih[r] for r in range(gh)]
            gg = [sum(w_hh[r][k] * h[k] for k in range(hid)) + b_hh[r] for r in range(gh)]
            if cell == "rnn":
                h = [math.tanh(gi[r] + gg[r]) for r in range(hid)]
            elif cell == "gru":
                r_ = [sigmoid(gi[j] + gg[j]) for j in range(hid)]
                z = [sigmoid(gi[hid + j] + gg[hid + j]) for j in range(hid)]
                n = [math.tanh(gi[2 * hid + j] + r_[j] * gg[2 * hid + j]) for j in range(hid)]
                h = [(1 - z[j]) * n[j] + z[j] * h[j] for j in range(hid)]
            else:
                a = [gi[r] + gg[r] for r in range(gh)]
                i = [sigmoid(a[j]) for j in range(hid)]
                f = [sigmoid(a[hid + j]) for j in range(hid)]
                g = [math.tanh(a[2 * hid + j]) for j in range(hid)]
                o = [sigmoid(a[3 * hid + j]) for j in range(hid)]
                c = [f[j] * c[j] + i[j] * g[j] for j in range(hid)]
                h = [o[j] * math.tanh(c[j]) for j in range(hid)]
            logits = [sum(fc_w[k][j] * h[j] for j in range(hid)) + fc_b[k]
                      for k in range(len(fc_b))]
            m = max(logits)
            lse = m + math.log(sum(math.exp(v - m) for v in logits))
            loss += lse - logits[y]
            correct += logits[y] >= m
    n = streams * steps
    return loss / n, correct / n, n


def held_out_reference(model, text):
    """The held-out loss of a text checkpoint on `text`, read and cut by text_protocol, the
    model in plain Python."""
    config, alphabet = tp.text_model_info(model)
    ids = tp.text_ids(tp.read_bytes(text), alphabet)
    inputs, targets, streams, stream_len = tp.held_out_part(ids, config)
    names = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
             "fc.weight", "fc.bias"]
    w = {n: tp.read_tensor(model, n) for n in names}
    return reference_loss(config.get("cell", "rnn"), w, inputs, targets, streams, stream_len,
                          config["time_step"])


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def write_safetensors(path, tensors, metadata):
    """A safetensors file of F32 tensors (name -> (flat values, shape)), standard library."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        values, shape = tensors[name]
        blob = array("f", values)
        if sys.byteorder != "little":
            blob.byteswap()
        raw = blob.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_text(rng, n, symbols=b"ab c\nde"):
    """A text with some structure (words of a few symbols), so a model can learn a little."""
    words = [bytes(rng.choice(symbols[:4]) for _ in range(rng.randint(1, 4))) for _ in range(12)]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + bytes([rng.choice(symbols[4:])])
    return bytes(out[:n])


def synthetic_checkpoint(path, cell, hid, alphabet, config, rng, scale=0.8, alphabet_meta=True):
    """A bitrnn-shaped text checkpoint with random weights (the tanh RNN's bias_hh zero)."""
    v = c = len(alphabet)
    gh = GATES[cell] * hid

    def u(*shape):
        return [rng.uniform(-scale, scale) for _ in range(math.prod(shape))], list(shape)

    t = {
        "rnn.weight_ih_l0": u(gh, v), "rnn.weight_hh_l0": u(gh, hid),
        "rnn.bias_ih_l0": u(gh), "rnn.bias_hh_l0": u(gh) if cell != "rnn" else ([0.0] * gh, [gh]),
        "fc.weight": u(c, hid), "fc.bias": u(c),
    }
    # Round the weights to f32 now, so the reference sees what the file holds.
    t = {k: (list(array("f", vals)), shape) for k, (vals, shape) in t.items()}
    streams = tp.train_streams(config)
    params = sum(len(vals) for vals, _ in t.values())
    t["bitrnn.adagrad_accum"] = ([0.1] * params, [params])
    t["bitrnn.hidden_state"] = ([0.0] * streams * hid, [streams, hid])
    if cell == "lstm":
        t["bitrnn.cell_state"] = ([0.0] * streams * hid, [streams, hid])
    t["bitrnn.losses"] = ([], [0])
    cfg = dict(config, cell=cell, hidden=hid, vocab=v, classes=c)
    meta = {"format": "bitrnn-checkpoint", "format_version": "1", "config": json.dumps(cfg),
            "epoch": "1", "window": "0", "weights_checksum": f"synthetic-{cell}-{hid}",
            "state_checksum": "synthetic", "producer": "test_pytorch_text_check.py"}
    if alphabet_meta:
        meta["alphabet"] = json.dumps(list(alphabet))
    write_safetensors(path, t, meta)
    return {k: t[k] for k in list(t)[:6]}


def bitrnn_binary():
    for cand in (os.environ.get("BITRNN"),
                 os.environ.get("CARGO_TARGET_DIR") and
                 str(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "bitrnn"),
                 str(REPO / "target" / "release" / "bitrnn")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


# ---------------------------------------------------------------------------------------
# Part 1: the protocol
# ---------------------------------------------------------------------------------------


def part_protocol(tmp):
    print("# part 1: the protocol (standard library)")
    check(tp.round_half_away(2.5) == 3 and tp.round_half_away(0.5) == 1
          and tp.round_half_away(3.4999999) == 3 and tp.round_half_away(0.0) == 0,
          "round_half_away: halves go up (Rust's f64::round)")
    check(tp.held_out_len(5, 0.5) == 3 and round(5 * 0.5) == 2,
          "held_out_len(5, 0.5) = 3 where Python's round() gives 2")
    check(tp.held_out_len(1132547, 0.05) == 56627 and tp.held_out_len(1000, 0.0) == 0,
          "held_out_len: the vim text's 56627 of 1132547 at --valid 0.05")
    check(tp.held_out_streams(2500, 1000, 25) == (2, 1000)
          and tp.held_out_streams(1000, 1000, 25) == (1, 1000)
          and tp.held_out_streams(999, 1000, 25) == (1, 975)
          and tp.held_out_streams(25, 1000, 25) == (1, 25)
          and tp.held_out_streams(24, 1000, 25) is None,
          "held_out_streams: streams of batch_size, else one stream of whole windows")
    check(tp.train_streams({"data_size": 10000, "batch_size": 1000}) == 10
          and tp.train_streams({"data_size": 10000, "batch_size": 1000, "valid": 0.15}) == 8,
          "train_streams: the positions before the held-out tail")

    data = b"hello, world\n"
    alphabet = tp.text_alphabet(data)
    check(alphabet == sorted(set(data)) and len(tp.text_alphabet(data, True)) == 256,
          "text_alphabet: the sorted bytes that occur (all 256 with --bytes)")
    ids = tp.text_ids(data, alphabet)
    check(all(alphabet[i] == b for i, b in zip(ids, data)) and len(ids) == len(data),
          "text_ids: id k is byte alphabet[k]")
    check(refused(tp.text_ids, b"hello!", alphabet, "t", contains="offset 5"),
          "text_ids refuses a byte outside the alphabet, naming its offset")
    check(refused(tp.text_ids, b"aa", [97, 97]) and refused(tp.text_ids, b"a", [97, 98])
          and refused(tp.text_ids, b"ab", [97]),
          "text_ids refuses a repeated byte, a 1-byte text, a 1-byte alphabet")

    # The held-out part: positions 0..n-2, target = the next byte's id.
    rng = random.Random(3)
    text = make_text(rng, 1201)
    alphabet = tp.text_alphabet(text)
    ids = tp.text_ids(text, alphabet)
    cfg = {"data_size": 1200, "batch_size": 100, "time_step": 7, "valid": 0.25}
    x, y, streams, stream_len = tp.held_out_part(ids, cfg)
    check(len(x) == len(y) == 300 and (streams, stream_len) == (3, 100)
          and x == ids[900:1200] and y == ids[901:1201] and y[-1] == ids[-1],
          "held_out_part: the last round(F (n-1)) positions, targets one byte on")
    check(refused(tp.held_out_part, ids[:-1], cfg, contains="data_size 1200"),
          "held_out_part refuses a text of another length")
    check(refused(tp.held_out_part, ids, dict(cfg, valid=0.0), contains="--valid"),
          "held_out_part refuses a model trained without --valid")
    xs, ys = tp.streams_of(ids, 12, 100)
    check(xs[3] == ids[300:400] and ys[3] == ids[301:401], "streams_of: stream s = s L .. (s+1) L")

    # The safetensors reader on a file written here.
    path = tmp / "t.safetensors"
    write_safetensors(path, {"a": ([1.5, -2.0, 3.25], [3]), "b": ([0.1] * 6, [2, 3])},
                      {"format": "x", "k": "v"})
    meta, tensors, _ = tp.read_header(path)
    vals, shape = tp.read_tensor(path, "b")
    check(meta == {"format": "x", "k": "v"}
          and tp.read_tensor(path, "a") == ([1.5, -2.0, 3.25], [3])
          and shape == [2, 3] and vals == list(array("f", [0.1] * 6)),
          "read_header / read_tensor: metadata and F32 tensors")
    check(refused(tp.text_model_info, path, contains="not a bitrnn checkpoint"),
          "text_model_info refuses a file without bitrnn metadata")

    # The bench's shape and FLOP model.
    check(pytorch_text_bench.shape(1132547, streams=1000) == (1000, 1132, 45)
          and pytorch_text_bench.shape(1132547, batch_size=1132) == (1000, 1132, 45)
          and pytorch_text_bench.shape(1132547, batch_size=1000) == (1132, 1000, 40),
          "bench shape: 1000 streams of the vim text are 1132 steps, 45 windows of 25")
    try:
        pytorch_text_bench.shape(100, streams=10, time_step=25)
        ok = False
    except ValueError:
        ok = True
    check(ok, "bench shape refuses streams shorter than a window")
    check(pytorch_text_bench.text_flop_model("rnn", 128, 128) == 6 * 128 ** 2 + 6 * 128 * 128 + 256
          and pytorch_text_bench.text_flop_model("lstm", 2, 3) == 6 * 4 * 4 + 6 * 2 * 3 + 2 * 4 * 2,
          "bench FLOP model: 6 G H^2 + 6 H C + 2 G H")


# ---------------------------------------------------------------------------------------
# Part 2: plain Python against bitrnn
# ---------------------------------------------------------------------------------------


def train(binary, text, out, cell, valid, hidden=5, epochs=3, batch_size=100, time_step=7):
    model = out / f"{cell}-{valid}.safetensors"
    run = out / f"run-{cell}-{valid}"
    subprocess.run([binary, "train", "--text", str(text), "--cell", cell, "--hidden", str(hidden),
                    "--time-step", str(time_step), "--batch-size", str(batch_size),
                    "--valid", str(valid), "--epochs", str(epochs), "--threads", "1",
                    "--save", str(model), "--out", str(run), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return model, json.loads((run / "summary.json").read_text())


def part_bitrnn(tmp, binary):
    print(f"# part 2: plain Python against {binary}")
    text = tmp / "small.txt"
    text.write_bytes(make_text(random.Random(7), 6001))
    for cell in ("rnn", "gru", "lstm"):
        # 0.1: 600 held out, 6 streams of 100; 0.015: 90 held out, one stream of 84 (12 x 7).
        for valid, cut in ((0.1, (6, 100)), (0.015, (1, 84))):
            model, summary = train(binary, text, tmp, cell, valid)
            config, _ = tp.text_model_info(model)
            ids = tp.text_ids(text.read_bytes(), tp.text_model_info(model)[1])
            _, _, streams, stream_len = tp.held_out_part(ids, config)
            loss, acc, n = held_out_reference(model, text)
            theirs = summary["held_out"]
            rel = abs(loss - theirs["final_loss"]) / theirs["final_loss"]
            check(rel <= 1e-5 and (streams, stream_len) == cut
                  and theirs["positions"] == tp.held_out_len(6000, valid)
                  # (a near-tie decided the other way in f32 moves the accuracy by 1/n)
                  and abs(acc - theirs["accuracy"][-1]) <= 2 / n + 1e-6,
                  f"{cell} --valid {valid}: held-out loss {loss:.9f} (plain Python, {streams} x "
                  f"{stream_len}) vs bitrnn {theirs['final_loss']:.9f}, relative {rel:.1e}; "
                  f"accuracy {acc:.6f} vs {theirs['accuracy'][-1]:.6f}")


# ---------------------------------------------------------------------------------------
# Part 3: pytorch_text_check.py
# ---------------------------------------------------------------------------------------


def run_check(*args):
    return subprocess.run([sys.executable, str(HERE / "pytorch_text_check.py"), *map(str, args)],
                          capture_output=True, text=True)


def last_line(out):
    lines = out.stderr.strip().splitlines()
    return lines[-1][:160] if lines else "(no message)"


def part_torch(tmp, binary):
    print("# part 3: pytorch_text_check.py")
    rng = random.Random(11)
    text = tmp / "torch.txt"
    text.write_bytes(make_text(rng, 3001))
    alphabet = tp.text_alphabet(text.read_bytes())
    base = {"data_size": 3000, "batch_size": 100, "time_step": 7, "valid": 0.2, "source": "text",
            "rule": "seed", "lags": [1, 2], "lr": 0.1, "optimizer": "adagrad", "seed": 0,
            "epochs": 1, "threads": 1, "engine": "simd"}
    for cell in ("rnn", "gru", "lstm"):
        for hid in (1, 6):
            model = tmp / f"syn-{cell}-{hid}.safetensors"
            w = synthetic_checkpoint(model, cell, hid, alphabet, base, rng,
                                     scale=1.5 / math.sqrt(hid))
            config, _ = tp.text_model_info(model)
            ids = tp.text_ids(text.read_bytes(), alphabet)
            inputs, targets, streams, stream_len = tp.held_out_part(ids, config)
            loss, acc, n = reference_loss(cell, w, inputs, targets, streams, stream_len, 7)
            summary = tmp / "summary.json"
            held = {"positions": 600, "epochs": [1], "loss": [loss], "accuracy": [acc],
                    "final_loss": loss}
            run = {"weights_checksum": f"synthetic-{cell}-{hid}", "held_out": held}
            summary.write_text(json.dumps(run))
            out = run_check("--model", model, "--text", text, "--summary", summary, "--double",
                            "--tolerance", "1e-12")
            if out.returncode != 0:
                check(False, f"{cell} H={hid} float64: {last_line(out)}")
                continue
            r = json.loads(out.stdout)["pytorch"]
            check(all(abs(r[f]["loss"] - loss) <= 1e-12 * loss and r[f]["positions"] == n == 588
                      for f in ("onehot", "embedding")),
                  f"{cell} H={hid} float64: onehot {r['onehot']['loss']:.12f} embedding "
                  f"{r['embedding']['loss']:.12f} reference {loss:.12f} ({streams} x {stream_len})")
            out = run_check("--model", model, "--text", text, "--summary", summary)
            check(out.returncode == 0, f"{cell} H={hid} float32 within 1e-5: {last_line(out)}")
            held["final_loss"] = loss * (1 + 1e-4)
            summary.write_text(json.dumps(run))
            out = run_check("--model", model, "--text", text, "--summary", summary)
            check(out.returncode != 0 and "MISMATCH" in out.stderr,
                  f"{cell} H={hid}: a loss off by 1e-4 relative is refused: {last_line(out)}")

    model = tmp / "syn-rnn-6.safetensors"
    summary = tmp / "other.json"
    summary.write_text(json.dumps({"weights_checksum": "another", "held_out": {"final_loss": 1.0}}))
    out = run_check("--model", model, "--text", text, "--summary", summary)
    check(out.returncode != 0 and "not the same run" in out.stderr,
          f"refused: a summary of another run: {last_line(out)}")
    foreign = tmp / "foreign.txt"
    foreign.write_bytes(text.read_bytes()[:-1] + b"!")
    out = run_check("--model", model, "--text", foreign)
    check(out.returncode != 0 and "not in the model's alphabet" in out.stderr,
          f"refused: a text with a byte outside the alphabet: {last_line(out)}")
    longer = tmp / "longer.txt"
    longer.write_bytes(text.read_bytes() + text.read_bytes()[:50])
    out = run_check("--model", model, "--text", longer)
    check(out.returncode != 0 and "data_size 3000" in out.stderr,
          f"refused: another text over the same alphabet: {last_line(out)}")
    bare = tmp / "bare.safetensors"
    synthetic_checkpoint(bare, "rnn", 3, alphabet, base, rng, alphabet_meta=False)
    out = run_check("--model", bare, "--text", text)
    check(out.returncode != 0 and "alphabet" in out.stderr,
          f"refused: a checkpoint without an alphabet: {last_line(out)}")

    if binary is None:
        print("skip the --bitrnn end-to-end runs: no bitrnn binary")
        return
    big = tmp / "e2e.txt"
    big.write_bytes(make_text(random.Random(5), 40001))
    for cell in ("rnn", "gru", "lstm"):
        out = run_check("--bitrnn", binary, "--text", big, "--cell", cell, "--hidden", "16",
                        "--time-step", "10", "--batch-size", "500", "--valid", "0.1",
                        "--epochs", "2", "--threads", "1")
        first = out.stderr.strip().splitlines()[0][:150] if out.stderr.strip() else ""
        check(out.returncode == 0,
              f"--bitrnn {cell}: {first if out.returncode == 0 else last_line(out)}")


def main():
    binary = bitrnn_binary()
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        part_protocol(tmp)
        if binary:
            part_bitrnn(tmp, binary)
        else:
            print("# part 2 skipped: no bitrnn binary ($BITRNN or target/release/bitrnn)")
        if have_torch:
            part_torch(tmp, binary)
        else:
            print("# part 3 skipped: torch, numpy or safetensors is missing")
    print("PASS" if not FAILURES else f"{len(FAILURES)} FAILED")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
