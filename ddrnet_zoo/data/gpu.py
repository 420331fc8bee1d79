"""In-memory datasets augmented on the device, so that the data loader never starves the GPU.

For small datasets (CamVid: 468 frames, 240 MB as uint8 at 480x360) the decoded images and
labels are kept as uint8 tensors on the training device, and each batch is augmented there in
one :func:`~ddrnet_zoo.data.transforms.scale_crop_flip` call (random scale, ignore-padded crop,
flip, normalisation). The random parameters are the same function of ``(seed, epoch, index)``
as in the CPU :class:`~ddrnet_zoo.data.transforms.TrainTransform`, so both pipelines produce the
same batches (up to float rounding).
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from ..constants import DEFAULT_MEAN, DEFAULT_STD, IGNORE_INDEX
from .datasets import SegmentationDataset
from .transforms import (
    augment_rng,
    color_jitter,
    image_to_tensor,
    normalize,
    sample_augment_params,
    scale_crop_flip,
)

__all__ = ["InMemoryDataset", "DeviceAugmenter", "DeviceLoader"]

_logger = logging.getLogger(__name__)


class InMemoryDataset:
    """All samples of a dataset decoded once into uint8 tensors on ``device``.

    Images of equal size are stacked into one (N, 3, H, W) tensor (batched augmentation);
    otherwise they are kept as a list.
    """

    def __init__(
        self, dataset: SegmentationDataset, device: torch.device | str = "cpu", progress: bool = False
    ) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        images: List[torch.Tensor] = []
        labels: List[torch.Tensor] = []
        for i in tqdm(range(len(dataset)), desc=f"decoding {dataset.name}", disable=not progress, leave=False):
            image, label = dataset.load(i)
            images.append(image_to_tensor(image).to(self.device))
            labels.append(torch.from_numpy(label).to(self.device))
        self.stacked = len({tuple(t.shape) for t in images}) == 1
        if self.stacked:
            self.images: Sequence[torch.Tensor] = torch.stack(images)
            self.labels: Sequence[torch.Tensor] = torch.stack(labels)
        else:
            self.images, self.labels = images, labels
        nbytes = sum(t.numel() for t in images) + sum(t.numel() for t in labels)
        _logger.info("kept %s in memory on %s: %.1f MiB", dataset, self.device, nbytes / 2**20)

    def __len__(self) -> int:
        return len(self.dataset)

    def size_of(self, index: int) -> Tuple[int, int]:
        t = self.images[index]
        return int(t.shape[-2]), int(t.shape[-1])


class DeviceAugmenter:
    """Builds augmented, normalised training batches on the device from an :class:`InMemoryDataset`.

    Args mirror :class:`~ddrnet_zoo.data.transforms.TrainTransform`.
    """

    def __init__(
        self,
        data: InMemoryDataset,
        crop_size: Tuple[int, int],
        scale_range: Tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        mean: Sequence[float] = DEFAULT_MEAN,
        std: Sequence[float] = DEFAULT_STD,
        image_scale: float = 1.0,
        seed: int = 0,
        ignore_index: int = IGNORE_INDEX,
        color_jitter: float = 0.0,
    ) -> None:
        self.data = data
        self.color_jitter = float(color_jitter)
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip = bool(flip)
        self.mean, self.std = tuple(mean), tuple(std)
        self.image_scale = float(image_scale)
        self.seed = int(seed)
        self.ignore_index = int(ignore_index)

    def batch(self, indices: Sequence[int], epoch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Augmented (B, 3, h, w) float images and (B, h, w) int64 labels of samples ``indices``."""
        params = [
            sample_augment_params(
                augment_rng(self.seed, epoch, i),
                self.data.size_of(i),
                self.crop_size,
                self.scale_range,
                self.flip,
                self.image_scale,
                self.color_jitter,
            )
            for i in indices
        ]
        kw = dict(crop_size=self.crop_size, ignore_index=self.ignore_index)
        if self.data.stacked:
            idx = torch.as_tensor(list(indices), device=self.data.device)
            images = normalize(self.data.images[idx], self.mean, self.std)
            images = color_jitter(images, [p.color for p in params], self.mean, self.std)
            return scale_crop_flip(
                images,
                self.data.labels[idx],
                [p.scale for p in params],
                [p.offset for p in params],
                [p.flip for p in params],
                **kw,
            )
        outs, labs = [], []
        for i, p in zip(indices, params):
            img, lab = scale_crop_flip(
                color_jitter(
                    normalize(self.data.images[i].unsqueeze(0), self.mean, self.std), [p.color], self.mean, self.std
                ),
                self.data.labels[i].unsqueeze(0),
                [p.scale],
                [p.offset],
                [p.flip],
                **kw,
            )
            outs.append(img)
            labs.append(lab)
        return torch.cat(outs), torch.cat(labs)


class DeviceLoader:
    """A data-loader replacement: iterates a sampler of ``(index, epoch)`` pairs (or indices) in
    batches of ``batch_size`` and yields ``{"image", "label", "index"}`` built by a :class:`DeviceAugmenter`.
    Incomplete last batches are dropped (as the training DataLoader does)."""

    def __init__(self, augmenter: DeviceAugmenter, sampler: Iterable, batch_size: int, epoch: int = 0) -> None:
        self.augmenter = augmenter
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[dict]:
        chunk: List[int] = []
        epoch: Optional[int] = None
        for item in self.sampler:
            if isinstance(item, (tuple, list)):
                index, epoch = int(item[0]), int(item[1])
            else:
                index, epoch = int(item), self.epoch
            chunk.append(index)
            if len(chunk) == self.batch_size:
                images, labels = self.augmenter.batch(chunk, epoch)
                yield {"image": images, "label": labels, "index": torch.tensor(chunk)}
                chunk = []
