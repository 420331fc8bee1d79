"""Which images to predict and where their outputs go: files, folders and glob patterns -> named sources."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Union

from ..errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "OUTPUT_KINDS", "VIDEO_OUTPUTS", "ImageSource", "find_images", "output_path"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
OUTPUT_KINDS = ("label", "color", "overlay")
VIDEO_OUTPUTS = ("overlay",)
"""What ``ddrnet-predict`` writes for a video unless ``--save`` says otherwise."""
_OUTPUT_DIRS = {"label": "labels", "color": "color", "overlay": "overlay"}
_OUTPUT_SUFFIX = {"label": ".png", "color": ".png", "overlay": ".jpg"}

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ImageSource:
    """An input image and the relative name (no extension) its outputs get."""

    path: Path
    name: str


def output_path(output_dir: Path, source: ImageSource, kind: str) -> Path:
    """``output_dir/labels/<name>.png``, ``.../color/<name>.png`` or ``.../overlay/<name>.jpg``."""
    return Path(output_dir) / _OUTPUT_DIRS[kind] / (source.name + _OUTPUT_SUFFIX[kind])


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard (outputs are named relative to it)."""
    parts = Path(pattern).parts
    root: List[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).with_suffix("").as_posix()
    except ValueError:
        return path.stem


def find_images(inputs: Union[PathLike, Sequence[PathLike]], recursive: bool = True) -> List[ImageSource]:
    """Expand image files, folders (all images inside, recursively) and glob patterns (``**`` works).

    Outputs are named after the path relative to the folder (or the pattern's fixed prefix);
    single files by their stem. Raises ``FileNotFoundError`` for an input that matches nothing
    and ``ValueError`` when two inputs would write the same output name.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: List[ImageSource] = []
    seen = set()
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and _is_image(p))
            if not files:
                raise FileNotFoundError(
                    f"no images in folder {path} (looked for {', '.join(IMAGE_EXTENSIONS)}"
                    f"{'' if recursive else ', not recursing'})"
                )
            items = [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
        elif path.is_file():
            items = [(path, path.stem)]
        elif glob.has_magic(text):
            root = _glob_root(text)
            files = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in files if p.is_file() and _is_image(p)]
            if not files:
                raise FileNotFoundError(f"pattern {text!r} matches no image files ({', '.join(IMAGE_EXTENSIONS)})")
            items = [(p, _relative_name(p, root)) for p in files]
        else:
            raise FileNotFoundError(f"no such image, folder or glob pattern: {text}")
        for p, name in items:
            key = p.resolve()
            if key in seen:
                continue
            seen.add(key)
            found.append(ImageSource(p, name))
    names: Dict[str, Path] = {}
    for item in found:
        if item.name in names:
            raise InputError(
                f"{names[item.name]} and {item.path} would both be written as {item.name!r}; "
                "predict them into different output folders or pass their parent folder instead"
            )
        names[item.name] = item.path
    return found
