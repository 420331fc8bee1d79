#!/usr/bin/env python
"""Turn a finished CamVid training run into the repository's shipped model and its docs figures.

Reads ``RUN/final`` (or ``--source``), scores it on the val split in fp32 and with its weights
rounded to fp16, and writes:

- ``--output`` (default ``weights/ddrnet23_slim.camvid``): a Hub-layout folder (``model.safetensors``
  in fp16 when val mIoU moves by at most ``--fp16-tolerance`` points, else fp32; ``config.json`` with
  class names, palette, mean and std; ``README.md``, the model card with the measured figures, the
  command that trained it, the training minutes and what the model is);
- ``--docs`` (default ``docs/assets/camvid_cpu``): ``learning_curve.png`` (training loss and val mIoU
  over training minutes), ``metrics.json`` (val figures, per-class IoU, run statistics).

    python scripts/ship_camvid_model.py runs/camvid_cpu --data-root ../shared/data/camvid
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import matplotlib.pyplot as plt
import torch
from safetensors.torch import load_file, save_file

import ddrnet_zoo
from ddrnet_zoo.engine import load_config
from ddrnet_zoo.engine.builders import build_eval_dataset
from ddrnet_zoo.engine.evaluator import build_eval_loader, evaluate
from ddrnet_zoo.errors import InputError, run_cli
from ddrnet_zoo.hub.save import save_pretrained
from ddrnet_zoo.io import atomic_directory, atomic_path, atomic_write_json
from ddrnet_zoo.metrics import format_metrics_table

WEIGHTS = "model.safetensors"


def read_rows(path: Path) -> List[Dict[str, str]]:
    if not path.is_file():
        raise InputError(f"{path} not found: is this a ddrnet-train output folder?")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def score(model: torch.nn.Module, cfg, progress: bool = True) -> Dict[str, Any]:
    ds = build_eval_dataset(cfg)
    loader = build_eval_loader(ds, cfg.eval.batch_size, 0)
    return evaluate(
        model,
        loader,
        ds.num_classes,
        torch.device("cpu"),
        class_names=ds.info.class_names,
        image_scale=cfg.data.image_scale,
        progress=progress,
    )


def learning_curve(train_rows, eval_rows, path: Path, title: str) -> None:
    """Loss (left axis) and val mIoU (right axis) over training minutes (evaluations excluded)."""
    minutes, total = [], 0.0
    for r in train_rows:
        total += float(r["time_s"])
        minutes.append(total / 60)
    at_iter = {int(r["iteration"]): m for r, m in zip(train_rows, minutes)}
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(minutes, [float(r["loss"]) for r in train_rows], color="tab:blue", lw=0.8, label="training loss")
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("loss (OHEM main + 0.4 aux)", color="tab:blue")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    xs = [at_iter.get(int(r["iteration"]), minutes[-1]) for r in eval_rows]
    ax2.plot(xs, [100 * float(r["miou"]) for r in eval_rows], "o-", color="tab:red", label="val mIoU")
    ax2.set_ylabel("val mIoU %", color="tab:red")
    ax2.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    source = Path(args.source) if args.source else run_dir / "final"
    cfg = load_config(str(run_dir / "config.yaml"), [f"data.root={args.data_root}", "eval.batch_size=2"])
    train_rows = read_rows(run_dir / "train_log.csv")
    eval_rows = read_rows(run_dir / "eval_log.csv")
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)

    model = ddrnet_zoo.load_model(source)
    fp32 = score(model, cfg)
    print(format_metrics_table(fp32, title="val, fp32 weights"))
    half = ddrnet_zoo.load_model(source)
    half.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in half.state_dict().items()})
    fp16 = score(half, cfg)
    delta = 100 * (fp16["miou"] - fp32["miou"])
    use_fp16 = abs(delta) <= args.fp16_tolerance
    print(
        f"fp16 weights: val mIoU {100 * fp16['miou']:.2f} ({delta:+.3f} points): "
        f"shipping {'fp16' if use_fp16 else 'fp32'}"
    )

    iters = int((model.metadata.get("training") or {}).get("iteration", state["iteration"]))
    batch = cfg.data.batch_size
    train_minutes = sum(float(r["time_s"]) for r in train_rows) / 60
    run_minutes = float(state.get("seconds_spent") or 0.0) / 60
    passes = iters * batch / 367
    per_class = {n: round(100 * c["iou"], 2) for n, c in fp32["per_class"].items()}
    miou = round(100 * fp32["miou"], 2)
    commands = args.command or [
        f"ddrnet-train --config {cfg.name} --data.root CAMVID  "
        f"# SegNet-layout CamVid; train.time_budget_minutes={cfg.train.time_budget_minutes:g}"
    ]
    table = ["| Class | IoU % |", "|---|---|"] + [f"| {n} | {v:.1f} |" for n, v in per_class.items()]
    about = "\n".join(
        [
            "**A demonstration model**: DDRNet-23-slim trained from scratch (no ImageNet pre-training) on the 367",
            "CamVid train frames at 480x360 on 2 CPU cores, in "
            f"{run_minutes:.0f} minutes ({iters:,} iterations of {batch} crops of "
            f"{cfg.data.crop_size[0]}x{cfg.data.crop_size[1]}, {passes:.0f} passes over the frames).",
            f"It scores **{miou:.1f}% mIoU on the 101 CamVid val frames** (11 classes, single scale, 480x360).",
            "The paper's 74.4% (CamVid test) used ImageNet pre-training, 960x720 crops, 968 epochs on a GPU:",
            "this model shows the pipeline end to end; it is not the paper's accuracy.",
            "",
            "Trained with:",
            "",
            "```bash",
            *commands,
            "```",
            "",
            f"Per-class IoU on val (fp32 weights; shipped as {'fp16' if use_fp16 else 'fp32'}, val mIoU "
            f"{100 * (fp16 if use_fp16 else fp32)['miou']:.2f}):",
            "",
            *table,
        ]
    )
    results = [
        {
            "metric": "mIoU",
            "value": round(100 * (fp16 if use_fp16 else fp32)["miou"], 2),
            "dataset": "camvid",
            "split": "val",
            "images": fp32["images"],
            "command": f"ddrnet-eval --checkpoint {args.output} --split val --set data.root=CAMVID",
            "notes": "single scale, 480x360; trained on the train split only, from scratch, on a CPU",
        }
    ]
    model.metadata.update(about=about, results=results)
    with tempfile.TemporaryDirectory() as tmp:
        staged = save_pretrained(model, Path(tmp) / "model", results=results)
        if use_fp16:
            tensors = load_file(staged / WEIGHTS)
            save_file(
                {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()},
                staged / WEIGHTS,
                metadata={"format": "pt"},
            )
        with atomic_directory(args.output, replaced=[p.name for p in staged.iterdir()]) as out:
            for p in staged.iterdir():
                (out / p.name).write_bytes(p.read_bytes())
    check = ddrnet_zoo.load_model(args.output)
    print(
        f"wrote {args.output}: {sum((Path(args.output) / p).stat().st_size for p in (WEIGHTS,)) / 2**20:.1f} MiB "
        f"weights; reloads as {type(check).__name__} ({check.num_classes} classes)"
    )

    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    learning_curve(
        train_rows,
        eval_rows,
        docs / "learning_curve.png",
        f"DDRNet-23-slim on CamVid from scratch, 2 CPU cores: final val mIoU {miou:.1f}%",
    )
    imgs = [float(r["images_per_s"]) for r in train_rows]
    atomic_write_json(
        docs / "metrics.json",
        {
            "val_miou_fp32": miou,
            "val_miou_fp16_weights": round(100 * fp16["miou"], 2),
            "shipped_dtype": "float16" if use_fp16 else "float32",
            "val_pixel_acc": round(100 * fp32["pixel_acc"], 2),
            "per_class_iou": per_class,
            "iterations": iters,
            "batch_size": batch,
            "crop_size": list(cfg.data.crop_size),
            "passes_over_train": round(passes, 1),
            "training_minutes_excluding_evaluation": round(train_minutes, 1),
            "run_minutes": round(run_minutes, 1),
            "commands": commands,
            "median_images_per_s": round(sorted(imgs)[len(imgs) // 2], 2),
            "eval_curve": [
                {"iteration": int(r["iteration"]), "miou": round(100 * float(r["miou"]), 2)} for r in eval_rows
            ],
        },
    )
    print(f"wrote {docs / 'learning_curve.png'} and {docs / 'metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("run", help="a ddrnet-train output folder (config.yaml, last.pt, train_log.csv, final/)")
    p.add_argument("--data-root", required=True, help="CamVid (SegNet layout) for the val scores")
    p.add_argument("--source", help="the model folder to ship (default RUN/final)")
    p.add_argument("--output", default="weights/ddrnet23_slim.camvid")
    p.add_argument("--docs", default="docs/assets/camvid_cpu")
    p.add_argument(
        "--command",
        action="append",
        help="a command line that trained the run, for the card (repeat for a run resumed in several sittings; "
        "default: the run's config as one command)",
    )
    p.add_argument("--fp16-tolerance", type=float, default=0.1, help="mIoU points fp16 weights may lose (0.1)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("ship_camvid_model", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
