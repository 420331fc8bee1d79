"""Test-time augmentation: multi-scale and horizontal-flip inference (paper Sec. V-E, Table VII)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

__all__ = ["PAPER_SCALES", "segment_logits"]

PAPER_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
"""Scales of the paper's multi-scale test (Table VII)."""


@torch.no_grad()
def segment_logits(
    model: nn.Module,
    images: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> torch.Tensor:
    """Average class probabilities over ``scales`` (and horizontal flips) at the input size.

    ``images`` is a normalised float batch (N, C, H, W). Each scale resizes the batch
    (bilinear, ``align_corners=False``), runs the model in eval mode, resizes the logits back
    and averages softmax probabilities. Returns (N, num_classes, H, W) probabilities when
    more than one view is used, otherwise the logits themselves.
    """
    if len(scales) == 0:
        raise InputError("scales must contain at least one scale")
    h, w = images.shape[-2:]
    min_size = getattr(model, "min_input_size", 1)
    views = 0
    total = None
    for s in scales:
        if s <= 0:
            raise InputError(f"scales must be positive, got {s}")
        size = (max(int(round(h * s)), min_size), max(int(round(w * s)), min_size))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            inp = torch.flip(x, dims=[-1]) if flipped else x
            out = model(inp)
            if isinstance(out, dict):
                out = out["out"]
            if flipped:
                out = torch.flip(out, dims=[-1])
            if out.shape[-2:] != (h, w):
                out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
            if len(scales) == 1 and not flip:
                return out
            out = out.float().softmax(dim=1)
            total = out if total is None else total + out
            views += 1
    return total / views
