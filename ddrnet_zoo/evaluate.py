"""``ddrnet-eval``: mIoU / per-class IoU / pixel accuracy of a trained model, single- or multi-scale (+ flip).

The model comes from ``--checkpoint``: a training checkpoint (``last.pt``), a model directory in the
Hub format (``best/``, ``final/``: ``config.json`` + ``model.safetensors``), or a weights file
(``.safetensors``/``.pth``, with ``--config`` describing the model). The data come from the
training config stored with the model, or ``--config``, plus overrides (``--data.root /x``). The
whole split is evaluated: the recipe's ``data.max_samples`` (a training shortcut) is dropped, with
a note, unless given on the command line (``--set data.max_samples=N``). The results JSON goes to
``--output``, by default beside the model (``runs/x/best.eval_val.json``): a model folder is never written to.

Examples::

    ddrnet-eval --checkpoint runs/cityscapes_ddrnet23_slim/best --data.root /data/cityscapes
    ddrnet-eval --checkpoint runs/cityscapes_ddrnet23_slim/best --multi-scale --flip      # Table VII protocol
    torchrun --nproc_per_node 4 -m ddrnet_zoo.evaluate --checkpoint runs/x/last.pt --save-predictions preds/
    ddrnet-eval --checkpoint weights.safetensors --config camvid_ddrnet23 --data.root /data/camvid --split test
    ddrnet-eval --checkpoint model.int8.onnx --data.root /data/camvid          # an ONNX export, in onnxruntime
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from .convert import load_model
from .device import canonical_precision
from .engine import distributed as dist_utils
from .engine.builders import build_eval_dataset, build_model
from .engine.checkpoint import CHECKPOINT_FORMAT
from .engine.config import ConfigError, TrainConfig, config_from_dict, load_config, parse_override_args
from .engine.evaluator import PredictionWriter, build_eval_loader, evaluate
from .engine.export import load_model_weights
from .errors import run_cli
from .hub.source import CONFIG_NAME, missing_source_error, not_a_model_folder_error
from .inference.onnx_model import OnnxSegmentationModel, is_onnx_file, load_onnx_model
from .inference.tta import PAPER_SCALES
from .io import (
    atomic_write_json,
    check_output_dir,
    check_output_file,
    read_state_dict,
    state_dict_from,
    torch_load_safe,
)
from .metrics import format_metrics_table, to_jsonable
from .models import DDRNetSegmentation
from .text import plural

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddrnet-eval",
        description="Evaluate a DDRNet segmentation model (mIoU at full label resolution). "
        "Config fields can be overridden: --set data.root=/x, or --data.root /x.",
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="last.pt, a model directory (config.json), a weights file, or an ONNX export (run in onnxruntime)",
    )
    p.add_argument("--config", "-c", help="training config describing the data (and the model for weight files)")
    p.add_argument("--split", help="split to evaluate (default: data.val_split)")
    p.add_argument("--scales", type=float, nargs="+", help="inference scales (default: eval.scales of the config)")
    p.add_argument("--multi-scale", action="store_true", help=f"use the paper's scales {PAPER_SCALES}")
    p.add_argument("--flip", action="store_true", help="add horizontally flipped views")
    p.add_argument("--batch-size", type=int, help="images per process and batch (default: eval.batch_size)")
    p.add_argument("--amp", choices=("none", "fp32", "bf16", "fp16"), help="autocast dtype (default: train.amp)")
    p.add_argument("--device", help="cpu, cuda or auto (default: train.device)")
    p.add_argument("--save-predictions", metavar="DIR", help="write predicted labels as palette PNGs here")
    p.add_argument("--label-ids", action="store_true", help="Cityscapes: save labelIds (test-server format)")
    p.add_argument(
        "--output",
        help="results JSON (default: <model>.eval_<split>[_ms][_flip].json beside the model, not inside its folder)",
    )
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _load_for_eval(
    checkpoint: Path, config: Optional[str] = None, overrides: Tuple[str, ...] = ()
) -> Tuple[Union[DDRNetSegmentation, OnnxSegmentationModel], TrainConfig]:
    """The model stored at ``checkpoint`` and the config describing its data (see the module doc).

    An ONNX file (``ddrnet-export``, float32 or INT8) is opened in onnxruntime; its data config
    comes from the training recipe stored in its metadata, or ``--config``.
    """
    checkpoint = Path(checkpoint)
    if is_onnx_file(checkpoint):
        model = load_onnx_model(checkpoint)
        if model.config is None and config is None:
            raise ConfigError(f"{checkpoint} has no ddrnet_zoo config in its metadata: pass --config (the data)")
        recipe = (model.metadata.get("training") or {}).get("recipe")
        return model, _data_config(config, overrides, recipe, model.dataset)
    if checkpoint.is_dir():
        if not (checkpoint / CONFIG_NAME).is_file():
            raise not_a_model_folder_error(checkpoint)  # a run folder names its best/ and final/
        model = load_model(checkpoint)
        recipe = (model.metadata.get("training") or {}).get("recipe")
        return model, _data_config(config, overrides, recipe, model.dataset)
    if not checkpoint.is_file():
        raise missing_source_error(str(checkpoint))
    weights = None
    if checkpoint.suffix in (".pt", ".pth", ".bin"):
        state = torch_load_safe(checkpoint)
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            model = load_model(checkpoint, task="segmentation")  # it keeps the recipe in the config's metadata
            return model, _data_config(config, overrides, state["config"], model.dataset)
        weights = state_dict_from(state, checkpoint)  # read once: a bare weights file
    # a bare weights file: the config describes the model
    if config is None:
        raise ConfigError(f"{checkpoint} holds only weights: pass --config to describe the model and data")
    cfg = load_config(config, overrides)
    probe = build_eval_dataset(cfg, cfg.data.val_split or "val")
    model = build_model(cfg, probe.info)
    load_model_weights(model, weights if weights is not None else read_state_dict(checkpoint), str(checkpoint))
    return model, cfg


def _data_config(
    config: Optional[str], overrides: Tuple[str, ...], recipe: Optional[Dict[str, Any]], dataset: Dict[str, Any]
) -> TrainConfig:
    if config is not None:
        return load_config(config, overrides)
    if recipe is not None:
        return config_from_dict(recipe, overrides)
    # a model directory without a recipe: its dataset metadata
    d: Dict[str, Any] = {"data": {}}
    if dataset["name"] in ("cityscapes", "camvid"):
        d["data"]["dataset"] = dataset["name"]
    else:
        d["data"].update(
            dataset="folder", class_names=dataset["class_names"], name=dataset["name"], palette=dataset["palette"]
        )
    return config_from_dict(d, overrides)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``ddrnet-eval`` and ``python -m ddrnet_zoo.evaluate``; returns the exit status."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = tuple(args.set) + tuple(parse_override_args(rest))
    except ConfigError as e:
        parser.error(str(e))
    try:
        return run_cli("ddrnet-eval", lambda: _run(args, overrides))
    finally:
        dist_utils.cleanup_distributed()


def _drop_recipe_max_samples(cfg: TrainConfig, overrides: Tuple[str, ...]) -> Optional[int]:
    """Evaluate whole splits: clear the recipe's ``data.max_samples`` unless the user set it; returns what was cleared.

    A recipe's ``max_samples`` is a training shortcut (the smoke config trains on 16 frames); an mIoU
    on such a subset is not the split's. An explicit ``--set data.max_samples=N`` is honoured.
    """
    if any(o.split("=", 1)[0].strip() == "data.max_samples" for o in overrides):
        return None
    dropped, cfg.data.max_samples = cfg.data.max_samples, None
    return dropped


def _onnx_settings(model: OnnxSegmentationModel, args: argparse.Namespace, amp: str, info):
    """An ONNX file runs as stored: no autocast; on the evaluation device's onnxruntime provider."""
    if canonical_precision(amp) != "fp32":
        if args.amp:
            raise ConfigError(f"--amp {args.amp} does not apply to an ONNX file such as {args.checkpoint}; drop it")
        if info.is_main:
            print(f"note: the recipe's train.amp={amp} does not apply to the ONNX file; it runs as exported")
    if info.device.type != model.device.type:
        model = load_onnx_model(model.path, device=info.device)
    if info.is_main:
        print(f"evaluating {model.path} in {model.options.describe()}")
    return model, "none"


