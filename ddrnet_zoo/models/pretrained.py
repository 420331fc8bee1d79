"""Weights into our models: the one strict loader and building a model around loaded weights.

Every loader ends here (:func:`ddrnet_zoo.load_model`, the converters, the engine, the mixin's hook);
finding and reading the files is theirs (:mod:`ddrnet_zoo.hub.source`, :func:`ddrnet_zoo.io.read_state_dict`).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Mapping, TypeVar, Union

import torch
from torch import nn

from ..io import CheckpointError
from ..layouts import read_shapes
from ..text import listing
from .ddrnet import MODEL_ARCHS, DDRNet
from .variants import relevant_arch, resolve_architecture

__all__ = ["build_with_weights", "load_state_dict_strict"]

_CLASSIFIER_KEYS = ("fc.weight", "fc.bias", "head.classifier.conv.weight", "head.classifier.conv.bias")
_AUX_CLASSIFIER_KEYS = ("aux_head.classifier.conv.weight", "aux_head.classifier.conv.bias")

ModelT = TypeVar("ModelT", bound=nn.Module)


def _model_description(model: nn.Module) -> str:
    if isinstance(getattr(model, "architecture", None), str):  # a DDRNetSegmentation names its variant so
        return f"{model.architecture} segmentation model"
    if isinstance(model, DDRNet):
        name = getattr(model, "pretrained_cfg", {}).get("architecture", "DDRNet")
        return f"{name} classifier"
    return type(model).__name__


def load_state_dict_strict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "<state dict>",
    strict: bool = True,
    assign: bool = False,
) -> None:
    """Load ``state_dict`` into ``model``; any missing/unexpected key or shape mismatch is a clear error.

    The error names ``source`` (the file) and lists the keys, says when only the class count
    differs, and which variant the weights look like when the widths differ. Floating-point
    tensors are cast to the model's dtype. ``strict=False`` still refuses shape mismatches.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if mismatched or (strict and (missing or unexpected)):
        what = _model_description(model)
        problems = []
        keys = {k for k, _, _ in mismatched}
        cls_keys = keys & set(_CLASSIFIER_KEYS + _AUX_CLASSIFIER_KEYS)
        if cls_keys and keys == cls_keys and not missing and not unexpected:
            k, got, want = next(m for m in mismatched if m[0] in cls_keys)
            raise CheckpointError(
                f"{source}: wrong class count: the checkpoint has {got[0]} classes, the model {want[0]}: "
                f"build the model with num_classes={got[0]}\n"
                f"  ({what}; {k}: {got} vs {want}); or fine-tune a new head from the backbone weights"
            )
        if mismatched:
            problems.append(
                "shape mismatches (checkpoint vs model): "
                + listing([f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in mismatched], 6)
            )
        if missing:
            problems.append(f"missing keys: {listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {listing(unexpected)}")
        hint = "keys differ (below)"
        if mismatched:
            hint = "another variant (below)"
            try:
                info = read_shapes(state_dict, "ours", source)
                architecture, a = resolve_architecture(info, None, source)
                registered = a == relevant_arch(MODEL_ARCHS[architecture], info["task"], a)
                problems.insert(
                    0,
                    f"the weights are those of a {architecture}{'' if registered else ' (custom)'} "
                    f"(width {a.width}, depths {list(a.depths)}, {info['num_classes']} classes)",
                )
            except Exception:  # the guess of what the weights are; the error stands without it
                pass
        elif missing and all(k.startswith("aux_head.") for k in missing) and not unexpected:
            hint = "the checkpoint has no auxiliary head: build the model with aux_head=False"
        elif unexpected and all(k.startswith("aux_head.") for k in unexpected) and not missing:
            hint = "the checkpoint has an auxiliary head: build the model with aux_head=True"
        details = "\n".join(f"  {p}" for p in problems)
        raise CheckpointError(f"{source}: does not match the {what}: {hint}\n{details}")
    if missing or unexpected:
        warnings.warn(
            f"{source}: loaded non-strictly; missing {listing(missing)}; unexpected {listing(unexpected)}",
            stacklevel=2,
        )
    state = {}
    for k, v in state_dict.items():
        if k not in expected:
            continue
        if v.is_floating_point() and expected[k].is_floating_point():
            v = v.to(expected[k].dtype)
        # assign: own, freshly allocated (aligned) memory; weights read from a file can sit at unaligned
        # offsets of its buffer, which changes CPU kernels' rounding and speed
        state[k] = v.clone(memory_format=torch.contiguous_format) if assign else v
    model.load_state_dict(state, strict=strict, assign=assign)


def build_with_weights(
    build: Callable[[], ModelT],
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    map_location: Union[str, torch.device] = "cpu",
    strict: bool = True,
) -> ModelT:
    """The model ``build()`` makes, with ``state_dict`` loaded strictly, on ``map_location``, in eval mode.

    Strict: built on the meta device and given the loaded tensors (no memory until the weights are
    checked, no wasted initialisation). ``strict=False``: keys the weights lack keep their initialisation.
    """
    with torch.device("meta") if strict else contextlib.nullcontext():
        model = build()
    state = {k: v.to(map_location) for k, v in state_dict.items()}
    load_state_dict_strict(model, state, source, strict=strict, assign=strict)
    return model.to(map_location).eval()
