"""Convert any supported checkpoint to ddrnet_zoo's layout (and back), strictly.

Every source tensor is mapped or explicitly ignored (only ``loss.criterion.weight`` of the
original training wrapper; ``num_batches_tracked`` is taken when present and zero-filled when
absent); missing or unexpected keys and shape mismatches raise a
:class:`~ddrnet_zoo.io.CheckpointError` that names the file and lists them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..data.meta import get_dataset_info
from ..errors import InputError
from ..io import CheckpointError
from ..layouts import CheckpointContents, detect_layout, read_checkpoint, unwrap_state_dict
from ..models import DDRNetSegmentation, infer_model_args, model_from_args
from ..text import listing, plural
from .mmseg import mmseg_key_map, to_mmseg_state_dict
from .original import original_key_map, to_original_state_dict

__all__ = [
    "ConvertedCheckpoint",
    "convert_state_dict",
    "convert_checkpoint",
    "export_state_dict",
    "EXPORT_LAYOUTS",
    "dataset_fields",
]

EXPORT_LAYOUTS = ("ours", "original", "mmseg")

PathLike = Union[str, Path]


@dataclass
class ConvertedCheckpoint:
    """A checkpoint in ddrnet_zoo's layout, with the model it describes."""

    state_dict: Dict[str, torch.Tensor]
    """Weights under our keys (tensors shared with the source state dict; models get copies)."""
    task: str
    """``"segmentation"`` or ``"classification"``."""
    model_args: Dict[str, Any]
    """The model's arguments inferred from the shapes (:func:`~ddrnet_zoo.models.spec.infer_model_args`)."""
    source_layout: str
    """``"ours"``, ``"original"`` or ``"mmseg"``."""
    source: str = "<state dict>"
    ignored_keys: List[str] = field(default_factory=list)
    """Source tensors deliberately not mapped (``loss.criterion.weight``)."""
    filled_keys: List[str] = field(default_factory=list)
    """Our tensors the source has no slot for: zero ``num_batches_tracked``, zero stem biases (MMSegmentation)."""
    metadata_keys: List[str] = field(default_factory=list)
    """Non-weight entries of the source file's wrapper (``meta``, ``optimizer``...), dropped."""
    placeholder_globals: List[str] = field(default_factory=list)
    """Metadata classes that were replaced by inert placeholders while reading (never executed)."""
    meta_model: Optional[nn.Module] = field(default=None, repr=False)
    """The model these weights fit, built once on the meta device (no memory); give it the weights with
    :func:`ddrnet_zoo.models.pretrained.build_with_weights` (as :func:`ddrnet_zoo.load_model` does)."""

    @property
    def config(self) -> Optional[Dict[str, Any]]:
        """The ``config.json`` of a segmentation model (its ``DDRNetSegmentation.config``); None for a classifier."""
        return dict(self.meta_model.config) if isinstance(self.meta_model, DDRNetSegmentation) else None

    def __iter__(self):
        """Unpack as ``state_dict, config = convert_state_dict(...)``."""
        return iter((self.state_dict, self.config))

    def summary(self) -> str:
        """Human-readable lines: what was read, inferred, ignored and filled."""
        args, seg = self.model_args, self.task == "segmentation"
        arch = self.meta_model.backbone.arch if seg else self.meta_model.arch
        lines = [
            f"source:        {self.source} ({self.source_layout} layout, {plural(len(self.state_dict), 'tensor')})",
            f"model:         {self.task} {args['architecture']}{'' if args['arch'] is None else ' (custom widths)'}: "
            f"width {arch.width}, depths {list(arch.depths)}, conv4 fusions {arch.conv4_fusions}",
            f"classes:       {args['num_classes']}"
            + (f", auxiliary head {'yes' if args['aux_head'] else 'no'}" if seg else ""),
        ]
        if self.ignored_keys:
            lines.append(f"ignored:       {listing(self.ignored_keys)}")
        if self.filled_keys:
            lines.append(f"filled:        {listing(self.filled_keys)}")
        if self.metadata_keys:
            lines.append(f"metadata:      dropped {listing(self.metadata_keys)}")
        if self.placeholder_globals:
            lines.append(f"placeholders:  {listing(self.placeholder_globals)} (metadata objects, not executed)")
        return "\n".join(lines)


