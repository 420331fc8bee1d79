"""One way to load a model, ``ddrnet_zoo.load_model``: Hub id, Hub folder, file of any layout, training checkpoint.

Every loading API and command line goes through it (``hub.from_pretrained``, ``convert.load_checkpoint_any``,
``inference.load_segmentation_model``, ``engine.export.load_model_dir`` and ``evaluate.load_for_eval`` are
thin wrappers), and every path ends in the one strict loader, :func:`ddrnet_zoo.models.load_state_dict_strict`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from ..errors import InputError
from ..hub.load import from_pretrained
from ..io import CheckpointError
from ..layouts import read_checkpoint
from ..models import DDRNetSegmentation, SegmentationConfig, load_state_dict_strict
from ..models.pretrained import is_hub_id, missing_source_error
from .core import convert_checkpoint

__all__ = ["TRAIN_STATE_FORMAT", "load_model", "load_checkpoint_any", "model_from_train_state"]

TRAIN_STATE_FORMAT = "ddrnet_zoo.train_state.v1"
"""``format`` of a training checkpoint (``last.pt``): ``model`` (weights), ``model_config``, ``config`` (recipe)."""


def model_from_train_state(
    state: Mapping[str, Any], source: str, map_location: Union[str, torch.device] = "cpu"
) -> DDRNetSegmentation:
    """The model of a training checkpoint (``format`` :data:`TRAIN_STATE_FORMAT`), strictly loaded, in eval mode.

    Its training recipe (``state["config"]``) is recorded in ``model.config.metadata["training"]["recipe"]``,
    where a saved model folder keeps it.
    """
    try:
        config = SegmentationConfig.from_dict(state["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: a training checkpoint without a valid model config: {e}") from None
    if state.get("config") is not None:
        training = dict(config.metadata.get("training") or {})
        training["recipe"] = state["config"]
        config.metadata = {**config.metadata, "training": training}
    with torch.device("meta"):  # no memory until the weights are checked: the config may claim any width
        model = DDRNetSegmentation.from_config(config)
    load_state_dict_strict(model, state["model"], source, assign=True)
    return model.to(map_location).eval()


def load_model(
    source: Union[str, os.PathLike],
    *,
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
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
      if missing, when ``ORG`` is a local folder, ``hub`` or ``runs`` (:func:`~ddrnet_zoo.models.pretrained.is_hub_id`);
    * a Hub folder (``config.json`` + ``model.safetensors``, as ``save_pretrained`` writes); a training run's
      folder is refused with the model folders inside it (``best/``, ``final/``);
    * a checkpoint file of any layout (ours, the original release, MMSegmentation; ``.safetensors``
      or ``.pth``), the variant read from the tensor shapes (``dataset`` names classes and palette);
    * a training checkpoint (``last.pt`` of ``ddrnet-train``).

    Segmentation weights give a :class:`~ddrnet_zoo.models.DDRNetSegmentation` (with ``.config``),
    classification weights a timm DDRNet. ``model_name`` / ``num_classes`` assert what the
    checkpoint holds; ``upsample_logits`` overrides the stored choice; ``strict=False`` (Hub
    folders only) lets missing/unexpected keys keep their initialisation. Errors
    (:class:`~ddrnet_zoo.io.CheckpointError`, ``FileNotFoundError``) name the file and what is wrong:
    corrupt files, missing/unexpected keys, wrong class count, weights of another variant.
    """
    src = str(source)
    if not src:
        raise FileNotFoundError("no model given: pass a Hub id (ORG/NAME), a Hub folder or a checkpoint file")
    if Path(src).is_dir() or is_hub_id(src) or src.startswith("local-dir:"):
        model = from_pretrained(
            src,
            revision=revision,
            cache_dir=cache_dir,
            map_location=map_location,
            strict=strict,
            local_files_only=local_files_only,
            token=token,
            upsample_logits=upsample_logits,
        )
        return _expected(model, src, model_name, num_classes)
    if not Path(src).exists():
        raise missing_source_error(src)  # a path, at once: never tried as a Hub id (models.pretrained.is_hub_id)
    hub_only = {"revision": revision, "cache_dir": cache_dir, "token": token}
    given = sorted(k for k, v in hub_only.items() if v is not None)
    if given or local_files_only:
        raise InputError(f"unexpected arguments for a checkpoint file: {given or ['local_files_only']}")
    contents = read_checkpoint(src)
    wrapper = contents.wrapper or {}
    if wrapper.get("format") == TRAIN_STATE_FORMAT:
        model = model_from_train_state(wrapper, src, map_location)
    else:
        converted = convert_checkpoint(
            src,
            model_name=model_name,
            num_classes=num_classes,
            dataset=dataset,
            upsample_logits=True if upsample_logits is None else upsample_logits,
            contents=contents,
        )
        return converted.create_model(map_location)
    if upsample_logits is not None:
        model.upsample_logits = upsample_logits
    return _expected(model, src, model_name, num_classes)


def _expected(model: nn.Module, src: str, model_name: Optional[str], num_classes: Optional[int]) -> nn.Module:
    """``model``, after checking it is the ``model_name`` variant with ``num_classes`` classes (where given)."""
    cfg = getattr(model, "config", None)
    held = cfg.architecture if cfg is not None else getattr(model, "pretrained_cfg", {}).get("architecture")
    if model_name is not None and model_name.split(".", 1)[0] != held:
        raise CheckpointError(f"{src}: holds a {held}, not a {model_name}")
    actual = getattr(model, "num_classes", None)
    if num_classes is not None and actual != num_classes:
        raise CheckpointError(f"{src}: wrong class count: the model has {actual} classes, {num_classes} expected")
    return model


def load_checkpoint_any(
    source: Union[str, os.PathLike],
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
    dataset: Optional[str] = None,
    upsample_logits: bool = True,
    map_location: Union[str, torch.device] = "cpu",
    **hub_kwargs: Any,
) -> nn.Module:
    """Same as :func:`load_model` (its older name; ``hub_kwargs``: ``revision``, ``cache_dir``, ``token``...)."""
    return load_model(
        source,
        model_name=model_name,
        num_classes=num_classes,
        dataset=dataset,
        upsample_logits=None if upsample_logits else False,  # True: the stored choice of a Hub folder
        map_location=map_location,
        **hub_kwargs,
    )
