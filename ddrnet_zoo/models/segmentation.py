"""DDRNet for semantic segmentation (paper Sec. III-D, III-E, Fig. 4)."""

from __future__ import annotations

import operator
from typing import Dict, Optional, Union

import timm
import torch
from torch import nn

from .config import SegmentationConfig
from .context import CONTEXT_MODULES, build_context
from .ddrnet import MODEL_ARCHS, DDRNet, arch_dict
from .layers import NormActConv, resize_to

__all__ = [
    "SegmentationHead",
    "DDRNetSegmentation",
    "create_segmentation_model",
    "create_segmentation_model_from_config",
    "AUX_LOSS_WEIGHT",
]

AUX_LOSS_WEIGHT = 0.4
"""Weight alpha of the auxiliary loss in Eq. 3 (after PSPNet)."""


def _positive_int(value, name: str) -> int:
    """``value`` as an int >= 1, else a ValueError that says what was given."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        number = 0
    if number < 1:
        raise ValueError(f"{name} must be a positive integer (e.g. 19 for Cityscapes, 11 for CamVid), got {value!r}")
    return number


class SegmentationHead(nn.Module):
    """BN-ReLU-3x3 conv to ``mid_chs``, then BN-ReLU-1x1 conv (with bias) to the classes."""

    def __init__(self, in_chs: int, mid_chs: int, num_classes: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv = NormActConv(in_chs, mid_chs, 3, **dd)
        self.classifier = NormActConv(mid_chs, num_classes, 1, bias=True, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(x))


class DDRNetSegmentation(nn.Module):
    """A DDRNet backbone in segmentation mode + context module + segmentation head (+ auxiliary head).

    Eval mode returns the main logits; train mode returns ``{"out": main, "aux": auxiliary}``
    (``"aux"`` only with an auxiliary head). Logits are at the input resolution unless
    ``upsample_logits=False`` (then 1/8, as the original code).

    Args:
        backbone: a :class:`DDRNet` built with ``segmentation_mode=True``; its classifier
            parts (conv5_2) are removed.
        num_classes: segmentation classes.
        context: ``"dappm"`` (paper), ``"ppm"``/``"spp"`` or ``"none"`` (Table X ablation).
        aux_head: add the auxiliary head on the high-resolution branch after conv4 (Eq. 3).
        upsample_logits: resize logits to the input size (bilinear, ``align_corners=False``).
    """

    def __init__(
        self,
        backbone: DDRNet,
        num_classes: int = 19,
        context: str = "dappm",
        aux_head: bool = True,
        upsample_logits: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, DDRNet) or not backbone.segmentation_mode:
            raise ValueError("backbone must be a DDRNet built with segmentation_mode=True")
        num_classes = _positive_int(num_classes, "num_classes")
        dd = {"device": device, "dtype": dtype}
        backbone.prune_to_dual()
        arch = backbone.arch
        self.backbone = backbone
        self.num_classes = num_classes
        self.context_name = str(context).lower()
        self.upsample_logits = upsample_logits
        self.context = build_context(context, arch.low_out_width, arch.context_width, arch.high_out_width, **dd)
        self.head = SegmentationHead(arch.high_out_width, arch.seg_head_width, num_classes, **dd)
        self.aux_head = SegmentationHead(arch.high_width, arch.seg_head_width, num_classes, **dd) if aux_head else None
        self.init_weights()

    @property
    def in_chans(self) -> int:
        return self.backbone.in_chans

    @property
    def min_input_size(self) -> int:
        return self.backbone.min_input_size

    def init_weights(self) -> None:
        """Kaiming-normal convolutions in the context module and heads; the backbone keeps its own."""
        for part in (self.context, self.head, self.aux_head):
            for m in part.modules() if part is not None else ():
                if isinstance(m, nn.Conv2d) and m.weight.device.type != "meta":
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    # Hub conveniences (huggingface_hub's save_pretrained / from_pretrained / push_to_hub names)
    def save_pretrained(self, save_directory, **kwargs):
        """Write a Hub folder (weights, config, model card); see :func:`ddrnet_zoo.hub.save_pretrained`."""
        from ..hub import save_pretrained

        return save_pretrained(self, save_directory, **kwargs)

    @classmethod
    def from_pretrained(cls, source, **kwargs) -> DDRNetSegmentation:
        """Load from a Hub id or local folder; see :func:`ddrnet_zoo.hub.from_pretrained`."""
        from ..hub import from_pretrained

        model = from_pretrained(source, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(f"{source} holds a {type(model).__name__}, not a segmentation model")
        return model

    def push_to_hub(self, repo_id: str, **kwargs):
        """Save and upload to ``repo_id``; see :func:`ddrnet_zoo.hub.push_to_hub`."""
        from ..hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    def forward(
        self, x: torch.Tensor, return_aux: Optional[bool] = None
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        """Main logits (eval) or ``{"out", "aux"}`` (train, or ``return_aux=True``)."""
        named = self.training if return_aux is None else return_aux
        with_aux = named and self.aux_head is not None
        feats = self.backbone.forward_dual(x, return_aux=with_aux)
        context = resize_to(self.context(feats.low_res), feats.high_res)
        out = self.head(context + feats.high_res)
        if self.upsample_logits:
            out = resize_to(out, x)
        if not named:
            return out
        outputs = {"out": out}
        if with_aux:
            aux = self.aux_head(feats.aux)
            outputs["aux"] = resize_to(aux, x) if self.upsample_logits else aux
        return outputs


def create_segmentation_model(
    model_name: str,
    num_classes: int = 19,
    context: str = "dappm",
    aux_head: bool = True,
    upsample_logits: bool = True,
    pretrained_backbone: bool = False,
    in_chans: int = 3,
    **backbone_kwargs,
) -> DDRNetSegmentation:
    """Build a DDRNet segmentation model around a backbone from timm's registry.

    Args:
        model_name: ``ddrnet23_slim``, ``ddrnet23``, ``ddrnet39`` or ``ddrnet39_1_5x``
            (a timm pretrained tag such as ``ddrnet23_slim.in1k`` selects backbone weights).
        num_classes: segmentation classes (19 for Cityscapes, 11 for CamVid).
        context: ``"dappm"``, ``"ppm"``/``"spp"`` or ``"none"``.
        aux_head: build the auxiliary (deep-supervision) head.
        upsample_logits: return logits at the input size (else at 1/8).
        pretrained_backbone: load the backbone's ImageNet weights through timm.
        in_chans: input channels.
        **backbone_kwargs: passed to ``timm.create_model`` (e.g. ``pretrained_cfg_overlay``).
    """
    num_classes = _positive_int(num_classes, "num_classes")
    arch_name = model_name.split(".", 1)[0]
    if arch_name not in MODEL_ARCHS:
        raise ValueError(f"unknown DDRNet model {model_name!r}; available: {', '.join(MODEL_ARCHS)}")
    if str(context).lower() not in CONTEXT_MODULES:
        raise ValueError(f"unknown context module {context!r}; choose one of: {', '.join(CONTEXT_MODULES)}")
    backbone = timm.create_model(
        model_name,
        pretrained=pretrained_backbone,
        segmentation_mode=True,
        in_chans=in_chans,
        **backbone_kwargs,
    )
    model = DDRNetSegmentation(
        backbone, num_classes=num_classes, context=context, aux_head=aux_head, upsample_logits=upsample_logits
    )
    custom_arch = backbone_kwargs.get("arch")
    model.config = SegmentationConfig(
        architecture=arch_name,
        arch=None if custom_arch is None else arch_dict(custom_arch),
        num_classes=num_classes,
        context=str(context).lower(),
        aux_head=aux_head,
        in_chans=in_chans,
        upsample_logits=upsample_logits,
    )
    return model


def create_segmentation_model_from_config(config: SegmentationConfig, **backbone_kwargs) -> DDRNetSegmentation:
    """Build the (randomly initialised) model described by ``config``; ``model.config`` is ``config``."""
    model = create_segmentation_model(**config.model_kwargs(), **backbone_kwargs)
    model.config = config
    return model
