"""Build datasets, the training loader, models and losses from a :class:`~ddrnet_zoo.engine.schema.TrainConfig`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Sampler

from ..data.datasets import SegmentationDataset, build_dataset, collate
from ..data.gpu import DeviceAugmenter, DeviceLoader, InMemoryDataset
from ..data.meta import DatasetInfo
from ..data.transforms import EvalTransform, TrainTransform
from ..hub import WEIGHTS_NAME
from ..io import read_state_dict
from ..losses import SegmentationLoss
from ..models import DDRNetSegmentation, create_segmentation_model
from ..published import WeightsNotPublishedError
from .export import load_model_weights
from .preemption import stop_signals_worker_init
from .schema import ConfigError, TrainConfig

__all__ = [
    "build_split",
    "build_train_dataset",
    "build_eval_dataset",
    "build_train_loader",
    "build_model",
    "build_loss",
    "normalization",
]

_logger = logging.getLogger(__name__)


def build_split(cfg: TrainConfig, split: str, transform: Optional[Callable] = None) -> SegmentationDataset:
    """The dataset of ``split`` described by ``cfg.data`` (first ``max_samples`` only when set)."""
    d = cfg.data
    ds = build_dataset(
        d.dataset,
        d.root,
        split,
        transform,
        class_names=d.class_names,
        ignore_index=d.ignore_index,
        palette=d.palette,
        label_map=d.label_map,
        name=d.name,
        mean=d.mean,
        std=d.std,
    )
    return ds.subset(d.max_samples)


def normalization(cfg: TrainConfig, info: DatasetInfo) -> Tuple[Sequence[float], Sequence[float]]:
    """Mean/std: the config's if set, else the dataset's (ImageNet)."""
    mean = tuple(cfg.data.mean) if cfg.data.mean is not None else tuple(info.mean)
    std = tuple(cfg.data.std) if cfg.data.std is not None else tuple(info.std)
    return mean, std


def build_train_dataset(cfg: TrainConfig) -> SegmentationDataset:
    """The training split with the paper's augmentation (:class:`TrainTransform`)."""
    ds = build_split(cfg, cfg.data.train_split)
    mean, std = normalization(cfg, ds.info)
    ds.transform = TrainTransform(
        crop_size=tuple(cfg.data.crop_size),
        scale_range=tuple(cfg.data.scale_range),
        flip=cfg.data.flip,
        mean=mean,
        std=std,
        image_scale=cfg.data.image_scale,
        seed=cfg.train.seed,
        color_jitter=cfg.data.color_jitter,
    )
    return ds


def build_train_loader(
    cfg: TrainConfig,
    dataset: SegmentationDataset,
    sampler: Sampler,
    batch_size: int,
    device: torch.device,
    progress: bool = False,
):
    """The training batches: a ``DataLoader`` of ``dataset`` in ``sampler``'s order, or with ``data.in_memory``
    a :class:`DeviceLoader` that augments the decoded set on ``device``."""
    d = cfg.data
    if d.in_memory:
        data = InMemoryDataset(dataset, device, progress=progress)
        mean, std = normalization(cfg, dataset.info)
        aug = DeviceAugmenter(
            data,
            tuple(d.crop_size),
            tuple(d.scale_range),
            d.flip,
            mean,
            std,
            d.image_scale,
            seed=cfg.train.seed,
            color_jitter=d.color_jitter,
        )
        return DeviceLoader(aug, sampler, batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=d.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=d.num_workers > 0,
        collate_fn=collate,
        generator=torch.Generator(),  # leaves the global RNG alone
        # the main process decides when a stop signal ends the run (SLURM signals every process)
        worker_init_fn=stop_signals_worker_init(cfg.train.stop_signals) if d.num_workers else None,
    )


def build_eval_dataset(cfg: TrainConfig, split: Optional[str] = None) -> SegmentationDataset:
    """An evaluation split (default ``cfg.data.val_split``): normalised images, full-resolution labels."""
    split = split or cfg.data.val_split
    if not split:
        raise ValueError("no evaluation split: set data.val_split (or --split)")
    ds = build_split(cfg, split)
    mean, std = normalization(cfg, ds.info)
    ds.transform = EvalTransform(mean, std)
    return ds


def build_model(cfg: TrainConfig, info: DatasetInfo) -> DDRNetSegmentation:
    """The segmentation model of ``cfg.model`` for the classes of ``info`` (its ``dataset`` describes them)."""
    m = cfg.model
    kwargs = {}
    if m.arch is not None:
        kwargs["arch"] = m.arch  # custom widths: checked by the model (ddrnet_zoo.models.ddrnet.arch_from_dict)
    if m.backbone_weights:
        if not Path(m.backbone_weights).is_file():
            raise FileNotFoundError(f"model.backbone_weights: {m.backbone_weights} not found")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(m.backbone_weights))
    pretrained = m.pretrained_backbone or bool(m.backbone_weights)
    mean, std = normalization(cfg, info)
    dataset = {**info.description(), "mean": list(mean), "std": list(std), "train_size": list(cfg.data.crop_size)}
    try:
        model = create_segmentation_model(
            m.name,
            num_classes=info.num_classes,
            context=m.context,
            aux_head=m.aux_head,
            dataset=dataset,
            pretrained_backbone=pretrained,
            **kwargs,
        )
    except Exception as e:
        if not pretrained:
            raise
        unpublished = isinstance(e, WeightsNotPublishedError)
        source = m.backbone_weights or f"the Hugging Face Hub ({m.name}.in1k)"
        what = "are not published yet" if unpublished else f"cannot be loaded from {source}"
        lines = [
            f"the ImageNet weights of {m.name} {what}: "
            "set model.backbone_weights=FILE or model.pretrained_backbone=false",
            "  FILE: the original release's ImageNet file (e.g. DDRNet23s_imagenet.pth, docs/weights.md) as it is, "
            "or a converted model.safetensors",
            "  model.pretrained_backbone=false trains from scratch (far below the paper's accuracy)",
        ]
        if not unpublished:
            lines.append(f"  ({type(e).__name__}: " + str(e).replace("\n", "\n  ") + ")")
        raise ConfigError("\n".join(lines)) from e
    if m.weights:
        path = Path(m.weights)
        if path.is_dir():
            path = path / WEIGHTS_NAME
        load_model_weights(model, read_state_dict(path), str(path), allow_new_classifier=True)
        _logger.info("initialised the model from %s", path)
    return model


def build_loss(cfg: TrainConfig) -> SegmentationLoss:
    """The loss of ``cfg.loss`` (Eq. 3 with OHEM on the main output by default)."""
    c = cfg.loss
    return SegmentationLoss(
        type=c.type,
        aux_weight=c.aux_weight,
        aux_type=c.aux_type,
        ohem_thresh=c.ohem_thresh,
        ohem_min_kept=c.ohem_min_kept,
        class_weight=c.class_weight,
    )
