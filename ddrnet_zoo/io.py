"""File helpers: atomic writes and safe checkpoint reading (safetensors first, ``.pth`` only weights_only)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Union

import torch

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save",
    "is_safetensors",
    "torch_load_safe",
    "state_dict_from",
    "read_state_dict",
    "CheckpointError",
]

PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, corrupt or does not match the model."""


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    An exception (or an interrupted process) leaves any existing ``path`` untouched and
    removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give it the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def is_safetensors(path: PathLike) -> bool:
    """Whether ``path`` holds safetensors data (8-byte little-endian header length, then a JSON object)."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def torch_load_safe(path: PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: no pickled code runs.

    Raises :class:`CheckpointError` naming the file when it cannot be read that way.
    """
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for bad/unsafe pickles
        raise CheckpointError(
            f"{path}: cannot be read safely with torch.load(weights_only=True) "
            f"(truncated, corrupt, or it contains pickled code): {e}"
        ) from None


def state_dict_from(obj: Any, path: PathLike) -> Dict[str, torch.Tensor]:
    """The state dict in a loaded ``.pth`` object (bare, or under ``"state_dict"``), else :class:`CheckpointError`."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return obj


def read_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read a state dict from safetensors (recognised by content) or, safely, from ``.pth``/``.pt``/``.bin``.

    ``.pth`` files are read with ``torch.load(weights_only=True)``: no pickled code runs.
    Raises :class:`CheckpointError` naming the file for missing, truncated or corrupt files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors" or is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {e}") from None
    return state_dict_from(torch_load_safe(path), path)
