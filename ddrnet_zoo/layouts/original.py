"""Key mapping between ddrnet_zoo and the original DDRNet release (``ydhongHIT/DDRNet``).

The original names (``conv1``, ``layer3_``, ``compression3``, ``down4``, ``spp.scale1``,
``final_layer``, ``seghead_extra``, ...) live only here. The mapping is derived from our
key strings, so it covers every variant (DDRNet-39's split conv4 becomes ``layer3_1``,
``layer3_2``, ``down3_1``, ...) and both classification and segmentation models.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Tuple

from ..errors import InputError

__all__ = ["original_keys"]

_BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _stage_names(num_conv4: int) -> List[str]:
    """Original suffixes of the bilateral stages: ['3', '4'] or ['3_1', '3_2', '4']."""
    return (["3"] if num_conv4 == 1 else [f"3_{i + 1}" for i in range(num_conv4)]) + ["4"]


def _prefix_rules(num_conv4: int) -> List[Tuple[str, str, str]]:
    """(our prefix, original prefix, kind) for every module group of the backbone."""
    rules = [("stem", "conv1", "chain"), ("stage2", "layer1", "blocks"), ("stage3", "layer2", "blocks")]
    for k, n in enumerate(_stage_names(num_conv4)):
        rules += [
            (f"bilateral_stages.{k}.low_res", f"layer{n}", "blocks"),
            (f"bilateral_stages.{k}.high_res", f"layer{n}_", "blocks"),
            (f"bilateral_stages.{k}.bilateral_fusion.high_to_low", f"down{n}", "chain"),
            (f"bilateral_stages.{k}.bilateral_fusion.low_to_high", f"compression{n}", "single"),
        ]
    rules += [
        ("high_res_bottleneck", "layer5_.0", "block"),
        ("low_res_bottleneck", "layer5.0", "block"),
        ("final_fusion", "down5", "chain"),
        ("conv_head", "last_layer", "single"),
    ]
    return rules


def _block_key(rest: str) -> str:
    """Inside a residual block: ``conv1.conv.weight`` -> ``conv1.weight``, ``conv1.bn.x`` -> ``bn1.x``."""
    m = re.fullmatch(r"(conv\d)\.(conv|bn)\.(.+)", rest)
    if m:
        conv, part, param = m.groups()
        return f"{conv}.{param}" if part == "conv" else f"bn{conv[-1]}.{param}"
    m = re.fullmatch(r"downsample\.(conv|bn)\.(.+)", rest)
    if m:
        return f"downsample.{0 if m.group(1) == 'conv' else 1}.{m.group(2)}"
    raise KeyError(rest)


def _conv_norm_key(rest: str, chain: bool) -> str:
    """ConvNormAct in a Sequential chain: step j's conv -> index 3j, its BN -> 3j+1."""
    if chain:
        m = re.fullmatch(r"(\d+)\.(conv|bn)\.(.+)", rest)
        if not m:
            raise KeyError(rest)
        j, part, param = m.groups()
        return f"{3 * int(j) + (part == 'bn')}.{param}"
    m = re.fullmatch(r"(conv|bn)\.(.+)", rest)
    if not m:
        raise KeyError(rest)
    return f"{int(m.group(1) == 'bn')}.{m.group(2)}"


def _backbone_key(key: str, num_conv4: int) -> str:
    if key.startswith("fc."):
        return "linear." + key[3:]
    for ours, theirs, kind in _prefix_rules(num_conv4):
        if not key.startswith(ours + "."):
            continue
        rest = key[len(ours) + 1 :]
        if kind == "blocks":
            idx, _, inner = rest.partition(".")
            return f"{theirs}.{idx}.{_block_key(inner)}"
        if kind == "block":
            return f"{theirs}.{_block_key(rest)}"
        return f"{theirs}.{_conv_norm_key(rest, chain=kind == 'chain')}"
    raise KeyError(key)


def _pre_act_key(rest: str, bn_index: int, conv_index: int) -> str:
    """NormActConv ``bn.x`` / ``conv.x`` -> original Sequential(BN, ReLU, Conv) indices."""
    part, _, param = rest.partition(".")
    return f"{bn_index if part == 'bn' else conv_index}.{param}"


def _context_key(rest: str) -> str:
    m = re.fullmatch(r"scales\.0\.(.+)", rest)
    if m:
        return "spp.scale0." + _pre_act_key(m.group(1), 0, 2)
    m = re.fullmatch(r"scales\.(\d)\.1\.(.+)", rest)
    if m:  # Sequential(pool, NormActConv) -> Sequential(pool, BN, ReLU, Conv)
        return f"spp.scale{m.group(1)}." + _pre_act_key(m.group(2), 1, 3)
    m = re.fullmatch(r"fuse\.(\d)\.(.+)", rest)
    if m:
        return f"spp.process{int(m.group(1)) + 1}." + _pre_act_key(m.group(2), 0, 2)
    m = re.fullmatch(r"(compression|shortcut)\.(.+)", rest)
    if m:
        return f"spp.{m.group(1)}." + _pre_act_key(m.group(2), 0, 2)
    raise KeyError(rest)


def _head_key(rest: str, original: str) -> str:
    m = re.fullmatch(r"(conv|classifier)\.(bn|conv)\.(.+)", rest)
    if not m:
        raise KeyError(rest)
    unit, part, param = m.groups()
    n = 1 if unit == "conv" else 2
    return f"{original}.{'bn' if part == 'bn' else 'conv'}{n}.{param}"


def original_keys(keys: Iterable[str], num_conv4: int) -> Dict[str, str]:
    """Map each of our state-dict ``keys`` to the original key (``num_conv4``: conv4 stages, 2 for DDRNet-39).

    Keys of a segmentation model start with ``backbone.``/``context.``/``head.``/``aux_head.``;
    a classifier's keys are bare. Raises ``ValueError`` for a key the original release has no name for.
    """
    mapping: Dict[str, str] = {}
    for key in keys:
        try:
            if key.startswith("backbone."):
                theirs = _backbone_key(key[len("backbone.") :], num_conv4)
            elif key.startswith("context."):
                theirs = _context_key(key[len("context.") :])
            elif key.startswith("head."):
                theirs = _head_key(key[len("head.") :], "final_layer")
            elif key.startswith("aux_head."):
                theirs = _head_key(key[len("aux_head.") :], "seghead_extra")
            else:
                theirs = _backbone_key(key, num_conv4)
        except KeyError:
            raise InputError(f"no original-layout name for parameter {key!r}") from None
        mapping[key] = theirs
    return mapping
