"""The training/evaluation config schema: typed sections of plain dataclasses, and their cross-field checks.

A config is a :class:`TrainConfig` of sections ``model``, ``data``, ``loss``, ``optim``,
``train`` and ``eval``. Files, overrides and type checks are :mod:`ddrnet_zoo.engine.config`'s
(OmegaConf structured configs built from these dataclasses).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..constants import AUX_LOSS_WEIGHT, IGNORE_INDEX
from ..data.datasets import DATASET_KINDS
from ..device import DeviceError, canonical_precision
from ..errors import DDRNetError
from ..losses import LOSS_TYPES
from ..models import CONTEXT_MODULES, MODEL_ARCHS

__all__ = [
    "ModelConfig",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainLoopConfig",
    "EvalConfig",
    "TrainConfig",
    "ConfigError",
    "stop_signal",
]


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
    color_jitter: float = 0.0
    """Brightness, contrast and saturation jitter strength j (factors ~ U(1 - j, 1 + j)); 0: none (the paper)."""
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
    ignore_index: int = IGNORE_INDEX
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
    aux_weight: float = AUX_LOSS_WEIGHT
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
    """none (= fp32), bf16 or fp16 (fp16 uses a GradScaler); the vocabulary of :mod:`ddrnet_zoo.device`."""
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
    checkpoint_interval_minutes: Optional[float] = None
    """Also save every N minutes of training (wall clock): what a preemption can lose."""
    time_budget_minutes: Optional[float] = None
    """Wall-clock budget of the whole run (summed over resumed sessions), final evaluation and export included.
    The number of iterations is planned from the measured throughput (and re-planned as it changes), the
    poly schedule spans it, and the run ends by the budget with its final evaluation and export.
    Overrides ``epochs`` / ``max_iters`` (which then only bound it)."""
    stop_at_iter: Optional[int] = None
    """Stop cleanly after this iteration (checkpoint written, schedule unchanged); continue with --resume."""
    progress: bool = True
    smoke_test: bool = False
    """A pipeline check, not a trained model: exported model cards and results say so."""
    tensorboard: bool = True
    """Also log to TensorBoard when it is installed."""
    stop_signals: List[str] = field(default_factory=lambda: ["SIGTERM", "SIGINT", "SIGUSR1"])
    """Signals that stop the run cleanly: finish the step, write ``last.pt``, exit with status 75 (continue
    with --resume). ``[]`` keeps the default actions."""


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
        need(min(self.data.crop_size) > 0, "data.crop_size is [height, width] > 0")
        lo, hi = self.data.scale_range
        need(0 < lo <= hi, f"data.scale_range must be [low, high] with 0 < low <= high, got {self.data.scale_range}")
        need(self.data.image_scale > 0, "data.image_scale must be > 0")
        need(0.0 <= self.data.color_jitter < 1.0, "data.color_jitter must be in [0, 1)")
        need(self.data.batch_size >= 1, "data.batch_size must be >= 1")
        need(self.loss.type in LOSS_TYPES, f"loss.type must be one of {LOSS_TYPES}")
        need(self.loss.aux_type in ("ce", "same"), "loss.aux_type must be 'ce' or 'same'")
        need(0.0 <= self.loss.ohem_thresh <= 1.0, "loss.ohem_thresh is a probability in [0, 1]")
        need(self.optim.lr > 0, "optim.lr must be > 0")
        need(_is_precision(self.train.amp), f"train.amp must be none (= fp32), bf16 or fp16, got {self.train.amp!r}")
        need(self.train.accum_steps >= 1, "train.accum_steps must be >= 1")
        need(self.train.epochs >= 1 or (self.train.max_iters or 0) >= 1, "train.epochs or train.max_iters must be >= 1")
        need(self.train.log_interval >= 1, "train.log_interval must be >= 1")
        need(
            self.train.time_budget_minutes is None or self.train.time_budget_minutes > 0,
            "train.time_budget_minutes must be > 0 (or null for none)",
        )
        need(
            self.train.checkpoint_interval_minutes is None or self.train.checkpoint_interval_minutes > 0,
            "train.checkpoint_interval_minutes must be > 0 (or null for none)",
        )
        for name in self.train.stop_signals:
            stop_signal(name)
        need(len(self.eval.scales) >= 1 and min(self.eval.scales) > 0, "eval.scales must be positive numbers")
        return self


def stop_signal(name: str) -> signal.Signals:
    """The signal ``name`` names (``SIGTERM``, ``TERM`` or ``term``); a :class:`ConfigError` unless it can be caught."""
    key = str(name).strip().upper()
    key = key if key.startswith("SIG") else f"SIG{key}"
    sig = getattr(signal.Signals, key, None)
    if sig is None or sig in (signal.SIGKILL, signal.SIGSTOP):
        raise ConfigError(
            f"train.stop_signals: {name!r} is not a signal that can be caught; use names such as SIGTERM, SIGINT, "
            "SIGUSR1 (SIGKILL and SIGSTOP cannot be caught), or [] for none"
        )
    return sig


def _is_precision(name: str) -> bool:
    try:
        canonical_precision(name)
    except DeviceError:
        return False
    return True
