"""Image and label decoding: the one reader of training data and of the images ``ddrnet-predict`` segments.

EXIF orientation is an explicit choice of the caller (``exif_transpose``):

- **Prediction** (:class:`~ddrnet_zoo.inference.Predictor`) passes ``exif_transpose=True``: a
  phone photo taken in portrait is stored sideways with an EXIF *Orientation* tag, and the
  user means the upright picture that every image viewer shows, so the outputs are upright too.
- **Datasets** pass ``exif_transpose=False``: label masks carry no EXIF, so rotating an image
  without rotating its label identically would pair pixels with the wrong classes. The stored
  pixel grid is what the labels were drawn on.

The default (``True``) is what a person looking at the file sees; training code spells out ``False``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DDRNetError, InputError

__all__ = [
    "DatasetError",
    "ImageReadError",
    "LABEL_VALUE_LIMIT",
    "read_image",
    "read_label",
    "to_rgb_array",
    "unreadable_images",
]

PathLike = Union[str, os.PathLike]
LABEL_VALUE_LIMIT = 1 << 16
"""Label images are 8- or 16-bit: values lie in ``0..LABEL_VALUE_LIMIT - 1``."""
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError)  # what PIL raises for bad files
_LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")


class DatasetError(DDRNetError, ValueError):
    """Dataset files are missing, unmatched or hold invalid labels."""


class ImageReadError(DatasetError):
    """An image or label file is missing, not an image, or truncated.

    A :class:`DatasetError` so that a dataset's unreadable file is caught as one; prediction
    reports it per input file.
    """


def _rgb(im: Image.Image, exif_transpose: bool) -> np.ndarray:
    if exif_transpose:
        im = ImageOps.exif_transpose(im)  # PIL's: applies and drops the Orientation tag
    return np.array(im.convert("RGB"))  # a writable copy (torch.from_numpy warns on read-only arrays)


def read_image(path: PathLike, exif_transpose: bool = True) -> np.ndarray:
    """An RGB ``uint8`` array (H, W, 3) of the image file ``path``.

    ``exif_transpose``: turn the pixels as the EXIF Orientation tag says (what viewers show);
    datasets pass ``False`` because their labels are not turned (see the module docstring).
    Raises :class:`ImageReadError` naming the file if it is missing, not an image or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            return _rgb(im, exif_transpose)
    except _DECODE_ERRORS as e:
        raise ImageReadError(
            f"{path}: cannot read this image ({type(e).__name__}: {e}); is it a truncated file?"
        ) from None


def to_rgb_array(
    image: Union[PathLike, np.ndarray, Image.Image, torch.Tensor], exif_transpose: bool = True
) -> np.ndarray:
    """An RGB ``uint8`` array (H, W, 3) from a path, a PIL image, or an (H, W) / (H, W, 3) uint8 array or tensor."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, exif_transpose=exif_transpose)
    if isinstance(image, Image.Image):
        return _rgb(image, exif_transpose)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise InputError(f"images must be (H, W, 3) RGB arrays, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise InputError(f"image arrays must be uint8 (0-255), got {image.dtype}")
        return image
    raise InputError(f"cannot use a {type(image).__name__} as an image (path, PIL image or uint8 array expected)")


def unreadable_images(paths: Sequence[Path]) -> List[Tuple[Path, str]]:
    """``(path, reason)`` for each file whose image header cannot be read (cheap: nothing is decoded)."""
    bad = []
    for path in paths:
        try:
            with Image.open(path):
                pass
        except _DECODE_ERRORS as e:
            bad.append((path, f"{path}: not a readable image ({type(e).__name__}: {e})"))
    return bad


def read_label(path: PathLike) -> np.ndarray:
    """A single-channel label image (class indices) as an (H, W) integer array, never EXIF-turned.

    Raises :class:`ImageReadError` for a missing or unreadable file and :class:`DatasetError`
    for colour (RGB) masks and values outside ``0..65535``.
    """
    try:
        with Image.open(path) as im:
            if im.mode not in _LABEL_MODES:
                raise DatasetError(
                    f"label image {path} is {im.mode}, not class indices: convert it to single-channel PNGs\n"
                    "  labels are 8/16-bit grayscale or palette PNGs of class indices, not colour-coded RGB masks"
                )
            arr = np.array(im)
    except FileNotFoundError:
        raise ImageReadError(f"label file not found: {path}") from None
    except OSError as e:
        raise ImageReadError(f"cannot read label {path}: {e}") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.min(initial=0) < 0 or arr.max(initial=0) >= LABEL_VALUE_LIMIT:
        raise DatasetError(f"label image {path} has values outside 0..{LABEL_VALUE_LIMIT - 1}")
    return arr
