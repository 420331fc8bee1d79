"""Palettes, colour masks, overlays and label PNGs: how predictions are drawn.

Palettes come from one source, :mod:`ddrnet_zoo.data.meta` (the datasets' colours and
:func:`~ddrnet_zoo.data.meta.default_palette` for models without any).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from ..data.meta import DATASETS, default_palette, train_ids_to_label_ids
from ..errors import DDRNetError, InputError

__all__ = ["PaletteError", "resolve_palette", "colorize", "overlay", "label_image"]

PathLike = Union[str, os.PathLike]


class PaletteError(DDRNetError, ValueError):
    """A palette is malformed or its colour count differs from the model's class count."""


def _check_palette(colours: Any, num_classes: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(colours, dtype=np.int64)
    except (TypeError, ValueError):
        raise PaletteError(f"{what}: a palette is a list of [R, G, B] colours, got {type(colours).__name__}") from None
    if arr.ndim != 2 or arr.shape[1] != 3 or (arr < 0).any() or (arr > 255).any():
        raise PaletteError(f"{what}: a palette is a list of [R, G, B] colours in 0-255, got shape {arr.shape}")
    if len(arr) != num_classes:
        raise PaletteError(
            f"{what} has {len(arr)} colours but the model predicts {num_classes} classes: give {num_classes} colours\n"
            "  (a JSON file of [R, G, B]), or leave the palette out to use the model's"
        )
    return arr.astype(np.uint8)


def resolve_palette(
    palette: Optional[Union[str, PathLike, Sequence[Sequence[int]]]],
    num_classes: int,
    dataset: Optional[Mapping[str, Any]] = None,
) -> np.ndarray:
    """The (num_classes, 3) ``uint8`` colours to draw with.

    ``palette`` is ``"cityscapes"`` / ``"camvid"``, ``"config"`` (the model's, from its ``dataset``
    description), a JSON file with a list of ``[R, G, B]``, or such a list. ``None``: the model's palette,
    else that of its dataset's name,
    else :func:`~ddrnet_zoo.data.meta.default_palette`. A colour count that differs from
    ``num_classes`` is a :class:`PaletteError`.
    """
    cfg_palette = (dataset or {}).get("palette")
    cfg_dataset = (dataset or {}).get("name")
    if palette is None:
        if cfg_palette is not None:
            return _check_palette(cfg_palette, num_classes, "the model config's palette")
        if cfg_dataset and str(cfg_dataset).lower() in DATASETS:
            return _check_palette(DATASETS[cfg_dataset.lower()].palette, num_classes, f"the {cfg_dataset} palette")
        return np.asarray(default_palette(num_classes), dtype=np.uint8).reshape(-1, 3)
    if isinstance(palette, (str, os.PathLike)):
        key = str(palette).lower()
        if key in DATASETS:
            return _check_palette(DATASETS[key].palette, num_classes, f"the {key} palette")
        if key == "config":
            if cfg_palette is None:
                raise PaletteError("--palette config: the model config has no palette; name one (cityscapes, camvid)")
            return _check_palette(cfg_palette, num_classes, "the model config's palette")
        path = Path(palette)
        if not path.is_file():
            raise PaletteError(
                f"unknown palette {str(palette)!r}: use {', '.join(DATASETS)}, 'config', or a JSON file of [R, G, B]"
            )
        try:
            colours = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PaletteError(f"{path}: not a readable JSON palette: {e}") from None
        if isinstance(colours, dict) and "palette" in colours:
            colours = colours["palette"]
        return _check_palette(colours, num_classes, str(path))
    return _check_palette(palette, num_classes, "the given palette")


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Colour mask (H, W, 3) ``uint8`` of class indices ``labels`` (H, W)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(palette)):
        raise PaletteError(f"labels span {labels.min()}-{labels.max()} but the palette has {len(palette)} colours")
    return np.asarray(palette, dtype=np.uint8)[labels]


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` blended with its colour mask: ``(1 - alpha) * image + alpha * color``."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    if image.shape != color.shape:
        raise InputError(f"image {image.shape} and colour mask {color.shape} differ in size")
    out = image.astype(np.float32) * (1.0 - alpha) + color.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def label_image(labels: np.ndarray, palette: np.ndarray, label_ids: bool = False) -> Image.Image:
    """The label PNG of class indices ``labels`` (H, W).

    A palette image (mode P: the pixel values are the class indices, viewers show the palette's
    colours); 16-bit grey above 256 classes; with ``label_ids`` Cityscapes labelIds (grey).
    """
    if label_ids:
        return Image.fromarray(train_ids_to_label_ids(labels))
    if len(palette) > 256:
        return Image.fromarray(labels.astype(np.uint16))
    im = Image.fromarray(labels.astype(np.uint8))  # mode L; values = class indices
    flat = np.asarray(palette).reshape(-1).tolist()
    im.putpalette(flat + [0] * (768 - len(flat)))  # P mode: same values, shown in the palette's colours
    return im
