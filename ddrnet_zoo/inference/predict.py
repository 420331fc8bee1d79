"""Prediction on images: the :class:`Predictor` (the Python side of ``ddrnet-predict``).

::

    from ddrnet_zoo import load_model
    from ddrnet_zoo.inference import Predictor

    model = load_model("ddrnet-zoo/ddrnet23_slim.cityscapes", task="segmentation")   # Hub id, folder or file
    predictor = Predictor(model, device="auto", palette="cityscapes")
    labels = predictor.predict("frame.png")                          # (H, W) int64 class indices
    predictor.predict_files(["images/", "more/*.jpg"], "out/")       # out/labels, out/color, out/overlay

Images are read as RGB with EXIF orientation applied (:func:`~ddrnet_zoo.data.images.read_image`),
normalised with the model config's mean/std (:func:`~ddrnet_zoo.data.transforms.normalize`),
predicted at their own size (or ``size``), optionally over several scales with flips
(:func:`~ddrnet_zoo.inference.segment_logits`), and the logits are resized back to the image.
Finding inputs lives in :mod:`.files`, drawing in :mod:`.colors`, writing in :mod:`.writer`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..constants import DEFAULT_MEAN, DEFAULT_STD
from ..data.images import ImageReadError, read_image, to_rgb_array, unreadable_images
from ..data.transforms import normalize
from ..device import canonical_precision
from ..errors import InputError
from ..io import atomic_directory, atomic_path
from .colors import colorize, label_image, overlay, resolve_palette
from .files import OUTPUT_KINDS, ImageSource, find_images
from .onnx_model import OnnxSegmentationModel
from .runtime import InferenceModel, optimize_for_inference
from .tta import segment_logits
from .video import VideoWriter, probe_video, read_frames
from .writer import OutputWriter, PredictionSummary

__all__ = ["VideoSummary", "Predictor"]

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------------ predictor
@dataclass
class VideoSummary:
    """What :meth:`Predictor.predict_video` did."""

    path: Path
    frames: int = 0
    seconds: float = 0.0
    written: Dict[str, Path] = field(default_factory=dict)
    """Output kind -> the video file (``overlay``, ``color``) or the folder of label frames (``label``)."""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _ImageFiles(Dataset):
    def __init__(self, sources: Sequence[ImageSource], keep_going: bool) -> None:
        self.sources = sources
        self.keep_going = keep_going

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int):
        try:
            return i, read_image(self.sources[i].path, exif_transpose=True)  # user photos: upright as viewers show
        except ImageReadError as e:
            if not self.keep_going:
                raise
            return i, e


def _collate(items):
    return items


class Predictor:
    """Segment images with a DDRNet model: arrays, PIL images or files, one at a time or in batches.

    Args:
        model: a segmentation model (``DDRNetSegmentation``), an already prepared
            :class:`~ddrnet_zoo.inference.InferenceModel`, or an ONNX file opened in onnxruntime
            (:class:`~ddrnet_zoo.inference.OnnxSegmentationModel`, float32 or INT8; then
            ``device``, ``precision``, ``channels_last``, ``compile`` and ``fold`` do not apply).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        precision: ``fp32``, ``fp16`` or ``bf16`` (autocast).
        channels_last: NHWC memory format (default: on for CUDA and for CPU).
        compile: a ``torch.compile`` mode (``"default"``...) or None.
        fold: fold BatchNorm into the convolutions (exact; faster).
        scales, flip: test-time augmentation (``PAPER_SCALES`` is the paper's multi-scale set).
        size: predict at this (H, W) and resize the logits back to each image's size.
        palette: see :func:`~ddrnet_zoo.inference.resolve_palette`.
        mean, std: normalisation (default: the model config's, else
            :data:`~ddrnet_zoo.constants.DEFAULT_MEAN` / ``DEFAULT_STD``).
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
        if isinstance(model, OnnxSegmentationModel):
            if compile or canonical_precision(precision) != "fp32":
                raise InputError(
                    f"{model.path} runs in onnxruntime as stored: leave out compile and precision\n"
                    "  for a faster ONNX model, export an INT8 file (ddrnet-export --quantize int8)"
                )
            self.engine = model
        elif isinstance(model, InferenceModel):
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
        self.dataset: Dict[str, Any] = self.engine.dataset or {}
        self.num_classes = int(self.engine.num_classes)
        self.scales = tuple(float(s) for s in scales)
        if not self.scales or min(self.scales) <= 0:
            raise InputError(f"scales must be positive numbers, got {scales}")
        self.flip = bool(flip)
        if size is not None:
            size = (int(size[0]), int(size[1]))
            if min(size) < self.engine.min_input_size:
                raise InputError(f"size {size} is below the model's minimum input {self.engine.min_input_size}")
        self.size = size
        self.palette = resolve_palette(palette, self.num_classes, self.dataset)
        mean = mean if mean is not None else self.dataset.get("mean") or DEFAULT_MEAN
        std = std if std is not None else self.dataset.get("std") or DEFAULT_STD
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    @property
    def class_names(self) -> Optional[List[str]]:
        return self.dataset.get("class_names")

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Normalised float batch (N, 3, H, W) on the device from same-size RGB ``uint8`` arrays."""
        batch = torch.from_numpy(np.stack([np.asarray(im) for im in images]))  # N, H, W, 3 uint8
        batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        return normalize(batch, self.mean, self.std)

    @torch.no_grad()
    def logits(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Logits (or averaged probabilities with TTA) at the images' size: (N, classes, H, W), float32."""
        x = self.preprocess(images)
        h, w = x.shape[-2:]
        if min(h, w) < self.engine.min_input_size and self.size is None:
            raise InputError(
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
        """Class indices (H, W) of one image (a path, a PIL image or an (H, W, 3) ``uint8`` array; EXIF honoured)."""
        return self.predict_batch([to_rgb_array(image, exif_transpose=True)])[0]

    # -------------------------------------------------------------------------------------------- files
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
            raise InputError(f"save must name some of {OUTPUT_KINDS}, got {list(save)}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if label_ids and self.num_classes != 19:
            raise InputError(f"label_ids needs a 19-class Cityscapes model, this one has {self.num_classes} classes")
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
        # the bar is closed (its line ended) before an error propagates, and log records go through
        # tqdm.write: messages never land inside the bar's line
        bar = tqdm(total=len(sources), desc="predict", unit="img", disable=not progress)
        writer = OutputWriter(summary, save, self.palette, alpha, label_ids)
        with bar, logging_redirect_tqdm(), writer:
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
                        writer.submit(sources[i], image, lab)
                    summary.num_images += len(group)
                    bar.update(len(group))
                writer.collect(wait=False)
        summary.seconds = time.perf_counter() - start
        return summary

    # -------------------------------------------------------------------------------------------- video
    def predict_video(
        self,
        video: PathLike,
        output_dir: PathLike,
        save: Sequence[str] = ("overlay",),
        batch_size: int = 1,
        alpha: float = 0.5,
        label_ids: bool = False,
        progress: bool = True,
        name: Optional[str] = None,
    ) -> VideoSummary:
        """Segment every frame of ``video``, streamed, and write videos at the input's frame rate.

        Writes ``output_dir/overlay/<name>.mp4`` (frames blended with their masks, ``alpha``),
        ``output_dir/color/<name>.mp4`` (the colour masks) and ``output_dir/labels/<name>/<frame>.png``
        (label frames numbered from 000000), as ``save`` asks; ``<name>`` is the file's stem. Frames are
        decoded, predicted ``batch_size`` at a time and encoded as they come (memory does not grow with
        the video). Each output appears whole when the video is done, or not at all. Needs PyAV (the
        ``video`` extra).
        """
        save = tuple(save)
        unknown = sorted(set(save) - set(OUTPUT_KINDS))
        if unknown or not save:
            raise InputError(f"save must name some of {OUTPUT_KINDS}, got {list(save)}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if label_ids and self.num_classes != 19:
            raise InputError(f"label_ids needs a 19-class Cityscapes model, this one has {self.num_classes} classes")
        overlay(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), alpha)  # validates alpha early
        info = probe_video(video)
        name = name or info.path.stem
        out = Path(output_dir)
        summary = VideoSummary(info.path)
        start = time.perf_counter()
        with contextlib.ExitStack() as stack:
            writers: Dict[str, VideoWriter] = {}
            for kind in ("overlay", "color"):
                if kind in save:
                    target = out / ("overlay" if kind == "overlay" else "color") / f"{name}.mp4"
                    tmp = stack.enter_context(atomic_path(target))
                    writers[kind] = stack.enter_context(VideoWriter(tmp, info.width, info.height, info.rate))
                    summary.written[kind] = target
            label_dir = None
            if "label" in save:
                target = out / "labels" / name
                old = [p.name for p in target.iterdir()] if target.is_dir() else []
                label_dir = stack.enter_context(atomic_directory(target, replaced=old))  # no stale frames kept
                summary.written["label"] = target
            bar = stack.enter_context(
                tqdm(total=info.frames, desc=f"predict {name}", unit="frame", disable=not progress)
            )
            stack.enter_context(logging_redirect_tqdm())
            encoder = stack.enter_context(ThreadPoolExecutor(max_workers=1))  # one thread: frames stay in order
            pending: Deque = deque()

            def encode(frames, labels, first: int) -> None:
                for k, ((rgb, pts, time_base), lab) in enumerate(zip(frames, labels)):
                    color = colorize(lab, self.palette) if writers else None
                    if "overlay" in writers:
                        writers["overlay"].write(overlay(rgb, color, alpha), pts, time_base)
                    if "color" in writers:
                        writers["color"].write(color, pts, time_base)
                    if label_dir is not None:
                        label_image(lab, self.palette, label_ids).save(label_dir / f"{first + k:06d}.png")

            batch: List = []
            for item in read_frames(info.path, prefetch=2 * batch_size):
                batch.append(item)
                if len(batch) < batch_size:
                    continue
                pending.append(
                    encoder.submit(encode, batch, self.predict_batch([f for f, _, _ in batch]), summary.frames)
                )
                summary.frames += len(batch)
                bar.update(len(batch))
                batch = []
                while len(pending) > 2 or (pending and pending[0].done()):
                    pending.popleft().result()  # re-raises encoding errors; bounds the frames held
            if batch:
                pending.append(
                    encoder.submit(encode, batch, self.predict_batch([f for f, _, _ in batch]), summary.frames)
                )
                summary.frames += len(batch)
                bar.update(len(batch))
            while pending:
                pending.popleft().result()
        summary.seconds = time.perf_counter() - start
        return summary

    @staticmethod
    def _readable(sources: List[ImageSource], summary: PredictionSummary, keep_going: bool) -> List[ImageSource]:
        """Check every file's header before the run: unreadable files are reported together, up front."""
        bad = unreadable_images([src.path for src in sources])
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