def default_results_path(checkpoint: Path, split: str, tag: str = "") -> Path:
    """Where results go without ``--output``: beside the model evaluated, never into a model folder.

    ``runs/x/best`` -> ``runs/x/best.eval_val.json``; ``runs/x/last.pt`` -> ``runs/x/last.eval_val.json``;
    a file inside a model folder (``hub/m/model.safetensors``) -> ``hub/m.eval_val.json``.
    """
    checkpoint = Path(checkpoint)
    if checkpoint.is_file() and (checkpoint.parent / CONFIG_NAME).is_file():
        checkpoint = checkpoint.parent
    name = checkpoint.name if checkpoint.is_dir() else checkpoint.stem
    return checkpoint.parent / f"{name}.eval_{split}{tag}.json"


def _run(args: argparse.Namespace, overrides: Tuple[str, ...]) -> int:
    if args.output:
        check_output_file(args.output, "results file")
    if args.save_predictions:
        check_output_dir(args.save_predictions, "predictions folder")
    ckpt = Path(args.checkpoint)
    model, cfg = _load_for_eval(ckpt, args.config, overrides)
    dropped = _drop_recipe_max_samples(cfg, overrides)
    info = dist_utils.init_distributed(args.device or cfg.train.device)
    split = args.split or cfg.data.val_split or "val"
    dataset = build_eval_dataset(cfg, split)
    if dropped is not None and info.is_main:
        whose = "--config's" if args.config else "recipe's"
        print(
            f"note: the {whose} data.max_samples={dropped} is ignored; evaluating all {plural(len(dataset), 'image')} "
            f"of {split} (pass --set data.max_samples={dropped} to limit)"
        )
    if dataset.num_classes != model.num_classes:
        raise ConfigError(f"the model predicts {model.num_classes} classes but {dataset} has {dataset.num_classes}")
    scales = list(PAPER_SCALES) if args.multi_scale else (args.scales or cfg.eval.scales)
    flip = args.flip or cfg.eval.flip
    amp = args.amp or cfg.train.amp
    tag = ("_ms" if len(scales) > 1 else "") + ("_flip" if flip else "")
    out = (
        Path(args.output) if args.output else check_output_file(default_results_path(ckpt, split, tag), "results file")
    )
    if isinstance(model, OnnxSegmentationModel):
        model, amp = _onnx_settings(model, args, amp, info)
    model = model.to(info.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = build_eval_loader(
        dataset, args.batch_size or cfg.eval.batch_size, cfg.eval.num_workers, pin_memory=info.device.type == "cuda"
    )
    writer = PredictionWriter(Path(args.save_predictions), dataset, args.label_ids) if args.save_predictions else None
    metrics = evaluate(
        model,
        loader,
        dataset.num_classes,
        info.device,
        class_names=dataset.class_names,
        scales=scales,
        flip=flip,
        image_scale=cfg.data.image_scale,
        amp=amp,
        channels_last=cfg.train.channels_last,
        writer=writer,
        progress=info.is_main and not args.no_progress,
    )
    if info.is_main:
        subset = f" (first {cfg.data.max_samples}: data.max_samples)" if cfg.data.max_samples else ""
        title = f"{dataset.name} {split}: {plural(metrics['images'], 'image')}{subset}, scales {scales}"
        title += ", flip" if flip else ""
        print(format_metrics_table(metrics, title=title))
        result = {
            "checkpoint": str(ckpt),
            "dataset": dataset.info.name,
            "split": split,
            "max_samples": cfg.data.max_samples,
            "image_scale": cfg.data.image_scale,
            "world_size": info.world_size,
            **metrics,
        }
        atomic_write_json(out, to_jsonable(result))
        print(f"results written to {out}" + ("" if args.output else " (--output to choose)"))
        if writer is not None:
            print(f"predictions written to {writer.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
