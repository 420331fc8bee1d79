"""Model folders in the Hub format for training (thin layer over :mod:`ddrnet_zoo.hub`), weights into a model.

A model folder is what :func:`ddrnet_zoo.hub.save_pretrained` writes (``model.safetensors``,
``config.json``, model card) and :func:`ddrnet_zoo.load_model` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from ..hub import save_pretrained
from ..models import load_state_dict_strict

__all__ = ["save_model_dir", "load_model_weights"]

_logger = logging.getLogger(__name__)


def save_model_dir(
    model: torch.nn.Module,
    directory: Path,
    results: Optional[Sequence[Dict[str, Any]]] = None,
) -> Path:
    """Write ``model`` as a Hub folder (``config.json`` is ``model.config``), atomically."""
    return save_pretrained(model, directory, results=results)


def load_model_weights(
    model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str, allow_new_classifier: bool = False
) -> None:
    """Strictly load ``state`` into ``model``; errors list missing/unexpected keys and shape mismatches.

    With ``allow_new_classifier`` the 1x1 classifiers of the heads may differ in shape (fine-tuning
    to another number of classes); they keep their fresh initialisation (logged).
    """
    if allow_new_classifier:
        own = model.state_dict()
        new = [k for k in state if ".classifier." in k and k in own and own[k].shape != state[k].shape]
        if new:
            state = {**state, **{k: own[k] for k in new}}
            _logger.info("new classifier weights (class count differs from %s): %s", source, ", ".join(new))
    load_state_dict_strict(model, state, source)
