#!/usr/bin/env python3
"""bitrnn's character-model data protocol in plain Python (no torch, no numpy).

Shared by scripts/pytorch_text_check.py (held-out loss in PyTorch), scripts/pytorch_text_bench.py
(PyTorch training throughput on a text) and their test, scripts/test_pytorch_text_check.py,
which runs the torch-free parts with the standard library alone.

What `bitrnn train --text FILE [--valid F]` does with a text of n bytes (src/sequence.rs,
src/source.rs):

- The alphabet is the sorted set of the bytes that occur (all 256 with `--bytes`); symbol id
  k is the byte `alphabet[k]`, V = C = len(alphabet). A trained model stores its alphabet in
  the checkpoint's `alphabet` metadata (a JSON list of numbers) and reads texts with it.
- Position i (0 <= i < n - 1) has input id(byte[i]) and target id(byte[i + 1]): n - 1
  positions, the config's `data_size`.
- `--valid F` holds out the last `round(F (n - 1))` positions (Rust's f64::round: half away
  from zero, not Python's round-half-even); training uses the positions before them.
- Training cuts its positions into S = train / batch_size streams of batch_size steps
  (stream s = positions s B .. (s + 1) B, the leftover unused), walked in windows of
  time_step steps with the state carried, zero at each epoch's start.
- The held-out tail is scored after every epoch the same way, from a zero state: in
  `len // batch_size` streams of batch_size positions if it has at least batch_size, else one
  stream of the whole tail cut to whole windows (`len - len % time_step`); each stream in
  `stream_len // time_step` windows. The loss is the mean cross-entropy (natural log) over
  `streams * windows * time_step` positions. summary.json's `held_out.final_loss` is that of
  the final weights (those the checkpoint saves).

Safetensors is read here too (an 8-byte little-endian header length, the JSON header, the
data), so that the metadata and small tensors are available without the safetensors package.
"""

import json
import math
import struct
import sys
from array import array
from pathlib import Path

# The `format` metadata of a bitrnn checkpoint.
FORMAT = "bitrnn-checkpoint"


class ProtocolError(Exception):
    """A file or setting that does not fit the protocol (the message says why)."""


# ---------------------------------------------------------------------------------------
# The protocol's arithmetic
# ---------------------------------------------------------------------------------------


def round_half_away(x: float) -> int:
    """Rust's `f64::round` for x >= 0: halves go up (Python's round() goes to even)."""
    if not x >= 0:
        raise ValueError(f"round_half_away: {x} is not >= 0")
    f = math.floor(x)
    return int(f) + 1 if x - f >= 0.5 else int(f)


def held_out_len(positions: int, valid: float) -> int:
    """Positions held out of `positions` by `--valid valid`: `round(positions * valid)`."""
    return round_half_away(float(positions) * float(valid))


def train_len(positions: int, valid: float) -> int:
    """Positions trained on."""
    return positions - held_out_len(positions, valid)


def held_out_streams(length: int, batch_size: int, time_step: int):
    """(streams, stream_len) of a held-out tail of `length` positions (src/source.rs):
    batch_size positions each where it has that many, else one stream of the whole tail cut
    to whole windows; None when it is shorter than one window."""
    if length >= batch_size:
        return length // batch_size, batch_size
    if length >= time_step:
        return 1, length - length % time_step
    return None


def train_streams(config: dict) -> int:
    """The training streams of a checkpoint's config: `train_size // batch_size` (the
    shape of `bitrnn.hidden_state`)."""
    return train_len(config["data_size"], config.get("valid", 0.0)) // config["batch_size"]


# ---------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------


def text_alphabet(data: bytes, all_bytes: bool = False) -> list:
    """The alphabet `bitrnn train --text` builds: the sorted bytes that occur (all 256 with
    `--bytes`)."""
    if all_bytes:
        return list(range(256))
    seen = [False] * 256
    for b in set(data):
        seen[b] = True
    return [b for b in range(256) if seen[b]]


def text_ids(data: bytes, alphabet, name: str = "the text") -> bytes:
    """The text's bytes as symbol ids through `alphabet` (id k is byte alphabet[k]), one byte
    each. Refuses an alphabet that is not 2 to 256 distinct bytes and a byte outside it
    (naming the first one and its offset), as bitrnn does."""
    alphabet = list(alphabet)
    if not 2 <= len(alphabet) <= 256 or len(set(alphabet)) != len(alphabet):
        raise ProtocolError(f"alphabet of {len(alphabet)} bytes: need 2 to 256 distinct bytes")
    if any(not (isinstance(b, int) and 0 <= b <= 255) for b in alphabet):
        raise ProtocolError("alphabet: every entry must be a byte value 0..255")
    table = bytearray(256)
    known = [False] * 256
    for k, b in enumerate(alphabet):
        table[b] = k
        known[b] = True
    if not all(known[b] for b in set(data)):
        at = next(i for i, b in enumerate(data) if not known[b])
        raise ProtocolError(
            f"{name}: byte {data[at]} at offset {at} is not in the model's alphabet "
            f"({len(alphabet)} bytes): not the text the model was trained on"
        )
    if len(data) < 2:
        raise ProtocolError(f"{name}: {len(data)} byte(s): a text needs at least 2 (one target)")
    return data.translate(bytes(table))


