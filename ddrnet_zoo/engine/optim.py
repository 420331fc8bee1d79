"""Optimizer and learning-rate schedule of the paper: SGD (momentum 0.9, weight decay 5e-4) with
poly decay ``lr = base_lr * (1 - iter / max_iters) ** 0.9`` per iteration (as the HRNet code), and an
optional linear warm-up."""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["PolyLR", "poly_lr_factor", "build_optimizer"]


def poly_lr_factor(
    i: int, max_iters: int, power: float = 0.9, min_ratio: float = 0.0, warmup_iters: int = 0, warmup_ratio: float = 0.1
) -> float:
    """The multiplier of the base lr at iteration ``i``: poly decay to ``min_ratio``, times MMCV's linear warm-up.

    ``((1 - min_ratio) * (1 - i / max_iters) ** power + min_ratio)``, during the first ``warmup_iters``
    iterations multiplied by a factor rising linearly from ``warmup_ratio`` to 1.
    """
    i = min(i, max_iters)
    factor = (1.0 - min_ratio) * (1.0 - i / max_iters) ** power + min_ratio
    if i < warmup_iters:
        factor *= 1.0 - (1.0 - i / warmup_iters) * (1.0 - warmup_ratio)
    return factor


class PolyLR(LambdaLR):
    """Poly decay per iteration with optional linear warm-up; stepped once per optimizer step.

    ``lr(i) = (base_lr - min_lr) * (1 - i / max_iters) ** power + min_lr``; during the first
    ``warmup_iters`` iterations it is multiplied by a factor rising linearly from
    ``warmup_ratio`` to 1 (MMCV's linear warm-up). Its state is plain numbers (checkpoint-safe).

    A ``torch.optim.lr_scheduler.LambdaLR`` of :func:`poly_lr_factor`. Not timm's ``PolyLRScheduler``:
    its warm-up ramps linearly up to the base lr instead of scaling the poly lr, so the first
    ``warmup_iters`` learning rates would differ from the recipes'; nor torch's ``PolynomialLR``,
    which has no floor (``min_lr``) and computes each lr from the previous one (rounding accumulates).
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
        # one lambda per parameter group: min_lr is a fraction of that group's base lr
        bases = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        super().__init__(optimizer, [self._lambda(b) for b in bases], last_epoch)

    def _lambda(self, base_lr: float):
        # plain functions (not callable objects): LambdaLR stores no state for them, checkpoints stay plain numbers
        return lambda i: poly_lr_factor(
            i, self.max_iters, self.power, self.min_lr / base_lr, self.warmup_iters, self.warmup_ratio
        )

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore a state of :meth:`state_dict` (also the pre-``LambdaLR`` checkpoints, which lack ``lr_lambdas``)."""
        super().load_state_dict({"lr_lambdas": [None] * len(self.lr_lambdas), **state_dict})


def build_optimizer(
    model: torch.nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False
) -> torch.optim.SGD:
    """SGD over all parameters with weight decay on all of them (as the HRNet/DDRNet code)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
