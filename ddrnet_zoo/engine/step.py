"""One optimizer step: forward (autocast, channels_last) and backward of ``accum_steps`` micro-batches
(gradients synchronised by DDP on the last one only), then the (GradScaler-wrapped) SGD step."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from .evaluator import autocast_context

__all__ = ["StepContext", "train_step"]


@dataclass
class StepContext:
    """What every optimizer step of a run uses.

    ``model`` is what runs forward (DDP-wrapped and/or compiled); ``ddp`` is the DDP wrapper, if any,
    whose ``no_sync`` skips the gradient all-reduce of all but the last micro-batch (``model`` may be
    a compiled module, which is not the DDP wrapper).
    """

    model: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    accum_steps: int = 1
    amp: str = "none"
    channels_last: bool = False
    ddp: Optional[DistributedDataParallel] = None


def train_step(ctx: StepContext, batches: Iterator[Dict[str, Any]], totals: torch.Tensor) -> None:
    """Train on the next ``ctx.accum_steps`` batches of ``batches``; adds their ``[loss, loss_main, loss_aux]``
    divided by ``accum_steps`` to ``totals`` (a tensor on the device: no host round-trip per step)."""
    ctx.optimizer.zero_grad(set_to_none=True)
    device = totals.device
    for micro in range(ctx.accum_steps):
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        if ctx.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        last = micro == ctx.accum_steps - 1
        with contextlib.nullcontext() if ctx.ddp is None or last else ctx.ddp.no_sync():
            with autocast_context(device, ctx.amp):
                outputs = ctx.model(images)
            loss, parts = ctx.criterion(outputs, labels)
            ctx.scaler.scale(loss / ctx.accum_steps).backward()
        aux = parts.get("loss_aux", torch.zeros((), device=device))
        totals += torch.stack([loss.detach(), parts["loss_main"], aux]) / ctx.accum_steps
    ctx.scaler.step(ctx.optimizer)
    ctx.scaler.update()
