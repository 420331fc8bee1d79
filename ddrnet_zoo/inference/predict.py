"""Prediction on image files: label PNGs, colour masks and overlays (the Python side of ``ddrnet-predict``).

::

    from ddrnet_zoo.inference import Predictor, load_segmentation_model

    model = load_segmentation_model("ddrnet-zoo/ddrnet23_slim.cityscapes")   # Hub id, folder or checkpoint
    predictor = Predictor(model, device="auto", palette="cityscapes")
    labels = predictor.predict("frame.png")                          # (H, W) int64 class indices
    predictor.predict_files(["images/", "more/*.jpg"], "out/")       # out/labels, out/color, out/overlay

Images are read as RGB (EXIF orientation applied), normalised with the model config's mean/std,
predicted at their own size (or ``size``), optionally over several scales with flips
(:func:`~ddrnet_zoo.inference.segment_logits`), and the logits are resized back to the image.
"""

from __future__ import annotations

import glob
import json
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..data.meta import CITYSCAPES_LABEL_TO_TRAIN_ID, DATASETS
from ..errors import DDRNetError
from ..io import atomic_path
from ..loading import load_model
from ..models import DDRNetSegmentation
from .runtime import InferenceModel, optimize_for_inference
from .tta import segment_logits

__all__ = [
    "IMAGE_EXTENSIONS",
    "OUTPUT_KINDS",
    "ImageReadError",
    "PaletteError",
    "ImageSource",
    "PredictionSummary",
    "Predictor",
    "find_images",
    "read_image",
    "resolve_palette",
    "colorize",
    "overlay",
    "load_segmentation_model",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
OUTPUT_KINDS = ("label", "color", "overlay")
_OUTPUT_DIRS = {"label": "labels", "color": "color", "overlay": "overlay"}
_OUTPUT_SUFFIX = {"label": ".png", "color": ".png", "overlay": ".jpg"}

PathLike = Union[str, os.PathLike]


class ImageReadError(DDRNetError, ValueError):
    """An input file is missing, not an image, or truncated."""


class PaletteError(DDRNetError, ValueError):
    """A palette is malformed or its colour count differs from the model's class count."""


# ------------------------------------------------------------------------------------------------ model
def load_segmentation_model(
    source: PathLike,
    model_name: Optional[str] = None,
    num_classes: Optional[int] = None,
    dataset: Optional[str] = None,
    map_location: Union[str, torch.device] = "cpu",
) -> nn.Module:
    """Same as :func:`ddrnet_zoo.load_model`, for segmentation models only (a classifier is a ``TypeError``)."""
    model = load_model(
        source, model_name=model_name, num_classes=num_classes, dataset=dataset, map_location=map_location
    )
    if not isinstance(model, DDRNetSegmentation):
        raise TypeError(
            f"{source} holds a {type(model).__name__} (an ImageNet classifier?), not a segmentation model; "
            "prediction needs DDRNetSegmentation weights"
        )
    return model


# ------------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class ImageSource:
    """An input image and the relative name (no extension) its outputs get."""

    path: Path
    name: str


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard (outputs are named relative to it)."""
    parts = Path(pattern).parts
    root: List[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def find_images(inputs: Union[PathLike, Sequence[PathLike]], recursive: bool = True) -> List[ImageSource]:
    """Expand image files, folders (all images inside, recursively) and glob patterns (``**`` works).

    Outputs are named after the path relative to the folder (or the pattern's fixed prefix);
    single files by their stem. Raises ``FileNotFoundError`` for an input that matches nothing
    and ``ValueError`` when two inputs would write the same output name.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: List[ImageSource] = []
    seen = set()
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and _is_image(p))
            if not files:
                raise FileNotFoundError(
                    f"no images in folder {path} (looked for {', '.join(IMAGE_EXTENSIONS)}"
                    f"{'' if recursive else ', not recursing'})"
                )
            items = [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
        elif path.is_file():
            items = [(path, path.stem)]
        elif glob.has_magic(text):
            root = _glob_root(text)
            files = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in files if p.is_file() and _is_image(p)]
            if not files:
                raise FileNotFoundError(f"pattern {text!r} matches no image files ({', '.join(IMAGE_EXTENSIONS)})")
            items = [(p, _relative_name(p, root)) for p in files]
        else:
            raise FileNotFoundError(f"no such image, folder or glob pattern: {text}")
        for p, name in items:
            key = p.resolve()
            if key in seen:
                continue
            seen.add(key)
            found.append(ImageSource(p, name))
    names: Dict[str, Path] = {}
    for item in found:
        if item.name in names:
            raise ValueError(
                f"{names[item.name]} and {item.path} would both be written as {item.name!r}; "
                "predict them into different output folders or pass their parent folder instead"
            )
        names[item.name] = item.path
    return found


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).with_suffix("").as_posix()
    except ValueError:
        return path.stem


