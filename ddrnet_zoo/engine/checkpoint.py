"""Resumable training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds the model (unwrapped: no ``module.``/``_orig_mod.`` prefixes), optimizer,
LR scheduler and GradScaler states, the epoch and iteration, the best mIoU so far, the
training config, and the random states of every process (Python, NumPy, torch CPU and CUDA).
Everything is stored as tensors and plain Python containers, so no pickled code is needed to
read it back. The data order and augmentation are pure functions of ``(seed, epoch, index)``
and the iteration, so they need no stored state.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ..convert.loading import TRAIN_STATE_FORMAT
from ..io import CheckpointError, atomic_path, check_state_dict_tensors, torch_load_safe
from . import distributed as dist_utils

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "check_train_state",
    "capture_rng_state",
    "restore_rng_state",
    "gather_rng_states",
]

CHECKPOINT_FORMAT = TRAIN_STATE_FORMAT  # defined where load_model recognises training checkpoints


def capture_rng_state() -> Dict[str, Any]:
    """This process's random states as tensors/plain containers (safe for ``weights_only`` loading)."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": int(n["pos"])},
            "has_gauss": int(n["has_gauss"]),
            "gauss": float(n["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def gather_rng_states() -> List[Dict[str, Any]]:
    """The random states of all processes, in rank order (only rank 0's list is complete)."""
    mine = capture_rng_state()
    if not dist_utils.is_distributed():
        return [mine]
    out: List[Optional[Dict[str, Any]]] = [None] * dist_utils.get_world_size()
    torch.distributed.all_gather_object(out, mine)
    return out  # type: ignore[return-value]


def save_checkpoint(path: Path, state: Dict[str, Any]) -> Path:
    """Write ``state`` (a dict of tensors / plain containers) atomically and durably (fsync) to ``path``.

    Written through a Python file, so that a full disk surfaces as the ``OSError`` it is (``torch.save``
    to a path reports only "unexpected pos"), which :func:`~ddrnet_zoo.io.atomic_path` turns into a
    :class:`~ddrnet_zoo.io.DiskFullError`; the previous checkpoint is then left as it was.
    """
    state = {"format": CHECKPOINT_FORMAT, **state}
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
    return Path(path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Read a training checkpoint safely (``weights_only=True``) and check its structure.

    Raises :class:`CheckpointError` naming the file and the entry that is missing or of the wrong kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    state = torch_load_safe(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a ddrnet_zoo training checkpoint (format {CHECKPOINT_FORMAT}); "
            "to start from model weights use model.weights=<file> instead of --resume"
        )
    check_train_state(state, path)
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rng_ok(rng: Any) -> bool:
    if not isinstance(rng, dict) or not {"python", "numpy", "torch"} <= set(rng):
        return False
    py, n, t = rng["python"], rng["numpy"], rng["torch"]
    return (
        isinstance(py, (tuple, list))
        and len(py) == 3
        and isinstance(py[1], (tuple, list))
        and isinstance(n, dict)
        and isinstance(n.get("key"), torch.Tensor)
        and n["key"].shape == (624,)
        and all(_is_int(n.get(k)) for k in ("pos", "has_gauss"))
        and isinstance(n.get("gauss"), float)
        and isinstance(n.get("bit_generator"), str)
        and isinstance(t, torch.Tensor)
        and t.dtype == torch.uint8
        and t.dim() == 1
    )


def check_train_state(state: Dict[str, Any], path: Path) -> None:
    """Check what resuming reads from a training checkpoint; a :class:`CheckpointError` names what is wrong."""
    checks = {
        "model": lambda v: isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()),
        "optimizer": lambda v: (
            isinstance(v, dict)
            and isinstance(v.get("state"), dict)
            and isinstance(v.get("param_groups"), list)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in v["param_groups"])
        ),
        "scheduler": lambda v: (
            isinstance(v, dict) and _is_int(v.get("last_epoch")) and isinstance(v.get("base_lrs"), list)
        ),
        "scaler": lambda v: isinstance(v, dict),
        "iteration": lambda v: _is_int(v) and v >= 0,
        "best": lambda v: isinstance(v, dict) and {"miou", "iteration", "epoch"} <= set(v),
        "config": lambda v: isinstance(v, dict),
        "model_config": lambda v: isinstance(v, dict),
        "rng": lambda v: isinstance(v, list) and len(v) >= 1 and all(_rng_ok(r) for r in v),
        "max_iters": lambda v: v is None or (_is_int(v) and v >= 0),
        "seconds_spent": lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0),
        "metrics": lambda v: v is None or isinstance(v, dict),
        "pending_epoch_end": lambda v: v is None or (_is_int(v) and v >= 0),
    }
    optional = {"max_iters", "seconds_spent", "metrics", "pending_epoch_end"}  # written by newer versions
    for key, ok in checks.items():
        if key not in state:
            if key in optional:
                continue
            raise CheckpointError(f"{path}: a training checkpoint without {key!r}: incomplete or corrupt")
        if not ok(state[key]):
            raise CheckpointError(
                f"{path}: its {key!r} entry is not what a training checkpoint holds "
                f"(a {type(state[key]).__name__}): corrupt"
            )
    check_state_dict_tensors(state["model"], path)
