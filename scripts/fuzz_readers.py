#!/usr/bin/env python
"""Fuzz every checkpoint and config reader with hostile files: each must end in a clear error.

Five kinds of valid files are written from a narrow model (width 4, 57k parameters), then mutated:

- ``safetensors``: a Hub folder's ``model.safetensors``, read by ``load_model(file)``;
- ``pth-zip`` / ``pth-legacy``: ``torch.save`` of the state dict (zip, and the pre-1.6 format), read by
  ``load_model(file)``;
- ``train-state``: a ``last.pt`` of ``ddrnet-train`` (model, SGD, poly LR, GradScaler, RNG states, config),
  read by ``engine.load_checkpoint``, ``load_model(file)`` and ``Trainer`` resuming from it;
- ``config-json``: a Hub folder's ``config.json`` (valid weights beside it), read by ``load_model(folder)``.

Mutations: truncations, bit flips, overwritten, deleted and inserted bytes for every kind; and per format
huge or wrong declared sizes (the safetensors header length and offsets, storage sizes in the pickle, zip
entry sizes), wrong dtypes and shapes, pickles that would run code (``os.system``, ``exec``, ``eval``,
``subprocess``, ``open``, names under ``numpy.`` that the metadata stand-ins cover), memory bombs
(``bytearray(2**34)``, ``torch.FloatTensor(2**33)``, a deflated 1 GiB zip entry), meta tensors, deep
nesting, and for training checkpoints and configs, every field missing or of a wrong type or value.

Each case ends as one of: ``clean`` (a ``CheckpointError`` or ``ConfigError`` whose message names the file),
``unnamed`` (such an error that does not name it), ``loaded`` (the mutation left a valid file, e.g. a flipped
bit inside a weight), ``other`` (any other exception: a bug), ``crash`` (the reading process died),
``code-ran`` (a canary file that the hostile pickles try to create exists). Cases run in worker processes
(a crash loses one case, not the run); memory is the peak resident set size of a worker above its size
after reading the valid files once. Usage::

    python scripts/fuzz_readers.py --cases 1200 --seed 0 --json fuzz.json

The driver imports only the standard library (it starts and restarts the workers); torch and
ddrnet_zoo are imported in the functions the workers run.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import pickle
import random
import re
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

KINDS = ("safetensors", "pth-zip", "pth-legacy", "train-state", "config-json")
CANARY_NAME = "CODE_RAN"


# ---------------------------------------------------------------------------------------------- valid files
def make_bases(folder: Path) -> Dict[str, Path]:
    """The valid file of every kind (and, for ``train-state``, the run it resumes), written into ``folder``."""
    import numpy as np
    import torch
    from PIL import Image

    from ddrnet_zoo import create_segmentation_model
    from ddrnet_zoo.engine import load_config
    from ddrnet_zoo.engine.checkpoint import capture_rng_state, save_checkpoint
    from ddrnet_zoo.engine.config import config_to_dict
    from ddrnet_zoo.engine.optim import PolyLR, build_optimizer
    from ddrnet_zoo.hub import save_pretrained
    from ddrnet_zoo.models import DDRNetArch
    from ddrnet_zoo.models.ddrnet import arch_dict

    torch.manual_seed(0)
    arch = DDRNetArch(width=4, depths=(1, 1, 1, 1), head_width=16, seg_head_width=8, context_width=8)
    model = create_segmentation_model("ddrnet23_slim", num_classes=3, arch=arch)
    hub = folder / "hub"
    save_pretrained(model, hub)
    torch.save(model.state_dict(), folder / "model.pth")
    torch.save(model.state_dict(), folder / "legacy.pth", _use_new_zipfile_serialization=False)
    # a training run of this model on 4 random images, and a checkpoint of it as the trainer writes it
    data = folder / "data"
    (data / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(data / "img" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (64, 64), dtype=np.uint8)).save(data / "img" / f"{i}_l.png")
        lines.append(f"img/{i}.png img/{i}_l.png")
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    overrides = [
        "data.dataset=folder",
        f"data.root={data}",
        "data.class_names=[a, b, c]",
        "data.val_split=null",
        "data.crop_size=[64, 64]",
        "data.batch_size=2",
        "data.num_workers=0",
        f"model.arch={json.dumps(arch_dict(arch))}",
        "train.epochs=1",
        "train.progress=false",
        "train.tensorboard=false",
        f"train.output_dir={folder / 'run'}",
    ]
    cfg = load_config(None, overrides)
    optimizer = build_optimizer(model, 0.01, 0.9, 5e-4, False)
    scheduler = PolyLR(optimizer, 10, 0.9, 0.0, 0, 0.1)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    scheduler.step()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "iteration": 1,
        "epoch": 0,
        "best": {"miou": None, "iteration": None, "epoch": None},
        "config": config_to_dict(cfg),
        "model_config": dict(model.config),
        "world_size": 1,
        "max_iters": 2,
        "seconds_spent": None,
        "metrics": None,
        "pending_epoch_end": None,
        "rng": [capture_rng_state()],
    }
    save_checkpoint(folder / "last.pt", state)
    (folder / "overrides.json").write_text(json.dumps(overrides))
    return {
        "safetensors": hub / "model.safetensors",
        "pth-zip": folder / "model.pth",
        "pth-legacy": folder / "legacy.pth",
        "train-state": folder / "last.pt",
        "config-json": hub / "config.json",
    }


# ---------------------------------------------------------------------------------------------- pickles
def _p_str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _p_int(n: int) -> bytes:
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def _p_arg(a: Any) -> bytes:
    return _p_str(a) if isinstance(a, str) else _p_int(a)


def call_pickle(module: str, name: str, *args: Any, wrap: bool = False) -> bytes:
    """A protocol-2 pickle of ``module.name(*args)`` (inside ``{"state_dict": ...}`` when ``wrap``)."""
    call = b"c" + module.encode() + b"\n" + name.encode() + b"\n(" + b"".join(_p_arg(a) for a in args) + b"tR"
    if wrap:
        return b"\x80\x02}" + _p_str("state_dict") + call + b"s."
    return b"\x80\x02" + call + b"."


def hostile_calls(canary: Path) -> List[Tuple[str, bytes]]:
    """Pickles that would run code, or allocate without bound, if their globals were honoured."""
    c = str(canary)
    return [
        ("os.system", call_pickle("posix", "system", f"touch {c}")),
        ("os.system-wrapped", call_pickle("os", "system", f"touch {c}", wrap=True)),
        ("exec", call_pickle("builtins", "exec", f"open({c!r}, 'w').close()")),
        ("eval", call_pickle("builtins", "eval", f"open({c!r}, 'w')", wrap=True)),
        ("subprocess", call_pickle("subprocess", "check_call", f"touch {c}")),
        ("open", call_pickle("builtins", "open", c, "w")),
        ("numpy-stand-in", call_pickle("numpy.testing._private.utils", "runstring", f"open({c!r}, 'w')")),
        ("mmengine-stand-in", call_pickle("mmengine.utils", "exec_code", f"open({c!r}, 'w')", wrap=True)),
        ("import", call_pickle("builtins", "__import__", "os")),
        ("bytearray-bomb", call_pickle("builtins", "bytearray", 2**34)),
        ("bytearray-bomb-wrapped", call_pickle("builtins", "bytearray", 2**33, wrap=True)),
        ("tensor-bomb", call_pickle("torch", "FloatTensor", 2**33, wrap=True)),
        ("storage-bomb", call_pickle("torch", "FloatStorage", 2**35)),
    ]


class _StorageRef:
    def __init__(self, cls: Any, key: str, numel: int) -> None:
        self.cls, self.key, self.numel = cls, key, numel


class _TensorRef:
    def __init__(self, storage: _StorageRef, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        import torch

        return (
            torch._utils._rebuild_tensor_v2,
            (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict()),
        )


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any):
        if isinstance(obj, _StorageRef):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def _pickle(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- mutations
def _generic(data: bytes, rng: random.Random) -> Tuple[str, bytes]:
    n = len(data)
    choice = rng.randrange(7)
    if choice == 0:
        cut = rng.choice([0, 1, 7, 8, 9, 64, rng.randrange(n), n - 1, n // 2])
        return f"truncate@{cut}", data[:cut]
    if choice == 1:
        b = bytearray(data)
        flips = rng.choice([1, 2, 8, 64])
        for _ in range(flips):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        return f"bitflip x{flips}", bytes(b)
    if choice == 2:
        b = bytearray(data)
        i, k = rng.randrange(n), rng.choice([1, 4, 8, 64, 1024])
        fill = rng.choice([b"\x00", b"\xff", None])
        b[i : i + k] = (fill * k) if fill else bytes(rng.randrange(256) for _ in range(min(k, n - i)))
        return f"overwrite {k}@{i}", bytes(b[:n])
    if choice == 3:
        i, k = rng.randrange(n), rng.choice([1, 8, 100, 4096])
        return f"delete {k}@{i}", data[:i] + data[i + k :]
    if choice == 4:
        i, k = rng.randrange(n), rng.choice([1, 8, 100, 4096])
        return f"insert {k}@{i}", data[:i] + bytes(rng.randrange(256) for _ in range(k)) + data[i:]
    if choice == 5:
        return "append", data + bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 10000])))
    return "zero-head", b"\x00" * min(n, 4096) + data[4096:]


def _safetensors(data: bytes, rng: random.Random) -> Tuple[str, bytes]:
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + hlen])
    body = data[8 + hlen :]
    choice = rng.randrange(4)
    if choice == 0:
        value = rng.choice([0, 1, 7, hlen - 1, hlen + 1, len(data), 2**31, 2**40, 2**63, 2**64 - 1])
        return f"header-length={value}", struct.pack("<Q", value) + data[8:]
    names = [k for k in header if k != "__metadata__"]
    key = rng.choice(names)
    entry = header[key]
    if choice == 1:
        field_, value = rng.choice(
            [
                ("dtype", "F64"),
                ("dtype", "I64"),
                ("dtype", "BOOL"),
                ("dtype", "U8"),
                ("dtype", "F8_E4M3"),
                ("dtype", "C64"),
                ("dtype", "XX"),
                ("dtype", 5),
                ("shape", []),
                ("shape", [0]),
                ("shape", [-1]),
                ("shape", [2**40]),
                ("shape", [2**32, 2**32]),
                ("shape", list(entry["shape"])[::-1] + [1]),
                ("shape", "x"),
                ("data_offsets", [0, 2**62]),
                ("data_offsets", list(entry["data_offsets"])[::-1]),
                ("data_offsets", [len(body), len(body) + 8]),
                ("data_offsets", [-1, 4]),
                ("data_offsets", [0]),
            ]
        )
        header[key] = {**entry, field_: value}
        name = f"{field_}={value!r}"
    elif choice == 2:
        name = rng.choice(["drop-tensor", "metadata-huge", "metadata-not-str", "not-object", "deep"])
        if name == "drop-tensor":
            del header[key]
        elif name == "metadata-huge":
            header["__metadata__"] = {"format": "pt", "x": "y" * 1_000_000}
        elif name == "metadata-not-str":
            header["__metadata__"] = {"format": ["pt"]}
        elif name == "not-object":
            header = [header]
        else:
            text = "[" * 100_000 + "]" * 100_000
            return name, struct.pack("<Q", len(text)) + text.encode() + body
    else:
        raw = json.dumps(header).encode()
        i = rng.randrange(len(raw))
        raw = raw[:i] + rng.choice([b"\xff\xfe", b"\x00", b'"', b"}"]) + raw[i + 1 :]
        return "header-bytes", struct.pack("<Q", len(raw)) + raw + body
    raw = json.dumps(header).encode()
    return name, struct.pack("<Q", len(raw)) + raw + body


def _zip_with(data: bytes, replace: Dict[str, Optional[bytes]], compress: Tuple[str, ...] = ()) -> bytes:
    """The zip ``data`` with entries replaced (``None``: removed); names are relative to the archive folder."""
    src = zipfile.ZipFile(io.BytesIO(data))
    prefix = src.namelist()[0].split("/", 1)[0] + "/"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            rel = info.filename[len(prefix) :]
            if rel in replace:
                content = replace[rel]
                if content is None:
                    continue
            else:
                content = src.read(info)
            method = zipfile.ZIP_DEFLATED if rel in compress else zipfile.ZIP_STORED
            dst.writestr(zipfile.ZipInfo(info.filename), content, compress_type=method)
    return out.getvalue()


def _bomb_zip(data: bytes, chunks: int = 64) -> bytes:
    """``data`` with ``data/0`` replaced by ``chunks`` x 16 MiB of zeros, deflated (1 GiB in 1 MiB by default)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    target = next(n for n in src.namelist() if n.endswith("/data/0"))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as dst:
        for info in src.infolist():
            if info.filename != target:
                dst.writestr(zipfile.ZipInfo(info.filename), src.read(info))
        zi = zipfile.ZipInfo(target)
        zi.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(zi, "w", force_zip64=True) as f:
            chunk = bytes(1 << 24)
            for _ in range(chunks):
                f.write(chunk)
    return out.getvalue()