def held_out_part(ids: bytes, config: dict, name: str = "the text"):
    """The held-out tail of a text read as `ids` (one id per byte), for a checkpoint's
    config: returns (inputs, targets, streams, stream_len), inputs and targets the tail's
    `held` positions (bytes of ids). Checks that the text has the config's `data_size`
    positions."""
    positions = len(ids) - 1
    if positions != config["data_size"]:
        raise ProtocolError(
            f"{name}: {positions} positions ({len(ids)} bytes), but the model was trained on "
            f"data_size {config['data_size']}: not the text the model was trained on"
        )
    valid = config.get("valid", 0.0)
    held = held_out_len(positions, valid)
    if held == 0:
        raise ProtocolError(
            f"the model was trained with --valid {valid}: no held-out tail to score "
            "(train with --valid F)"
        )
    cut = held_out_streams(held, config["batch_size"], config["time_step"])
    if cut is None:
        raise ProtocolError(f"held-out tail of {held} positions: shorter than one window")
    start = positions - held
    return ids[start:positions], ids[start + 1:positions + 1], cut[0], cut[1]


def streams_of(ids: bytes, streams: int, stream_len: int):
    """Inputs and targets of `streams` streams of `stream_len` positions from the start of
    a text's ids (stream s = positions s L .. (s + 1) L), as lists of bytes, one per stream."""
    if streams * stream_len > len(ids) - 1:
        raise ProtocolError(
            f"{streams} streams of {stream_len}: {streams * stream_len} positions, the text "
            f"has {len(ids) - 1}"
        )
    xs = [ids[s * stream_len:(s + 1) * stream_len] for s in range(streams)]
    ys = [ids[s * stream_len + 1:(s + 1) * stream_len + 1] for s in range(streams)]
    return xs, ys


# ---------------------------------------------------------------------------------------
# Safetensors, read with the standard library
# ---------------------------------------------------------------------------------------


def read_header(path):
    """(metadata, tensors, data_start) of a safetensors file: the `__metadata__` map (or
    {}), the other entries (name -> {dtype, shape, data_offsets}) and the data's offset."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ProtocolError(f"{path}: shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > 1 << 24:
            raise ProtocolError(f"{path}: header of {n} bytes: not a safetensors file")
        text = f.read(n)
    try:
        header = json.loads(text)
    except ValueError as e:
        raise ProtocolError(f"{path}: the header is not JSON: {e}") from None
    meta = header.pop("__metadata__", {}) or {}
    return meta, header, 8 + n


def read_tensor(path, name):
    """An F32 tensor of a safetensors file: (values as a flat list of floats, shape)."""
    _, tensors, start = read_header(path)
    if name not in tensors:
        raise ProtocolError(f"{path}: no tensor {name}")
    info = tensors[name]
    if info["dtype"] != "F32":
        raise ProtocolError(f"{path}: {name} is {info['dtype']}, expected F32")
    begin, end = info["data_offsets"]
    with open(path, "rb") as f:
        f.seek(start + begin)
        raw = f.read(end - begin)
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    return list(values), list(info["shape"])


def text_model_info(path):
    """(config, alphabet) of a bitrnn text checkpoint; refuses a file that is not one."""
    meta, _, _ = read_header(path)
    if meta.get("format") != FORMAT:
        raise ProtocolError(f"{path}: not a bitrnn checkpoint (no bitrnn metadata)")
    config = json.loads(meta["config"])
    if "alphabet" not in meta:
        raise ProtocolError(
            f"{path}: no `alphabet` metadata: not a text model (train with --text FILE); "
            "for the generator's bit models use scripts/pytorch_check.py"
        )
    alphabet = json.loads(meta["alphabet"])
    vocab = config.get("vocab", 2)
    if len(alphabet) != vocab:
        raise ProtocolError(
            f"{path}: alphabet of {len(alphabet)} bytes, but the config has vocab {vocab}"
        )
    return config, alphabet


def read_bytes(path) -> bytes:
    return Path(path).read_bytes()
