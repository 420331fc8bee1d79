"""Generic parameter and FLOP counting (fvcore); the paper's conventions and table are :mod:`ddrnet_zoo.flops`.

Note: fvcore's ``set_op_handle("aten::batch_norm", None)`` does *not* drop BN (a handle
registered by default takes precedence over the ignore list); we register a handle that
counts zero instead.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn

with warnings.catch_warnings():
    # fvcore (last release 2022) applies torch.jit.script to its focal loss at import, which torch deprecates
    # with a FutureWarning that is neither ours nor the user's to act on; silenced here, its only import
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis

__all__ = ["count_params", "count_flops"]


def _zero_flops(inputs, outputs) -> int:
    return 0


def count_params(model: nn.Module, exclude_norm: bool = False) -> int:
    """Number of parameters; with ``exclude_norm``, only those outside normalisation layers."""
    if not exclude_norm:
        return sum(p.numel() for p in model.parameters())
    total = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            continue
        total += sum(p.numel() for p in module.parameters(recurse=False))
    return total


def count_flops(model: nn.Module, input_size: Sequence[int], exclude_norm: bool = False) -> int:
    """fvcore FLOPs (multiply-adds) of one forward pass in eval mode at ``input_size`` (N, C, H, W)."""
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(tuple(input_size))
        analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        if exclude_norm:
            analysis.set_op_handle("aten::batch_norm", _zero_flops)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python bool conversions
            return int(analysis.total())
    finally:
        model.train(was_training)
