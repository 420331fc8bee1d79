"""Which registered DDRNet variant a checkpoint's fields describe (shapes read by :mod:`ddrnet_zoo.layouts`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

from ..io import CheckpointError
from .ddrnet import MODEL_ARCHS, DDRNetArch

__all__ = ["resolve_architecture", "relevant_arch"]

_ARCH_FIELDS = ("width", "depths", "conv4_fusions", "head_width", "seg_head_width", "context_width")


def resolve_architecture(info: Dict[str, Any], model_name: Optional[str], name: str) -> Tuple[str, DDRNetArch]:
    """(registered name, exact :class:`DDRNetArch`) for the fields :func:`~ddrnet_zoo.layouts.read_shapes` read.

    Custom widths keep the closest registered name; ``model_name`` asserts the variant (a checkpoint
    of another variant is a :class:`~ddrnet_zoo.io.CheckpointError` listing the differing fields).
    """
    fields = {k: info[k] for k in _ARCH_FIELDS if k in info}
    fields["depths"] = tuple(int(d) for d in fields["depths"])
    if model_name is not None:
        base_name = model_name.split(".", 1)[0]
        if base_name not in MODEL_ARCHS:
            raise CheckpointError(f"unknown model {model_name!r}; available: {', '.join(MODEL_ARCHS)}")
        registered = MODEL_ARCHS[base_name]
        diffs = [
            f"{k}: checkpoint {v}, {base_name} {getattr(registered, k)}"
            for k, v in fields.items()
            if getattr(registered, k) != v
        ]
        if diffs:
            raise CheckpointError(
                f"{name}: the checkpoint is not a {base_name} ({'; '.join(diffs)}). Leave out the model name to "
                "infer the variant from the weights"
            )
        return base_name, registered
    same_topology = [
        n for n, a in MODEL_ARCHS.items() if a.depths == fields["depths"] and a.conv4_fusions == fields["conv4_fusions"]
    ]
    candidates = same_topology or [n for n, a in MODEL_ARCHS.items() if a.conv4_fusions == fields["conv4_fusions"]]
    if not candidates:
        candidates = list(MODEL_ARCHS)
    for n in candidates:
        if all(getattr(MODEL_ARCHS[n], k) == v for k, v in fields.items()):
            return n, MODEL_ARCHS[n]
    best = min(candidates, key=lambda n: abs(MODEL_ARCHS[n].width - fields["width"]))
    try:
        arch = dataclasses.replace(MODEL_ARCHS[best], **fields)
    except ValueError as e:
        raise CheckpointError(f"{name}: inconsistent architecture in the checkpoint: {e}") from None
    return best, arch


def relevant_arch(registered: DDRNetArch, task: str, inferred: DDRNetArch) -> DDRNetArch:
    """``registered`` with the fields a checkpoint of ``task`` cannot show replaced by ``inferred``'s."""
    if task == "classification":
        return dataclasses.replace(
            registered, seg_head_width=inferred.seg_head_width, context_width=inferred.context_width
        )
    return dataclasses.replace(registered, head_width=inferred.head_width)
