"""Our models' weights under the original DDRNet release's names (``ydhongHIT/DDRNet``).

The names themselves are :mod:`ddrnet_zoo.layouts.original`; this module applies them to a model.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from ..errors import InputError
from ..layouts.original import original_keys
from ..models import DDRNet, DDRNetSegmentation

__all__ = ["original_key_map", "to_original_state_dict"]


def original_key_map(model: nn.Module) -> Dict[str, str]:
    """Map every state-dict key of ``model`` (a DDRNet or DDRNetSegmentation) to the original key.

    Raises ``ValueError`` for models the original release cannot express (PPM or no context).
    """
    if isinstance(model, DDRNetSegmentation):
        if model.context_name != "dappm":
            raise InputError(
                f"the original release only has DAPPM; a model with context={model.context_name!r} "
                "has no original layout"
            )
        num_conv4 = model.backbone.num_conv4_stages
    elif isinstance(model, DDRNet):
        num_conv4 = model.num_conv4_stages
    else:
        raise InputError(f"expected a DDRNet or DDRNetSegmentation, got {type(model).__name__}")
    return original_keys(model.state_dict(), num_conv4)


def to_original_state_dict(model: nn.Module, prefix: str = "") -> Dict[str, torch.Tensor]:
    """``model``'s weights under the original release's names, for code built on the original model files.

    ``prefix="model."`` gives the layout of the official Cityscapes ``.pth`` files (a training
    wrapper's state dict, which HRNet-style evaluation scripts strip); bare keys are the layout of
    the official ImageNet files and of ``DualResNet.load_state_dict``.
    """
    state = model.state_dict()
    return {prefix + theirs: state[ours].detach().clone() for ours, theirs in original_key_map(model).items()}
