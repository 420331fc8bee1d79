"""Key mapping between ddrnet_zoo and MMSegmentation's DDRNet (``mmseg.models.backbones.DDRNet`` + ``DDRHead``).

MMSegmentation's names (``backbone.stem.2``, ``context_branch_layers``, ``spatial_branch_layers``,
``compression_1``, ``down_2``, ``spp.processes``, ``decode_head.conv_seg``, ``aux_cls_seg``) live
only here. The map is the composition ours -> original (:func:`.original.original_keys`) -> MMSegmentation.

MMSegmentation has no stem conv biases: the original ``conv1.0``/``conv1.3`` biases ``b`` are
folded into the following BN's running mean (``running_mean' = running_mean - b``), which gives
the same output in eval mode. Converting from MMSegmentation we keep ``running_mean'`` and set
our stem conv bias to zero: the outputs are those of the MMSegmentation model bit for bit, and
the equivalence also holds in training (a constant bias before BN cancels in the batch mean,
gets a zero gradient, and shifts the running-mean update by exactly ``b``). Exporting to
MMSegmentation folds our bias the same way. MMSegmentation has no DDRNet-39 (split conv4),
no classification model and only DAPPM.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

from ..errors import InputError

__all__ = ["mmseg_keys", "original_to_mmseg_key", "stem_bn_key", "STEM_BIAS_KEYS"]

STEM_BIAS_KEYS = ("backbone.stem.0.conv.bias", "backbone.stem.1.conv.bias")
"""Our stem conv biases, which MMSegmentation folds into ``backbone.stem.{0,1}.bn.running_mean``."""

_BRANCHES = {
    "layer1": "backbone.stem.2",
    "layer2": "backbone.stem.4",
    "layer3": "backbone.context_branch_layers.0",
    "layer4": "backbone.context_branch_layers.1",
    "layer5": "backbone.context_branch_layers.2",
    "layer3_": "backbone.spatial_branch_layers.0",
    "layer4_": "backbone.spatial_branch_layers.1",
    "layer5_": "backbone.spatial_branch_layers.2",
}
# Sequential(Conv, BN[, ReLU, Conv, BN]) of the original -> ConvModule(conv, bn) chains of MMSegmentation
_CONV_BN = {
    "conv1.0": "backbone.stem.0.conv",
    "conv1.1": "backbone.stem.0.bn",
    "conv1.3": "backbone.stem.1.conv",
    "conv1.4": "backbone.stem.1.bn",
    "compression3.0": "backbone.compression_1.conv",
    "compression3.1": "backbone.compression_1.bn",
    "compression4.0": "backbone.compression_2.conv",
    "compression4.1": "backbone.compression_2.bn",
    "down3.0": "backbone.down_1.conv",
    "down3.1": "backbone.down_1.bn",
    "down4.0": "backbone.down_2.0.conv",
    "down4.1": "backbone.down_2.0.bn",
    "down4.3": "backbone.down_2.1.conv",
    "down4.4": "backbone.down_2.1.bn",
    # heads: BN-ReLU-Conv3x3 (ConvModule, norm first), BN, ReLU, Conv1x1 (conv_seg)
    "final_layer.bn1": "decode_head.head.0.bn",
    "final_layer.conv1": "decode_head.head.0.conv",
    "final_layer.bn2": "decode_head.head.1",
    "final_layer.conv2": "decode_head.conv_seg",
    "seghead_extra.bn1": "decode_head.aux_head.0.bn",
    "seghead_extra.conv1": "decode_head.aux_head.0.conv",
    "seghead_extra.bn2": "decode_head.aux_head.1",
    "seghead_extra.conv2": "decode_head.aux_cls_seg",
}


def _spp_key(rest: str) -> str:
    """``spp.scale0.0`` -> ``backbone.spp.scales.0.bn`` etc. (BN-ReLU-Conv ConvModules)."""
    m = re.fullmatch(r"scale0\.(0|2)\.(.+)", rest)
    if m:
        return f"backbone.spp.scales.0.{'bn' if m.group(1) == '0' else 'conv'}.{m.group(2)}"
    m = re.fullmatch(r"scale(\d)\.(1|3)\.(.+)", rest)
    if m:
        return f"backbone.spp.scales.{m.group(1)}.1.{'bn' if m.group(2) == '1' else 'conv'}.{m.group(3)}"
    m = re.fullmatch(r"process(\d)\.(0|2)\.(.+)", rest)
    if m:
        return f"backbone.spp.processes.{int(m.group(1)) - 1}.{'bn' if m.group(2) == '0' else 'conv'}.{m.group(3)}"
    m = re.fullmatch(r"(compression|shortcut)\.(0|2)\.(.+)", rest)
    if m:
        return f"backbone.spp.{m.group(1)}.{'bn' if m.group(2) == '0' else 'conv'}.{m.group(3)}"
    raise KeyError(rest)


def _block_key(rest: str) -> str:
    """Inside a residual block: ``conv1.weight`` -> ``conv1.conv.weight``, ``bn1.x`` -> ``conv1.bn.x``."""
    m = re.fullmatch(r"(\d+)\.(conv|bn)(\d)\.(.+)", rest)
    if m:
        idx, part, n, param = m.groups()
        return f"{idx}.conv{n}.{'conv' if part == 'conv' else 'bn'}.{param}"
    m = re.fullmatch(r"(\d+)\.downsample\.([01])\.(.+)", rest)
    if m:
        return rest
    raise KeyError(rest)


def original_to_mmseg_key(key: str) -> str:
    """MMSegmentation's name for an original-layout key (segmentation, single conv4)."""
    if key.startswith("spp."):
        return _spp_key(key[4:])
    head, _, rest = key.partition(".")
    if head in _BRANCHES:
        return f"{_BRANCHES[head]}.{_block_key(rest)}"
    for theirs, mm in _CONV_BN.items():
        if key.startswith(theirs + "."):
            return mm + key[len(theirs) :]
    raise KeyError(key)


def mmseg_keys(original: Mapping[str, str]) -> Dict[str, Optional[str]]:
    """Our key -> MMSegmentation key, from our key -> original key (:func:`original_keys`).

    The stem conv biases map to ``None`` (MMSegmentation folds them into the BN running mean).
    Raises ``ValueError`` for a key MMSegmentation has no name for.
    """
    mapping: Dict[str, Optional[str]] = {}
    for ours, theirs in original.items():
        if ours in STEM_BIAS_KEYS:
            mapping[ours] = None
            continue
        try:
            mapping[ours] = original_to_mmseg_key(theirs)
        except KeyError:
            raise InputError(f"no MMSegmentation name for parameter {ours!r} ({theirs!r})") from None
    return mapping


def stem_bn_key(bias_key: str) -> str:
    """The BN running mean a stem conv bias is folded into."""
    return bias_key.replace(".conv.bias", ".bn.running_mean")
