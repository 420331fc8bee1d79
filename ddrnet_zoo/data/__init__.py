"""Datasets, transforms and dataset metadata."""

from .datasets import (
    DATASET_KINDS,
    CamVidDataset,
    CityscapesDataset,
    DatasetError,
    FolderDataset,
    SegmentationDataset,
    build_dataset,
    collate,
)
from .gpu import DeviceAugmenter, DeviceLoader, InMemoryDataset
from .meta import CAMVID, CITYSCAPES, CITYSCAPES_LABEL_TO_TRAIN_ID, DATASETS, DatasetInfo, get_dataset_info
from .transforms import IGNORE_INDEX, EvalTransform, TrainTransform

__all__ = [
    "CAMVID",
    "CITYSCAPES",
    "CITYSCAPES_LABEL_TO_TRAIN_ID",
    "DATASETS",
    "DatasetInfo",
    "get_dataset_info",
    "DATASET_KINDS",
    "DatasetError",
    "SegmentationDataset",
    "CityscapesDataset",
    "CamVidDataset",
    "FolderDataset",
    "build_dataset",
    "collate",
    "IGNORE_INDEX",
    "TrainTransform",
    "EvalTransform",
    "InMemoryDataset",
    "DeviceAugmenter",
    "DeviceLoader",
]
