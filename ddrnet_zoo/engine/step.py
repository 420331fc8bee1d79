"""One optimizer step: forward (autocast, channels_last) and backward of ``accum_steps`` micro-batches
(gradients synchronised by DDP on the last one only), then the (GradScaler-wrapped) SGD step."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from .evaluator import autocast_context

__all__ = ["train_step"]


def train_step(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batches: Iterator[Dict[str, Any]],
    totals: torch.Tensor,
    accum_steps: int = 1,
    amp: str = "none",
    channels_last: bool = False,
    ddp: Optional[DistributedDataParallel] = None,
) -> None:
    """Train on the next ``accum_steps`` batches of ``batches``; adds their ``[loss, loss_main, loss_aux]``
    divided by ``accum_steps`` to ``totals`` (a tensor on the device: no host round-trip per step).

    ``model`` is what runs forward (DDP-wrapped and/or compiled); ``ddp`` is the DDP wrapper, if any,
    whose ``no_sync`` skips the gradient all-reduce of all but the last micro-batch.
    """
    optimizer.zero_grad(set_to_none=True)
    device = totals.device
    for micro in range(accum_steps):
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        sync = ddp is None or micro == accum_steps - 1
        with contextlib.nullcontext() if sync else model.no_sync():
            with autocast_context(device, amp):
                outputs = model(images)
            loss, parts = criterion(outputs, labels)
            scaler.scale(loss / accum_steps).backward()
        aux = parts.get("loss_aux", torch.zeros((), device=device))
        totals += torch.stack([loss.detach(), parts["loss_main"], aux]) / accum_steps
    scaler.step(optimizer)
    scaler.update()
