"""Datasets, transforms, image decoding and dataset metadata."""

from .datasets import (
    DATASET_KINDS,
    CamVidDataset,
    CityscapesDataset,
    FolderDataset,
    SegmentationDataset,
    build_dataset,
    collate,
)
from .gpu import DeviceAugmenter, DeviceLoader, InMemoryDataset
from .images import DatasetError, ImageReadError, read_image, read_label
from .meta import (
    CAMVID,
    CITYSCAPES,
    CITYSCAPES_LABEL_TO_TRAIN_ID,
    CITYSCAPES_TRAIN_ID_TO_LABEL_ID,
    DATASETS,
    DatasetInfo,
    default_palette,
    get_dataset_info,
    train_ids_to_label_ids,
)
from .transforms import IGNORE_INDEX, EvalTransform, TrainTransform, normalize

__all__ = [
    "CAMVID",
    "CITYSCAPES",
    "CITYSCAPES_LABEL_TO_TRAIN_ID",
    "CITYSCAPES_TRAIN_ID_TO_LABEL_ID",
    "train_ids_to_label_ids",
    "DATASETS",
    "DatasetInfo",
    "default_palette",
    "get_dataset_info",
    "DATASET_KINDS",
    "DatasetError",
    "ImageReadError",
    "read_image",
    "read_label",
    "SegmentationDataset",
    "CityscapesDataset",
    "CamVidDataset",
    "FolderDataset",
    "build_dataset",
    "collate",
    "IGNORE_INDEX",
    "normalize",
    "TrainTransform",
    "EvalTransform",
    "InMemoryDataset",
    "DeviceAugmenter",
    "DeviceLoader",
]