def _crafted_state_dict(data: bytes, rng: random.Random) -> Tuple[str, bytes]:
    """A state-dict pickle over the file's own storages with one tensor's declared numel, dtype, size, stride
    or offset changed (or a meta tensor, or deep nesting)."""
    import torch

    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    keys = list(obj)
    refs: Dict[str, Any] = {}
    for i, k in enumerate(keys):
        t = obj[k]
        cls = {torch.float32: torch.FloatStorage, torch.int64: torch.LongStorage}[t.dtype]
        refs[k] = _TensorRef(_StorageRef(cls, str(i), t.numel()), 0, tuple(t.shape), tuple(t.stride()))
    victim = rng.choice(keys[:60])
    ref = refs[victim]
    name = rng.choice(["numel-huge", "dtype", "size-huge", "stride0-huge", "offset", "negative", "meta", "deep"])
    if name == "numel-huge":
        ref.storage.numel = 2**40
    elif name == "dtype":
        ref.storage.cls = rng.choice([torch.DoubleStorage, torch.BoolStorage, torch.HalfStorage, torch.LongStorage])
        name = f"dtype {ref.storage.cls.__name__}"
    elif name == "size-huge":
        ref.size = (2**20, 2**20)
        ref.stride = (2**20, 1)
    elif name == "stride0-huge":
        ref.size, ref.stride = (2**40,), (0,)
    elif name == "offset":
        ref.offset = 10**9
    elif name == "negative":
        ref.size = (-5,)
        ref.stride = (1,)
    if name == "meta":  # the victim becomes torch._utils._rebuild_meta_tensor_no_storage(float32, size, stride)
        raw = _pickle(collections.OrderedDict((k, v) for k, v in refs.items() if k != victim))
        meta_call = (
            b"ctorch._utils\n_rebuild_meta_tensor_no_storage\n(ctorch\nfloat32\n"
            + b"(" + _p_int(2) + _p_int(3) + b"t" + b"(" + _p_int(3) + _p_int(1) + b"t" + b"\x89tR"
        )  # fmt: skip
        raw = raw[:-2] + _p_str(victim) + meta_call + b"u."  # into the last SETITEMS group
        return name, _zip_with(data, {"data.pkl": raw})
    if name == "deep":
        raw = b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b"."
        return name, _zip_with(data, {"data.pkl": raw})
    return name, _zip_with(data, {"data.pkl": _pickle(collections.OrderedDict(refs))})


