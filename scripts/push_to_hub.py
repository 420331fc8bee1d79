#!/usr/bin/env python
"""Build the Hugging Face Hub folder for a DDRNet checkpoint and upload it.

The checkpoint may be in any supported layout (ours, the original release, MMSegmentation; see
``ddrnet-convert --help``): it is converted strictly, then written as ``model.safetensors`` +
``config.json`` + a generated model card ``README.md`` (measured parameter counts, optional
GFLOPs and evaluation results, usage, license, citation), and uploaded with huggingface_hub
(``create_repo`` + ``upload_folder``). ``--dry-run`` writes the folder only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from ddrnet_zoo import load_model
from ddrnet_zoo.convert.core import convert_checkpoint, dataset_fields
from ddrnet_zoo.errors import run_cli
from ddrnet_zoo.hub import (
    CONFIG_NAME,
    HUB_FOLDER_FILES,
    MODEL_CARD_NAME,
    WEIGHTS_NAME,
    save_pretrained,
    upload_folder_to_hub,
)
from ddrnet_zoo.io import atomic_directory
from ddrnet_zoo.models import DDRNetSegmentation
from ddrnet_zoo.models.pretrained import build_with_weights

FOLDER_FILES = (CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME)  # a complete Hub folder, as save_pretrained writes it

EPILOG = """\
examples:
  # the ImageNet weights of the original release, as the default timm weights of ddrnet23_slim
  python scripts/push_to_hub.py DDRNet23s_imagenet.pth --repo-id ddrnet-zoo/ddrnet23_slim.in1k --dry-run --out hub/
  # a Cityscapes model (original .pth with 'model.' prefix), with measured results for the card
  python scripts/push_to_hub.py best_val_smaller.pth --repo-id ddrnet-zoo/ddrnet23_slim.cityscapes \\
      --dataset cityscapes --train-size 1024 1024 --results results.json --flops 1024 2048
  # upload a folder written earlier (as written: nothing to change, so its weights and card are kept)
  python scripts/push_to_hub.py hub/ddrnet23_slim.cityscapes --repo-id ddrnet-zoo/ddrnet23_slim.cityscapes

results.json: a list of {"metric": "mIoU", "value": 77.8, "dataset": "cityscapes", "split": "val",
"command": "ddrnet-eval ...", "notes": "single scale"} (or {"results": [...]}), as measured by you.
Uploading needs a token with write access: `hf auth login` or HF_TOKEN.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="push_to_hub.py",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="checkpoint file of any supported layout, or a Hub folder written before")
    p.add_argument("--repo-id", required=True, help="Hub repository ORG/NAME (used in the model card, and uploaded to)")
    p.add_argument("--dry-run", action="store_true", help="write the Hub folder only; upload nothing")
    p.add_argument("--out", help="where to write the Hub folder (default: hub/<NAME> with --dry-run, else a temp dir)")
    p.add_argument("--model", help="assert the variant (ddrnet23_slim, ddrnet23, ddrnet39); default: from shapes")
    p.add_argument("--num-classes", type=int, help="assert the class count")
    p.add_argument("--dataset", choices=("cityscapes", "camvid"), help="segmentation: class names and palette")
    p.add_argument("--train-size", type=int, nargs=2, metavar=("H", "W"), help="segmentation: training crop")
    p.add_argument("--results", help="JSON file of measured results for the model card (see below)")
    p.add_argument("--flops", type=int, nargs=2, metavar=("H", "W"), help="measure fvcore GFLOPs at HxW for the card")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--revision", help="branch to upload to (default: main)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--commit-message", default="Upload DDRNet weights (ddrnet_zoo)")
    p.add_argument("--token", help="Hub token (default: the logged-in one / HF_TOKEN)")
    p.add_argument("--force", action="store_true", help="replace files in an existing --out folder")
    return p


def _load_results(path: Optional[str]) -> Optional[List[Dict[str, Any]]]:
    if path is None:
        return None
    obj = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(obj, dict):
        obj = obj.get("results", [obj])
    if not isinstance(obj, list):
        raise ValueError(f"{path}: expected a list of results or {{'results': [...]}}")
    return obj


def _upload_as_is(args: argparse.Namespace, src: Path) -> bool:
    """A complete Hub folder with nothing to change is published as written (its weights' dtype and card kept)."""
    overrides = (args.model, args.num_classes, args.dataset, args.train_size, args.results, args.flops)
    return src.is_dir() and all((src / n).is_file() for n in FOLDER_FILES) and all(o is None for o in overrides)


def build_folder(args: argparse.Namespace, out: Path) -> Path:
    """Convert ``args.src`` and write the Hub folder to ``out``."""
    existing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if (out / n).exists()]
    if existing and not args.force:
        raise FileExistsError(f"{out} already holds {existing}; pass --force to replace them")
    results = _load_results(args.results)
    src = Path(args.src)
    if _upload_as_is(args, src):
        model = load_model(src)  # checks that the folder loads strictly before it is published
        with atomic_directory(out, replaced=HUB_FOLDER_FILES) as tmp:
            for name in FOLDER_FILES:
                shutil.copyfile(src / name, tmp / name)
        print(f"hub folder:    {out}/ (as written: {', '.join(FOLDER_FILES)}; loads as {type(model).__name__})")
        return out
    if src.is_file():
        converted = convert_checkpoint(
            src,
            model_name=args.model,
            num_classes=args.num_classes,
            dataset=args.dataset,
            train_size=args.train_size,
        )
        print(converted.summary())
        model = build_with_weights(lambda: converted.meta_model, converted.state_dict, str(src))
    else:
        model = load_model(src, model_name=args.model, num_classes=args.num_classes)
        if isinstance(model, DDRNetSegmentation):
            model.dataset.update(dataset_fields(model.num_classes, args.dataset, args.train_size, str(src)))
    if isinstance(model, DDRNetSegmentation) and results is not None:
        model.metadata["results"] = results
    flops = tuple(args.flops) if args.flops else None
    save_pretrained(model, out, repo_id=args.repo_id, results=results, flops_input_size=flops)
    print(f"hub folder:    {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return out


def run(args: argparse.Namespace) -> int:
    """Write the folder and upload it (unless ``--dry-run``); returns the exit status."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.out:
            out = Path(args.out)
        elif args.dry_run:
            out = Path("hub") / args.repo_id.split("/")[-1]
        else:
            out = Path(tmp) / "hub"
        build_folder(args, out)
        if args.dry_run:
            print("dry run:       nothing uploaded")
            return 0
        commit = upload_folder_to_hub(
            out,
            args.repo_id,
            commit_message=args.commit_message,
            private=args.private or None,
            token=args.token,
            revision=args.revision,
            create_pr=args.create_pr,
        )
        print(f"uploaded:      {getattr(commit, 'commit_url', commit)}")
        return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (2 with a one-line reason on bad input)."""
    args = build_parser().parse_args(argv)
    return run_cli("push_to_hub.py", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
