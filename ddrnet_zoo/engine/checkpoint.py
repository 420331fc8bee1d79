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
from timm.utils import unwrap_model  # re-exported: the plain model inside DDP / torch.compile

from ..convert.loading import TRAIN_STATE_FORMAT
from ..io import CheckpointError, atomic_path, torch_load_safe
from . import distributed as dist_utils

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "gather_rng_states",
    "unwrap_model",
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
    """Write ``state`` (a dict of tensors / plain containers) atomically to ``path``."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Read a training checkpoint safely (``weights_only=True``); raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    state = torch_load_safe(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a ddrnet_zoo training checkpoint (format {CHECKPOINT_FORMAT}); "
            "to start from model weights use model.weights=<file> instead of --resume"
        )
    return state
