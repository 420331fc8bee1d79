"""Model cards of Hub folders (the builder is :mod:`ddrnet_zoo.models.card`, which the models' Hub methods use)."""

from __future__ import annotations

from torch import nn

from ..errors import InputError
from ..models.card import CITATION, MODEL_CARD_NAME, PAPER_TITLE, build_model_card, is_segmentation
from ..models.config import SegmentationConfig

__all__ = ["CITATION", "MODEL_CARD_NAME", "PAPER_TITLE", "build_model_card", "config_from_model"]


def config_from_model(model: nn.Module) -> SegmentationConfig:
    """The :class:`~ddrnet_zoo.models.SegmentationConfig` of a segmentation model (``model.config``)."""
    if not is_segmentation(model):
        raise InputError(f"expected a DDRNetSegmentation, got {type(model).__name__}")
    return model.config
