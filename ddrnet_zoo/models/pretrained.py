"""Weights into our models: the strict loader, Hub file download and Hub source parsing.

Used by the models' Hub methods (:mod:`.hub_io`), the converters, :mod:`ddrnet_zoo.hub`,
:func:`ddrnet_zoo.load_model` and the engine; it sits here, below them all.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
from torch import nn

from .._version import __version__
from ..errors import InputError
from ..io import CheckpointError
from ..layouts import read_shapes
from ..published import check_published
from .config import SegmentationConfig
from .ddrnet import MODEL_ARCHS, DDRNet
from .variants import relevant_arch, resolve_architecture

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "HubSource",
    "open_hub_source",
    "load_state_dict_strict",
    "hub_file",
    "read_json",
    "split_source",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_CLASSIFIER_KEYS = ("fc.weight", "fc.bias", "head.classifier.conv.weight", "head.classifier.conv.bias")
_AUX_CLASSIFIER_KEYS = ("aux_head.classifier.conv.weight", "aux_head.classifier.conv.bias")


def _listing(items: Sequence[Any], limit: int = 12) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown


def _model_description(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    if isinstance(cfg, SegmentationConfig):
        return f"{cfg.architecture} segmentation model"
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
                f"{source}: wrong class count: the checkpoint has {got[0]} classes, the {what} has {want[0]} "
                f"({k}: {got} vs {want}). Build the model with num_classes={got[0]}, or fine-tune a new head "
                "from the backbone weights."
            )
        if mismatched:
            problems.append(
                "shape mismatches (checkpoint vs model): "
                + _listing([f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in mismatched], 6)
            )
        if missing:
            problems.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listing(unexpected)}")
        hint = ""
        if mismatched:
            try:
                info = read_shapes(state_dict, "ours", source)
                architecture, a = resolve_architecture(info, None, source)
                registered = a == relevant_arch(MODEL_ARCHS[architecture], info["task"], a)
                hint = (
                    f" The weights are those of a {architecture}{'' if registered else ' (custom)'} "
                    f"(width {a.width}, depths {list(a.depths)}, {info['num_classes']} classes): a checkpoint for "
                    "another variant."
                )
            except Exception:  # the hint is a guess; the error below stands without it
                hint = " The checkpoint is for another variant."
        elif missing and all(k.startswith("aux_head.") for k in missing) and not unexpected:
            hint = " The checkpoint has no auxiliary head: build the model with aux_head=False."
        elif unexpected and all(k.startswith("aux_head.") for k in unexpected) and not missing:
            hint = " The checkpoint has an auxiliary head: build the model with aux_head=True."
        raise CheckpointError(f"{source}: does not match the {what}: " + "; ".join(problems) + "." + hint)
    if missing or unexpected:
        warnings.warn(
            f"{source}: loaded non-strictly; missing {_listing(missing)}; unexpected {_listing(unexpected)}",
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


def split_source(source: str, revision: Optional[str]) -> Tuple[Optional[Path], Optional[str], Optional[str]]:
    """(local folder, repo id, revision) of ``source``: a folder, ``local-dir:PATH``, ``hf-hub:ID[@REV]`` or ``ID``."""
    if source.startswith("local-dir:"):
        return Path(source[len("local-dir:") :]), None, None
    if source.startswith("hf-hub:"):
        source = source[len("hf-hub:") :]
    elif Path(source).is_dir():
        return Path(source), None, None
    if "@" in source:
        source, rev = source.split("@", 1)
        if revision is not None and revision != rev:
            raise InputError(f"two revisions given: {rev!r} in the id and revision={revision!r}")
        revision = rev
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{source!r} is neither a local folder nor a Hub repository id (ORG/NAME); a folder needs "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    return None, source, revision


def hub_file(repo_id: str, filename: str, revision: Optional[str], cache_dir, local_files_only: bool, token) -> Path:
    """Download ``filename`` of ``repo_id`` through huggingface_hub's cache; a clear error when it cannot."""
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                library_name="ddrnet_zoo",
                library_version=__version__,
            )
        )
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError) as e:
        where = f"{repo_id}@{revision}" if revision else repo_id
        raise CheckpointError(
            f"{where}: cannot get {filename} ({type(e).__name__}: {str(e).splitlines()[0]}). Check the repository "
            "id and revision; offline (HF_HUB_OFFLINE=1) only files already in the Hub cache can be loaded"
        ) from e


def read_json(path: Path) -> Dict[str, Any]:
    """The JSON object in ``path``; a :class:`~ddrnet_zoo.io.CheckpointError` naming the file otherwise."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or UTF-8, a 10,000-digit number
        raise CheckpointError(f"{path}: not a readable JSON config (truncated or corrupt?): {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


@dataclass
class HubSource:
    """A Hub folder or repository (``source`` parsed), with its ``config.json`` read."""

    source: str
    folder: Optional[Path]
    repo_id: Optional[str]
    revision: Optional[str]
    cache_dir: Optional[Union[str, os.PathLike]] = None
    local_files_only: bool = False
    token: Optional[Union[str, bool]] = None
    config_path: Optional[Path] = None
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_timm(self) -> bool:
        """timm's format (a classifier written by ``timm.models.save_for_hf``)."""
        return "pretrained_cfg" in self.config

    @property
    def model_id(self) -> str:
        """The folder or repository id (what huggingface_hub's ``from_pretrained`` takes)."""
        return str(self.folder) if self.folder is not None else str(self.repo_id)

    def fetch(self, filename: str) -> Path:
        """The local path of ``filename`` (downloaded through the Hub cache for a repository)."""
        if self.folder is not None:
            path = self.folder / filename
            if not path.is_file():
                raise CheckpointError(
                    f"{self.folder}: no {filename} in this folder (a Hub folder needs {CONFIG_NAME} "
                    f"and {WEIGHTS_NAME}; convert other checkpoints with ddrnet-convert)"
                )
            return path
        return hub_file(self.repo_id, filename, self.revision, self.cache_dir, self.local_files_only, self.token)

    def segmentation_config(self) -> SegmentationConfig:
        """The :class:`SegmentationConfig` in ``config.json``; a clear error when it is invalid."""
        try:
            return SegmentationConfig.from_dict(self.config)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{self.config_path}: invalid config: {e}") from None


def open_hub_source(
    source: Union[str, os.PathLike],
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    local_files_only: bool = False,
    token: Optional[Union[str, bool]] = None,
) -> HubSource:
    """Parse ``source`` (folder, ``local-dir:``, ``hf-hub:ID[@REV]``, ``ID``) and read its ``config.json``.

    Unpublished ddrnet_zoo repositories fail fast (:func:`~ddrnet_zoo.published.check_published`).
    """
    folder, repo_id, revision = split_source(str(source), revision)
    if repo_id is not None:
        check_published(
            repo_id,
            "from_pretrained('{folder}'), or -m {folder} in ddrnet-predict, ddrnet-eval and ddrnet-export",
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    hub = HubSource(str(source), folder, repo_id, revision, cache_dir, local_files_only, token)
    hub.config_path = hub.fetch(CONFIG_NAME)
    hub.config = read_json(hub.config_path)
    return hub
