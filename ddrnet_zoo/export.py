"""``ddrnet-export``: write a DDRNet segmentation model as ONNX (dynamic batch/height/width), a
``torch.export`` program (.pt2) or TorchScript, BatchNorm folded, main output only.

Examples::

    ddrnet-export -m ddrnet-zoo/ddrnet23_slim.cityscapes -o ddrnet23_slim.onnx
    ddrnet-export -m hub/model -o model.onnx --output labels          # argmax inside the graph
    ddrnet-export -m best_val_smaller.pth --dataset cityscapes -o model.onnx --verify 1024x2048 720x960
    ddrnet-export -m hub/model -o model.pt2 --format torch-export
    ddrnet-export --architecture ddrnet23_slim --num-classes 19 --random-init -o slim.onnx   # speed tests only
    ddrnet-export -m hub/model -o model.int8.onnx --quantize int8 --calibration data/camvid/train

The ONNX file is checked in onnxruntime against PyTorch (float32, relative error <= 1e-4) at
360x480, 257x321 and 513x513 unless --no-verify; the model config (classes, palette, mean/std)
is stored in its metadata ("config").

--quantize int8 writes a statically quantized ONNX file (onnxruntime's tools, QDQ: per-channel int8
weights, uint8 activations calibrated on --calibration-count images of --calibration; the classifier
and the final upsampling stay float32) and prints how well it agrees with the float32 export on
images of the calibration folder (argmax pixel agreement, max logit error).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from tqdm import tqdm

from .constants import DEFAULT_MEAN, DEFAULT_STD
from .convert import load_model
from .errors import InputError, run_cli
from .inference.graph_export import (
    DEFAULT_VERIFY_SIZES,
    EXPORT_OUTPUTS,
    ONNX_EXPORTERS,
    export_onnx,
    export_program,
    export_torchscript,
)
from .inference.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_COUNT,
    QUANTIZATION_MODES,
    calibration_images,
    compare_onnx,
    comparison_images,
    quantize_onnx,
)
from .io import atomic_path, check_output_file
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
    q = p.add_argument_group("INT8 quantization (ONNX)")
    q.add_argument("--quantize", choices=QUANTIZATION_MODES, help="static quantization (needs --calibration)")
    q.add_argument("--calibration", metavar="DIR", help="folder of representative images (e.g. training frames)")
    q.add_argument(
        "--calibration-count",
        type=int,
        default=DEFAULT_CALIBRATION_COUNT,
        metavar="N",
        help=f"calibration images, evenly spaced over the folder (default {DEFAULT_CALIBRATION_COUNT})",
    )
    q.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default="minmax",
        help="activation ranges: minmax (default), or percentile / entropy (histograms; hold every activation "
        "of every calibration image in memory)",
    )
    q.add_argument(
        "--compare-count",
        type=int,
        default=8,
        metavar="N",
        help="images of the folder (not used for calibration, when there are enough) to compare INT8 with float32 on",
    )
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
    return load_model(
        args.model,
        model_name=args.model_name,
        num_classes=args.num_classes,
        task="segmentation",
        dataset=args.dataset,
    )


def _calibration(args: argparse.Namespace, fmt: str) -> Optional[List[Path]]:
    """The calibration images of --quantize (checked before any work), or None without --quantize."""
    if args.quantize is None:
        if args.calibration:
            raise InputError("--calibration is used by --quantize int8 only: add --quantize int8 or drop --calibration")
        return None
    if fmt != "onnx":
        raise InputError(
            f"--quantize {args.quantize} writes ONNX, but {args.output_file} is a {fmt} file: name a .onnx file"
        )
    if not args.calibration:
        raise InputError(
            f"--quantize {args.quantize} needs --calibration DIR: a folder of representative images "
            "(e.g. training frames)"
        )
    return calibration_images(args.calibration, args.calibration_count)


def _quantize(args: argparse.Namespace, model, calibration: List[Path]) -> int:
    """Export float32 ONNX to a temporary file, quantize it, compare the two, then write the INT8 file."""
    dataset = getattr(model, "dataset", None) or {}
    mean = dataset.get("mean") or DEFAULT_MEAN
    std = dataset.get("std") or DEFAULT_STD
    compare = comparison_images(args.calibration, calibration, args.compare_count)
    size = tuple(args.example_size) if args.static else None  # a fixed-size graph takes resized images
    with tempfile.TemporaryDirectory(prefix="ddrnet_export_") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        result = _export_onnx(args, model, fp32)
        bar = tqdm(total=len(calibration), desc="calibrate", unit="img")
        with bar:
            quantized = quantize_onnx(
                fp32,
                Path(tmp) / "int8.onnx",
                calibration,
                mean,
                std,
                method=args.calibration_method,
                size=size,
                progress=lambda _: bar.update(1),
            )
        agreement = compare_onnx(fp32, quantized.path, compare, mean, std, size=size) if compare else None
        with atomic_path(args.output_file) as target:
            shutil.copyfile(quantized.path, target)
    details = quantized.details
    print(
        f"wrote {args.output_file} (onnx INT8, {details['format']}: {details['weights']} weights, "
        f"{details['activations']} activations; {result.exporter} exporter, opset {result.opset})"
    )
    print(
        f"  calibrated on {plural(len(calibration), 'image')} of {args.calibration} ({quantized.method}, "
        f"{quantized.seconds:.1f} s); kept in float32: {', '.join(details['float_nodes'])}"
    )
    _print_float_checks(args, model, result)
    if agreement is not None:
        held_out = "held-out " if not set(compare) & set(calibration) else "calibration "
        print(f"  INT8 vs float32 on {plural(len(compare), held_out + 'image')}: {agreement.summary()}")
    return 0


def _export_onnx(args: argparse.Namespace, model, path: Path):
    return export_onnx(
        model,
        path,
        opset=args.opset,
        exporter=args.exporter,
        fold=not args.no_fold,
        output=args.output,
        example_size=args.example_size,
        dynamic=not args.static,
        verify_sizes=None if args.no_verify else args.verify,
    )


def _print_float_checks(args: argparse.Namespace, model, result) -> None:
    if result.fallback_reason:
        print(f"  the dynamo exporter failed ({result.fallback_reason}); used the TorchScript exporter")
    if not args.no_fold:
        remaining = plural(len(result.remaining_batchnorms), "pre-activation BN remains", "pre-activation BNs remain")
        print(f"  BatchNorm folded; {remaining} (cannot fold exactly)")
    dims = "batch 1, fixed size" if args.static else "dynamic batch, height, width (>= 64)"
    chans = getattr(model, "in_chans", 3)
    print(f"  input 'images' (N, {chans}, H, W) float32, normalised; {dims}; output {args.output!r}")
    for size, err in result.errors.items():
        what = "pixels differing" if args.output == "labels" else "max relative error"
        print(f"  {'float32 ' if args.quantize else ''}onnxruntime vs PyTorch at {size}: {what} {err:.2e}")


def run(args: argparse.Namespace) -> int:
    check_output_file(args.output_file, "export file")
    fmt = _format_of(args)
    calibration = _calibration(args, fmt)
    model = _load(args)
    if calibration is not None:
        return _quantize(args, model, calibration)
    fold = not args.no_fold
    if fmt == "onnx":
        result = _export_onnx(args, model, args.output_file)
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
    _print_float_checks(args, model, result)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``ddrnet-export`` / ``python -m ddrnet_zoo.export``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_cli("ddrnet-export", lambda: run(args), (ImportError,))  # a missing optional exporter


if __name__ == "__main__":
    sys.exit(main())
