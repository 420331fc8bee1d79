"""DDRNet for semantic segmentation (paper Sec. III-D, III-E, Fig. 4), built from and carrying its config.

Hub I/O follows :class:`huggingface_hub.PyTorchModelHubMixin`: ``_save_pretrained`` writes the weights
and ``_from_pretrained`` loads them strictly. Folders with our model card, written atomically, come
from :func:`ddrnet_zoo.hub.save_pretrained`; the one loader of every source is :func:`ddrnet_zoo.load_model`.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import timm
import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE
from safetensors.torch import save_file
from torch import nn

from ..errors import InputError
from ..io import read_state_dict
from .config import SegmentationConfig
from .context import CONTEXT_MODULES, build_context
from .ddrnet import MODEL_ARCHS, DDRNet, arch_dict
from .layers import NormActConv, resize_to
from .pretrained import build_with_weights

__all__ = [
    "SegmentationHead",
    "DDRNetSegmentation",
    "create_segmentation_model",
]


def _positive_int(value, name: str) -> int:
    """``value`` as an int >= 1, else an :class:`InputError` (a ValueError) that says what was given."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        number = 0
    if number < 1:
        raise InputError(f"{name} must be a positive integer (e.g. 19 for Cityscapes, 11 for CamVid), got {value!r}")
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


def _architecture_name(backbone: DDRNet) -> str:
    """The registered variant a backbone was created as (else the registered one with its exact widths)."""
    name = getattr(backbone, "pretrained_cfg", {}).get("architecture")
    if name in MODEL_ARCHS:
        return name
    same = [n for n, a in MODEL_ARCHS.items() if a == backbone.arch]
    if same:
        return same[0]
    return min(MODEL_ARCHS, key=lambda n: abs(MODEL_ARCHS[n].width - backbone.arch.width))


