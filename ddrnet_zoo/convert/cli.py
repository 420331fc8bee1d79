"""``ddrnet-convert``: convert DDRNet checkpoints between layouts (auto-detected) and write Hub folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import torch
from safetensors.torch import save_file

from ..errors import InputError, run_cli
from ..hub import CONFIG_NAME, WEIGHTS_NAME, save_pretrained
from ..io import atomic_save
from ..models import DDRNetSegmentation
from ..models.pretrained import build_with_weights
from ..text import plural
from .core import convert_checkpoint, dataset_fields, export_state_dict
from .loading import load_model

DESCRIPTION = """\
Convert a DDRNet checkpoint of any supported layout and write it in another.

Input layouts (detected automatically; variant, classes and heads are read from tensor shapes):
  ours      ddrnet_zoo's own keys (a .safetensors/.pth file, or a Hub folder / Hub id)
  original  the authors' release and forks of its model files: ImageNet .pth (bare state dict),
            Cityscapes .pth ('model.' prefix, loss.criterion.weight, auxiliary head)
  mmseg     MMSegmentation (backbone./decode_head. keys; training checkpoints with 'meta' are fine)

Outputs (--to):
  ours      DST is a folder: model.safetensors + config.json + README.md (segmentation: our config;
            classification: timm's format, loadable with timm.create_model('local-dir:DST', pretrained=True));
            a DST ending in .safetensors/.pth writes the weights file alone
  original  DST is a file (.safetensors or .pth) in the original release's layout
  mmseg     DST is a file in MMSegmentation's layout (segmentation, DDRNet-23/23-slim only)

.pth files are read with torch.load(weights_only=True): no pickled code runs.
"""

EPILOG = """\
examples:
  ddrnet-convert DDRNet23s_imagenet.pth hub/ddrnet23_slim.in1k
  ddrnet-convert best_val_smaller.pth hub/ddrnet23_slim.cityscapes --dataset cityscapes --train-size 1024 1024
  ddrnet-convert ddrnet_23-slim_cityscapes_mmseg.pth hub/ddrnet23_slim.cityscapes --dataset cityscapes
  ddrnet-convert hub/ddrnet23_slim.cityscapes ddrnet23s_original.pth --to original --prefix model.
  ddrnet-convert some_checkpoint.pth --check
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddrnet-convert",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="checkpoint file (.safetensors/.pth/.pt/.bin), Hub folder, or Hub id ORG/NAME")
    p.add_argument("dst", nargs="?", help="output folder (--to ours) or file (--to original/mmseg)")
    p.add_argument("--to", choices=("ours", "original", "mmseg"), default="ours", help="output layout (default ours)")
    p.add_argument(
        "--from",
        dest="layout",
        choices=("auto", "ours", "original", "mmseg"),
        default="auto",
        help="input layout (default: detect)",
    )
    p.add_argument("--model", help="assert the variant (ddrnet23_slim, ddrnet23, ddrnet39); default: infer from shapes")
    p.add_argument("--num-classes", type=int, help="assert the class count; default: infer from shapes")
    p.add_argument(
        "--dataset",
        choices=("cityscapes", "camvid"),
        help="segmentation: record the dataset's class names, palette and ignore index in config.json",
    )
    p.add_argument("--train-size", type=int, nargs=2, metavar=("H", "W"), help="segmentation: training crop")
    p.add_argument(
        "--upsample-logits",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="segmentation: logits at the input size (default) or at 1/8 as the original code",
    )
    p.add_argument(
        "--prefix", default="", help="--to original: key prefix, e.g. 'model.' as the official Cityscapes files"
    )
    p.add_argument("--no-card", action="store_true", help="--to ours: do not write README.md")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--check", action="store_true", help="convert in memory and print the summary; write nothing")
    return p


def _save_state_dict(state_dict, dst: Path) -> None:
    if dst.suffix == ".safetensors":
        tensors = {k: v.contiguous() for k, v in state_dict.items()}
        atomic_save(dst, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    else:
        atomic_save(dst, lambda tmp: torch.save(state_dict, str(tmp)))


_WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def _is_weights_file(dst: Path) -> bool:
    return dst.suffix in _WEIGHTS_SUFFIXES


def _check_destination(dst: Path, layout: str, force: bool) -> None:
    if layout == "ours" and not _is_weights_file(dst):
        if dst.exists() and not dst.is_dir():
            raise FileExistsError(f"{dst} is a file; --to ours writes a folder")
        existing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if (dst / n).exists()]
        if existing and not force:
            raise FileExistsError(f"{dst} already holds {existing}; pass --force to replace them")
        return
    if dst.is_dir():
        raise IsADirectoryError(f"{dst} is a folder; --to {layout} writes one file (.safetensors or .pth)")
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} exists; pass --force to replace it")


def run(args: argparse.Namespace) -> int:
    if args.dst is None and not args.check:
        raise InputError("give DST (output folder or file), or --check to only convert in memory")
    dst = Path(args.dst) if args.dst is not None else None
    if dst is not None and not args.check:
        _check_destination(dst, args.to, args.force)
    src = Path(args.src)
    if src.is_file():
        converted = convert_checkpoint(
            src,
            layout=args.layout,
            model_name=args.model,
            num_classes=args.num_classes,
            dataset=args.dataset,
            upsample_logits=args.upsample_logits is not False,
            train_size=args.train_size,
        )
        print(converted.summary())
        model = build_with_weights(lambda: converted.meta_model, converted.state_dict, str(src))
    else:
        if args.layout not in ("auto", "ours"):
            raise InputError(f"{src}: a Hub folder or id is in our layout, not {args.layout!r}")
        model = load_model(args.src, model_name=args.model, num_classes=args.num_classes)
        if isinstance(model, DDRNetSegmentation):
            model.dataset.update(dataset_fields(model.num_classes, args.dataset, args.train_size, args.src))
            if args.upsample_logits is not None:
                model.upsample_logits = args.upsample_logits
        elif args.dataset:
            raise InputError("--dataset applies to segmentation models")
        print(f"source:        {args.src} (Hub folder, {type(model).__name__}, {model.num_classes} classes)")
    if args.check:
        print("check:         converted in memory; nothing written (--check)")
        return 0
    if args.to == "ours" and not _is_weights_file(dst):
        save_pretrained(model, dst, model_card=not args.no_card)
        written = sorted(p.name for p in dst.iterdir() if p.name in (CONFIG_NAME, WEIGHTS_NAME, "README.md"))
        print(f"written:       {dst}/ ({', '.join(written)})")
        return 0
    state_dict = export_state_dict(model, args.to, prefix=args.prefix)
    _save_state_dict(state_dict, dst)
    print(f"written:       {dst} ({args.to} layout, {plural(len(state_dict), 'tensor')})")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``ddrnet-convert``; returns the exit status (2 on bad input, with a one-line reason)."""
    args = build_parser().parse_args(argv)
    return run_cli("ddrnet-convert", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