def _pth_zip(data: bytes, rng: random.Random, canary: Path) -> Tuple[str, bytes]:
    choice = rng.randrange(5)
    if choice == 0:
        name, raw = rng.choice(hostile_calls(canary))
        return f"pickle {name}", _zip_with(data, {"data.pkl": raw})
    if choice == 1:
        return _crafted_state_dict(data, rng)
    if choice == 2:
        entry = rng.choice(["data/0", "byteorder", ".format_version", "version", "data.pkl"])
        content = rng.choice([None, b"", b"big", b"\x00" * 8])
        return f"entry {entry}={content!r}", _zip_with(data, {entry: content})
    if choice == 3:
        return "deflated data.pkl", _zip_with(data, {}, compress=("data.pkl",))
    # declared sizes in the central directory and local headers
    b = bytearray(data)
    sig = rng.choice([b"PK\x01\x02", b"PK\x03\x04", b"PK\x05\x06"])
    starts = [i for i in range(len(b) - 4) if b[i : i + 4] == sig]
    i = rng.choice(starts)
    if sig == b"PK\x05\x06":
        off, name = i + rng.choice([8, 10, 12, 16]), "end-of-central-directory"
    else:
        off, name = i + rng.choice([18, 22] if sig == b"PK\x03\x04" else [20, 24, 42]), "entry size/offset"
    value = rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, len(data) * 2])
    b[off : off + 4] = struct.pack("<I", value)[: len(b[off : off + 4])]
    return f"{name}={value:#x}", bytes(b)


