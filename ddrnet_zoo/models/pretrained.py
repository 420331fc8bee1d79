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
    "LOCAL_FOLDER_NAMES",
    "HubSource",
    "is_hub_id",
    "missing_source_error",
    "not_a_model_folder_error",
    "open_hub_source",
    "load_state_dict_strict",
    "hub_file",
    "read_json",
    "split_source",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

LOCAL_FOLDER_NAMES = ("hub", "runs")
"""Folders the tools write models into (``ddrnet-convert ... hub/NAME``, ``ddrnet-train``'s ``runs/NAME``):
``hub/NAME`` and ``runs/NAME`` are local paths, never Hub ids (``hf-hub:hub/NAME`` for a Hub user of such a name)."""

_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar", ".onnx")
_RUN_MODELS = ("best", "final")  # the model folders of a ddrnet-train run, in the order to suggest them

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
                f"{source}: wrong class count: the checkpoint has {got[0]} classes, the model {want[0]}: "
                f"build the model with num_classes={got[0]}\n"
                f"  ({what}; {k}: {got} vs {want}); or fine-tune a new head from the backbone weights"
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


def is_hub_id(source: str) -> bool:
    """Whether ``source`` names a Hub repository rather than a local path.

    ``hf-hub:ID`` always does. Otherwise ``ORG/NAME[@REV]`` does when nothing exists at that path and it
    does not look like a path: no leading ``.``, ``/`` or ``~``, no checkpoint suffix, and ``ORG`` is
    neither an existing local folder nor one of :data:`LOCAL_FOLDER_NAMES`. A path-like source that does
    not exist is then reported at once (:func:`missing_source_error`), not looked up on the Hub.
    """
    if source.startswith("hf-hub:"):
        return True
    parts = source.split("@", 1)[0].split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not source.startswith((".", "/", "~"))
        and not source.endswith(_CHECKPOINT_SUFFIXES)
        and parts[0] not in LOCAL_FOLDER_NAMES
        and not Path(source).exists()
        and not Path(parts[0]).is_dir()
    )


def missing_source_error(source: str) -> CheckpointError:
    """The error for a local model path that does not exist: the first line says so, the next what is there."""
    path = Path(source).expanduser()
    lines = [f"no such model folder or file: {source} (give a Hub folder, a checkpoint file or a Hub id ORG/NAME)"]
    parent = path.parent
    if not parent.is_dir():
        lines.append(f"  {parent}/ does not exist either (current folder: {Path.cwd()})")
    else:
        near = sorted(p.name + ("/" if p.is_dir() else "") for p in parent.iterdir() if not p.name.startswith("."))
        shown = ", ".join(near[:8]) + (f", ... ({len(near)} in all)" if len(near) > 8 else "")
        where = f"the current folder ({Path.cwd()})" if str(parent) == "." else str(parent).rstrip("/") + "/"
        lines.append(f"  {where} holds: {shown or 'nothing'}")
    if len(source.split("/")) == 2 and not source.startswith((".", "/", "~")):
        lines.append(f"  a Hub repository of that name: hf-hub:{source}")
    return CheckpointError("\n".join(lines))


def not_a_model_folder_error(folder: Path) -> CheckpointError:
    """The error for a folder without ``config.json``; a training run's folder names the models inside it."""
    if not folder.is_dir():
        return missing_source_error(str(folder))
    models = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and (p / CONFIG_NAME).is_file()]
    models.sort(key=lambda name: (_RUN_MODELS.index(name) if name in _RUN_MODELS else len(_RUN_MODELS), name))
    if models and models[0] in _RUN_MODELS:
        what = {"best": "best/ (the best validation mIoU)", "final": "final/ (the last iteration)"}
        return CheckpointError(
            f"{folder} is a training run folder, not a model folder: use {folder / models[0]}\n"
            f"  its models: {', '.join(what.get(m, m + '/') for m in models)}"
        )
    if models:
        return CheckpointError(
            f"{folder} holds model folders but is not one: use one of them, e.g. {folder / models[0]}\n"
            f"  its model folders: {', '.join(m + '/' for m in models)}"
        )
    if (folder / "last.pt").is_file():
        return CheckpointError(
            f"{folder} is a training run without an exported model yet: use its checkpoint {folder / 'last.pt'}"
        )
    return CheckpointError(
        f"{folder}: no {CONFIG_NAME} in this folder: give a Hub folder ({CONFIG_NAME} + {WEIGHTS_NAME})\n"
        "  other checkpoints: load the file itself, or convert it with ddrnet-convert"
    )


def split_source(source: str, revision: Optional[str]) -> Tuple[Optional[Path], Optional[str], Optional[str]]:
    """(local folder, repo id, revision) of ``source``: a folder, ``local-dir:PATH``, ``hf-hub:ID[@REV]`` or ``ID``."""
    if source.startswith("local-dir:"):
        return Path(source[len("local-dir:") :]), None, None
    if source.startswith("hf-hub:"):
        source = source[len("hf-hub:") :]
    elif Path(source).is_dir():
        return Path(source), None, None
    elif not is_hub_id(source):
        raise missing_source_error(source)
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
            f"{where}: cannot get {filename} from the Hugging Face Hub: check the repository id, revision and network\n"
            f"  ({type(e).__name__}: {str(e).splitlines()[0]})\n"
            "  offline (HF_HUB_OFFLINE=1) only files already in the Hub cache load"
            + ("" if Path(repo_id).exists() else f"; there is no local folder {repo_id} either")
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
                if filename == CONFIG_NAME:
                    raise not_a_model_folder_error(self.folder)
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
