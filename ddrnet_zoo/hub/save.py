"""Writing Hub folders: segmentation models (weights through the mixin's hook), classifiers in timm's format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from timm.models import save_for_hf
from torch import nn

from ..errors import InputError
from ..io import atomic_directory
from ..models import MODEL_ARCHS, DDRNet, DDRNetSegmentation
from ..models.ddrnet import arch_dict
from .card import MODEL_CARD_NAME, build_model_card
from .source import CONFIG_NAME, WEIGHTS_NAME

__all__ = ["HUB_FOLDER_FILES", "save_pretrained"]

HUB_FOLDER_FILES = (CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME, "pytorch_model.bin", "model.safetensors.index.json")
"""Files of a Hub folder that a new save replaces or drops (other files in the folder are kept)."""


def save_pretrained(
    model: nn.Module,
    save_directory: Union[str, os.PathLike],
    model_card: bool = True,
    repo_id: Optional[str] = None,
    results: Optional[Sequence[Dict[str, Any]]] = None,
    flops_input_size: Optional[Tuple[int, int]] = None,
) -> Path:
    """Write ``model`` as a Hub folder: ``model.safetensors``, ``config.json`` and ``README.md``.

    Segmentation models: ``config.json`` is ``model.config`` (written by the mixin's ``_save_pretrained``
    hook with the weights). Classifiers get timm's format
    (via ``timm.models.save_for_hf``). The folder is written beside ``save_directory`` and replaces
    it as a whole (see :func:`ddrnet_zoo.io.atomic_directory`): an interrupted save leaves the old
    folder intact, and weights and config always come from the same save. Other files in an
    existing folder (e.g. evaluation reports) are kept. Returns the folder.
    """
    save_directory = Path(save_directory)
    if isinstance(model, DDRNetSegmentation):
        with atomic_directory(save_directory, replaced=HUB_FOLDER_FILES) as tmp:
            model._save_pretrained(tmp)  # the mixin's hook: model.safetensors and config.json
            if model_card:
                card = build_model_card(model, repo_id, results, flops_input_size)
                (tmp / MODEL_CARD_NAME).write_text(str(card), encoding="utf-8")
        return save_directory
    if isinstance(model, DDRNet):
        if not hasattr(model, "pretrained_cfg"):
            raise InputError(
                "save a classifier built with timm.create_model (it carries the pretrained_cfg timm needs)"
            )
        if model.segmentation_mode or model._pruned_after is not None:
            raise InputError(
                "only complete classifiers can be saved in timm's format (not a pruned/segmentation backbone)"
            )
        name = model.pretrained_cfg.get("architecture")
        custom = MODEL_ARCHS.get(name) != model.arch or "arch" in getattr(model, "_model_args", {})
        model_args = {"arch": arch_dict(model.arch)} if custom else {}  # JSON form of a DDRNetArch argument
        card = build_model_card(model, repo_id, results, flops_input_size) if model_card else None
        with atomic_directory(save_directory, replaced=HUB_FOLDER_FILES) as tmp:
            save_for_hf(model, str(tmp), model_args=model_args, safe_serialization=True)
            if card is not None:
                (tmp / MODEL_CARD_NAME).write_text(str(card), encoding="utf-8")
        return save_directory
    raise InputError(f"expected a DDRNetSegmentation or a DDRNet (timm) model, got {type(model).__name__}")