def _split_legacy(data: bytes) -> Tuple[List[bytes], bytes]:
    """The five pickles of a legacy file (magic, protocol, sys info, object, storage keys) and the raw rest."""
    import pickletools

    f = io.BytesIO(data)
    pickles = []
    for _ in range(5):
        start = f.tell()
        for _op in pickletools.genops(f):
            pass
        pickles.append(data[start : f.tell()])
    return pickles, data[f.tell() :]


def _pth_legacy(data: bytes, rng: random.Random, canary: Path) -> Tuple[str, bytes]:
    pickles, rest = _split_legacy(data)
    choice = rng.randrange(4)
    if choice == 0:
        name, raw = rng.choice(hostile_calls(canary))
        where = rng.choice([0, 2, 3])
        pickles[where] = raw
        return f"pickle {name} as #{where}", b"".join(pickles) + rest
    if choice == 1:  # the size of the first storage (an int64 after the pickles)
        value = rng.choice([2**62, 2**40, 2**33, len(rest), -1])
        return f"storage-size={value}", b"".join(pickles) + struct.pack("<q", value) + rest[8:]
    if choice == 2:
        which = rng.randrange(5)
        replacement = rng.choice([pickle.dumps(0, 2), pickle.dumps("x", 2), pickle.dumps(10**12, 2), b"."])
        pickles[which] = replacement
        return f"legacy-pickle #{which} replaced", b"".join(pickles) + rest
    keys = pickle.loads(pickles[4])
    pickles[4] = pickle.dumps(keys + ["999999"] if rng.random() < 0.5 else keys[:-1], 2)
    return "storage keys", b"".join(pickles) + rest


