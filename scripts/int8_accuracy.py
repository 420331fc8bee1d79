#!/usr/bin/env python
"""Accuracy of each deployment path on CamVid val: PyTorch fp32, onnxruntime fp32 and onnxruntime INT8.

Exports the model twice with ``ddrnet-export`` (float32 ONNX, and INT8 calibrated on frames of the
*train* split, never val), scores the three with ``ddrnet-eval`` (the same evaluator, the whole val
split at full label resolution) and prints one table with the mIoU drop of each path.

Example::

    python scripts/int8_accuracy.py --checkpoint weights/ddrnet23_slim.camvid --camvid-root ../shared/data/camvid \\
        --json int8_accuracy.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from ddrnet_zoo.benchmark import machine_info
from ddrnet_zoo.errors import InputError, run_cli
from ddrnet_zoo.evaluate import main as eval_main
from ddrnet_zoo.export import main as export_main
from ddrnet_zoo.inference.quantize import CALIBRATION_METHODS, DEFAULT_CALIBRATION_COUNT
from ddrnet_zoo.io import atomic_write_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="model folder (Hub layout) with a CamVid recipe")
    p.add_argument("--camvid-root", required=True, type=Path, help="CamVid in the SegNet layout")
    p.add_argument("--calibration-count", type=int, default=DEFAULT_CALIBRATION_COUNT, help="train frames")
    p.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax", help="default minmax")
    p.add_argument("--split", default="val", help="split to score (default val)")
    p.add_argument("--workdir", type=Path, help="keep the ONNX files and results here (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="write the table here")
    return p


def _call(fn, argv: List[str]) -> str:
    """Run a CLI's main(argv), return its stdout; a non-zero status is an error with its stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = fn(argv)
    if status != 0:
        raise InputError(f"{' '.join(argv[:4])} ... failed: {err.getvalue().strip().splitlines()[-1:]}")
    return out.getvalue()


def run(args: argparse.Namespace) -> int:
    train = args.camvid_root / "train"
    if not train.is_dir():
        raise InputError(f"{train} not found: --camvid-root must hold CamVid in the SegNet layout")
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="int8_accuracy_")))
        fp32, int8 = work / "model.onnx", work / "model.int8.onnx"
        print(f"exporting {args.checkpoint} -> {fp32}", flush=True)
        _call(export_main, ["-m", str(args.checkpoint), "-o", str(fp32)])
        print(f"quantizing, calibrated on {args.calibration_count} frames of {train} -> {int8}", flush=True)
        report = _call(
            export_main,
            ["-m", str(args.checkpoint), "-o", str(int8), "--quantize", "int8", "--calibration", str(train)]
            + ["--calibration-count", str(args.calibration_count), "--no-verify"]
            + ["--calibration-method", args.calibration_method],
        )
        agreement = next((line.strip() for line in report.splitlines() if "INT8 vs float32" in line), "")
        print(f"  {agreement}")
        rows: List[Dict[str, Any]] = []
        for name, source in (("PyTorch fp32", args.checkpoint), ("onnxruntime fp32", fp32), ("onnxruntime INT8", int8)):
            print(f"scoring {name} on {args.split} ...", flush=True)
            result = work / f"eval_{name.replace(' ', '_')}.json"
            _call(
                eval_main,
                ["--checkpoint", str(source), "--split", args.split, "--output", str(result), "--no-progress"]
                + [f"--data.root={args.camvid_root}"],
            )
            metrics = json.loads(result.read_text())
            rows.append({"path": name, "miou": 100 * metrics["miou"], "pixel_acc": 100 * metrics["pixel_acc"]})
            rows[-1]["images"] = metrics["images"]
        base = rows[0]["miou"]
        print(f"\n{args.checkpoint} on CamVid {args.split} ({rows[0]['images']} images), single scale")
        info = machine_info("cpu")
        print(
            f"machine: {info['cpu']} ({info['cpu_count']} CPUs), torch {info['torch']}, "
            f"onnxruntime {info['onnxruntime']}"
        )
        print("| path | mIoU % | vs PyTorch fp32 | pixel acc % |")
        print("|---|---|---|---|")
        for r in rows:
            r["delta"] = r["miou"] - base
            print(f"| {r['path']} | {r['miou']:.2f} | {r['delta']:+.2f} | {r['pixel_acc']:.2f} |")
        if agreement:
            print(f"\n{agreement}")
        if args.json:
            atomic_write_json(
                args.json,
                {
                    "model": str(args.checkpoint),
                    "machine": info,
                    "split": args.split,
                    "calibration": {
                        "folder": str(train),
                        "count": args.calibration_count,
                        "method": args.calibration_method,
                    },
                    "agreement": agreement,
                    "rows": rows,
                },
            )
            print(f"wrote {args.json}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("int8_accuracy", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
