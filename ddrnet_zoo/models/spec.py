"""What a checkpoint holds (task, variant, classes, heads) as a :class:`ModelSpec` that builds the model."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import timm
import torch

from ..layouts import detect_layout, read_shapes
from .segmentation import create_segmentation_model
from .variants import MODEL_ARCHS, relevant_arch, resolve_architecture

__all__ = ["ModelSpec", "infer_model_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint holds: task, variant (registered name + exact architecture), classes, heads."""

    task: str
    """``"classification"`` or ``"segmentation"``."""
    architecture: str
    """The registered variant with the same topology (``ddrnet23_slim``, ``ddrnet23``, ``ddrnet39``...)."""
    arch: Any
    """The exact :class:`~ddrnet_zoo.models.DDRNetArch` (differs from the registered one for custom widths)."""
    num_classes: int
    in_chans: int = 3
    aux_head: bool = False
    context: str = "dappm"

    @property
    def is_registered(self) -> bool:
        """True when the widths are exactly those of the registered ``architecture``."""
        return self.arch == relevant_arch(MODEL_ARCHS[self.architecture], self.task, self.arch)

    def build(self, upsample_logits: bool = True, device: Optional[Union[str, torch.device]] = None):
        """A randomly initialised model of this spec (``device="meta"`` for shapes only)."""
        custom = {} if self.is_registered else {"arch": self.arch}
        with torch.device(device) if device is not None else contextlib.nullcontext():
            if self.task == "classification":
                return timm.create_model(
                    self.architecture, num_classes=self.num_classes, in_chans=self.in_chans, **custom
                )
            return create_segmentation_model(
                self.architecture,
                num_classes=self.num_classes,
                context=self.context,
                aux_head=self.aux_head,
                upsample_logits=upsample_logits,
                in_chans=self.in_chans,
                **custom,
            )


def infer_model_spec(
    state_dict: Mapping[str, torch.Tensor],
    layout: Optional[str] = None,
    model_name: Optional[str] = None,
    name: str = "<state dict>",
) -> ModelSpec:
    """Infer task, variant, classes and heads of an unwrapped state dict from its keys and shapes.

    ``model_name`` (e.g. ``ddrnet23``) asserts the variant: a checkpoint of another variant raises
    a :class:`~ddrnet_zoo.io.CheckpointError` listing the differing widths/depths.
    """
    layout = layout or detect_layout(state_dict, name)
    info = read_shapes(state_dict, layout, name)
    architecture, arch = resolve_architecture(info, model_name, name)
    return ModelSpec(
        task=info["task"],
        architecture=architecture,
        arch=arch,
        num_classes=int(info["num_classes"]),
        in_chans=int(info["in_chans"]),
        aux_head=bool(info.get("aux_head", False)),
        context=info.get("context", "dappm"),
    )
