"""Datasets, transforms and dataset metadata."""

from .meta import CAMVID, CITYSCAPES, CITYSCAPES_LABEL_TO_TRAIN_ID, DATASETS, DatasetInfo, get_dataset_info

__all__ = ["CAMVID", "CITYSCAPES", "CITYSCAPES_LABEL_TO_TRAIN_ID", "DATASETS", "DatasetInfo", "get_dataset_info"]