def _train_state(data: bytes, rng: random.Random, canary: Path) -> Tuple[str, bytes]:
    import torch

    choice = rng.randrange(3)
    if choice == 0:
        name, raw = rng.choice(hostile_calls(canary))
        return f"pickle {name}", _zip_with(data, {"data.pkl": raw})
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    top = [k for k in state if k != "format"]
    key = rng.choice(top)
    if choice == 1:
        del state[key]
        name = f"missing {key}"
    else:
        bad = [None, "x", -3, 2**70, 1.5, [], {}, [1, 2], {"a": 1}, torch.zeros(2)]
        nested = {
            "model": [
                lambda s: {k: v for k, v in list(s.items())[1:]},
                lambda s: {**s, "extra.weight": torch.zeros(1)},
                lambda s: {k: (v.double() if v.is_floating_point() else v) for k, v in s.items()},
                lambda s: {k: (v[..., :1] if v.dim() else v) for k, v in s.items()},
                lambda s: {k: "x" for k in s},
            ],
            "optimizer": [
                lambda o: {**o, "param_groups": []},
                lambda o: {**o, "param_groups": [{**o["param_groups"][0], "params": [0, 1]}]},
                lambda o: {**o, "state": {0: {"momentum_buffer": torch.zeros(7)}}},
                lambda o: {"state": {}},
            ],
            "rng": [
                lambda r: [{**r[0], "torch": torch.zeros(3, dtype=torch.uint8)}],
                lambda r: [{**r[0], "python": (3, (1, 2), None)}],
                lambda r: [{**r[0], "numpy": {**r[0]["numpy"], "key": torch.zeros(2)}}],
                lambda r: [{}],
                lambda r: [],
            ],
            "model_config": [
                lambda c: {**c, "arch": {**c["arch"], "width": 2**20}},
                lambda c: {**c, "arch": {**c["arch"], "width": 64}},
                lambda c: {**c, "num_classes": 0},
                lambda c: {**c, "unknown": 1},
                lambda c: {**c, "architecture": "resnet50"},
            ],
            "config": [
                lambda c: {**c, "model": {**c["model"], "name": "ddrnet99"}},
                lambda c: {**c, "train": {**c["train"], "unknown": 1}},
                lambda c: {**c, "optim": {**c["optim"], "lr": "fast"}},
            ],
            "scheduler": [lambda s: {**s, "base_lrs": []}, lambda s: {"x": 1}],
            "format": [lambda f: "ddrnet_zoo.train_state.v0"],
        }
        if key in nested and rng.random() < 0.7:
            i = rng.randrange(len(nested[key]))
            state[key] = nested[key][i](state[key])
            name = f"{key} variant {i}"
        else:
            state[key] = rng.choice(bad)
            name = f"{key}={type(state[key]).__name__}"
    buf = io.BytesIO()
    torch.save(state, buf)
    return name, buf.getvalue()


