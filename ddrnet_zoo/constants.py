"""Numbers the whole package shares, each defined once."""

from __future__ import annotations

from typing import Tuple

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ["IGNORE_INDEX", "AUX_LOSS_WEIGHT", "DEFAULT_MEAN", "DEFAULT_STD"]

IGNORE_INDEX = 255
"""The label value that losses and metrics ignore (datasets map void/unlabelled pixels to it)."""

AUX_LOSS_WEIGHT = 0.4
"""Weight alpha of the auxiliary loss in Eq. 3 (after PSPNet)."""

DEFAULT_MEAN: Tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
"""Per-channel mean of RGB values in 0-1 that inputs are normalised with (ImageNet's, as the paper)."""

DEFAULT_STD: Tuple[float, float, float] = IMAGENET_DEFAULT_STD
"""Per-channel standard deviation that inputs are normalised with."""
