"""Segmentation losses: cross-entropy, OHEM cross-entropy and the deep-supervision sum of Eq. 3.

OHEM follows ``OhemCrossEntropy`` of the HRNet semantic-segmentation code, which the DDRNet
training code derives from (the paper: "Following [50]"), and which MMSegmentation's DDRNet
configs use unchanged (``OhemCrossEntropy(thres=0.9, min_kept=131072)``):

1. per-pixel cross-entropy (class-weighted if ``class_weight`` is given), ignored pixels excluded;
2. ``p`` = softmax probability of the true class of every valid pixel of the whole batch;
3. ``threshold = max(p_sorted[min(min_kept, n_valid - 1)], thresh)``: the ``min_kept``-th
   smallest probability (0-based, over the whole per-process batch, *not* per image), but at
   least ``thresh``;
4. the loss is the plain mean of the per-pixel losses of the pixels with ``p < threshold``.

So every pixel predicted with less than 90% confidence is kept, and when fewer than
``min_kept`` are, the ``min_kept`` least confident pixels are. This differs from
MMSegmentation's ``OHEMPixelSampler`` (``min_kept`` multiplied by the batch size, selected
pixels weighted inside the normal CE). One deviation from the reference code: when no pixel
is selected (every label ignored), the loss is 0 (with a graph) instead of NaN.

The HRNet-derived DDRNet code applies OHEM to the main output only and plain cross-entropy to
the auxiliary output; :class:`SegmentationLoss` does the same by default (``aux_type="ce"``);
``aux_type="same"`` uses the main loss type for both (MMSegmentation's DDRNet configs).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .constants import AUX_LOSS_WEIGHT, IGNORE_INDEX

__all__ = ["OHEM_THRESH", "OHEM_MIN_KEPT", "cross_entropy", "ohem_cross_entropy", "SegmentationLoss", "LOSS_TYPES"]

OHEM_THRESH = 0.9
"""Default OHEM probability threshold (HRNet/DDRNet configs ``OHEMTHRES``, MMSegmentation ``thres``)."""
OHEM_MIN_KEPT = 131072
"""Default minimum number of pixels OHEM keeps per (per-process) batch (``OHEMKEEP``, ``min_kept``)."""

LOSS_TYPES = ("ce", "ohem")


def _check(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.ndim != 4:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    if target.ndim != 3 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must be (N, H, W) with N={logits.shape[0]} matching the logits, got shape {tuple(target.shape)}"
        )
    if target.is_floating_point():
        raise TypeError(f"target must hold integer class indices, got {target.dtype}")
    if logits.shape[-2:] != target.shape[-2:]:
        # models built with upsample_logits=False predict at 1/8: resize as the HRNet code does
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return logits


def _weight(class_weight: Optional[Union[torch.Tensor, Sequence[float]]], logits: torch.Tensor):
    if class_weight is None:
        return None
    w = torch.as_tensor(class_weight, dtype=torch.float32, device=logits.device)
    if w.ndim != 1 or w.numel() != logits.shape[1]:
        raise ValueError(f"class_weight needs {logits.shape[1]} values (one per class), got {w.numel()}")
    return w


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    class_weight: Optional[Union[torch.Tensor, Sequence[float]]] = None,
) -> torch.Tensor:
    """Pixel-wise cross-entropy averaged over non-ignored pixels (class-weighted mean with weights).

    Logits of another size than ``target`` are resized bilinearly first. Computed in float32.
    A batch without valid pixels gives 0.
    """
    logits = _check(logits, target).float()
    target = target.long()
    w = _weight(class_weight, logits)
    valid = target != ignore_index
    pixel = F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index, reduction="none")
    if w is None:
        denom = valid.sum()
    else:
        denom = (w[target.clamp(0, logits.shape[1] - 1)] * valid).sum()
    return pixel.sum() / denom.clamp(min=torch.finfo(torch.float32).tiny)


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    thresh: float = OHEM_THRESH,
    min_kept: int = OHEM_MIN_KEPT,
    class_weight: Optional[Union[torch.Tensor, Sequence[float]]] = None,
) -> torch.Tensor:
    """Online hard example mining cross-entropy (HRNet/MMSegmentation ``OhemCrossEntropy``; see module doc).

    Keeps the pixels whose true-class probability is below ``max(p_(min_kept), thresh)`` and
    averages their (class-weighted) cross-entropy. Free of host synchronisation (no
    data-dependent shapes), so it runs inside CUDA graphs / ``torch.compile`` too.
    """
    if not 0.0 <= thresh <= 1.0:
        raise ValueError(f"OHEM threshold is a probability in [0, 1], got {thresh}")
    logits = _check(logits, target).float()
    target = target.long()
    min_kept = max(1, int(min_kept))
    w = _weight(class_weight, logits)
    valid = (target != ignore_index).flatten()
    pixel = F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index, reduction="none").flatten()
    with torch.no_grad():
        safe_target = torch.where(target != ignore_index, target, torch.zeros_like(target))
        prob = logits.softmax(dim=1).gather(1, safe_target.unsqueeze(1)).flatten()
        # ignored pixels sort after every probability; index min(min_kept, n_valid - 1) as the reference
        prob = torch.where(valid, prob, torch.full_like(prob, 2.0))
        n_valid = valid.sum()
        k = torch.clamp(n_valid - 1, min=0, max=min_kept)
        kth = prob.sort().values.gather(0, k.reshape(1))
        threshold = torch.clamp(kth, min=thresh)
        keep = valid & (prob < threshold)
    kept = keep.sum()
    return (pixel * keep).sum() / kept.clamp(min=1)


class SegmentationLoss(nn.Module):
    """The training loss of Eq. 3: ``L = L_main + aux_weight * L_aux``.

    Args:
        type: ``"ohem"`` (paper recipe) or ``"ce"`` for the main output.
        aux_weight: weight alpha of the auxiliary loss (0.4 in the paper).
        aux_type: loss of the auxiliary output: ``"ce"`` (HRNet/DDRNet code) or ``"same"``
            (the main loss type, as MMSegmentation's DDRNet configs).
        ohem_thresh, ohem_min_kept: OHEM parameters (see :func:`ohem_cross_entropy`).
        class_weight: optional per-class weights of the cross-entropy.
        ignore_index: label value to ignore.

    ``forward(outputs, target)`` takes the model's train output (``{"out", "aux"}`` or a
    tensor) and returns ``(total, {"loss_main": ..., "loss_aux": ...})`` (parts detached).
    """

    def __init__(
        self,
        type: str = "ohem",
        aux_weight: float = AUX_LOSS_WEIGHT,
        aux_type: str = "ce",
        ohem_thresh: float = OHEM_THRESH,
        ohem_min_kept: int = OHEM_MIN_KEPT,
        class_weight: Optional[Sequence[float]] = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if type not in LOSS_TYPES:
            raise ValueError(f"unknown loss type {type!r}; choose one of {LOSS_TYPES}")
        if aux_type not in ("ce", "same"):
            raise ValueError(f"unknown aux loss type {aux_type!r}; choose 'ce' or 'same'")
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")
        self.type = type
        self.aux_type = type if aux_type == "same" else "ce"
        self.aux_weight = float(aux_weight)
        self.ohem_thresh = float(ohem_thresh)
        self.ohem_min_kept = int(ohem_min_kept)
        self.ignore_index = int(ignore_index)
        if class_weight is not None:
            self.register_buffer("class_weight", torch.tensor(list(class_weight), dtype=torch.float32))
        else:
            self.class_weight = None

    def single(self, logits: torch.Tensor, target: torch.Tensor, type: str) -> torch.Tensor:
        """The loss of one output with loss ``type``."""
        if type == "ohem":
            return ohem_cross_entropy(
                logits, target, self.ignore_index, self.ohem_thresh, self.ohem_min_kept, self.class_weight
            )
        return cross_entropy(logits, target, self.ignore_index, self.class_weight)

    def forward(
        self, outputs: Union[torch.Tensor, Mapping[str, torch.Tensor]], target: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if isinstance(outputs, torch.Tensor):
            outputs = {"out": outputs}
        main = self.single(outputs["out"], target, self.type)
        parts = {"loss_main": main.detach()}
        total = main
        aux = outputs.get("aux")
        if aux is not None and self.aux_weight > 0:
            aux_loss = self.single(aux, target, self.aux_type)
            parts["loss_aux"] = aux_loss.detach()
            total = total + self.aux_weight * aux_loss
        return total, parts

    def extra_repr(self) -> str:
        return (
            f"type={self.type}, aux_type={self.aux_type}, aux_weight={self.aux_weight}, "
            f"ohem_thresh={self.ohem_thresh}, ohem_min_kept={self.ohem_min_kept}, ignore_index={self.ignore_index}, "
            f"class_weight={'yes' if self.class_weight is not None else 'no'}"
        )
