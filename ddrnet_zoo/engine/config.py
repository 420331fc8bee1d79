"""Training/evaluation configuration: typed sections, YAML files (with ``base:`` inheritance) and overrides.

A config is a :class:`TrainConfig` of sections ``model``, ``data``, ``loss``, ``optim``,
``train`` and ``eval``. YAML files give any subset of fields; ``base: other.yaml`` loads
another file first (relative to the file, or a packaged config name). Every field can be
overridden from the command line, as ``--set optim.lr=0.02 data.root=/x`` or
``--optim.lr 0.02``; values are parsed as YAML (``null``, ``true``, ``[1024, 1024]``).
Unknown fields and wrongly typed values are errors that name the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from ..errors import DDRNetError

__all__ = [
    "ModelConfig",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainLoopConfig",
    "EvalConfig",
    "TrainConfig",
    "ConfigError",
    "CONFIG_DIR",
    "load_config",
    "resolve_config_path",
    "apply_overrides",
    "parse_override_args",
    "config_from_dict",
    "config_to_dict",
    "list_configs",
]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
"""The packaged recipe configs (``ddrnet_zoo/configs/*.yaml``)."""


class ConfigError(DDRNetError, ValueError):
    """A config file or override is invalid."""


@dataclass
class ModelConfig:
    name: str = "ddrnet23_slim"
    """Registered architecture: ddrnet23_slim, ddrnet23, ddrnet39, ddrnet39_1_5x."""
    context: str = "dappm"
    aux_head: bool = True
    arch: Optional[Dict[str, Any]] = None
    """Custom DDRNetArch fields (narrow test models)."""
    pretrained_backbone: bool = False
    """Start from the ImageNet backbone weights (timm pretrained tag ``<name>.in1k``)."""
    backbone_weights: Optional[str] = None
    """A local ImageNet backbone checkpoint (safetensors / .pth) instead of the Hub."""
    weights: Optional[str] = None
    """Initial weights of the whole segmentation model (fine-tuning), safetensors / .pth / Hub-format dir."""
    sync_bn: bool = True
    """SyncBatchNorm under DDP on GPUs (the paper: 'syncBN on four 2080Ti')."""


@dataclass
class DataConfig:
    dataset: str = "cityscapes"
    """cityscapes, camvid or folder (custom)."""
    root: Optional[str] = None
    train_split: str = "train"
    val_split: Optional[str] = "val"
    """Evaluation split during training (null: no evaluation)."""
    crop_size: Tuple[int, int] = (1024, 1024)
    """Training crop (height, width), in the pixel scale after ``image_scale``."""
    image_scale: float = 1.0
    """Resize factor applied to every image before augmentation and for evaluation."""
    scale_range: Tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    batch_size: int = 12
    """Global batch size: divided between processes (and accumulation steps)."""
    num_workers: int = 4
    in_memory: bool = False
    """Decode the training set once and augment batches on the device (small datasets)."""
    max_samples: Optional[int] = None
    """Use only the first N samples of each split (quick experiments)."""
    class_names: Optional[List[str]] = None
    """Folder datasets: one name per class."""
    palette: Optional[List[List[int]]] = None
    ignore_index: int = 255
    """Folder datasets: raw label value that is ignored."""
    label_map: Optional[Dict[int, int]] = None
    """Folder datasets: raw value -> class id (255 = ignore)."""
    name: Optional[str] = None
    """Folder datasets: dataset name written to exported configs."""
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None


@dataclass
class LossConfig:
    type: str = "ohem"
    """ohem or ce (main output)."""
    ohem_thresh: float = 0.9
    ohem_min_kept: int = 131072
    aux_weight: float = 0.4
    aux_type: str = "ce"
    """ce (HRNet/DDRNet code) or same (the main loss type, as MMSegmentation)."""
    class_weight: Optional[List[float]] = None


@dataclass
class OptimConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0005
    nesterov: bool = False
    poly_power: float = 0.9
    min_lr: float = 0.0
    warmup_iters: int = 0
    warmup_ratio: float = 0.1
    """Linear warm-up from ``warmup_ratio * lr``."""


@dataclass
class TrainLoopConfig:
    epochs: int = 484
    max_iters: Optional[int] = None
    """Total iterations (overrides ``epochs``)."""
    accum_steps: int = 1
    """Gradient accumulation micro-batches per step (BN statistics are per micro-batch)."""
    amp: str = "none"
    """none, bf16 or fp16 (fp16 uses a GradScaler)."""
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    """auto (cuda:LOCAL_RANK if available, else cpu), cpu, cuda."""
    flush_denormal: bool = True
    """On CPU, flush denormal floats to zero (``torch.set_flush_denormal``): without it training can slow down 10x."""
    output_dir: Optional[str] = None
    """Default: runs/<config name>."""
    log_interval: int = 20
    eval_interval: int = 10
    """Evaluate every N epochs (and at the end)."""
    checkpoint_interval: int = 1
    """Save the resumable checkpoint every N epochs."""
    checkpoint_interval_iters: Optional[int] = None
    """Also save every N iterations."""
    stop_at_iter: Optional[int] = None
    """Stop cleanly after this iteration (checkpoint written, schedule unchanged); continue with --resume."""
    progress: bool = True
    smoke_test: bool = False
    """A pipeline check, not a trained model: exported model cards and results say so."""
    tensorboard: bool = True
    """Also log to TensorBoard when it is installed."""


@dataclass
class EvalConfig:
    scales: List[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    batch_size: int = 1
    num_workers: int = 2


@dataclass
class TrainConfig:
    name: str = "ddrnet"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> TrainConfig:
        """Cross-field checks; raises :class:`ConfigError`."""
        from ..data.datasets import DATASET_KINDS
        from ..losses import LOSS_TYPES
        from ..models import CONTEXT_MODULES, MODEL_ARCHS

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.model.name in MODEL_ARCHS, f"model.name {self.model.name!r} unknown; known: {', '.join(MODEL_ARCHS)}")
        need(self.model.context in CONTEXT_MODULES, f"model.context must be one of {', '.join(CONTEXT_MODULES)}")
        need(self.data.dataset in DATASET_KINDS, f"data.dataset must be one of {', '.join(DATASET_KINDS)}")
        need(
            self.data.dataset != "folder" or bool(self.data.class_names),
            "data.class_names is required for data.dataset=folder",
        )
        need(len(self.data.crop_size) == 2 and min(self.data.crop_size) > 0, "data.crop_size is [height, width] > 0")
        lo, hi = self.data.scale_range
        need(0 < lo <= hi, f"data.scale_range must be [low, high] with 0 < low <= high, got {self.data.scale_range}")
        need(self.data.image_scale > 0, "data.image_scale must be > 0")
        need(self.data.batch_size >= 1, "data.batch_size must be >= 1")
        need(self.loss.type in LOSS_TYPES, f"loss.type must be one of {LOSS_TYPES}")
        need(self.loss.aux_type in ("ce", "same"), "loss.aux_type must be 'ce' or 'same'")
        need(0.0 <= self.loss.ohem_thresh <= 1.0, "loss.ohem_thresh is a probability in [0, 1]")
        need(self.optim.lr > 0, "optim.lr must be > 0")
        need(self.train.amp in ("none", "bf16", "fp16"), "train.amp must be none, bf16 or fp16")
        need(self.train.accum_steps >= 1, "train.accum_steps must be >= 1")
        need(self.train.epochs >= 1 or (self.train.max_iters or 0) >= 1, "train.epochs or train.max_iters must be >= 1")
        need(self.train.log_interval >= 1, "train.log_interval must be >= 1")
        need(len(self.eval.scales) >= 1 and min(self.eval.scales) > 0, "eval.scales must be positive numbers")
        return self


SECTIONS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "5e-4" as a string
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin in (list, tuple, List, Tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, f"{where} key"): _coerce(v, vt, f"{where}[{k}]") for k, v in value.items()}
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _section_from_dict(cls: type, d: Dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in d.items():
        if k not in hints:
            raise ConfigError(
                f"unknown config field {where}.{k}{_suggest(k, names)}; fields of {where}: {', '.join(names)}"
            )
        kwargs[k] = _coerce(v, hints[k], f"{where}.{k}")
    return cls(**kwargs)


def config_from_dict(d: Dict[str, Any]) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a nested dict (missing fields take defaults)."""
    d = dict(d)
    d.pop("base", None)
    kwargs: Dict[str, Any] = {}
    for k, v in d.items():
        if k not in SECTIONS:
            raise ConfigError(
                f"unknown config section {k!r}{_suggest(k, list(SECTIONS))}; sections: {', '.join(SECTIONS)}"
            )
        if k == "name":
            kwargs[k] = _coerce(v, str, "name")
        else:
            kwargs[k] = _section_from_dict(SECTIONS[k].default_factory().__class__, v or {}, k)
    return TrainConfig(**kwargs).validate()


def config_to_dict(cfg: TrainConfig) -> Dict[str, Any]:
    """Plain nested dict (tuples as lists) — YAML/JSON serialisable and loadable by :func:`config_from_dict`."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def list_configs() -> List[str]:
    """Names of the packaged configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name: Union[str, Path], relative_to: Optional[Path] = None) -> Path:
    """A config file path from a path or a packaged config name (``cityscapes_ddrnet23_slim``)."""
    p = Path(name)
    candidates = [p]
    if relative_to is not None and not p.is_absolute():
        candidates.insert(0, relative_to / p)
    stem = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    candidates.append(CONFIG_DIR / stem)
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        f"config {str(name)!r} not found (looked at {', '.join(map(str, candidates))}); "
        f"packaged configs: {', '.join(list_configs())}"
    )


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("label_map", "arch"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _load_yaml_tree(path: Path, seen: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config inheritance loop: {' -> '.join(map(str, seen + (path,)))}")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections")
    base = d.pop("base", None)
    if base is not None:
        inherited = _load_yaml_tree(resolve_config_path(base, path.parent), seen + (path,))
        inherited.pop("name", None)  # a config's name is its own (default: its file name)
        d = _merge(inherited, d)
    return d


def _set_dotted(d: Dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if parts[0] not in SECTIONS:
        raise ConfigError(f"unknown config section in override {key!r}{_suggest(parts[0], list(SECTIONS))}")
    if parts[0] == "name":
        if len(parts) != 1:
            raise ConfigError(f"'name' has no sub-fields: {key!r}")
        d["name"] = value
        return
    if len(parts) < 2:
        raise ConfigError(f"override {key!r} must name a field, e.g. {parts[0]}.<field>=value")
    cur = d.setdefault(parts[0], {}) or {}
    d[parts[0]] = cur
    for p in parts[1:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(d: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``key.path=value`` strings (values parsed as YAML) to a nested config dict."""
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in d.items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        key, text = item.split("=", 1)
        _set_dotted(d, key.strip(), _parse_value(text))
    return d


def parse_override_args(args: Sequence[str]) -> List[str]:
    """Turn ``--optim.lr 0.02 --data.root=/x`` (dotted options left over by argparse) into ``key=value`` strings."""
    out: List[str] = []
    i = 0
    args = list(args)
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or "." not in a.split("=", 1)[0]:
            raise ConfigError(f"unrecognised argument {a!r}; config fields are given as --section.field VALUE")
        key = a[2:]
        if "=" in key:
            out.append(key)
            i += 1
            continue
        if i + 1 >= len(args) or (args[i + 1].startswith("--") and not _is_number(args[i + 1])):
            raise ConfigError(f"{a} needs a value")
        out.append(f"{key}={args[i + 1]}")
        i += 2
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_config(path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a YAML config (path or packaged name; ``None`` = defaults), apply overrides, validate.

    The config's ``name`` defaults to the file's stem.
    """
    d: Dict[str, Any] = {}
    if path is not None:
        p = resolve_config_path(path)
        d = _load_yaml_tree(p)
        d.setdefault("name", p.stem)
    d = apply_overrides(d, overrides)
    return config_from_dict(d)
