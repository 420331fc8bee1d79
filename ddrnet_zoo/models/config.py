"""The configuration that fully describes a segmentation model (what ``config.json`` on the Hub holds)."""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..errors import InputError
from .context import CONTEXT_MODULES
from .ddrnet import MODEL_ARCHS, DDRNetArch, arch_dict

__all__ = ["SegmentationConfig", "CONFIG_FORMAT_VERSION"]

CONFIG_FORMAT_VERSION = 1


def _positive_int(value: Any) -> Optional[int]:
    """``value`` as an int if it is an integer >= 1 (not a bool, a float or a string), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = operator.index(value)
    except TypeError:
        return None
    return number if number >= 1 else None


def _rgb_list(palette: Sequence[Sequence[int]]) -> List[List[int]]:
    out = []
    for i, c in enumerate(palette):
        c = [int(v) for v in c]
        if len(c) != 3 or not all(0 <= v <= 255 for v in c):
            raise InputError(f"palette entry {i} must be three integers in 0-255, got {list(c)}")
        out.append(c)
    return out


@dataclass
class SegmentationConfig:
    """Everything needed to rebuild a :class:`~ddrnet_zoo.models.DDRNetSegmentation` and use it.

    ``architecture`` is a registered backbone (``ddrnet23_slim``, ...). ``metadata`` holds
    free-form information (training recipe, measured metrics) that does not affect the model.
    """

    architecture: str
    num_classes: int
    arch: Optional[Dict[str, Any]] = None
    """Custom widths/depths (``DDRNetArch`` fields) replacing the registered architecture's."""
    context: str = "dappm"
    aux_head: bool = True
    in_chans: int = 3
    upsample_logits: bool = True
    class_names: Optional[List[str]] = None
    palette: Optional[List[List[int]]] = None
    ignore_index: int = 255
    mean: Tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: Tuple[float, ...] = IMAGENET_DEFAULT_STD
    dataset: Optional[str] = None
    train_size: Optional[Tuple[int, int]] = None
    """Training crop (height, width)."""
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in MODEL_ARCHS:
            raise InputError(
                f"unknown architecture {self.architecture!r}; known: {', '.join(MODEL_ARCHS)} "
                "(is the config from a newer ddrnet_zoo?)"
            )
        if self.arch is not None:
            self.arch = arch_dict(self.ddrnet_arch())
        if self.context not in CONTEXT_MODULES:
            raise InputError(f"unknown context module {self.context!r}; known: {', '.join(CONTEXT_MODULES)}")
        for name in ("aux_head", "upsample_logits"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, int):
            raise InputError(f"ignore_index must be an integer, got {self.ignore_index!r}")
        if self.dataset is not None and not isinstance(self.dataset, str):
            raise InputError(f"dataset must be a name, got {self.dataset!r}")
        if not isinstance(self.metadata, dict):
            raise InputError(f"metadata must be a mapping, got {type(self.metadata).__name__}")
        for name in ("num_classes", "in_chans"):
            value = _positive_int(getattr(self, name))
            if value is None:
                raise InputError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
            setattr(self, name, value)
        if self.class_names is not None:
            self.class_names = [str(n) for n in self.class_names]
            if len(self.class_names) != self.num_classes:
                raise InputError(f"{len(self.class_names)} class names for num_classes={self.num_classes}")
        if self.palette is not None:
            self.palette = _rgb_list(self.palette)
            if len(self.palette) != self.num_classes:
                raise InputError(f"{len(self.palette)} palette colours for num_classes={self.num_classes}")
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise InputError(f"mean/std need {self.in_chans} values, got {len(self.mean)}/{len(self.std)}")
        if self.train_size is not None:
            self.train_size = tuple(int(v) for v in self.train_size)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable dict (with ``format_version``)."""
        d = dataclasses.asdict(self)
        for k in ("mean", "std", "train_size"):
            if d[k] is not None:
                d[k] = list(d[k])
        return {"format_version": CONFIG_FORMAT_VERSION, **d}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> SegmentationConfig:
        """Inverse of :meth:`to_dict`; unknown fields are an error (naming them)."""
        d = dict(d)
        version = d.pop("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise InputError(
                f"config format_version {version} is not supported (this ddrnet_zoo reads {CONFIG_FORMAT_VERSION})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown config fields {unknown}; known fields: {sorted(names)}")
        if "architecture" not in d or "num_classes" not in d:
            raise InputError("config needs at least 'architecture' and 'num_classes'")
        return cls(**d)

    def ddrnet_arch(self) -> DDRNetArch:
        """The :class:`~ddrnet_zoo.models.DDRNetArch` this config describes."""
        if self.arch is None:
            return MODEL_ARCHS[self.architecture]
        fields = {f.name for f in dataclasses.fields(DDRNetArch)}
        unknown = sorted(set(self.arch) - fields)
        if unknown:
            raise InputError(f"unknown arch fields {unknown}; known: {sorted(fields)}")
        d = dict(self.arch)
        for name, value in d.items():  # JSON gives any type: positive integers only, before any layer is built
            many = name == "depths"
            values = [_positive_int(v) for v in value] if many and isinstance(value, (list, tuple)) else None
            if many and (values is None or len(values) != 4 or None in values):
                raise InputError(f"arch.depths must be four positive integers, got {value!r}")
            if not many and _positive_int(value) is None:
                raise InputError(f"arch.{name} must be a positive integer, got {value!r}")
            d[name] = tuple(values) if many else _positive_int(value)
        return DDRNetArch(**d)

    def model_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of :func:`~ddrnet_zoo.create_segmentation_model`."""
        extra = {} if self.arch is None else {"arch": self.ddrnet_arch()}
        return dict(
            **extra,
            model_name=self.architecture,
            num_classes=self.num_classes,
            context=self.context,
            aux_head=self.aux_head,
            upsample_logits=self.upsample_logits,
            in_chans=self.in_chans,
        )
