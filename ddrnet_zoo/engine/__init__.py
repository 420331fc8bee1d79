"""Training and evaluation engine: configs, the training loop, evaluation, checkpoints, distributed helpers."""

from .checkpoint import load_checkpoint, save_checkpoint, unwrap_model
from .config import ConfigError, TrainConfig, config_from_dict, config_to_dict, list_configs, load_config
from .evaluator import PredictionWriter, build_eval_loader, evaluate
from .export import load_model_dir, save_model_dir
from .optim import PolyLR, build_optimizer
from .trainer import Trainer, TrainSampler, train

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
    "unwrap_model",
    "save_model_dir",
    "load_model_dir",
    "PolyLR",
    "build_optimizer",
]
