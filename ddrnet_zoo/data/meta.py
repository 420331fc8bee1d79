"""Dataset metadata: class names, palettes, ignore index and normalisation (one source for all code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..constants import DEFAULT_MEAN, DEFAULT_STD, IGNORE_INDEX
from ..errors import InputError

__all__ = [
    "DatasetInfo",
    "CITYSCAPES",
    "CAMVID",
    "DATASETS",
    "get_dataset_info",
    "CITYSCAPES_LABEL_TO_TRAIN_ID",
    "CITYSCAPES_TRAIN_ID_TO_LABEL_ID",
    "train_ids_to_label_ids",
    "default_palette",
]

RGB = Tuple[int, int, int]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about the labels of a dataset."""

    name: str
    class_names: Tuple[str, ...]
    palette: Tuple[RGB, ...]
    ignore_index: int = IGNORE_INDEX
    mean: Tuple[float, float, float] = DEFAULT_MEAN
    std: Tuple[float, float, float] = DEFAULT_STD
    extra: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.palette):
            raise InputError(
                f"{self.name}: {len(self.class_names)} class names but {len(self.palette)} palette colours"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def description(self) -> Dict[str, object]:
        """These labels as a model's ``dataset`` description (plain JSON values, as ``config.json`` holds them)."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "ignore_index": int(self.ignore_index),
            "mean": list(self.mean),
            "std": list(self.std),
        }


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
    ignore_index=IGNORE_INDEX,
)

# Cityscapes labelIds (gtFine_labelIds.png) -> the 19 train IDs; every other id maps to 255.
CITYSCAPES_LABEL_TO_TRAIN_ID: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

CITYSCAPES_TRAIN_ID_TO_LABEL_ID: Dict[int, int] = {t: k for k, t in CITYSCAPES_LABEL_TO_TRAIN_ID.items()}
"""The inverse: train ID -> labelId (the test server's format), derived from the table above."""


def train_ids_to_label_ids(labels: np.ndarray) -> np.ndarray:
    """Cityscapes train IDs (0-18, uint8-range) -> labelIds as ``uint8``; any other value becomes 0 (unlabeled)."""
    lut = np.zeros(256, dtype=np.uint8)
    for train_id, label_id in CITYSCAPES_TRAIN_ID_TO_LABEL_ID.items():
        lut[train_id] = label_id
    return lut[np.asarray(labels).astype(np.uint8)]


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
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]


def default_palette(num_classes: int) -> List[Tuple[int, int, int]]:
    """Distinct colours for ``num_classes`` classes (the PASCAL VOC bit-interleaving colour map).

    Written here because it is eight lines and no installed dependency exposes it; used for
    custom datasets without colours and for models whose config has no palette.
    """
    out = []
    for i in range(num_classes):
        r = g = b = 0
        c = i + 1  # skip black
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out
