"""Where a model comes from: the one parser of model sources, Hub downloads and Hub folders.

A source is a Hub id (``ORG/NAME``, ``hf-hub:ORG/NAME``, ``@revision``), a Hub folder (``config.json``
+ ``model.safetensors``, or ``local-dir:PATH``) or a checkpoint file. :func:`parse_source` tells which,
once; :func:`open_hub_folder` reads the ``config.json`` of a folder or repository (unpublished
ddrnet_zoo repositories fail fast) and fetches its files through huggingface_hub's cache.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

from huggingface_hub import hf_hub_download
from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

from .._version import __version__
from ..errors import InputError
from ..io import CheckpointError
from ..published import check_published

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "LOCAL_FOLDER_NAMES",
    "ModelSource",
    "HubFolder",
    "parse_source",
    "is_hub_id",
    "missing_source_error",
    "not_a_model_folder_error",
    "open_hub_folder",
    "read_json",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

LOCAL_FOLDER_NAMES = ("hub", "runs")
"""Folders the tools write models into (``ddrnet-convert ... hub/NAME``, ``ddrnet-train``'s ``runs/NAME``):
``hub/NAME`` and ``runs/NAME`` are local paths, never Hub ids (``hf-hub:hub/NAME`` for a Hub user of such a name)."""

_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar", ".onnx")
_RUN_MODELS = ("best", "final")  # the model folders of a ddrnet-train run, in the order to suggest them


@dataclass(frozen=True)
class ModelSource:
    """A parsed model source: ``kind`` is ``"hub"`` (``repo_id``, ``revision``), ``"folder"`` or ``"file"``."""

    text: str
    kind: str
    path: Optional[Path] = None
    repo_id: Optional[str] = None
    revision: Optional[str] = None


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


def parse_source(source: Union[str, os.PathLike], revision: Optional[str] = None) -> ModelSource:
    """What ``source`` is: a folder (or ``local-dir:PATH``), a file, or a Hub id (``hf-hub:ID[@REV]``, ``ID``).

    A local path that does not exist is an error at once (:func:`missing_source_error`); ``revision``
    applies to Hub ids and must agree with an ``@revision`` in the id.
    """
    text = str(source)
    if not text:
        raise FileNotFoundError("no model given: pass a Hub id (ORG/NAME), a Hub folder or a checkpoint file")
    if text.startswith("local-dir:"):
        folder = Path(text[len("local-dir:") :])
        kind = "folder"
    elif not text.startswith("hf-hub:") and Path(text).exists():
        folder = Path(text)
        kind = "folder" if folder.is_dir() else "file"
    elif not is_hub_id(text):
        raise missing_source_error(text)
    else:
        folder, kind = None, "hub"
    if kind != "hub":
        if revision is not None:
            raise InputError(f"revision={revision!r} applies to Hub ids, not to the local {kind} {text}")
        return ModelSource(text, kind, path=folder)
    repo_id = text[len("hf-hub:") :] if text.startswith("hf-hub:") else text
    if "@" in repo_id:
        repo_id, rev = repo_id.split("@", 1)
        if revision is not None and revision != rev:
            raise InputError(f"two revisions given: {rev!r} in the id and revision={revision!r}")
        revision = rev
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{repo_id!r} is neither a local folder nor a Hub repository id (ORG/NAME); a folder needs "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    return ModelSource(text, "hub", repo_id=repo_id, revision=revision)


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
class HubFolder:
    """A Hub folder or repository (a parsed ``"folder"`` or ``"hub"`` source) with its ``config.json`` read."""

    source: ModelSource
    cache_dir: Optional[Union[str, os.PathLike]] = None
    local_files_only: bool = False
    token: Optional[Union[str, bool]] = None
    config_path: Optional[Path] = None
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_timm(self) -> bool:
        """timm's format (a classifier written by ``timm.models.save_for_hf``)."""
        return "pretrained_cfg" in self.config

    def fetch(self, filename: str) -> Path:
        """The local path of ``filename`` (downloaded through the Hub cache for a repository)."""
        folder = self.source.path
        if folder is not None:
            path = folder / filename
            if not path.is_file():
                if filename == CONFIG_NAME:
                    raise not_a_model_folder_error(folder)
                raise CheckpointError(
                    f"{folder}: no {filename} in this folder (a Hub folder needs {CONFIG_NAME} "
                    f"and {WEIGHTS_NAME}; convert other checkpoints with ddrnet-convert)"
                )
            return path
        repo_id, revision = str(self.source.repo_id), self.source.revision
        try:
            return Path(
                hf_hub_download(
                    repo_id,
                    filename,
                    revision=revision,
                    cache_dir=self.cache_dir,
                    local_files_only=self.local_files_only,
                    token=self.token,
                    library_name="ddrnet_zoo",
                    library_version=__version__,
                )
            )
        except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError) as e:
            where = f"{repo_id}@{revision}" if revision else repo_id
            raise CheckpointError(
                f"{where}: cannot get {filename} from the Hugging Face Hub: check the repository id, revision and "
                f"network\n  ({type(e).__name__}: {str(e).splitlines()[0]})\n"
                "  offline (HF_HUB_OFFLINE=1) only files already in the Hub cache load"
                + ("" if Path(repo_id).exists() else f"; there is no local folder {repo_id} either")
            ) from e


def open_hub_folder(
    source: ModelSource,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    local_files_only: bool = False,
    token: Optional[Union[str, bool]] = None,
) -> HubFolder:
    """The Hub folder or repository ``source`` names, its ``config.json`` read.

    Unpublished ddrnet_zoo repositories fail fast (:func:`~ddrnet_zoo.published.check_published`).
    """
    if source.kind == "file":
        raise InputError(f"{source.text} is a file, not a Hub folder or repository")
    if source.kind == "hub":
        check_published(
            str(source.repo_id),
            "load_model('{folder}'), or -m {folder} in ddrnet-predict, ddrnet-eval and ddrnet-export",
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    hub = HubFolder(source, cache_dir, local_files_only, token)
    hub.config_path = hub.fetch(CONFIG_NAME)
    hub.config = read_json(hub.config_path)
    return hub
