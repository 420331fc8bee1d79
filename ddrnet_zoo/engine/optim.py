"""Optimizer and learning-rate schedule of the paper: SGD (momentum 0.9, weight decay 5e-4) with
poly decay ``lr = base_lr * (1 - iter / max_iters) ** 0.9`` per iteration (as the HRNet code), and an
optional linear warm-up."""

from __future__ import annotations

from typing import List

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["PolyLR", "build_optimizer"]


class PolyLR(LRScheduler):
    """Poly decay per iteration with optional linear warm-up; stepped once per optimizer step.

    ``lr(i) = (base_lr - min_lr) * (1 - i / max_iters) ** power + min_lr``; during the first
    ``warmup_iters`` iterations it is multiplied by a factor rising linearly from
    ``warmup_ratio`` to 1 (MMCV's linear warm-up). Its state is plain numbers (checkpoint-safe).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iters: int,
        power: float = 0.9,
        min_lr: float = 0.0,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        if max_iters < 1:
            raise ValueError(f"max_iters must be >= 1, got {max_iters}")
        self.max_iters = int(max_iters)
        self.power = float(power)
        self.min_lr = float(min_lr)
        self.warmup_iters = int(warmup_iters)
        self.warmup_ratio = float(warmup_ratio)
        super().__init__(optimizer, last_epoch)

    def factor_lr(self, base_lr: float, i: int) -> float:
        i = min(i, self.max_iters)
        lr = (base_lr - self.min_lr) * (1.0 - i / self.max_iters) ** self.power + self.min_lr
        if i < self.warmup_iters:
            k = (1.0 - i / self.warmup_iters) * (1.0 - self.warmup_ratio)
            lr *= 1.0 - k
        return lr

    def get_lr(self) -> List[float]:
        return [self.factor_lr(b, self.last_epoch) for b in self.base_lrs]


def build_optimizer(
    model: torch.nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False
) -> torch.optim.SGD:
    """SGD over all parameters with weight decay on all of them (as the HRNet/DDRNet code)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