class DDRNetSegmentation(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="ddrnet_zoo",
    license="mit",
    pipeline_tag="image-segmentation",
    tags=["ddrnet", "real-time", "semantic-segmentation"],
    repo_url="https://github.com/ydhongHIT/DDRNet",
    paper_url="https://arxiv.org/abs/2101.06085",
):
    """A DDRNet backbone in segmentation mode + context module + segmentation head (+ auxiliary head).

    Eval mode returns the main logits; train mode returns ``{"out": main, "aux": auxiliary}``
    (``"aux"`` only with an auxiliary head). Logits are at the input resolution unless
    ``upsample_logits=False`` (then 1/8, as the original code).

    ``model.config`` (a :class:`SegmentationConfig`) is set here and describes this model;
    :meth:`from_config` builds the model a config describes.

    Args:
        backbone: a :class:`DDRNet` built with ``segmentation_mode=True``; its classifier
            parts (conv5_2) are removed.
        num_classes: segmentation classes.
        context: ``"dappm"`` (paper), ``"ppm"``/``"spp"`` or ``"none"`` (Table X ablation).
        aux_head: add the auxiliary head on the high-resolution branch after conv4 (Eq. 3).
        upsample_logits: resize logits to the input size (bilinear, ``align_corners=False``).
        config: the config this model is built from (default: one made from the arguments);
            it must agree with them.
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
        config: Optional[SegmentationConfig] = None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, DDRNet) or not backbone.segmentation_mode:
            raise InputError("backbone must be a DDRNet built with segmentation_mode=True")
        num_classes = _positive_int(num_classes, "num_classes")
        context = str(context).lower()
        if config is None:
            name = _architecture_name(backbone)
            config = SegmentationConfig(
                architecture=name,
                arch=None if MODEL_ARCHS[name] == backbone.arch else arch_dict(backbone.arch),
                num_classes=num_classes,
                context=context,
                aux_head=aux_head,
                in_chans=backbone.in_chans,
                upsample_logits=upsample_logits,
            )
        given = (num_classes, context, bool(aux_head), backbone.in_chans, backbone.arch)
        described = (config.num_classes, config.context, config.aux_head, config.in_chans, config.ddrnet_arch())
        if given != described:
            raise InputError(
                f"the config ({config.architecture}, {config.num_classes} classes, context {config.context!r}, "
                f"aux_head={config.aux_head}, in_chans={config.in_chans}) does not describe this model "
                f"({num_classes} classes, context {context!r}, aux_head={bool(aux_head)}, in_chans={backbone.in_chans})"
            )
        dd = {"device": device, "dtype": dtype}
        backbone.prune_to_dual()
        arch = backbone.arch
        self.config = config
        self.upsample_logits = upsample_logits
        self.backbone = backbone
        self.num_classes = num_classes
        self.context_name = context
        self.context = build_context(context, arch.low_out_width, arch.context_width, arch.high_out_width, **dd)
        self.head = SegmentationHead(arch.high_out_width, arch.seg_head_width, num_classes, **dd)
        self.aux_head = SegmentationHead(arch.high_width, arch.seg_head_width, num_classes, **dd) if aux_head else None
        self.init_weights()

    @classmethod
    def from_config(
        cls,
        config: SegmentationConfig,
        pretrained_backbone: bool = False,
        backbone_name: Optional[str] = None,
        **backbone_kwargs,
    ) -> DDRNetSegmentation:
        """The (randomly initialised) model ``config`` describes; ``model.config`` is ``config``.

        ``backbone_name`` (default ``config.architecture``) may carry a timm pretrained tag
        (``ddrnet23_slim.in1k``) for ``pretrained_backbone``; ``backbone_kwargs`` go to ``timm.create_model``.
        """
        if config.arch is not None:
            backbone_kwargs["arch"] = config.ddrnet_arch()
        backbone = timm.create_model(
            backbone_name or config.architecture,
            pretrained=pretrained_backbone,
            segmentation_mode=True,
            in_chans=config.in_chans,
            **backbone_kwargs,
        )
        return cls(
            backbone,
            num_classes=config.num_classes,
            context=config.context,
            aux_head=config.aux_head,
            upsample_logits=config.upsample_logits,
            config=config,
        )

    def __setattr__(self, name: str, value: Any) -> None:
        # ``upsample_logits`` stays a plain attribute (TorchScript reads it in forward) and writes through
        # to ``config`` so that the two never disagree
        super().__setattr__(name, value)
        if name == "upsample_logits" and "config" in self.__dict__:
            self.config.upsample_logits = bool(value)

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

    # ------------------------------------------------------------------ Hub I/O (PyTorchModelHubMixin hooks)
    def check_config(self, config: SegmentationConfig) -> None:
        """Refuse a config that would rebuild a different model than this one (tensor names and shapes)."""
        with torch.device("meta"):
            rebuilt = type(self).from_config(SegmentationConfig.from_dict(config.to_dict()))
        want = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
        have = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        if want != have:
            diff = sorted(set(want) ^ set(have)) + sorted(k for k in set(want) & set(have) if want[k] != have[k])
            raise InputError(
                f"the config ({config.architecture}, {config.num_classes} classes, context {config.context!r}, "
                f"aux_head={config.aux_head}) does not describe this model; differing tensors: {diff[:8]}"
            )

    @property
    def _hub_mixin_config(self) -> Optional[Dict[str, Any]]:
        """What the mixin's ``save_pretrained`` / ``push_to_hub`` write as ``config.json``: ``model.config``."""
        config = self.__dict__.get("config")
        return None if config is None else config.to_dict()

    @_hub_mixin_config.setter
    def _hub_mixin_config(self, value: Any) -> None:
        # the mixin records __init__'s arguments here before __init__ runs; model.config is the record
        pass

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's hook: the weights, as own contiguous CPU tensors (shared storage cannot be saved)."""
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.state_dict().items()}
        save_file(tensors, str(save_directory / SAFETENSORS_SINGLE_FILE), metadata={"format": "pt"})

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: Optional[str],
        cache_dir: Optional[Union[str, os.PathLike]],
        force_download: bool,
        local_files_only: bool,
        token: Optional[Union[str, bool]],
        config: Optional[Union[SegmentationConfig, Dict[str, Any]]] = None,
        map_location: Union[str, torch.device] = "cpu",
        strict: bool = True,
        upsample_logits: Optional[bool] = None,
        **init_kwargs: Any,
    ) -> DDRNetSegmentation:
        """The mixin's hook behind its ``from_pretrained``: build from ``config`` and load the weights strictly.

        :func:`ddrnet_zoo.load_model` is the loader to use: it takes every source and checks what it holds
        before any weights are read; this hook keeps huggingface_hub's own entry point working.
        """
        if isinstance(config, dict):
            config = SegmentationConfig.from_dict(config)
        if not isinstance(config, SegmentationConfig):
            raise InputError(f"{model_id}: no ddrnet_zoo config.json there; load the model with ddrnet_zoo.load_model")
        # the mixin passes the config's values of __init__'s arguments again: they must agree with it
        unknown = sorted(set(init_kwargs) - {"num_classes", "context", "aux_head"})
        if unknown:
            raise InputError(f"unexpected arguments {unknown}; the model is built from {model_id}'s config.json")
        differing = {k: v for k, v in init_kwargs.items() if getattr(config, k) != v}
        if differing:
            raise InputError(f"{model_id} holds a model with other {sorted(differing)} than {differing}")
        if upsample_logits is not None:
            config.upsample_logits = upsample_logits
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, SAFETENSORS_SINGLE_FILE)
        else:
            weights = hf_hub_download(
                model_id,
                SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        return build_with_weights(
            lambda: cls.from_config(config), read_state_dict(weights), weights, map_location, strict
        )

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
        raise InputError(f"unknown DDRNet model {model_name!r}; available: {', '.join(MODEL_ARCHS)}")
    if str(context).lower() not in CONTEXT_MODULES:
        raise InputError(f"unknown context module {context!r}; choose one of: {', '.join(CONTEXT_MODULES)}")
    custom_arch = backbone_kwargs.pop("arch", None)
    config = SegmentationConfig(
        architecture=arch_name,
        arch=None
        if custom_arch is None
        else (custom_arch if isinstance(custom_arch, dict) else arch_dict(custom_arch)),
        num_classes=num_classes,
        context=str(context).lower(),
        aux_head=aux_head,
        in_chans=in_chans,
        upsample_logits=upsample_logits,
    )
    return DDRNetSegmentation.from_config(
        config, pretrained_backbone=pretrained_backbone, backbone_name=model_name, **backbone_kwargs
    )