def read_image(path: PathLike) -> np.ndarray:
    """An RGB ``uint8`` array (H, W, 3) with EXIF orientation applied; :class:`ImageReadError` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(
            f"{path}: cannot read this image ({type(e).__name__}: {e}); is it a truncated file?"
        ) from None


def _as_array(image: Union[PathLike, np.ndarray, Image.Image, torch.Tensor]) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"images must be (H, W, 3) RGB arrays, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (0-255), got {image.dtype}")
        return image
    raise TypeError(f"cannot use a {type(image).__name__} as an image (path, PIL image or uint8 array expected)")


# ------------------------------------------------------------------------------------------------ palettes
def _check_palette(colours: Any, num_classes: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(colours, dtype=np.int64)
    except (TypeError, ValueError):
        raise PaletteError(f"{what}: a palette is a list of [R, G, B] colours, got {type(colours).__name__}") from None
    if arr.ndim != 2 or arr.shape[1] != 3 or (arr < 0).any() or (arr > 255).any():
        raise PaletteError(f"{what}: a palette is a list of [R, G, B] colours in 0-255, got shape {arr.shape}")
    if len(arr) != num_classes:
        raise PaletteError(
            f"{what} has {len(arr)} colours but the model predicts {num_classes} classes; pass a palette "
            f"with {num_classes} colours (a JSON file of [R, G, B]) or leave the palette out to use the model's"
        )
    return arr.astype(np.uint8)


def _generated_palette(num_classes: int) -> np.ndarray:
    """Distinct colours for models without a palette (golden-ratio hues)."""
    import colorsys

    out = []
    for i in range(num_classes):
        h = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.65 + 0.35 * (i % 2), 0.95 - 0.3 * ((i // 2) % 2))
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.asarray(out, dtype=np.uint8)


def resolve_palette(
    palette: Optional[Union[str, PathLike, Sequence[Sequence[int]]]], num_classes: int, config: Any = None
) -> np.ndarray:
    """The (num_classes, 3) ``uint8`` colours to draw with.

    ``palette`` is ``"cityscapes"`` / ``"camvid"``, ``"config"`` (the model config's), a JSON file
    with a list of ``[R, G, B]``, or such a list. ``None``: the config's palette, else its dataset's,
    else generated colours. A colour count that differs from ``num_classes`` is a :class:`PaletteError`.
    """
    cfg_palette = getattr(config, "palette", None)
    cfg_dataset = getattr(config, "dataset", None)
    if palette is None:
        if cfg_palette is not None:
            return _check_palette(cfg_palette, num_classes, "the model config's palette")
        if cfg_dataset and str(cfg_dataset).lower() in DATASETS:
            return _check_palette(DATASETS[cfg_dataset.lower()].palette, num_classes, f"the {cfg_dataset} palette")
        return _generated_palette(num_classes)
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
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if image.shape != color.shape:
        raise ValueError(f"image {image.shape} and colour mask {color.shape} differ in size")
    out = image.astype(np.float32) * (1.0 - alpha) + color.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ predictor
@dataclass
class PredictionSummary:
    """What :meth:`Predictor.predict_files` did."""

    output_dir: Path
    num_images: int = 0
    written: Dict[str, int] = field(default_factory=dict)
    failures: List[Tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


class _ImageFiles(Dataset):
    def __init__(self, sources: Sequence[ImageSource], keep_going: bool) -> None:
        self.sources = sources
        self.keep_going = keep_going

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int):
        try:
            return i, read_image(self.sources[i].path)
        except ImageReadError as e:
            if not self.keep_going:
                raise
            return i, e


def _collate(items):
    return items


class Predictor:
    """Segment images with a DDRNet model: arrays, PIL images or files, one at a time or in batches.

    Args:
        model: a segmentation model (``DDRNetSegmentation``) or an already prepared
            :class:`~ddrnet_zoo.inference.InferenceModel`.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        precision: ``fp32``, ``fp16`` or ``bf16`` (autocast).
        channels_last: NHWC memory format (default: on for CUDA and for CPU).
        compile: a ``torch.compile`` mode (``"default"``...) or None.
        fold: fold BatchNorm into the convolutions (exact; faster).
        scales, flip: test-time augmentation (``PAPER_SCALES`` is the paper's multi-scale set).
        size: predict at this (H, W) and resize the logits back to each image's size.
        palette: see :func:`resolve_palette`.
        mean, std: normalisation (default: the model config's, else ImageNet's).
    """

    def __init__(
        self,
        model: nn.Module,
        device: Union[str, torch.device] = "auto",
        precision: str = "fp32",
        channels_last: Optional[bool] = None,
        compile: Optional[str] = None,
        fold: bool = True,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        size: Optional[Tuple[int, int]] = None,
        palette: Optional[Union[str, PathLike, Sequence[Sequence[int]]]] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
    ) -> None:
        if isinstance(model, InferenceModel):
            self.engine = model
        else:
            self.engine = optimize_for_inference(
                model,
                device=device,
                fold=fold,
                channels_last=True if channels_last is None else channels_last,
                precision=precision,
                compile=compile,
            )
        self.device = self.engine.device
        self.config = self.engine.config
        self.num_classes = int(self.engine.num_classes)
        self.scales = tuple(float(s) for s in scales)
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be positive numbers, got {scales}")
        self.flip = bool(flip)
        if size is not None:
            size = (int(size[0]), int(size[1]))
            if min(size) < self.engine.min_input_size:
                raise ValueError(f"size {size} is below the model's minimum input {self.engine.min_input_size}")
        self.size = size
        self.palette = resolve_palette(palette, self.num_classes, self.config)
        mean = mean if mean is not None else getattr(self.config, "mean", None) or (0.485, 0.456, 0.406)
        std = std if std is not None else getattr(self.config, "std", None) or (0.229, 0.224, 0.225)
        self.mean = torch.tensor([float(v) * 255 for v in mean], device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor([float(v) * 255 for v in std], device=self.device).view(1, -1, 1, 1)

    @property
    def class_names(self) -> Optional[List[str]]:
        return getattr(self.config, "class_names", None)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Normalised float batch (N, 3, H, W) on the device from same-size RGB ``uint8`` arrays."""
        batch = torch.from_numpy(np.stack([np.asarray(im) for im in images]))  # N, H, W, 3 uint8
        batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        return (batch - self.mean) / self.std

    @torch.no_grad()
    def logits(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Logits (or averaged probabilities with TTA) at the images' size: (N, classes, H, W), float32."""
        x = self.preprocess(images)
        h, w = x.shape[-2:]
        if min(h, w) < self.engine.min_input_size and self.size is None:
            raise ValueError(
                f"image size {h}x{w} is below the model's minimum {self.engine.min_input_size}; "
                "pass size=(H, W) (--size) to predict at a larger size"
            )
        if self.size is not None and (h, w) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        out = segment_logits(self.engine, x, self.scales, self.flip).float()
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out

    def predict_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Class indices (N, H, W) ``int64`` for same-size RGB ``uint8`` arrays."""
        return self.logits(images).argmax(1).cpu().numpy()

    def predict(self, image: Union[PathLike, np.ndarray, Image.Image, torch.Tensor]) -> np.ndarray:
        """Class indices (H, W) of one image (a path, a PIL image or an (H, W, 3) ``uint8`` array)."""
        return self.predict_batch([_as_array(image)])[0]

    # -------------------------------------------------------------------------------------------- files
    def _label_image(self, labels: np.ndarray, label_ids: bool) -> Image.Image:
        if label_ids:
            lut = np.full(256, 0, dtype=np.uint8)
            for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
                lut[train_id] = label_id
            return Image.fromarray(lut[labels.astype(np.uint8)])
        if self.num_classes > 256:
            return Image.fromarray(labels.astype(np.uint16))
        im = Image.fromarray(labels.astype(np.uint8))  # mode L; values = class indices
        flat = self.palette.reshape(-1).tolist()
        im.putpalette(flat + [0] * (768 - len(flat)))  # P mode: same values, shown in the palette's colours
        return im

    def _write(
        self, source: ImageSource, image: np.ndarray, labels: np.ndarray, out: Path, save, alpha, label_ids
    ) -> List[str]:
        done = []
        color = colorize(labels, self.palette) if ("color" in save or "overlay" in save) else None
        for kind in save:
            path = out / _OUTPUT_DIRS[kind] / (source.name + _OUTPUT_SUFFIX[kind])
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "label":
                im, fmt, kw = self._label_image(labels, label_ids), "PNG", {}
            elif kind == "color":
                im, fmt, kw = Image.fromarray(color), "PNG", {}
            else:
                im, fmt, kw = Image.fromarray(overlay(image, color, alpha)), "JPEG", {"quality": 92, "subsampling": 0}
            with atomic_path(path) as tmp:
                im.save(tmp, format=fmt, **kw)
            done.append(kind)
        return done

    def predict_files(
        self,
        inputs: Union[PathLike, Sequence[PathLike]],
        output_dir: PathLike,
        save: Sequence[str] = OUTPUT_KINDS,
        batch_size: int = 1,
        num_workers: int = 0,
        alpha: float = 0.5,
        label_ids: bool = False,
        keep_going: bool = False,
        progress: bool = True,
    ) -> PredictionSummary:
        """Predict every image of ``inputs`` (files, folders, glob patterns) and write the outputs.

        Writes ``output_dir/labels/<name>.png`` (class indices; a palette PNG that viewers show in
        colour), ``output_dir/color/<name>.png`` (RGB colour mask) and ``output_dir/overlay/<name>.jpg``
        (image blended with the mask, ``alpha``), each atomically. ``<name>`` is the path relative to
        the input folder. Consecutive images of the same size are batched (``batch_size``).
        ``label_ids=True`` writes Cityscapes labelIds instead of train IDs. With ``keep_going``
        unreadable images are reported in the summary instead of stopping the run.
        """
        save = tuple(save)
        unknown = sorted(set(save) - set(OUTPUT_KINDS))
        if unknown or not save:
            raise ValueError(f"save must name some of {OUTPUT_KINDS}, got {list(save)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if label_ids and self.num_classes != 19:
            raise ValueError(f"label_ids needs a 19-class Cityscapes model, this one has {self.num_classes} classes")
        overlay(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), alpha)  # validates alpha early
        sources = find_images(inputs)
        out = Path(output_dir)
        summary = PredictionSummary(out, written={k: 0 for k in save})
        sources = self._readable(sources, summary, keep_going)
        out.mkdir(parents=True, exist_ok=True)
        loader = DataLoader(
            _ImageFiles(sources, keep_going),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=_collate,
            pin_memory=False,
        )
        start = time.perf_counter()
        pending: List[Future] = []
        # the bar is closed (its line ended) before an error propagates, and log records go through
        # tqdm.write: messages never land inside the bar's line
        bar = tqdm(total=len(sources), desc="predict", unit="img", disable=not progress)
        with bar, logging_redirect_tqdm(), ThreadPoolExecutor(max_workers=2) as writer:
            for items in loader:
                good = []
                for i, item in items:
                    if isinstance(item, ImageReadError):
                        summary.failures.append((sources[i].path, str(item)))
                        bar.update(1)
                    else:
                        good.append((i, item))
                # batch consecutive images of one size together
                groups: Dict[Tuple[int, int], List[Tuple[int, np.ndarray]]] = {}
                for i, image in good:
                    groups.setdefault(image.shape[:2], []).append((i, image))
                for group in groups.values():
                    labels = self.predict_batch([im for _, im in group])
                    for (i, image), lab in zip(group, labels):
                        pending.append(writer.submit(self._write, sources[i], image, lab, out, save, alpha, label_ids))
                    summary.num_images += len(group)
                    bar.update(len(group))
                pending = self._collect(pending, summary, wait=False)
            self._collect(pending, summary, wait=True)
        summary.seconds = time.perf_counter() - start
        return summary

    @staticmethod
    def _readable(sources: List[ImageSource], summary: PredictionSummary, keep_going: bool) -> List[ImageSource]:
        """Check every file's header before the run: unreadable files are reported together, up front."""
        bad = []
        for src in sources:
            try:
                with Image.open(src.path):
                    pass
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
                bad.append((src.path, f"{src.path}: not a readable image ({type(e).__name__}: {e})"))
        if bad and not keep_going:
            listing = "; ".join(reason for _, reason in bad[:5]) + (
                f"; ... ({len(bad)} in all)" if len(bad) > 5 else ""
            )
            raise ImageReadError(
                f"{len(bad)} of {len(sources)} inputs cannot be read: {listing} (--keep-going skips them)"
            )
        summary.failures.extend(bad)
        skip = {path for path, _ in bad}
        return [src for src in sources if src.path not in skip]

    @staticmethod
    def _collect(pending: List[Future], summary: PredictionSummary, wait: bool) -> List[Future]:
        left = []
        for fut in pending:
            if wait or fut.done():
                for kind in fut.result():  # re-raises write errors
                    summary.written[kind] += 1
            else:
                left.append(fut)
        return left
