"""Dataset metadata: class names, palettes, ignore index and normalisation (one source for all code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

__all__ = ["DatasetInfo", "CITYSCAPES", "CAMVID", "DATASETS", "get_dataset_info", "CITYSCAPES_LABEL_TO_TRAIN_ID"]

RGB = Tuple[int, int, int]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about the labels of a dataset."""

    name: str
    class_names: Tuple[str, ...]
    palette: Tuple[RGB, ...]
    ignore_index: int = 255
    mean: Tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: Tuple[float, float, float] = IMAGENET_DEFAULT_STD
    extra: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.palette):
            raise ValueError(
                f"{self.name}: {len(self.class_names)} class names but {len(self.palette)} palette colours"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


CITYSCAPES = DatasetInfo(
    name="cityscapes",
    class_names=(
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    ),  # fmt: skip
    palette=(
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ),  # fmt: skip
    ignore_index=255,
)

# Cityscapes labelIds (gtFine_labelIds.png) -> the 19 train IDs; every other id maps to 255.
CITYSCAPES_LABEL_TO_TRAIN_ID: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

CAMVID = DatasetInfo(
    name="camvid",
    class_names=(
        "sky",
        "building",
        "pole",
        "road",
        "sidewalk",
        "tree",
        "sign/symbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    ),  # fmt: skip
    palette=(
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ),  # fmt: skip
    ignore_index=11,  # label 11 = void in the SegNet layout
)

DATASETS: Dict[str, DatasetInfo] = {d.name: d for d in (CITYSCAPES, CAMVID)}


def get_dataset_info(name: str) -> Optional[DatasetInfo]:
    """Metadata of a known dataset; raises ``ValueError`` for unknown names."""
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]
