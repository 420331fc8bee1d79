#!/usr/bin/env python
"""Segment road frames with the CamVid model shipped in this repository, on the CPU, offline.

The README's first command. Loads ``weights/ddrnet23_slim.camvid`` (DDRNet-23-slim trained from
scratch on the 367 CamVid train frames on 2 CPU cores, see docs/camvid_cpu.md), segments the
frames under ``examples/camvid/frames`` (val frames it never trained on), writes overlays, colour
masks and label PNGs, and prints per frame how long the model took, the classes it sees most and,
where a label of the same name lies in ``examples/camvid/labels``, the share of pixels it got right.

    python scripts/segment_camvid.py
    python scripts/segment_camvid.py my_frames/ -o outputs/mine --model weights/ddrnet23_slim.camvid
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

import ddrnet_zoo
from ddrnet_zoo.constants import IGNORE_INDEX
from ddrnet_zoo.data.images import read_image, read_label
from ddrnet_zoo.errors import run_cli
from ddrnet_zoo.inference import Predictor
from ddrnet_zoo.inference.files import find_images, output_path
from ddrnet_zoo.inference.writer import write_outputs
from ddrnet_zoo.io import check_output_dir

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "weights" / "ddrnet23_slim.camvid"
DEFAULT_FRAMES = REPO / "examples" / "camvid" / "frames"
DEFAULT_LABELS = REPO / "examples" / "camvid" / "labels"
CAMVID_VOID = 11  # the SegNet copy's void label


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("inputs", nargs="*", default=[str(DEFAULT_FRAMES)], help="images or folders (default: the bundled)")
    p.add_argument("-o", "--output", default="outputs/camvid_demo", help="output folder (default outputs/camvid_demo)")
    p.add_argument(
        "-m", "--model", dest="source", default=str(DEFAULT_MODEL), help="model folder or Hub id (default: the shipped)"
    )
    p.add_argument("--labels", default=str(DEFAULT_LABELS), help="folder of CamVid labels named as the frames")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


def run(args: argparse.Namespace) -> int:
    out = check_output_dir(args.output)
    if args.threads:
        torch.set_num_threads(args.threads)
    sources = find_images(args.inputs)
    model = ddrnet_zoo.load_model(args.source)
    predictor = Predictor(model, device="cpu")
    names = predictor.class_names or [str(i) for i in range(predictor.num_classes)]
    print(f"model {args.source}: {model.architecture}, {len(names)} classes ({model.dataset['name']})")
    predictor.predict(np.zeros((360, 480, 3), np.uint8))  # warm-up: the first call sets up oneDNN's kernels
    times: List[float] = []
    for source in sources:
        image = read_image(source.path)
        tic = time.perf_counter()
        labels = predictor.predict(image)
        times.append(time.perf_counter() - tic)
        write_outputs(source, image, labels, out, ("overlay", "color", "label"), predictor.palette)
        counts = np.bincount(labels.ravel(), minlength=len(names)) / labels.size
        top = ", ".join(f"{names[c]} {100 * counts[c]:.0f}%" for c in np.argsort(counts)[::-1][:3])
        line = f"{source.name:<20} {image.shape[1]}x{image.shape[0]}  {1000 * times[-1]:6.0f} ms  {top}"
        label_file = Path(args.labels) / (Path(source.name).stem + ".png")
        if label_file.is_file():
            truth = read_label(label_file).astype(np.int64)
            valid = (truth != CAMVID_VOID) & (truth != IGNORE_INDEX)
            if truth.shape == labels.shape and valid.any():
                line += f"  (pixels right: {100 * (labels[valid] == truth[valid]).mean():.1f}%)"
        print(line)
    print(
        f"\n{len(times)} frames on the CPU ({torch.get_num_threads()} threads): median "
        f"{1000 * float(np.median(times)):.0f} ms per frame, fp32, BatchNorm folded"
    )
    if sources:
        print(f"overlays: {output_path(out, sources[0], 'overlay').parent}/")
        print(f"colour masks and label PNGs: {out / 'color'}/, {out / 'labels'}/")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("segment_camvid", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
