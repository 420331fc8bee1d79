"""Evaluation loop: single- or multi-scale (+ flip) inference, confusion matrix on the device, summed
across processes, metrics at the full label resolution; optional prediction PNGs."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from ..constants import IGNORE_INDEX
from ..data.datasets import SegmentationDataset, collate
from ..data.meta import CITYSCAPES_LABEL_TO_TRAIN_ID
from ..device import autocast_dtype
from ..inference.tta import segment_logits
from ..io import atomic_path
from ..metrics import ConfusionMatrix
from . import distributed as dist_utils

__all__ = ["ShardSampler", "build_eval_loader", "evaluate", "PredictionWriter", "autocast_context"]

_logger = logging.getLogger(__name__)


class ShardSampler(Sampler):
    """Every ``world_size``-th index starting at ``rank``, without padding (no sample counted twice)."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def build_eval_loader(
    dataset: SegmentationDataset,
    batch_size: int = 1,
    num_workers: int = 2,
    pin_memory: bool = False,
    worker_init_fn: Optional[Callable[[int], None]] = None,
) -> DataLoader:
    """A loader over this process's shard of ``dataset`` (``worker_init_fn``: run in each worker process)."""
    sampler = ShardSampler(len(dataset), dist_utils.get_rank(), dist_utils.get_world_size())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate,
        persistent_workers=False,
        worker_init_fn=worker_init_fn,
    )


def autocast_context(device: torch.device, amp: str):
    """``torch.autocast`` for ``amp`` bf16/fp16; a null context for none/fp32 (see :mod:`ddrnet_zoo.device`)."""
    dtype = autocast_dtype(amp)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


class PredictionWriter:
    """Saves predicted train IDs as palette PNGs (``<name>.png``; pixel values = class ids, viewable in colour).

    With ``label_ids=True`` (Cityscapes) the values are Cityscapes labelIds, as the test server expects.
    """

    def __init__(
        self,
        directory: Path,
        dataset: SegmentationDataset,
        label_ids: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dataset = dataset
        self.palette = None
        self.lut = None
        if label_ids:
            if dataset.info.name != "cityscapes":
                raise ValueError("label_ids output is only defined for Cityscapes")
            self.lut = np.zeros(256, dtype=np.uint8)
            for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
                self.lut[train_id] = label_id
        else:
            flat = [v for c in dataset.info.palette for v in c]
            self.palette = flat + [0] * (768 - len(flat))

    def __call__(self, pred: torch.Tensor, indices: Sequence[int]) -> None:
        for p, i in zip(pred.to("cpu", torch.uint8).numpy(), indices):
            arr = self.lut[p] if self.lut is not None else p
            im = Image.fromarray(np.ascontiguousarray(arr))  # uint8 2-D: mode L
            if self.palette is not None:
                im.putpalette(self.palette)  # L -> P: same pixel values, shown in the dataset's colours
            name = self.dataset.name_of(int(i))
            with atomic_path(self.directory / f"{name}.png") as tmp:
                im.save(tmp, format="PNG")


def _resize(images: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return images
    h, w = images.shape[-2:]
    size = (max(int(round(h * scale)), 1), max(int(round(w * scale)), 1))
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Dict[str, Any]],
    num_classes: int,
    device: torch.device,
    class_names: Optional[Sequence[str]] = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    image_scale: float = 1.0,
    amp: str = "none",
    channels_last: bool = False,
    writer: Optional[PredictionWriter] = None,
    progress: bool = False,
) -> Dict[str, Any]:
    """mIoU, per-class IoU, accuracies over ``loader`` (this process's shard), summed over processes.

    Each batch is resized by ``image_scale`` (the training pixel scale), run at ``scales``
    (with horizontal flip when ``flip``; probabilities averaged by
    :func:`~ddrnet_zoo.inference.tta.segment_logits`), resized back to the label resolution,
    and compared with the full-resolution labels. Returns the metrics plus ``seconds`` and
    ``images``.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, IGNORE_INDEX, device)
    n_images = torch.zeros((), dtype=torch.int64, device=device)
    start = time.perf_counter()
    total = len(loader) if hasattr(loader, "__len__") else None
    bar = tqdm(loader, total=total, desc="eval", disable=not progress, leave=False, dynamic_ncols=True)
    with bar:  # closed (line cleared) before an error propagates: messages never land inside the bar
        for batch in bar:
            images = batch["image"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            x = _resize(images, image_scale)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, amp):
                out = segment_logits(model, x, scales=scales, flip=flip)
            out = out.float()
            if out.shape[-2:] != labels.shape[-2:]:
                out = F.interpolate(out, size=labels.shape[-2:], mode="bilinear", align_corners=False)
            pred = out.argmax(1)
            cm.update(pred, labels)
            n_images += images.shape[0]
            if writer is not None:
                writer(pred, batch["index"].tolist())
    cm.all_reduce()
    dist_utils.all_reduce_sum(n_images)
    metrics = cm.compute(class_names)
    metrics["images"] = int(n_images)
    metrics["seconds"] = time.perf_counter() - start
    metrics["scales"] = [float(s) for s in scales]
    metrics["flip"] = bool(flip)
    model.train(was_training)
    return metrics
