"""Our segmentation models' weights in MMSegmentation's DDRNet layout (stem conv biases folded into BN).

The names and the folding rule are :mod:`ddrnet_zoo.layouts.mmseg`; this module applies them to a model.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from ..errors import InputError
from ..layouts.mmseg import STEM_BIAS_KEYS, mmseg_keys, stem_bn_key
from ..models import DDRNetSegmentation
from .original import original_key_map

__all__ = ["mmseg_key_map", "to_mmseg_state_dict"]


def mmseg_key_map(model: nn.Module) -> Dict[str, Optional[str]]:
    """Map every state-dict key of a DDRNetSegmentation to its MMSegmentation key.

    The stem conv biases map to ``None`` (MMSegmentation folds them into the BN running mean).
    Raises ``ValueError`` for models MMSegmentation cannot express.
    """
    if not isinstance(model, DDRNetSegmentation):
        raise InputError(f"MMSegmentation's layout holds DDRNet segmentation models only, got {type(model).__name__}")
    if model.backbone.num_conv4_stages != 1:
        raise InputError("MMSegmentation has no DDRNet-39 (conv4 split in two); use the original layout instead")
    return mmseg_keys(original_key_map(model))


def to_mmseg_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Our segmentation model's weights in MMSegmentation's layout (stem conv biases folded into BN)."""
    ours = model.state_dict()
    folded = {stem_bn_key(b) for b in STEM_BIAS_KEYS}
    out: Dict[str, torch.Tensor] = {}
    for key, theirs in mmseg_key_map(model).items():
        if theirs is None:
            continue
        tensor = ours[key]
        if key in folded:
            tensor = tensor - ours[key.replace(".bn.running_mean", ".conv.bias")]
        out[theirs] = tensor.detach().clone()
    return out