def _config_json(data: bytes, rng: random.Random) -> Tuple[str, bytes]:
    cfg = json.loads(data)
    choice = rng.randrange(4)
    if choice == 0:
        return rng.choice(
            [
                ("deep", ("[" * 100_000 + "]" * 100_000).encode()),
                ("huge-int", b'{"num_classes": 1' + b"0" * 10_000 + b"}"),
                ("nan", json.dumps({**cfg, "num_classes": float("nan")}).encode()),
                ("not-object", b"[1, 2, 3]"),
                ("empty", b""),
                ("utf16", json.dumps(cfg).encode("utf-16")),
                ("huge-string", json.dumps({**cfg, "dataset": "x" * 10_000_000}).encode()),
            ]
        )
    key = rng.choice(list(cfg))
    if choice == 1:
        del cfg[key]
        return f"missing {key}", json.dumps(cfg).encode()
    if choice == 2:
        cfg[key] = rng.choice([None, "x", -1, 0, 2**40, 1.5, [], {}, [None], {"a": None}, True])
        return f"{key}={cfg[key]!r}"[:60], json.dumps(cfg).encode()
    arch = dict(cfg.get("arch") or {})
    field_ = rng.choice(list(arch) or ["width"])
    arch[field_] = rng.choice([2**20, 0, -4, "8", [1], 1.5, None, [2**20] * 4])
    cfg["arch"] = arch
    return f"arch.{field_}={arch[field_]!r}"[:60], json.dumps(cfg).encode()


def mutate(kind: str, data: bytes, rng: random.Random, canary: Path) -> Tuple[str, bytes]:
    """One hostile variant of the valid file ``data`` of ``kind``: (a description, the bytes)."""
    if rng.random() < 0.4:
        return _generic(data, rng)
    if kind == "safetensors":
        return _safetensors(data, rng)
    if kind == "pth-zip":
        if rng.random() < 0.03:
            if len(data) not in _BOMB:
                _BOMB[len(data)] = _bomb_zip(data)
            return "zip-bomb (1 GiB deflated entry)", _BOMB[len(data)]
        return _pth_zip(data, rng, canary)
    if kind == "pth-legacy":
        return _pth_legacy(data, rng, canary)
    if kind == "train-state":
        return _train_state(data, rng, canary)
    return _config_json(data, rng)


