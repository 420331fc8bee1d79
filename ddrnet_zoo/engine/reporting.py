"""What a run reports: the rows of ``train_log.csv``/``eval_log.csv`` and the exported ``best/``/``final/``
model folders, whose ``config.json`` records the training (recipe, iteration, evaluation) and whose
model card states the result and how to reproduce it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..models import DDRNetSegmentation
from ..text import plural
from .config import TrainConfig, config_to_dict
from .export import save_model_dir

__all__ = ["TRAIN_COLUMNS", "train_row", "eval_row", "export_run_model"]

TRAIN_COLUMNS = ("epoch", "iteration", "loss", "loss_main", "loss_aux", "lr", "images_per_s", "time_s")


def train_row(
    epoch: int, iteration: int, losses: List[float], lr: float, images: int, seconds: float
) -> Dict[str, Any]:
    """A ``train_log.csv`` row from the mean ``[loss, loss_main, loss_aux]`` since the last row.

    Raises ``FloatingPointError`` (with the usual cures) when the loss is not finite.
    """
    loss, loss_main, loss_aux = losses
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"loss is {loss} at iteration {iteration}; lower optim.lr, add optim.warmup_iters, "
            "or use train.amp=bf16 instead of fp16"
        )
    return {
        "epoch": epoch + 1,
        "iteration": iteration,
        "loss": loss,
        "loss_main": loss_main,
        "loss_aux": loss_aux,
        "lr": lr,
        "images_per_s": images / max(seconds, 1e-9),
        "time_s": seconds,
    }


def eval_row(epoch: int, iteration: int, metrics: Dict[str, Any]) -> Dict[str, Any]:
    """An ``eval_log.csv`` row: mIoU, accuracies and per-class IoU."""
    row = {
        "epoch": epoch + 1,
        "iteration": iteration,
        "miou": metrics["miou"],
        "pixel_acc": metrics["pixel_acc"],
        "mean_acc": metrics["mean_acc"],
    }
    row.update({f"iou/{n}": r["iou"] for n, r in metrics["per_class"].items()})
    return row


def export_run_model(
    model: DDRNetSegmentation,
    out_dir: Path,
    name: str,
    cfg: TrainConfig,
    iteration: int,
    epoch: int,
    metrics: Optional[Dict[str, Any]] = None,
) -> Path:
    """Save ``model`` as ``out_dir/name`` (Hub format) with the training metadata (and the result, if evaluated)."""
    training: Dict[str, Any] = {
        "config_name": cfg.name,
        "iteration": iteration,
        "epoch": epoch,
        "image_scale": cfg.data.image_scale,
        "recipe": config_to_dict(cfg),
    }
    if cfg.train.smoke_test:
        training["smoke_test"] = True
    if metrics is not None:
        training["eval"] = {
            "split": cfg.data.val_split,
            "images": metrics["images"],
            "miou": metrics["miou"],
            "pixel_acc": metrics["pixel_acc"],
            "scales": metrics["scales"],
            "flip": metrics["flip"],
        }
    model.metadata["training"] = training
    results = None
    if metrics is not None:
        views = "multi-scale + flip" if metrics["flip"] or len(metrics["scales"]) > 1 else "single scale"
        notes = f"{views}, iteration {iteration}"
        if cfg.data.max_samples:
            notes += f", first {plural(metrics['images'], 'image')} of the split only (data.max_samples)"
        if cfg.train.smoke_test:
            notes += "; smoke test, not a trained model"
        results = [
            {
                "metric": "mIoU",
                "value": round(100 * float(metrics["miou"]), 2),
                "dataset": model.dataset["name"],
                "split": cfg.data.val_split,
                "images": metrics["images"],
                "command": f"ddrnet-eval --checkpoint {out_dir / name}"
                + (f" --set data.max_samples={cfg.data.max_samples}" if cfg.data.max_samples else ""),
                "notes": notes,
            }
        ]
    return save_model_dir(model, out_dir / name, results=results)
