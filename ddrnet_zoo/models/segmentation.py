"""DDRNet for semantic segmentation (paper Sec. III-D, III-E, Fig. 4), built from plain arguments.

:class:`DDRNetSegmentation` takes JSON-serialisable arguments (variant, classes, context module, heads,
custom widths, dataset description, free-form metadata); ``config.json`` on the Hub holds exactly them
(:attr:`DDRNetSegmentation.config`), and ``DDRNetSegmentation(**read_model_config(json))`` rebuilds the model.
Hub I/O follows :class:`huggingface_hub.PyTorchModelHubMixin` through its two hooks: ``_save_pretrained``
writes the weights and ``config.json``, ``_from_pretrained`` loads strictly. Folders with our model card,
written atomically, come from :func:`ddrnet_zoo.hub.save_pretrained`; the one loader of every source is
:func:`ddrnet_zoo.load_model`.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Union

import timm
import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from safetensors.torch import save_file
from torch import nn

from ..constants import DEFAULT_MEAN, DEFAULT_STD, IGNORE_INDEX
from ..data.meta import DATASETS, DatasetInfo
from ..errors import InputError
from ..io import read_state_dict
from ..text import brief
from .context import CONTEXT_MODULES, build_context
from .ddrnet import MODEL_ARCHS, DDRNetArch, arch_dict, arch_from_dict
from .layers import NormActConv, check_count, resize_to
from .pretrained import build_with_weights

__all__ = [
    "CONFIG_FORMAT_VERSION",
    "SegmentationHead",
    "DDRNetSegmentation",
    "create_segmentation_model",
    "read_model_config",
]

CONFIG_FORMAT_VERSION = 2
"""``format_version`` of ``config.json``: 2 nests the dataset description; 1 (releases up to 0.4) kept its
fields at the top level and is still read (:func:`read_model_config`)."""

_INIT_ARGS = (
    "architecture",
    "num_classes",
    "context",
    "aux_head",
    "in_chans",
    "upsample_logits",
    "output_stride",
    "arch",
)
_DESCRIPTION_ARGS = ("dataset", "metadata")
_DATASET_FIELDS = ("name", "class_names", "palette", "ignore_index", "mean", "std", "train_size")


class SegmentationHead(nn.Module):
    """BN-ReLU-3x3 conv to ``mid_chs``, then BN-ReLU-1x1 conv (with bias) to the classes."""

    def __init__(self, in_chs: int, mid_chs: int, num_classes: int, device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.conv = NormActConv(in_chs, mid_chs, 3, **dd)
        self.classifier = NormActConv(mid_chs, num_classes, 1, bias=True, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(x))


def _numbers(name: str, values: Any, count: int) -> list:
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise InputError(f"dataset.{name} needs {count} numbers, got {brief(values)}")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise InputError(f"dataset.{name} needs {count} numbers, got {brief(values)}") from None


def dataset_description(
    dataset: Union[None, str, DatasetInfo, Mapping[str, Any]], num_classes: int, in_chans: int
) -> Dict[str, Any]:
    """The dataset a model's classes come from, as the plain dict ``config.json`` holds, checked.

    ``dataset`` is a registered name (``"cityscapes"``, ``"camvid"``), a :class:`DatasetInfo`, a mapping of
    ``name``, ``class_names``, ``palette`` (``[R, G, B]`` per class), ``ignore_index``, ``mean``, ``std``
    and ``train_size`` (the training crop, height and width), each optional, or None. Normalisation
    defaults to ImageNet's, the ignore index to 255.
    """
    if isinstance(dataset, str):
        if dataset not in DATASETS:
            raise InputError(f"unknown dataset {brief(dataset)}; registered: {', '.join(DATASETS)} (or give a mapping)")
        dataset = DATASETS[dataset]
    if isinstance(dataset, DatasetInfo):
        dataset = dataset.description()
    if dataset is None:
        dataset = {}
    if not isinstance(dataset, Mapping):
        raise InputError(f"dataset must be a name or a mapping, got {type(dataset).__name__}")
    unknown = sorted(set(dataset) - set(_DATASET_FIELDS))
    if unknown:
        raise InputError(f"unknown dataset fields {brief(unknown)}; known: {list(_DATASET_FIELDS)}")
    out: Dict[str, Any] = {k: dataset.get(k) for k in _DATASET_FIELDS}
    if out["name"] is not None and not isinstance(out["name"], str):
        raise InputError(f"dataset.name must be a string, got {brief(out['name'])}")
    if out["class_names"] is not None:
        if not isinstance(out["class_names"], (list, tuple)):
            raise InputError(f"dataset.class_names must be a list of names, got {brief(out['class_names'])}")
        out["class_names"] = [str(n) for n in out["class_names"]]
        if len(out["class_names"]) != num_classes:
            raise InputError(f"{len(out['class_names'])} class names for num_classes={num_classes}")
    if out["palette"] is not None:
        if not isinstance(out["palette"], (list, tuple)):
            raise InputError(f"dataset.palette must be a list of [R, G, B], got {brief(out['palette'])}")
        palette = [list(c) if isinstance(c, (list, tuple)) else c for c in out["palette"]]
        for i, c in enumerate(palette):
            if not isinstance(c, list) or len(c) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in c):
                raise InputError(f"dataset.palette entry {i} must be three integers in 0-255, got {brief(c)}")
        if len(palette) != num_classes:
            raise InputError(f"{len(palette)} palette colours for num_classes={num_classes}")
        out["palette"] = palette
    ignore = IGNORE_INDEX if out["ignore_index"] is None else out["ignore_index"]
    if isinstance(ignore, bool) or not isinstance(ignore, int):
        raise InputError(f"dataset.ignore_index must be an integer label value, got {brief(ignore)}")
    out["ignore_index"] = int(ignore)
    out["mean"] = _numbers("mean", DEFAULT_MEAN if out["mean"] is None else out["mean"], in_chans)
    out["std"] = _numbers("std", DEFAULT_STD if out["std"] is None else out["std"], in_chans)
    if out["train_size"] is not None:
        size = out["train_size"]
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            raise InputError(f"dataset.train_size must be [height, width], got {brief(size)}")
        out["train_size"] = [check_count("dataset.train_size", v, 1) for v in size]
    return out


def read_model_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The :class:`DDRNetSegmentation` arguments a ``config.json`` holds (format 2, or 1 of earlier releases).

    Unknown fields, a missing ``architecture`` / ``num_classes`` and values of the wrong type are an
    :class:`InputError` (a ValueError) naming them; loaders add the file's name.
    """
    if not isinstance(config, Mapping):
        raise InputError(f"a model config must be a JSON object, got {type(config).__name__}")
    d = dict(config)
    version = d.pop("format_version", 1)
    if isinstance(version, bool) or version not in (1, CONFIG_FORMAT_VERSION):
        raise InputError(
            f"config format_version {brief(version)} is not supported "
            f"(this ddrnet_zoo reads 1 and {CONFIG_FORMAT_VERSION})"
        )
    if version == 1:  # the dataset description at the top level, its name in "dataset"
        legacy = {k: d.pop(k) for k in _DATASET_FIELDS[1:] if k in d}
        d["dataset"] = {"name": d.pop("dataset", None), **legacy}
    known = _INIT_ARGS + _DESCRIPTION_ARGS
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise InputError(f"unknown config fields {brief(unknown)}; known fields: {['format_version', *known]}")
    if "architecture" not in d or "num_classes" not in d:
        raise InputError("a model config needs at least 'architecture' and 'num_classes'")
    return d


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
    ``upsample_logits=False`` (then 1/8, as the original code). Weights are random: load trained ones
    with :func:`ddrnet_zoo.load_model`, ImageNet backbone weights with :func:`create_segmentation_model`.

    Args:
        architecture: a registered variant (``ddrnet23_slim``, ``ddrnet23``, ``ddrnet39``, ``ddrnet39_1_5x``).
        num_classes: segmentation classes (19 for Cityscapes, 11 for CamVid).
        context: ``"dappm"`` (paper), ``"ppm"``/``"spp"`` or ``"none"`` (Table X ablation).
        aux_head: add the auxiliary head on the high-resolution branch after conv4 (Eq. 3).
        in_chans: input channels.
        upsample_logits: resize logits to the input size (bilinear, ``align_corners=False``).
        output_stride: deepest stride of the low-resolution branch, 8, 16 or 32 (dilated past it, as
            timm's CNNs; default: undilated, 1/64); the weights are the same.
        arch: custom widths/depths (a :class:`DDRNetArch` or its dict) replacing the variant's.
        dataset: what the classes are: a registered dataset name or a mapping (:func:`dataset_description`).
        metadata: free-form JSON (training recipe, measured results); does not affect the model.

    Every argument is kept as an attribute of the same name except ``context`` (``context_name``; the
    module is ``context``), ``aux_head`` (the module, or None), ``arch`` and ``output_stride`` (the
    backbone's).
    :attr:`config` is them all, as ``config.json`` holds them.
    """

    def __init__(
        self,
        architecture: str = "ddrnet23_slim",
        num_classes: int = 19,
        context: str = "dappm",
        aux_head: bool = True,
        in_chans: int = 3,
        upsample_logits: bool = True,
        output_stride: Optional[int] = None,
        arch: Union[None, DDRNetArch, Dict[str, Any]] = None,
        dataset: Union[None, str, Dict[str, Any]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if isinstance(architecture, nn.Module):
            raise InputError(
                "DDRNetSegmentation takes the variant's name (architecture='ddrnet23_slim'), not a built backbone: "
                "use create_segmentation_model(name, num_classes, pretrained_backbone=True) for ImageNet weights"
            )
        if not isinstance(architecture, str) or architecture not in MODEL_ARCHS:
            raise InputError(f"unknown DDRNet model {brief(architecture)}; available: {', '.join(MODEL_ARCHS)}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise InputError(
                f"num_classes must be a positive integer (19 for Cityscapes, 11 for CamVid), got {brief(num_classes)}"
            )
        num_classes = int(num_classes)
        in_chans = check_count("in_chans", in_chans, 1)
        if not isinstance(context, str) or context.lower() not in CONTEXT_MODULES:
            raise InputError(f"unknown context module {brief(context)}; choose one of: {', '.join(CONTEXT_MODULES)}")
        for name, value in (("aux_head", aux_head), ("upsample_logits", upsample_logits)):
            if not isinstance(value, bool):
                raise InputError(f"{name} must be True or False, got {brief(value)}")
        if metadata is not None and not isinstance(metadata, dict):
            raise InputError(f"metadata must be a mapping, got {type(metadata).__name__}")
        if arch is not None and not isinstance(arch, DDRNetArch):
            arch = arch_from_dict(arch)
        dd = {"device": device, "dtype": dtype}
        self.architecture = architecture
        self.num_classes = num_classes
        self.context_name = str(context).lower()
        self.upsample_logits = upsample_logits
        self.dataset = dataset_description(dataset, num_classes, in_chans)
        self.metadata = dict(metadata or {})
        custom = {} if arch is None or arch == MODEL_ARCHS[architecture] else {"arch": arch}
        self.backbone = timm.create_model(
            architecture, segmentation_mode=True, in_chans=in_chans, output_stride=output_stride, **custom, **dd
        )
        self.backbone.prune_to_dual()
        a = self.backbone.arch
        self.context = build_context(self.context_name, a.low_out_width, a.context_width, a.high_out_width, **dd)
        self.head = SegmentationHead(a.high_out_width, a.seg_head_width, num_classes, **dd)
        self.aux_head = SegmentationHead(a.high_width, a.seg_head_width, num_classes, **dd) if aux_head else None
        self.init_weights()

    @property
    def config(self) -> Mapping[str, Any]:
        """The arguments that rebuild this model, as ``config.json`` holds them (a read-only view).

        ``dataset`` and ``metadata`` are the model's own dicts; to change the rest, build a new model.
        """
        arch = self.backbone.arch
        return MappingProxyType(
            {
                "format_version": CONFIG_FORMAT_VERSION,
                "architecture": self.architecture,
                "num_classes": self.num_classes,
                "context": self.context_name,
                "aux_head": self.aux_head is not None,
                "in_chans": self.in_chans,
                "upsample_logits": self.upsample_logits,
                "output_stride": self.backbone.output_stride,
                "arch": None if arch == MODEL_ARCHS[self.architecture] else arch_dict(arch),
                "dataset": self.dataset,
                "metadata": self.metadata,
            }
        )

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

    # ------------------------------------------------------------------ PyTorchModelHubMixin's two hooks
    def _save_pretrained(self, save_directory: Path) -> None:
        """The weights (own contiguous CPU tensors) and ``config.json`` (:attr:`config`, checked to rebuild)."""
        config = dict(self.config)
        dataset_description(self.dataset, self.num_classes, self.in_chans)  # edits of model.dataset are checked here
        text = json.dumps(config, sort_keys=True, indent=2)  # and metadata that is not JSON fails before any write
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.state_dict().items()}
        save_file(tensors, str(save_directory / SAFETENSORS_SINGLE_FILE), metadata={"format": "pt"})
        (save_directory / CONFIG_NAME).write_text(text, encoding="utf-8")

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
        config: Optional[Dict[str, Any]] = None,
        map_location: Union[str, torch.device] = "cpu",
        strict: bool = True,
        **init_kwargs: Any,
    ) -> DDRNetSegmentation:
        """The hook behind the mixin's ``from_pretrained``: ``config.json`` of either format, weights loaded strictly.

        :func:`ddrnet_zoo.load_model` is the loader to use (every source, checks before weights are read);
        this keeps huggingface_hub's own entry point working. Keyword arguments given to ``from_pretrained``
        replace the config's (``upsample_logits=False``).
        """
        if config is None:
            raise InputError(f"{model_id}: no ddrnet_zoo config.json there; load the model with ddrnet_zoo.load_model")
        kwargs = read_model_config(config)
        kwargs.update({k: v for k, v in init_kwargs.items() if config.get(k) != v})  # the caller's overrides
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
        return build_with_weights(lambda: cls(**kwargs), read_state_dict(weights), weights, map_location, strict)

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
    pretrained_backbone: bool = False,
    pretrained_cfg_overlay: Optional[Dict[str, Any]] = None,
    check_finite: bool = True,
    **kwargs: Any,
) -> DDRNetSegmentation:
    """A :class:`DDRNetSegmentation`, its backbone optionally with ImageNet weights through timm.

    Args:
        model_name: ``ddrnet23_slim``, ``ddrnet23``, ``ddrnet39`` or ``ddrnet39_1_5x``; a timm pretrained
            tag (``ddrnet23_slim.in1k``) selects the backbone weights.
        num_classes: segmentation classes (19 for Cityscapes, 11 for CamVid).
        pretrained_backbone: load the backbone's ImageNet weights through timm (strictly).
        pretrained_cfg_overlay: timm's overlay for those weights (``dict(file=PATH)`` for a local file).
        check_finite: refuse NaN/Inf inputs in eager eval forwards (the backbone's attribute of that name).
        **kwargs: the other :class:`DDRNetSegmentation` arguments (``context``, ``aux_head``, ``in_chans``,
            ``upsample_logits``, ``arch``, ``dataset``, ``metadata``).
    """
    architecture = model_name.split(".", 1)[0]
    model = DDRNetSegmentation(architecture, num_classes, **kwargs)
    model.backbone.check_finite = check_finite
    if pretrained_backbone:
        arch = model.backbone.arch
        custom = {} if arch == MODEL_ARCHS[architecture] else {"arch": arch}
        backbone = timm.create_model(
            model_name,
            pretrained=True,
            segmentation_mode=True,
            in_chans=model.in_chans,
            output_stride=model.backbone.output_stride,
            pretrained_cfg_overlay=pretrained_cfg_overlay,
            **custom,
        )
        backbone.prune_to_dual()
        model.backbone.load_state_dict(backbone.state_dict())
    elif pretrained_cfg_overlay is not None:
        raise InputError("pretrained_cfg_overlay selects backbone weights: pass pretrained_backbone=True with it")
    return model