_BOMB: Dict[int, bytes] = {}


# ---------------------------------------------------------------------------------------------- readers
@dataclass
class Outcome:
    index: int
    kind: str
    mutation: str
    size: int
    result: str  # clean, unnamed, loaded, other, crash, code-ran
    error: str = ""
    rss_mib: float = 0.0


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Readers:
    """The readers of each kind, with what they need built once."""

    def __init__(self, folder: Path, bases: Dict[str, Path]) -> None:
        from ddrnet_zoo.engine import load_config
        from ddrnet_zoo.engine.trainer import Trainer

        self.folder, self.bases = folder, bases
        overrides = json.loads((folder / "overrides.json").read_text())
        self.trainer = Trainer(load_config(None, overrides + [f"train.output_dir={folder / 'resume'}"]))
        logging_off()

    def read(self, kind: str, path: Path) -> None:
        from ddrnet_zoo import load_model
        from ddrnet_zoo.engine import load_checkpoint

        if kind == "config-json":
            load_model(path.parent)
        elif kind == "train-state":
            load_checkpoint(path)
            load_model(path)
            self.trainer._resume(str(path))
        else:
            load_model(path)

    def case_path(self, kind: str) -> Path:
        base = self.bases[kind]
        if kind == "config-json":
            hub = self.folder / "case_hub"
            hub.mkdir(exist_ok=True)
            weights = hub / "model.safetensors"
            if not weights.exists():
                weights.write_bytes((base.parent / "model.safetensors").read_bytes())
            return hub / "config.json"
        return self.folder / f"case{base.suffix}"


def logging_off() -> None:
    import logging

    logging.getLogger("ddrnet_zoo").setLevel(logging.CRITICAL)


def run_case(readers: Readers, index: int, seed: int, canary: Path) -> Outcome:
    """Mutation ``index`` of the run seeded ``seed``: write it, read it, classify what happened."""
    from ddrnet_zoo.engine.config import ConfigError
    from ddrnet_zoo.io import CheckpointError

    rng = random.Random(seed * 1_000_003 + index)
    kind = KINDS[index % len(KINDS)]
    base = readers.bases[kind].read_bytes()
    mutation, data = mutate(kind, base, rng, canary)
    path = readers.case_path(kind)
    path.write_bytes(data)
    outcome = Outcome(index, kind, mutation, len(data), "loaded")
    try:
        readers.read(kind, path)
    except (CheckpointError, ConfigError) as e:
        named = str(path) in str(e) or str(path.parent) in str(e)
        outcome.result, outcome.error = ("clean" if named else "unnamed"), f"{type(e).__name__}: {e}"[:300]
    except Exception as e:  # noqa: BLE001  (what the fuzz is for: anything else is a finding)
        outcome.result, outcome.error = "other", f"{type(e).__name__}: {e}"[:300]
    if canary.exists():
        outcome.result = "code-ran"
        canary.unlink()
    outcome.rss_mib = _peak_rss_mib()
    return outcome


# ---------------------------------------------------------------------------------------------- driver
def fuzz_in_process(cases: int, seed: int, first: int = 0) -> Tuple[List[Outcome], float]:
    """Run cases ``first .. first + cases - 1`` here; returns the outcomes and the RSS baseline (MiB)."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz_"))
    bases = make_bases(folder)
    readers = Readers(folder, bases)
    for kind in KINDS:  # the valid files load: the baseline memory
        readers.read(kind, bases[kind] if kind != "config-json" else bases[kind])
    baseline = _peak_rss_mib()
    canary = folder / CANARY_NAME
    return [run_case(readers, i, seed, canary) for i in range(first, first + cases)], baseline


def _worker(args: argparse.Namespace) -> int:
    """``--worker``: run cases from ``--first`` on, one JSON line each (a "start" line before each case)."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz_"))
    bases = make_bases(folder)
    readers = Readers(folder, bases)
    for kind in KINDS:
        readers.read(kind, bases[kind])
    print(json.dumps({"baseline": _peak_rss_mib()}), flush=True)
    canary = folder / CANARY_NAME
    for i in range(args.first, args.cases):
        print(json.dumps({"start": i}), flush=True)
        print(json.dumps(run_case(readers, i, args.seed, canary).__dict__), flush=True)
    return 0


