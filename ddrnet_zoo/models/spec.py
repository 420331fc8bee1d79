"""What a checkpoint holds, read from its tensor shapes: its task and the arguments that build its model."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import timm
import torch
from torch import nn

from ..layouts import detect_layout, read_shapes
from .ddrnet import arch_dict
from .segmentation import DDRNetSegmentation
from .variants import MODEL_ARCHS, relevant_arch, resolve_architecture

__all__ = ["model_from_args", "infer_model_args"]


def infer_model_args(
    state_dict: Mapping[str, torch.Tensor],
    layout: Optional[str] = None,
    model_name: Optional[str] = None,
    name: str = "<state dict>",
) -> Tuple[str, Dict[str, Any]]:
    """``(task, arguments)`` of an unwrapped state dict, from its keys and shapes.

    ``task`` is ``"segmentation"`` or ``"classification"``. The arguments are those ``config.json``
    holds: ``architecture`` (the registered variant of the same topology), ``num_classes``, ``in_chans``,
    ``arch`` (the exact widths as a dict, None when they are the registered variant's), and for
    segmentation ``aux_head`` and ``context``. :func:`model_from_args` builds the model they describe.
    ``model_name`` (e.g. ``ddrnet23``) asserts the variant: a checkpoint of another variant raises
    a :class:`~ddrnet_zoo.io.CheckpointError` listing the differing widths/depths.
    """
    layout = layout or detect_layout(state_dict, name)
    info = read_shapes(state_dict, layout, name)
    task = info["task"]
    architecture, arch = resolve_architecture(info, model_name, name)
    registered = arch == relevant_arch(MODEL_ARCHS[architecture], task, arch)
    args: Dict[str, Any] = {
        "architecture": architecture,
        "num_classes": int(info["num_classes"]),
        "in_chans": int(info["in_chans"]),
        "arch": None if registered else arch_dict(arch),
    }
    if task == "segmentation":
        args.update(aux_head=bool(info.get("aux_head", False)), context=info.get("context", "dappm"))
    return task, args


def model_from_args(task: str, args: Mapping[str, Any], device: Optional[Union[str, torch.device]] = None) -> nn.Module:
    """The randomly initialised model of :func:`infer_model_args`'s ``(task, arguments)`` (``device="meta"``:
    shapes only): a :class:`DDRNetSegmentation`, or a timm DDRNet classifier."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        if task == "segmentation":
            return DDRNetSegmentation(**args)
        kwargs = {k: v for k, v in args.items() if k not in ("architecture", "arch")}
        custom = {} if args.get("arch") is None else {"arch": args["arch"]}
        return timm.create_model(args["architecture"], **kwargs, **custom)
