"""``ddrnet-train``: train a DDRNet segmentation model with a recipe config (one process or ``torchrun``).

Examples::

    ddrnet-train --config cityscapes_ddrnet23_slim --data.root /data/cityscapes
    torchrun --nproc_per_node 4 -m ddrnet_zoo.train --config cityscapes_ddrnet23 --set data.root=/data/cityscapes
    ddrnet-train --config camvid_ddrnet23_slim --data.root /data/camvid --resume        # continue runs/<name>/last.pt
    ddrnet-train --config smoke_camvid --data.root /data/camvid --train.device cpu      # minutes on a laptop

Exit status: 0 done; 2 a bad config, file or path (one line saying what); 75 stopped by a signal of
train.stop_signals (SIGTERM, SIGINT, SIGUSR1) after finishing the step, last.pt written: continue with
--resume; 130 Ctrl-C pressed twice (no checkpoint).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .engine import distributed as dist_utils
from .engine.config import ConfigError, format_config, list_configs, load_config, parse_override_args
from .engine.preemption import EXIT_PREEMPTED
from .engine.trainer import train
from .errors import run_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddrnet-train",
        description="Train DDRNet on Cityscapes, CamVid or a custom dataset with the paper's recipes. "
        "Any config field can be overridden: --set optim.lr=0.02 data.root=/x, or --optim.lr 0.02.",
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--config", "-c", help="YAML config file, or a packaged config name (see --list-configs)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CHECKPOINT",
        help="continue a run: a last.pt checkpoint, or no value for <train.output_dir>/last.pt",
    )
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--output-dir", help="same as --set train.output_dir=DIR")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list-configs", action="store_true", help="list the packaged recipe configs and exit")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``ddrnet-train`` and ``python -m ddrnet_zoo.train``; returns the exit status."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.list_configs:
        print("\n".join(list_configs()))
        return 0
    try:
        overrides = list(args.set) + parse_override_args(rest)
        if args.output_dir:
            overrides.append(f"train.output_dir={args.output_dir}")
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        parser.error(str(e))
    if args.print_config:
        print(format_config(cfg), end="")
        return 0
    results: dict = {}

    def run() -> int:
        results.update(train(cfg, resume=args.resume))
        return 0

    try:
        status = run_cli("ddrnet-train", run)
    finally:
        dist_utils.cleanup_distributed()
    if status:
        return status
    main_process = int(os.environ.get("RANK", "0")) == 0
    if results.get("stop_signal"):
        if main_process:
            print(
                f"ddrnet-train: stopped by {results['stop_signal']} after iteration {results['iteration']}; "
                f"{results['checkpoint']} is written: continue with --resume "
                f"(exit status {EXIT_PREEMPTED})",
                file=sys.stderr,
            )
        return EXIT_PREEMPTED
    best = results.get("best") or {}
    if main_process and best.get("miou") is not None:
        print(f"best mIoU {100 * best['miou']:.2f}% at iteration {best['iteration']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