def fuzz(cases: int, seed: int, timeout: float = 3600.0) -> Dict[str, Any]:
    """All cases in worker processes (restarted after a crash); the outcomes and the summary."""
    outcomes: List[Outcome] = []
    baselines: List[float] = []
    first, started = 0, time.monotonic()
    while first < cases:
        cmd = [sys.executable, __file__, "--worker", "--first", str(first), "--cases", str(cases), "--seed", str(seed)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        current: Optional[int] = None
        for line in proc.stdout:  # type: ignore[union-attr]
            msg = json.loads(line)
            if "baseline" in msg:
                baselines.append(msg["baseline"])
            elif "start" in msg:
                current = msg["start"]
            else:
                outcomes.append(Outcome(**msg))
                current = None
                if len(outcomes) % 100 == 0:
                    print(f"{len(outcomes)} cases, {time.monotonic() - started:.0f} s", file=sys.stderr)
        proc.wait()
        if current is not None:  # the worker died in this case
            outcomes.append(Outcome(current, KINDS[current % len(KINDS)], "?", 0, "crash", f"exit {proc.returncode}"))
            first = current + 1
        elif proc.returncode != 0:
            raise RuntimeError(f"fuzz worker failed before any case (exit {proc.returncode})")
        else:
            first = cases
        if time.monotonic() - started > timeout:
            break
    return summarize(outcomes, min(baselines) if baselines else 0.0, time.monotonic() - started)


def _family(mutation: str) -> str:
    """The kind of a mutation: ``truncate``, ``bitflip``, ``pickle``, ``dtype``, ``zip-bomb``, ..."""
    head = re.split(r"[@= ]", mutation, maxsplit=1)[0]
    return {"entry": "zip-entry", "deflated": "zip-entry"}.get(head, head)


def summarize(outcomes: List[Outcome], baseline: float, seconds: float) -> Dict[str, Any]:
    by_result = collections.Counter(o.result for o in outcomes)
    by_kind = {k: collections.Counter(o.result for o in outcomes if o.kind == k) for k in KINDS}
    errors = collections.Counter(o.error.split(":", 1)[0] for o in outcomes if o.error)
    peak = max((o.rss_mib for o in outcomes), default=baseline)
    worst = max(outcomes, key=lambda o: o.rss_mib) if outcomes else None
    families: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        families[_family(o.mutation)][o.result] += 1
    return {
        "cases": len(outcomes),
        "results": dict(by_result),
        "by_mutation": {k: dict(v) for k, v in sorted(families.items())},
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "error_classes": dict(errors),
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(peak, 1),
        "peak_rss_above_baseline_mib": round(peak - baseline, 1),
        "largest_file_bytes": max((o.size for o in outcomes), default=0),
        "worst_memory_case": worst.__dict__ if worst else None,
        "findings": [o.__dict__ for o in outcomes if o.result not in ("clean", "loaded")],
        "seconds": round(seconds, 1),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--cases", type=int, default=1200, help="number of mutated files (spread over the 5 kinds)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the summary and every finding here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return _worker(args)
    report = fuzz(args.cases, args.seed)
    text = json.dumps({k: v for k, v in report.items() if k != "findings"}, indent=2)
    print(text)
    for f in report["findings"][:20]:
        print(f"finding: {f['kind']} #{f['index']} {f['mutation']}: {f['result']} {f['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if not report["findings"] else 1


if __name__ == "__main__":
    sys.exit(main())
