"""``ddrnet-export``: write a DDRNet segmentation model as ONNX (dynamic batch/height/width), a
``torch.export`` program (.pt2) or TorchScript, BatchNorm folded, main output only.

Examples::

    ddrnet-export -m ddrnet-zoo/ddrnet23_slim.cityscapes -o ddrnet23_slim.onnx
    ddrnet-export -m hub/model -o model.onnx --output labels          # argmax inside the graph
    ddrnet-export -m best_val_smaller.pth --dataset cityscapes -o model.onnx --verify 1024x2048 720x960
    ddrnet-export -m hub/model -o model.pt2 --format torch-export
    ddrnet-export --architecture ddrnet23_slim --num-classes 19 --random-init -o slim.onnx   # speed tests only

The ONNX file is checked in onnxruntime against PyTorch (float32, relative error <= 1e-4) at
360x480, 257x321 and 513x513 unless --no-verify; the model config (classes, palette, mean/std)
is stored in its metadata ("config").
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Tuple

from .errors import InputError, run_cli
from .inference.graph_export import (
    DEFAULT_VERIFY_SIZES,
    EXPORT_OUTPUTS,
    ONNX_EXPORTERS,
    export_onnx,
    export_program,
    export_torchscript,
)
from .inference.predict import load_segmentation_model
from .io import check_output_file
from .models import create_segmentation_model
from .text import plural

__all__ = ["build_parser", "main"]

FORMATS = ("onnx", "torch-export", "torchscript")


def _size(text: str) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are HxW, e.g. 360x480; got {text!r}") from None
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddrnet-export",
        description="Export a DDRNet segmentation model for deployment.",
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    src = p.add_argument_group("model")
    src.add_argument("-m", "--model", help="Hub id ORG/NAME, Hub folder or checkpoint file")
    src.add_argument("--model-name", "--architecture", dest="model_name", help="variant (assert, or for --random-init)")
    src.add_argument("--num-classes", type=int, help="assert the class count (or set it for --random-init)")
    src.add_argument("--dataset", choices=("cityscapes", "camvid"), help="class names/palette for bare checkpoints")
    src.add_argument("--random-init", action="store_true", help="export an untrained model (speed tests only)")
    p.add_argument("-o", "--output-file", required=True, help="file to write (.onnx, .pt2, .ts)")
    p.add_argument("--format", choices=FORMATS, help="default: from the file extension (.pt2, .ts/.pt), else onnx")
    p.add_argument("--exporter", choices=ONNX_EXPORTERS, default="auto", help="ONNX exporter (auto: dynamo first)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--output", choices=EXPORT_OUTPUTS, default="logits", help="graph output (default logits)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers unfolded")
    p.add_argument("--static", action="store_true", help="fix batch and size to --example-size (batch 1)")
    p.add_argument("--example-size", type=_size, default=(512, 512), help="tracing example HxW (default 512x512)")
    p.add_argument(
        "--verify",
        type=_size,
        nargs="+",
        default=list(DEFAULT_VERIFY_SIZES),
        help="ONNX: sizes HxW to check in onnxruntime (default 360x480 257x321 513x513)",
    )
    p.add_argument("--no-verify", action="store_true", help="ONNX: skip the onnxruntime check")
    return p


def _format_of(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    name = args.output_file.lower()
    if name.endswith(".pt2"):
        return "torch-export"
    if name.endswith((".ts", ".pt", ".torchscript")):
        return "torchscript"
    return "onnx"


def _load(args: argparse.Namespace):
    if args.random_init:
        if args.model:
            raise InputError("--random-init builds an untrained model; do not pass --model with it")
        if not args.model_name or not args.num_classes:
            raise InputError("--random-init needs --architecture and --num-classes")
        return create_segmentation_model(args.model_name, num_classes=args.num_classes).eval()
    if not args.model:
        raise InputError("pass --model (Hub id, Hub folder or checkpoint), or --random-init with --architecture")
    return load_segmentation_model(
        args.model, model_name=args.model_name, num_classes=args.num_classes, dataset=args.dataset
    )


def run(args: argparse.Namespace) -> int:
    check_output_file(args.output_file, "export file")
    model = _load(args)
    fmt = _format_of(args)
    fold = not args.no_fold
    if fmt == "onnx":
        result = export_onnx(
            model,
            args.output_file,
            opset=args.opset,
            exporter=args.exporter,
            fold=fold,
            output=args.output,
            example_size=args.example_size,
            dynamic=not args.static,
            verify_sizes=None if args.no_verify else args.verify,
        )
    elif fmt == "torch-export":
        result = export_program(
            model,
            args.output_file,
            fold=fold,
            output=args.output,
            example_size=args.example_size,
            dynamic=not args.static,
        )
    else:
        result = export_torchscript(
            model, args.output_file, fold=fold, output=args.output, example_size=args.example_size
        )
    how = f"{result.exporter} exporter, opset {result.opset}" if fmt == "onnx" else result.exporter
    print(f"wrote {result.path} ({fmt}, {how}, {result.seconds:.1f} s)")
    if result.fallback_reason:
        print(f"  the dynamo exporter failed ({result.fallback_reason}); used the TorchScript exporter")
    if fold:
        remaining = plural(len(result.remaining_batchnorms), "pre-activation BN remains", "pre-activation BNs remain")
        print(f"  BatchNorm folded; {remaining} (cannot fold exactly)")
    dims = "batch 1, fixed size" if args.static else "dynamic batch, height, width (>= 64)"
    chans = getattr(model, "in_chans", 3)
    print(f"  input 'images' (N, {chans}, H, W) float32, normalised; {dims}; output {args.output!r}")
    for size, err in result.errors.items():
        what = "pixels differing" if args.output == "labels" else "max relative error"
        print(f"  onnxruntime vs PyTorch at {size}: {what} {err:.2e}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``ddrnet-export`` / ``python -m ddrnet_zoo.export``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_cli("ddrnet-export", lambda: run(args), (ImportError,))  # a missing optional exporter


if __name__ == "__main__":
    sys.exit(main())
