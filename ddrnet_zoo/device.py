"""Devices and numeric precisions: one vocabulary for training, evaluation, prediction and export.

Precisions are ``"fp32"``, ``"bf16"`` and ``"fp16"``; ``"none"`` (no autocast, the training
configs' historical spelling) and the torch dtype names are accepted as aliases.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .errors import DDRNetError

__all__ = [
    "PRECISIONS",
    "DeviceError",
    "canonical_precision",
    "precision_dtype",
    "autocast_dtype",
    "resolve_device",
]

PRECISIONS = ("fp32", "bf16", "fp16")
"""The precisions, by their canonical names."""

_ALIASES = {
    "none": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
}
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(DDRNetError, RuntimeError):
    """A device or precision that is unknown or not available here."""


def canonical_precision(precision: Optional[str]) -> str:
    """The canonical name of ``precision`` (``None`` and ``"none"`` are ``"fp32"``)."""
    name = "fp32" if precision is None else _ALIASES.get(str(precision).lower(), str(precision).lower())
    if name not in _DTYPES:
        raise DeviceError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)} ('none' = fp32)")
    return name


def precision_dtype(precision: Optional[str]) -> torch.dtype:
    """The torch dtype of ``precision``."""
    return _DTYPES[canonical_precision(precision)]


def autocast_dtype(precision: Optional[str]) -> Optional[torch.dtype]:
    """The dtype ``torch.autocast`` runs in for ``precision``, or ``None`` for full precision."""
    name = canonical_precision(precision)
    return None if name == "fp32" else _DTYPES[name]


def resolve_device(device: Union[str, torch.device, None] = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU; plain ``"cuda"`` -> ``cuda:<local_rank>``.

    Raises :class:`DeviceError` when CUDA is asked for but not available.
    """
    name = "auto" if device is None else str(device).lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise DeviceError(f"unknown device {device!r} ({e}); use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available here; use cpu (or auto)")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return dev
