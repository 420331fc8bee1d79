"""``ddrnet-predict``: segment images, folders and glob patterns; write label PNGs, colour masks and overlays.

Examples::

    ddrnet-predict -m ddrnet-zoo/ddrnet23_slim.cityscapes frames/ -o out/
    ddrnet-predict -m hub/ddrnet23_slim.camvid "data/**/*.png" -o out/ --save label color
    ddrnet-predict -m best_val_smaller.pth --dataset cityscapes img.jpg -o out/ --multi-scale --flip
    ddrnet-predict -m hub/model frames/ -o out/ --device cuda --precision fp16 --batch-size 8
    python -m ddrnet_zoo.predict -m hub/model frames/ -o out/ --compile default --size 1024 2048
    ddrnet-predict -m model.int8.onnx frames/ -o out/                 # an ONNX export (fp32 or INT8), onnxruntime
    ddrnet-predict -m hub/model drive.mp4 -o out/ --save overlay label  # out/overlay/drive.mp4, out/labels/drive/

Outputs: OUT/labels/<name>.png (class indices, a palette PNG shown in colour by viewers),
OUT/color/<name>.png (RGB colour mask), OUT/overlay/<name>.jpg (image blended with the mask);
<name> is the image's path relative to the folder (or the glob's fixed prefix) given.
Videos (PyAV: pip install 'ddrnet_zoo[video]'): OUT/overlay/<stem>.mp4 at the input's frame rate
(the default), OUT/color/<stem>.mp4, OUT/labels/<stem>/000000.png ... (--save).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .convert import load_model
from .device import PRECISIONS, resolve_device
from .errors import InputError, run_cli
from .hub.card import is_smoke_test
from .inference.files import OUTPUT_KINDS, VIDEO_OUTPUTS
from .inference.onnx_model import is_onnx_file, load_onnx_model
from .inference.predict import Predictor
from .inference.runtime import COMPILE_MODES
from .inference.tta import PAPER_SCALES
from .inference.video import VIDEO_EXTENSIONS, VideoError, VideoInfo, probe_video, split_videos
from .io import check_output_dir
from .text import plural

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddrnet-predict",
        description="Segment images with a DDRNet model.",
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        help=f"images, folders (searched recursively), glob patterns, or video files ({' '.join(VIDEO_EXTENSIONS)})",
    )
    p.add_argument(
        "-m",
        "--model",
        required=True,
        help="Hub id ORG/NAME, Hub folder (config.json + model.safetensors), checkpoint, or .onnx file (onnxruntime)",
    )
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--model-name", help="assert the variant (ddrnet23_slim, ddrnet23, ddrnet39)")
    p.add_argument("--num-classes", type=int, help="assert the class count")
    p.add_argument("--dataset", choices=("cityscapes", "camvid"), help="class names/palette for bare checkpoints")
    p.add_argument(
        "--palette",
        help="cityscapes, camvid, config, or a JSON file of [R, G, B] colours (default: the model config's)",
    )
    p.add_argument(
        "--save",
        nargs="+",
        choices=OUTPUT_KINDS,
        help="outputs to write (default: all three for images; the overlay video for videos)",
    )
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the mask (default 0.5)")
    p.add_argument("--label-ids", action="store_true", help="Cityscapes: write labelIds instead of train IDs")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass (same-size images)")
    p.add_argument("--workers", type=int, default=2, help="image-reading processes (0: read in the main process)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp16/bf16 use autocast (default fp32)")
    p.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    p.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile mode (worth it for many images)")
    p.add_argument("--no-fold", action="store_true", help="do not fold BatchNorm into the convolutions")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="test scales (default 1.0)")
    p.add_argument("--multi-scale", action="store_true", help=f"the paper's scales {PAPER_SCALES}")
    p.add_argument("--flip", action="store_true", help="add horizontally flipped views")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="predict at H x W, resize back")
    p.add_argument("--keep-going", action="store_true", help="report unreadable images at the end instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _load_onnx(args: argparse.Namespace, device):
    """The ONNX file of ``-m`` in onnxruntime; the PyTorch-only options are refused, not ignored."""
    torch_only = [
        flag
        for flag, given in (
            (f"--compile {args.compile}", args.compile),
            (f"--precision {args.precision}", args.precision != "fp32"),
            ("--no-fold", args.no_fold),
            ("--no-channels-last", args.no_channels_last),
        )
        if given
    ]
    if torch_only:
        raise InputError(
            f"{' and '.join(torch_only)}: PyTorch-only, not for the ONNX file {args.model}; leave them out\n"
            "  onnxruntime runs the file as exported; for speed, export an INT8 file (ddrnet-export --quantize int8)"
        )
    model = load_onnx_model(args.model, device=device)
    if args.num_classes is not None and args.num_classes != model.num_classes:
        raise InputError(f"{args.model} predicts {model.num_classes} classes, not --num-classes {args.num_classes}")
    arch = (model.config or {}).get("architecture")
    if args.model_name and arch and args.model_name != arch:
        raise InputError(f"{args.model} is a {arch}, not --model-name {args.model_name}")
    if args.dataset and args.palette is None and model.config is None:
        args.palette = args.dataset
    return model


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.output)
    device = resolve_device(args.device)
    if is_onnx_file(args.model):
        model = _load_onnx(args, device)
    else:
        model = load_model(
            args.model,
            model_name=args.model_name,
            num_classes=args.num_classes,
            task="segmentation",
            dataset=args.dataset,
        )
    if is_smoke_test(getattr(model, "config", None)):
        print(
            f"ddrnet-predict: warning: {args.model} is a smoke test, not a trained model (its card says so): "
            "its predictions are noise",
            file=sys.stderr,
        )
    predictor = Predictor(
        model,
        device=device,
        precision=args.precision,
        channels_last=not args.no_channels_last,
        compile=args.compile,
        fold=not args.no_fold,
        scales=PAPER_SCALES if args.multi_scale else args.scales,
        flip=args.flip,
        size=tuple(args.size) if args.size else None,
        palette=args.palette,
    )
    images, videos = split_videos(args.inputs)
    infos = _probe_videos(videos, args.keep_going)  # every video checked before any work
    failures = [(path, reason) for path, reason in infos if isinstance(reason, str)]
    status = 0
    if images:
        summary = predictor.predict_files(
            images,
            args.output,
            save=args.save or OUTPUT_KINDS,
            batch_size=args.batch_size,
            num_workers=args.workers,
            alpha=args.alpha,
            label_ids=args.label_ids,
            keep_going=args.keep_going,
            progress=not args.no_progress,
        )
        written = ", ".join(plural(n, f"{kind} image") for kind, n in summary.written.items())
        rate = summary.num_images / summary.seconds if summary.seconds > 0 else 0.0
        print(
            f"predicted {plural(summary.num_images, 'image')} in {summary.seconds:.1f} s ({rate:.2f} img/s, {device}, "
            f"{predictor.engine.options.describe()}); wrote {written} under {summary.output_dir}"
        )
        for _, reason in summary.failures:
            print(f"ddrnet-predict: skipped {reason}", file=sys.stderr)
        if summary.failures:
            print(f"ddrnet-predict: {plural(len(summary.failures), 'image')} could not be read", file=sys.stderr)
            status = 1
    for path, info in infos:
        if isinstance(info, str):
            continue
        result = predictor.predict_video(
            path,
            args.output,
            save=args.save or VIDEO_OUTPUTS,
            batch_size=args.batch_size,
            alpha=args.alpha,
            label_ids=args.label_ids,
            progress=not args.no_progress,
        )
        written = ", ".join(
            f"{kind} frames in {where}/" if kind == "label" else f"{kind} video {where}"
            for kind, where in result.written.items()
        )
        print(
            f"predicted video {path}: {plural(result.frames, 'frame')} in {result.seconds:.1f} s "
            f"({result.fps:.2f} frames/s at {float(info.rate):.4g} frames/s input, {device}, "
            f"{predictor.engine.options.describe()}); wrote {written}"
        )
    for _, reason in failures:
        print(f"ddrnet-predict: skipped {reason}", file=sys.stderr)
    if failures:
        print(f"ddrnet-predict: {plural(len(failures), 'video')} could not be read", file=sys.stderr)
        status = 1
    return status


def _probe_videos(videos: List[Path], keep_going: bool) -> List[Tuple[Path, Union[VideoInfo, str]]]:
    """Open every video (PyAV) before any work: ``(path, info)``, or ``(path, reason)`` with --keep-going."""
    found: List[Tuple[Path, Union[VideoInfo, str]]] = []
    stems: Dict[str, Path] = {}
    for path in videos:
        if path.stem in stems:
            raise InputError(
                f"{stems[path.stem]} and {path} would both be written as {path.stem!r}; predict them into "
                "different output folders"
            )
        stems[path.stem] = path
        try:
            found.append((path, probe_video(path)))
        except VideoError as e:
            if not keep_going:
                raise
            found.append((path, str(e)))
    return found


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``ddrnet-predict`` / ``python -m ddrnet_zoo.predict``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_cli("ddrnet-predict", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
