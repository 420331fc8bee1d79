"""Segmentation datasets: Cityscapes, CamVid (SegNet layout) and a generic list-file folder dataset.

Every dataset returns labels mapped to *train IDs* ``0..num_classes-1`` with one internal
ignore value, :data:`IGNORE_INDEX` = 255: Cityscapes labelIds go through
:data:`~ddrnet_zoo.data.meta.CITYSCAPES_LABEL_TO_TRAIN_ID` (every other id -> 255), CamVid's
void class 11 becomes 255, and a custom dataset's ``ignore_index`` becomes 255. Losses and
metrics therefore always ignore 255. Bad data raises :class:`DatasetError` naming the file and
what to do: a missing root or split, an image without a label, image/label size mismatch,
label values that are neither a class nor the ignore value. Files are decoded by
:mod:`ddrnet_zoo.data.images` without EXIF rotation (labels carry none; see there).

Items are ``{"image", "label", "index"}``; with a ``transform`` the image is a normalised
float tensor (see :mod:`ddrnet_zoo.data.transforms`). ``dataset[(index, epoch)]`` passes the
epoch to the transform (the training sampler yields such pairs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..constants import IGNORE_INDEX
from ..errors import InputError
from .images import LABEL_VALUE_LIMIT, DatasetError, read_image, read_label
from .meta import CAMVID, CITYSCAPES, CITYSCAPES_LABEL_TO_TRAIN_ID, DatasetInfo, default_palette

__all__ = [
    "SegmentationDataset",
    "CityscapesDataset",
    "CamVidDataset",
    "FolderDataset",
    "DATASET_KINDS",
    "build_dataset",
    "collate",
]

PathLike = Union[str, os.PathLike]
Sample = Tuple[Path, Optional[Path]]
LUT_SIZE = LABEL_VALUE_LIMIT  # 8- and 16-bit label images


def _build_lut(mapping: Mapping[int, int], default: int) -> np.ndarray:
    lut = np.full(LUT_SIZE, default, dtype=np.int16)
    for k, v in mapping.items():
        if not 0 <= int(k) < LUT_SIZE:
            raise DatasetError(f"label_map key {k} is outside 0..{LUT_SIZE - 1}")
        lut[int(k)] = int(v)
    return lut


class SegmentationDataset(Dataset):
    """A list of (image, label) files with a label mapping to train IDs.

    Args:
        samples: (image path, label path or None) pairs; ``None`` labels (unlabelled test
            images) load as all-ignore.
        info: class names, palette, mean/std of the dataset.
        label_lut: int16 lookup table raw label value -> train ID (``IGNORE_INDEX`` to
            ignore, -1 for values that are an error).
        transform: called as ``transform(image, label, index=, epoch=)``; without one, items
            hold the raw uint8 image array and int64 label array.
        name: for messages.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        info: DatasetInfo,
        label_lut: np.ndarray,
        transform: Optional[Callable] = None,
        name: str = "dataset",
    ) -> None:
        self.samples: List[Sample] = [(Path(i), None if lbl is None else Path(lbl)) for i, lbl in samples]
        self.info = info
        self.label_lut = label_lut
        self.transform = transform
        self.name = name
        if not self.samples:
            raise DatasetError(f"{name}: no images found")

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def class_names(self) -> Tuple[str, ...]:
        return self.info.class_names

    @property
    def has_labels(self) -> bool:
        return all(lbl is not None for _, lbl in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, n: Optional[int]) -> SegmentationDataset:
        """Keep the first ``n`` samples (all when ``n`` is None) — for quick experiments and tests."""
        if n is not None:
            if n < 1:
                raise InputError(f"max_samples must be >= 1, got {n}")
            self.samples = self.samples[:n]
        return self

    def map_label(self, raw: np.ndarray, path: Optional[Path] = None) -> np.ndarray:
        """Raw label values -> train IDs (uint8, ``IGNORE_INDEX`` ignored); raises on values of no class."""
        mapped = self.label_lut[raw]
        if (mapped < 0).any():
            bad = np.unique(raw[mapped < 0])
            shown = ", ".join(str(int(v)) for v in bad[:12]) + (" ..." if len(bad) > 12 else "")
            valid = np.flatnonzero(self.label_lut >= 0)
            raise DatasetError(
                f"{self.name}: label {path} has values [{shown}] of no class: fix the labels, or set "
                "data.ignore_index / data.label_map\n"
                f"  classes 0..{self.num_classes - 1} and the ignore value; valid raw values: {_ranges(valid)}"
            )
        return mapped.astype(np.uint8)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Decode sample ``index``: (HxWx3 uint8 image, HxW uint8 train-ID label)."""
        img_path, lbl_path = self.samples[index]
        image = read_image(img_path, exif_transpose=False)  # labels carry no EXIF: keep the stored pixel grid
        if lbl_path is None:
            return image, np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        raw = read_label(lbl_path)
        if raw.shape[:2] != image.shape[:2]:
            raise DatasetError(
                f"{self.name}: image {img_path} is {image.shape[1]}x{image.shape[0]} but its label {lbl_path} is "
                f"{raw.shape[1]}x{raw.shape[0]} (width x height); image and label must have the same size"
            )
        return image, self.map_label(raw, lbl_path)

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Dict[str, object]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), 0)
        image, label = self.load(index)
        if self.transform is None:
            return {"image": image, "label": label.astype(np.int64), "index": index}
        item = dict(self.transform(image, label, index=index, epoch=epoch))
        item["index"] = index
        return item

    def name_of(self, index: int) -> str:
        """A file stem identifying sample ``index`` (for saved predictions)."""
        return self.samples[index][0].stem

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} samples, {self.num_classes} classes)"


def _ranges(values: np.ndarray) -> str:
    parts, start, prev = [], None, None
    for v in (int(x) for x in values):
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts) if parts else "none"


def _check_root(root: PathLike, what: str) -> Path:
    if root is None or str(root) == "":
        raise DatasetError(f"{what}: no dataset root given; set data.root=/path/to/{what} (see docs/training.md)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"{what}: dataset root {root} does not exist or is not a directory; "
            f"set data.root to the {what} folder (see docs/training.md for the expected layout)"
        )
    return root


def _splits(split: str) -> List[str]:
    parts = [s.strip() for s in str(split).split("+") if s.strip()]
    if not parts:
        raise DatasetError(f"empty split {split!r}")
    return parts


class CityscapesDataset(SegmentationDataset):
    """Cityscapes fine annotations: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png`` (labelIds mapped to the 19 train IDs).

    ``split`` is ``train``, ``val``, ``test`` or a ``+``-joined combination (``train+val``).
    """

    IMAGE_SUFFIX = "_leftImg8bit.png"
    LABEL_SUFFIX = "_gtFine_labelIds.png"

    def __init__(self, root: PathLike, split: str = "train", transform: Optional[Callable] = None) -> None:
        root = _check_root(root, "cityscapes")
        samples: List[Sample] = []
        for part in _splits(split):
            img_dir = root / "leftImg8bit" / part
            if not img_dir.is_dir():
                raise DatasetError(
                    f"cityscapes: {img_dir} not found; data.root must contain leftImg8bit/ and gtFine/ "
                    f"(from leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip)"
                )
            images = sorted(img_dir.glob(f"*/*{self.IMAGE_SUFFIX}"))
            if not images:
                raise DatasetError(f"cityscapes: no *{self.IMAGE_SUFFIX} images under {img_dir}/<city>/")
            for img in images:
                stem = img.name[: -len(self.IMAGE_SUFFIX)]
                lbl = root / "gtFine" / part / img.parent.name / f"{stem}{self.LABEL_SUFFIX}"
                if not lbl.is_file():
                    raise DatasetError(
                        f"cityscapes: image {img} has no label {lbl}; unpack gtFine_trainvaltest.zip into data.root"
                    )
                samples.append((img, lbl))
        lut = _build_lut(CITYSCAPES_LABEL_TO_TRAIN_ID, IGNORE_INDEX)  # every other id is ignored
        super().__init__(samples, CITYSCAPES, lut, transform, name=f"cityscapes/{split}")


def _read_list(root: Path, list_file: Path, what: str, require_labels: bool) -> List[Sample]:
    samples: List[Sample] = []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) > 2:
            raise DatasetError(f"{what}: {list_file} line {n}: expected 'image [label]', got {line!r}")
        img = root / parts[0]
        if not img.is_file():
            raise DatasetError(f"{what}: image {img} (listed in {list_file} line {n}) not found")
        if len(parts) == 1:
            if require_labels:
                raise DatasetError(
                    f"{what}: image {img} ({list_file} line {n}) has no label; list files need 'image label' pairs"
                )
            samples.append((img, None))
            continue
        lbl = root / parts[1]
        if not lbl.is_file():
            raise DatasetError(f"{what}: image {img} has no label: {lbl} (listed in {list_file} line {n}) not found")
        samples.append((img, lbl))
    if not samples:
        raise DatasetError(f"{what}: {list_file} lists no images")
    return samples


def _list_file(root: Path, split: str, what: str) -> Path:
    p = Path(split)
    candidates = [p if p.is_absolute() else root / p] if p.suffix == ".txt" else [root / f"{split}.txt"]
    for c in candidates:
        if c.is_file():
            return c
    have = sorted(f.stem for f in root.glob("*.txt"))
    todo = (
        f"(it has {', '.join(have)}): set data.val_split or data.train_split to one of them"
        if have
        else "(no list files, *.txt): check data.root, or write the list files (docs/training.md)"
    )
    raise DatasetError(
        f"{what}: no split {split!r} in {root} {todo}\n"
        f"  looked for {', '.join(str(c) for c in candidates)}; a list file has one 'image label' pair of paths "
        "relative to data.root per line"
    )


class FolderDataset(SegmentationDataset):
    """A custom dataset: images and single-channel label masks listed in ``<root>/<split>.txt``.

    Each line of the list file is ``image_path label_path`` relative to ``root`` (a line with
    only an image is an unlabelled image, allowed with ``require_labels=False``). ``split``
    may also be a path to a ``.txt`` list file, or ``+``-joined splits.

    Args:
        root: dataset folder.
        split: list name(s).
        class_names: one name per class; labels ``0..len-1`` are the classes.
        ignore_index: raw label value to ignore (mapped to 255 internally).
        palette: RGB colour per class (default :func:`default_palette`).
        label_map: optional ``{raw value: train id}`` applied instead of the identity
            (values mapped to 255 are ignored); raw values not in it are errors.
        transform: see :class:`SegmentationDataset`.
        name: dataset name (stored in exported model configs).
        mean, std: normalisation of the images.
        require_labels: raise for list lines without a label.
    """

    def __init__(
        self,
        root: PathLike,
        split: str,
        class_names: Sequence[str],
        ignore_index: int = IGNORE_INDEX,
        palette: Optional[Sequence[Sequence[int]]] = None,
        label_map: Optional[Mapping[int, int]] = None,
        transform: Optional[Callable] = None,
        name: str = "custom",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        require_labels: bool = True,
    ) -> None:
        if not class_names:
            raise DatasetError(f"{name}: class_names are required for a folder dataset (set data.class_names)")
        k = len(class_names)
        if k >= IGNORE_INDEX:
            raise DatasetError(
                f"{name}: at most {IGNORE_INDEX - 1} classes are supported ({IGNORE_INDEX} is the ignore label)"
            )
        root = _check_root(root, name)
        samples: List[Sample] = []
        for part in _splits(split):
            samples += _read_list(root, _list_file(root, part, name), name, require_labels)
        if label_map is None:
            mapping = {i: i for i in range(k)}
            if not 0 <= ignore_index < LUT_SIZE:
                raise DatasetError(f"{name}: ignore_index {ignore_index} is outside 0..{LUT_SIZE - 1}")
            if ignore_index < k:
                raise DatasetError(
                    f"{name}: ignore_index {ignore_index} is one of the {k} class ids 0..{k - 1}; "
                    "use data.label_map to renumber the classes"
                )
            mapping[int(ignore_index)] = IGNORE_INDEX
        else:
            mapping = {int(a): int(b) for a, b in label_map.items()}
            bad = {a: b for a, b in mapping.items() if not (0 <= b < k or b == IGNORE_INDEX)}
            if bad:
                raise DatasetError(f"{name}: label_map targets {bad} are neither 0..{k - 1} nor {IGNORE_INDEX}")
        kwargs = {}
        if mean is not None:
            kwargs["mean"] = tuple(float(v) for v in mean)
        if std is not None:
            kwargs["std"] = tuple(float(v) for v in std)
        info = DatasetInfo(
            name=name,
            class_names=tuple(str(c) for c in class_names),
            palette=tuple(tuple(int(v) for v in c) for c in (palette or default_palette(k))),
            ignore_index=int(ignore_index),
            **kwargs,
        )
        split_name = "+".join(Path(s).stem if s.endswith(".txt") else s for s in _splits(split))
        super().__init__(samples, info, _build_lut(mapping, -1), transform, name=f"{name}/{split_name}")


class CamVidDataset(FolderDataset):
    """CamVid in the SegNet layout (``train.txt``/``val.txt``/``test.txt`` listing ``image label``
    pairs; 11 classes, label 11 = void, mapped to 255)."""

    def __init__(self, root: PathLike, split: str = "train", transform: Optional[Callable] = None) -> None:
        super().__init__(
            root,
            split,
            class_names=CAMVID.class_names,
            ignore_index=CAMVID.ignore_index,
            palette=CAMVID.palette,
            transform=transform,
            name="camvid",
        )
        self.info = CAMVID


DATASET_KINDS = ("cityscapes", "camvid", "folder")


def build_dataset(
    kind: str,
    root: PathLike,
    split: str,
    transform: Optional[Callable] = None,
    class_names: Optional[Sequence[str]] = None,
    ignore_index: int = IGNORE_INDEX,
    palette: Optional[Sequence[Sequence[int]]] = None,
    label_map: Optional[Mapping[int, int]] = None,
    name: Optional[str] = None,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    require_labels: bool = True,
) -> SegmentationDataset:
    """Build a dataset by kind: ``cityscapes``, ``camvid`` or ``folder`` (custom; needs ``class_names``)."""
    kind = str(kind).lower()
    if kind == "cityscapes":
        return CityscapesDataset(root, split, transform)
    if kind == "camvid":
        return CamVidDataset(root, split, transform)
    if kind == "folder":
        return FolderDataset(
            root,
            split,
            class_names=class_names or (),
            ignore_index=ignore_index,
            palette=palette,
            label_map=label_map,
            transform=transform,
            name=name or "custom",
            mean=mean,
            std=std,
            require_labels=require_labels,
        )
    raise DatasetError(f"unknown dataset kind {kind!r}; choose one of {', '.join(DATASET_KINDS)}")


def collate(batch: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """Stack items of equal size; explain the fix when sizes differ."""
    images = [b["image"] for b in batch]
    if len({tuple(i.shape) for i in images}) > 1:
        raise DatasetError(
            "images of different sizes in one batch: "
            f"{sorted({tuple(i.shape[-2:]) for i in images})}; use eval.batch_size=1 for such datasets"
        )
    return {
        "image": torch.stack(images),
        "label": torch.stack([b["label"] for b in batch]),
        "index": torch.tensor([int(b["index"]) for b in batch]),
    }
