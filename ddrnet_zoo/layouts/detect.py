"""Reading checkpoints safely, recognising their layout and reading a model's fields from key strings and shapes.

Layouts:

* ``ours``: ddrnet_zoo's own keys (``stem.0.conv``, ``bilateral_stages.0.low_res``, ``head.classifier``, ...).
* ``original``: the authors' release (``conv1.0``, ``layer3_``, ``compression3``, ``spp.scale1``,
  ``final_layer``, ``seghead_extra``, ``linear``) and the forks that copied its model files.
* ``mmseg``: MMSegmentation's DDRNet (``backbone.stem.0.conv``, ``backbone.context_branch_layers.0``,
  ``decode_head.head.0``, ``decode_head.conv_seg``, ...), stem conv biases folded into BN.

The variant (widths, depths, conv4 split, head widths, classes, auxiliary head) is read from
tensor shapes (:func:`read_shapes`), so no flags are needed for checkpoints of any registered or custom width.
Nothing here builds a model: matching the fields to a registered variant is :mod:`ddrnet_zoo.models.variants`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..errors import InputError
from ..io import CheckpointError, check_state_dict_tensors, is_safetensors, read_state_dict, torch_load_safe

__all__ = [
    "LAYOUTS",
    "IGNORED_EXTRA_KEYS",
    "CheckpointContents",
    "read_checkpoint",
    "unwrap_state_dict",
    "detect_layout",
    "read_shapes",
]

LAYOUTS = ("ours", "original", "mmseg")

IGNORED_EXTRA_KEYS = ("loss.criterion.weight",)
"""Tensors of training wrappers that are not part of the network (the original code's OHEM class weights)."""

PathLike = Union[str, Path]


@dataclass
class CheckpointContents:
    """A state dict read from a file, with what was dropped on the way."""

    state_dict: Dict[str, torch.Tensor]
    path: Optional[Path] = None
    metadata_keys: List[str] = field(default_factory=list)
    """Top-level entries of a wrapper dict (``meta``, ``optimizer``, ``epoch``...) that are not weights."""
    placeholder_globals: List[str] = field(default_factory=list)
    """Metadata classes that ``weights_only`` refused and that were replaced by inert placeholders."""
    wrapper: Optional[Mapping[str, Any]] = None
    """The file's top-level dict when the weights were inside one (e.g. a training checkpoint)."""

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<state dict>"


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _checked(state_dict: Dict[Any, torch.Tensor], name: str) -> Dict[str, torch.Tensor]:
    """``state_dict`` after checking its keys are strings and its tensors of a weights' dtype."""
    odd = [k for k in state_dict if not isinstance(k, str)]
    if odd:
        raise CheckpointError(f"{name}: a state dict's keys are strings, not {type(odd[0]).__name__} ({odd[0]!r})")
    check_state_dict_tensors(state_dict, name)
    return state_dict


def _split_wrapper(obj: Any, name: str) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """The state dict inside a training checkpoint (``state_dict``/``model`` entry), and the other entries."""
    if _tensor_dict(obj):
        return _checked(dict(obj), name), []
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and not _tensor_dict(inner) and "state_dict" in inner:
                inner = inner["state_dict"]
            if _tensor_dict(inner):
                return _checked(dict(inner), name), sorted(str(k) for k in obj if k != key)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            others = sorted(str(k) for k in obj if k not in tensors)
            raise CheckpointError(
                f"{name}: a state dict mixed with non-tensor entries {others[:10]}; expected a state dict or a "
                "training checkpoint with a 'state_dict' entry"
            )
        raise CheckpointError(
            f"{name}: no state dict found (top-level keys: {sorted(str(k) for k in obj)[:20]}); expected a dict "
            "of tensors or a checkpoint with a 'state_dict' / 'model' entry"
        )
    raise CheckpointError(f"{name}: expected a state dict (a dict of tensors), got {type(obj).__name__}")


def read_checkpoint(path: PathLike) -> CheckpointContents:
    """Read the weights of a checkpoint file safely, whatever wrapper they are in.

    ``.safetensors`` (recognised by content, whatever the suffix) is read with safetensors;
    anything else with ``torch.load(weights_only=True)``: no pickled code runs. Objects that
    training frameworks store in checkpoint metadata (mmengine's ``HistoryBuffer``, numpy
    values) are replaced by inert placeholders; any other non-weight object is refused with a
    :class:`~ddrnet_zoo.io.CheckpointError` naming it. Wrappers (``{"state_dict": ..., "meta": ...}``)
    are removed; their other entries are listed in ``metadata_keys``.
    """
    path = Path(path)
    if not path.is_file():
        hint = " (a directory: pass its model.safetensors, or load it with ddrnet_zoo.load_model)"
        raise CheckpointError(f"checkpoint file not found: {path}{hint if path.is_dir() else ''}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (an interrupted download or copy?)")
    if path.suffix == ".safetensors" or is_safetensors(path):
        return CheckpointContents(read_state_dict(path), path)
    placeholders: List[str] = []
    obj = torch_load_safe(path, metadata_placeholders=placeholders)
    state_dict, metadata = _split_wrapper(obj, str(path))
    wrapper = obj if metadata else None
    return CheckpointContents(state_dict, path, metadata, placeholders, wrapper)


def _strip_wrapper_prefixes(keys: Sequence[str]) -> str:
    """The wrapper prefixes every key shares (``module.`` of DDP, ``model.`` of the original FullModel, nested)."""
    stripped = ""
    while keys:
        prefix = next((p for p in ("module.", "model.") if all(k.startswith(stripped + p) for k in keys)), None)
        if prefix is None:
            break
        stripped += prefix
    return stripped


def unwrap_state_dict(
    state_dict: Mapping[str, torch.Tensor], name: str = "<state dict>"
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Remove training-wrapper prefixes (``model.``, ``module.``) and set aside known extras.

    Returns ``(network_state_dict, ignored_keys)``; ``ignored_keys`` are the original names of
    the known extra tensors (``loss.criterion.weight``) that are not part of the network.
    """
    if not _tensor_dict(state_dict):
        state_dict, _ = _split_wrapper(state_dict, name)
    keys = list(state_dict)
    ignored = [k for k in keys if k in IGNORED_EXTRA_KEYS or k.endswith(tuple("." + e for e in IGNORED_EXTRA_KEYS))]
    rest = [k for k in keys if k not in ignored]
    prefix = _strip_wrapper_prefixes(rest)
    out = {k[len(prefix) :]: state_dict[k] for k in rest}
    return out, ignored


def detect_layout(state_dict: Mapping[str, torch.Tensor], name: str = "<state dict>") -> str:
    """``"ours"``, ``"original"`` or ``"mmseg"`` for an unwrapped state dict; a clear error otherwise."""
    keys = set(state_dict)
    if "stem.0.conv.weight" in keys or "backbone.stem.0.conv.weight" in keys:
        if any(k.startswith("backbone.context_branch_layers.") for k in keys):
            return "mmseg"
        if any(k.startswith(("bilateral_stages.", "backbone.bilateral_stages.")) for k in keys):
            return "ours"
    if "conv1.0.weight" in keys and any(k.startswith("compression3") for k in keys):
        return "original"
    sample = sorted(keys)[:8]
    raise CheckpointError(
        f"{name}: not a DDRNet checkpoint in a known layout (ours, original release, MMSegmentation); "
        f"first keys: {sample}"
    )


def _count(keys: Sequence[str], prefix: str) -> int:
    """Number of numbered children under ``prefix`` (``layer1.0.``, ``layer1.1.`` -> 2)."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    idx = {int(m.group(1)) for k in keys if (m := pat.match(k))}
    return max(idx) + 1 if idx else 0


def _shape(sd: Mapping[str, torch.Tensor], key: str, name: str) -> Tuple[int, ...]:
    """The shape of ``sd[key]``, a convolution or linear weight (2-D or more, no empty dimension)."""
    if key not in sd:
        raise CheckpointError(f"{name}: expected tensor {key!r} is missing; the checkpoint is incomplete")
    shape = tuple(sd[key].shape)
    if len(shape) < 2 or min(shape) < 1:
        raise CheckpointError(f"{name}: tensor {key!r} has shape {list(shape)}, not a layer's weight: corrupt")
    return shape


def _infer_original(sd: Mapping[str, torch.Tensor], name: str) -> Dict[str, Any]:
    keys = list(sd)
    out_chs, in_chs = _shape(sd, "conv1.0.weight", name)[:2]
    if any(k.startswith("layer3_1.") for k in keys):
        conv4_fusions = len({m.group(1) for k in keys if (m := re.match(r"layer3_(\d+)\.", k))})
        conv4 = sum(_count(keys, f"layer3_{i + 1}") for i in range(conv4_fusions))
    else:
        conv4_fusions, conv4 = 1, _count(keys, "layer3")
    info: Dict[str, Any] = dict(
        width=out_chs,
        in_chans=in_chs,
        depths=(_count(keys, "layer1"), _count(keys, "layer2"), conv4, _count(keys, "layer4")),
        conv4_fusions=conv4_fusions,
    )
    if any(k.startswith("final_layer.") for k in keys):
        info.update(
            task="segmentation",
            context="dappm",
            seg_head_width=_shape(sd, "final_layer.conv1.weight", name)[0],
            context_width=_shape(sd, "spp.scale0.2.weight", name)[0],
            num_classes=_shape(sd, "final_layer.conv2.weight", name)[0],
            aux_head=any(k.startswith("seghead_extra.") for k in keys),
        )
    else:
        info.update(
            task="classification",
            head_width=_shape(sd, "last_layer.0.weight", name)[0],
            num_classes=_shape(sd, "linear.weight", name)[0] if "linear.weight" in sd else 0,
        )
    return info


def _infer_mmseg(sd: Mapping[str, torch.Tensor], name: str) -> Dict[str, Any]:
    keys = list(sd)
    if not any(k.startswith("decode_head.") for k in keys):
        raise CheckpointError(
            f"{name}: an MMSegmentation DDRNet backbone without decode_head; only complete segmentation "
            "models (backbone + DDRHead) are converted"
        )
    out_chs, in_chs = _shape(sd, "backbone.stem.0.conv.weight", name)[:2]
    return dict(
        task="segmentation",
        width=out_chs,
        in_chans=in_chs,
        depths=(
            _count(keys, "backbone.stem.2"),
            _count(keys, "backbone.stem.4"),
            _count(keys, "backbone.context_branch_layers.0"),
            _count(keys, "backbone.context_branch_layers.1"),
        ),
        conv4_fusions=1,
        context="dappm",
        seg_head_width=_shape(sd, "decode_head.head.0.conv.weight", name)[0],
        context_width=_shape(sd, "backbone.spp.scales.0.conv.weight", name)[0],
        num_classes=_shape(sd, "decode_head.conv_seg.weight", name)[0],
        aux_head="decode_head.aux_cls_seg.weight" in sd,
    )


def _infer_ours(sd: Mapping[str, torch.Tensor], name: str) -> Dict[str, Any]:
    keys = list(sd)
    seg = "backbone.stem.0.conv.weight" in sd
    p = "backbone." if seg else ""
    out_chs, in_chs = _shape(sd, f"{p}stem.0.conv.weight", name)[:2]
    num_stages = _count(keys, f"{p}bilateral_stages")
    if num_stages < 2:
        raise CheckpointError(f"{name}: found {num_stages} bilateral stages; a DDRNet has at least 2")
    conv4 = sum(_count(keys, f"{p}bilateral_stages.{k}.low_res") for k in range(num_stages - 1))
    info: Dict[str, Any] = dict(
        width=out_chs,
        in_chans=in_chs,
        depths=(
            _count(keys, f"{p}stage2"),
            _count(keys, f"{p}stage3"),
            conv4,
            _count(keys, f"{p}bilateral_stages.{num_stages - 1}.low_res"),
        ),
        conv4_fusions=num_stages - 1,
    )
    if seg:
        if "context.fuse.0.conv.weight" in sd:
            context = "dappm"
        elif "context.scales.0.conv.weight" in sd:
            context = "ppm"
        else:
            context = "none"
        info.update(
            task="segmentation",
            context=context,
            seg_head_width=_shape(sd, "head.conv.conv.weight", name)[0],
            num_classes=_shape(sd, "head.classifier.conv.weight", name)[0],
            aux_head="aux_head.classifier.conv.weight" in sd,
        )
        if context != "none":
            info["context_width"] = _shape(sd, "context.scales.0.conv.weight", name)[0]
    else:
        info.update(
            task="classification",
            head_width=_shape(sd, "conv_head.conv.weight", name)[0],
            num_classes=_shape(sd, "fc.weight", name)[0] if "fc.weight" in sd else 0,
        )
    return info


def read_shapes(state_dict: Mapping[str, torch.Tensor], layout: str, name: str = "<state dict>") -> Dict[str, Any]:
    """The fields an unwrapped state dict of ``layout`` shows: task, widths, depths, classes, heads.

    A dict with ``task``, ``width``, ``in_chans``, ``depths``, ``conv4_fusions``, ``num_classes``
    and, per task, ``head_width`` or ``seg_head_width``/``context_width``/``context``/``aux_head``.
    """
    read = {"ours": _infer_ours, "original": _infer_original, "mmseg": _infer_mmseg}.get(layout)
    if read is None:
        raise InputError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    info = read(state_dict, name)
    if min(info["depths"]) < 1:
        raise CheckpointError(f"{name}: incomplete network (blocks per stage {info['depths']})")
    return info