def _rename(
    source_sd: Mapping[str, torch.Tensor],
    ours_to_source: Mapping[str, Optional[str]],
    target: Mapping[str, torch.Tensor],
    name: str,
    layout: str,
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Our state dict from ``source_sd``; ``None`` in the map means "no source slot: zero-fill"."""
    used = set()
    out: Dict[str, torch.Tensor] = {}
    filled, missing, mismatched = [], [], []
    for ours, theirs in ours_to_source.items():
        want = target[ours]
        if theirs is None or (theirs not in source_sd and ours.endswith("num_batches_tracked")):
            out[ours] = torch.zeros(want.shape, dtype=want.dtype)
            filled.append(ours)
            continue
        if theirs not in source_sd:
            missing.append(theirs)
            continue
        tensor = source_sd[theirs]
        used.add(theirs)
        if tuple(tensor.shape) != tuple(want.shape):
            mismatched.append(f"{theirs} {tuple(tensor.shape)} vs {tuple(want.shape)}")
        out[ours] = tensor
    unexpected = [k for k in source_sd if k not in used]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {listing(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches (checkpoint vs model): {listing(mismatched, 6)}")
        raise CheckpointError(f"{name}: cannot convert from the {layout} layout: " + "; ".join(parts))
    return out, filled


def _key_map(model: nn.Module, layout: str) -> Dict[str, Optional[str]]:
    if layout == "ours":
        return {k: k for k in model.state_dict()}
    if layout == "original":
        return original_key_map(model)
    if layout == "mmseg":
        return mmseg_key_map(model)
    raise InputError(f"unknown layout {layout!r}; known: {', '.join(EXPORT_LAYOUTS)}")


def dataset_fields(
    num_classes: int, dataset: Optional[str] = None, train_size: Optional[Sequence[int]] = None, name: str = "the model"
) -> Dict[str, Any]:
    """The ``dataset`` description fields a conversion sets: a registered dataset's class names, palette,
    ignore index and normalisation, and the training crop (height, width) where given."""
    fields: Dict[str, Any] = {}
    if dataset is not None:
        info = get_dataset_info(dataset)
        if info.num_classes != num_classes:
            raise CheckpointError(
                f"{name}: wrong class count: the model has {num_classes} classes, {info.name} has {info.num_classes}"
            )
        fields.update(info.description())
    if train_size:
        fields["train_size"] = [int(v) for v in train_size]
    return fields


def _segmentation_kwargs(
    inferred: Dict[str, Any],
    dataset: Optional[str],
    upsample_logits: bool,
    train_size: Optional[Sequence[int]],
    metadata: Optional[Dict[str, Any]],
    name: str,
) -> Dict[str, Any]:
    """The :class:`~ddrnet_zoo.models.DDRNetSegmentation` arguments of converted segmentation weights."""
    in_chans = inferred["in_chans"]
    description = dataset_fields(inferred["num_classes"], dataset, train_size, name)
    if in_chans != 3:  # a dataset's (and ImageNet's) three values do not apply: neutral ones per channel
        description.update(mean=[0.45] * in_chans, std=[0.225] * in_chans)
    return dict(
        **inferred,
        upsample_logits=upsample_logits,
        dataset=description,
        metadata=dict(metadata or {}),
    )


def convert_state_dict(
    state_dict: Mapping[str, Any],
    layout: str = "auto",
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
    dataset: Optional[str] = None,
    upsample_logits: bool = True,
    train_size: Optional[Sequence[int]] = None,
    metadata: Optional[Dict[str, Any]] = None,
    name: str = "<state dict>",
) -> ConvertedCheckpoint:
    """Convert a state dict of any supported layout to ours, in memory.

    Args:
        state_dict: weights in our, the original or MMSegmentation's layout; training wrappers
            (``model.``/``module.`` prefixes, ``{"state_dict": ...}``) are removed.
        layout: ``"auto"`` (detect) or one of ``"ours"``, ``"original"``, ``"mmseg"``.
        model_name: assert the variant (``ddrnet23``...); weights of another variant are an error.
        num_classes: assert the class count; a different count in the weights is an error.
        dataset: ``"cityscapes"`` or ``"camvid"``: class names, palette, ignore index for the config.
        upsample_logits: the converted segmentation model returns logits at input size (else 1/8).
        train_size: the training crop (height, width) for the model's dataset description.
        metadata: the model's free-form metadata.
        name: how errors refer to the source (a file name).
    """
    sd, ignored = unwrap_state_dict(state_dict, name)
    detected = detect_layout(sd, name)
    if layout != "auto" and layout != detected:
        raise CheckpointError(f"{name}: the weights are in the {detected} layout, not {layout!r}")
    task, inferred = infer_model_args(sd, detected, model_name=model_name, name=name)
    if num_classes is not None and int(num_classes) != inferred["num_classes"]:
        raise CheckpointError(
            f"{name}: wrong class count: the checkpoint has {inferred['num_classes']} classes, "
            f"{num_classes} were expected"
        )
    if task == "segmentation":
        kwargs = _segmentation_kwargs(inferred, dataset, upsample_logits, train_size, metadata, name)
        meta_model = model_from_args(task, kwargs, device="meta")
    elif dataset is not None:
        raise CheckpointError(f"{name}: a classification checkpoint; --dataset applies to segmentation models")
    else:
        meta_model = model_from_args(task, inferred, device="meta")
    try:
        mapping = _key_map(meta_model, detected)
    except ValueError as e:
        raise CheckpointError(f"{name}: {e}") from None
    ours, filled = _rename(sd, mapping, meta_model.state_dict(), name, detected)
    return ConvertedCheckpoint(ours, task, inferred, detected, name, ignored, filled, meta_model=meta_model)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_checkpoint(
    path: PathLike,
    layout: str = "auto",
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
    dataset: Optional[str] = None,
    upsample_logits: bool = True,
    train_size: Optional[Sequence[int]] = None,
    metadata: Optional[Dict[str, Any]] = None,
    contents: Optional[CheckpointContents] = None,
) -> ConvertedCheckpoint:
    """Read a checkpoint file safely (see :func:`read_checkpoint`) and convert it (see :func:`convert_state_dict`).

    A segmentation model records the source file's name, layout and SHA-256 in ``metadata["converted_from"]``.
    ``contents``: the file already read by :func:`read_checkpoint` (not read again).
    """
    path = Path(path)
    contents = contents or read_checkpoint(path)
    metadata = dict(metadata or {})
    converted = convert_state_dict(
        contents.state_dict,
        layout=layout,
        model_name=model_name,
        num_classes=num_classes,
        dataset=dataset,
        upsample_logits=upsample_logits,
        train_size=train_size,
        metadata=metadata,
        name=str(path),
    )
    if converted.task == "segmentation":
        converted.meta_model.metadata.setdefault(
            "converted_from", {"file": path.name, "layout": converted.source_layout, "sha256": _sha256(path)}
        )
    converted.metadata_keys = contents.metadata_keys
    converted.placeholder_globals = contents.placeholder_globals
    return converted


def export_state_dict(model: nn.Module, layout: str = "original", prefix: str = "") -> Dict[str, torch.Tensor]:
    """``model``'s weights in ``layout``: ``"ours"``, ``"original"`` (optionally ``prefix="model."``) or ``"mmseg"``."""
    if layout == "ours":
        return {prefix + k: v.detach().clone() for k, v in model.state_dict().items()}
    if layout == "original":
        return to_original_state_dict(model, prefix=prefix)
    if layout == "mmseg":
        if prefix:
            raise InputError("MMSegmentation keys carry no prefix")
        return to_mmseg_state_dict(model)
    raise InputError(f"unknown layout {layout!r}; choose one of: {', '.join(EXPORT_LAYOUTS)}")
