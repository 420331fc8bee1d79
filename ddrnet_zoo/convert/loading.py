"""The one public loader, ``ddrnet_zoo.load_model``: Hub id, Hub folder, file of any layout, training checkpoint.

The source is parsed once (:func:`ddrnet_zoo.hub.source.parse_source`); the expected variant and class
count are checked against what the source describes (its ``config.json``, the training checkpoint's
model config, or the tensor shapes) before any weights are built; every path ends in the one strict
loader (:func:`ddrnet_zoo.models.pretrained.build_with_weights`).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import timm
import torch
from torch import nn

from ..errors import InputError
from ..hub.source import WEIGHTS_NAME, HubFolder, open_hub_folder, parse_source
from ..io import CheckpointError, read_state_dict
from ..layouts import read_checkpoint
from ..models import DDRNetSegmentation, read_model_config
from ..models.pretrained import build_with_weights
from .core import convert_checkpoint

__all__ = ["TRAIN_STATE_FORMAT", "load_model"]

_TASKS = ("segmentation", "classification")

TRAIN_STATE_FORMAT = "ddrnet_zoo.train_state.v1"
"""``format`` of a training checkpoint (``last.pt``): ``model`` (weights), ``model_config``, ``config`` (recipe)."""


def load_model(
    source: Union[str, os.PathLike],
    *,
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
    task: Optional[str] = None,
    dataset: Optional[str] = None,
    map_location: Union[str, torch.device] = "cpu",
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    local_files_only: bool = False,
    token: Optional[Union[str, bool]] = None,
    upsample_logits: Optional[bool] = None,
    strict: bool = True,
) -> nn.Module:
    """Load a DDRNet model from anything users have, in eval mode.

    ``source`` is one of:

    * a Hub repository id: ``ORG/NAME``, ``hf-hub:ORG/NAME``, optionally ``@revision`` (through the
      Hub cache; unpublished ddrnet_zoo weights fail fast). ``ORG/NAME`` is a local path, reported at once
      if missing, when ``ORG`` is a local folder, ``hub`` or ``runs`` (:func:`~ddrnet_zoo.hub.source.is_hub_id`);
    * a Hub folder (``config.json`` + ``model.safetensors``, as ``save_pretrained`` writes; folders of
      earlier releases too); a training run's folder is refused with the model folders inside it;
    * a checkpoint file of any layout (ours, the original release, MMSegmentation; ``.safetensors``
      or ``.pth``), the variant read from the tensor shapes (``dataset`` names classes and palette);
    * a training checkpoint (``last.pt`` of ``ddrnet-train``).

    Segmentation weights give a :class:`~ddrnet_zoo.models.DDRNetSegmentation` (with ``.config``),
    classification weights a timm DDRNet. ``model_name`` / ``num_classes`` / ``task``
    (``"segmentation"`` or ``"classification"``) assert what the source holds, checked before any
    weights are built; ``upsample_logits`` overrides the stored choice;
    ``strict=False`` (Hub folders only) lets missing/unexpected keys keep their initialisation.
    Errors (:class:`~ddrnet_zoo.io.CheckpointError`, ``FileNotFoundError``) name the file and what is
    wrong: corrupt files, missing/unexpected keys, wrong class count, weights of another variant.
    """
    if task not in (None, *_TASKS):
        raise InputError(f"task must be one of {', '.join(_TASKS)}, got {task!r}")
    src = parse_source(source, revision)
    if src.kind != "file":
        hub = open_hub_folder(src, cache_dir, local_files_only, token)
        return _from_hub_folder(hub, model_name, num_classes, task, map_location, strict, upsample_logits)
    hub_only = {"cache_dir": cache_dir, "token": token}
    given = sorted(k for k, v in hub_only.items() if v is not None)
    if given or local_files_only:
        raise InputError(f"unexpected arguments for a checkpoint file: {given or ['local_files_only']}")
    contents = read_checkpoint(src.path)
    wrapper = contents.wrapper or {}
    if wrapper.get("format") == TRAIN_STATE_FORMAT:
        model = _described_model(
            wrapper.get("model_config"), f"{src.text}: a training checkpoint without a valid model config"
        )
        if wrapper.get("config") is not None:  # the recipe, where a saved model folder keeps it
            model.metadata["training"] = {**(model.metadata.get("training") or {}), "recipe": wrapper["config"]}
        _check_expected(src.text, "segmentation", model.architecture, model.num_classes, task, model_name, num_classes)
        if upsample_logits is not None:
            model.upsample_logits = upsample_logits
        return build_with_weights(lambda: model, wrapper["model"], src.text, map_location)
    converted = convert_checkpoint(
        src.path,
        model_name=model_name,
        num_classes=num_classes,
        dataset=dataset,
        upsample_logits=True if upsample_logits is None else upsample_logits,
        contents=contents,
    )
    held = converted.model_args
    _check_expected(src.text, converted.task, held["architecture"], held["num_classes"], task)
    return build_with_weights(lambda: converted.meta_model, converted.state_dict, src.text, map_location)


def _check_expected(
    src: str,
    held_task: str,
    held: Optional[str],
    classes: Any,
    task: Optional[str],
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
) -> None:
    """Refuse a source holding another task, variant or class count than the one asked for (where given)."""
    if task is not None and task != held_task:
        what = "an ImageNet classifier" if held_task == "classification" else "a segmentation model"
        raise CheckpointError(f"{src} holds {what}, not a {task} model; give {task} weights")
    if model_name is not None and model_name.split(".", 1)[0] != held:
        raise CheckpointError(f"{src}: holds a {held}, not a {model_name}")
    if num_classes is not None and classes != num_classes:
        raise CheckpointError(f"{src}: wrong class count: the model has {classes} classes, {num_classes} expected")


def _described_model(config: Any, where: str) -> DDRNetSegmentation:
    """The segmentation model ``config`` (a ``config.json`` dict) describes, on the meta device: every argument
    is checked before any weights are read; a bad one is a :class:`CheckpointError` after ``where``."""
    try:
        kwargs = read_model_config(config)
        with torch.device("meta"):
            return DDRNetSegmentation(**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: {e}") from None


def _from_hub_folder(
    hub: HubFolder,
    model_name: Optional[str],
    num_classes: Optional[int],
    task: Optional[str],
    map_location: Union[str, torch.device],
    strict: bool,
    upsample_logits: Optional[bool],
) -> nn.Module:
    """The model of a Hub folder or repository: a classifier through timm, a segmentation model strictly."""
    src = hub.source.text
    held_task = "classification" if hub.is_timm else "segmentation"  # the one decision of the model's kind
    held, classes = hub.config.get("architecture"), hub.config.get("num_classes")
    _check_expected(src, held_task, held, classes, task, model_name, num_classes)
    if held_task == "classification":  # timm's format
        if hub.source.kind == "folder":
            name = f"local-dir:{hub.source.path}"
        else:
            name = f"hf-hub:{hub.source.repo_id}" + (f"@{hub.source.revision}" if hub.source.revision else "")
        hub.fetch(WEIGHTS_NAME)  # clear error (and download with our arguments) before timm reads it
        try:
            model = timm.create_model(name, pretrained=True, cache_dir=hub.cache_dir)
        except Exception as e:  # timm raises many types for a bad folder; all name the source here
            raise CheckpointError(f"{src}: cannot load the timm-format checkpoint: {e}") from e
        return model.to(map_location).eval()
    model = _described_model(hub.config, f"{hub.config_path}: invalid config")
    if upsample_logits is not None:
        model.upsample_logits = upsample_logits
    weights = hub.fetch(WEIGHTS_NAME)
    state_dict = read_state_dict(weights)
    # strict: this meta model takes the weights; otherwise keys the weights lack keep a real initialisation
    build = (lambda: model) if strict else (lambda: DDRNetSegmentation(**read_model_config(model.config)))
    return build_with_weights(build, state_dict, str(weights), map_location, strict)
