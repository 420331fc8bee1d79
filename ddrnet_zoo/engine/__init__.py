"""Training and evaluation engine: configs, the training loop, evaluation, checkpoints, distributed helpers.

Modules: ``schema`` (the config dataclasses) and ``config`` (loading them: files, overrides, OmegaConf),
``builders`` (datasets, loader, model, loss from a config), ``sampler``, ``step`` (one optimizer step),
``trainer`` (the loop: evaluation and checkpoint schedule, resume), ``reporting`` (log rows, exported
models), ``evaluator``, ``optim``, ``checkpoint``, ``distributed``, ``logger``, ``export``.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import config_from_dict, config_to_dict, list_configs, load_config
from .evaluator import PredictionWriter, build_eval_loader, evaluate
from .export import save_model_dir
from .optim import PolyLR, build_optimizer
from .sampler import TrainSampler
from .schema import ConfigError, TrainConfig
from .trainer import Trainer, train

__all__ = [
    "ConfigError",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "list_configs",
    "Trainer",
    "TrainSampler",
    "train",
    "evaluate",
    "build_eval_loader",
    "PredictionWriter",
    "save_checkpoint",
    "load_checkpoint",
    "save_model_dir",
    "PolyLR",
    "build_optimizer",
]
