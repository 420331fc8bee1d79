#!/usr/bin/env python
"""Training throughput and peak memory of the DDRNet variants (paper Table VIII setting).

Table VIII measures training memory "with a batch size of 2 on single 2080Ti at a crop size of
1024x512, and excluding the auxiliary segmentation head" (1629 MiB for DDRNet-23-slim). Each
variant is measured twice: without the auxiliary head (the Table VIII setting) and with it (the
training recipe: Eq. 3 loss with OHEM on the main output). One training step = zero_grad,
forward, loss, backward, SGD step (momentum, weight decay), on random images and labels.

Every measurement runs in a fresh subprocess, so peak memory is per measurement:

- CUDA: ``torch.cuda.max_memory_allocated`` (all tensors: weights, gradients, momentum, activations)
  and ``max_memory_reserved`` (what the caching allocator took from the driver);
- CPU: peak resident set size (``VmHWM`` of /proc/self/status) minus the RSS after importing torch
  (so weights, gradients, optimizer state and activations, plus allocator overhead).

Images/s is the batch size divided by the median step time over ``--steps`` steps after
``--warmup`` steps. Usage::

    python scripts/benchmark_train.py                                  # CPU here, all variants
    python scripts/benchmark_train.py --device cuda --amp bf16 --json train_bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

VARIANTS = ("ddrnet23_slim", "ddrnet23", "ddrnet39")


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One measurement (runs in its own process)."""
    # imports here, not at module level: the memory baseline is the RSS right after importing torch,
    # and the package (timm, models) counts in the measured peak as it always has
    import torch

    base_rss = _rss_mib("VmRSS")
    from ddrnet_zoo.losses import SegmentationLoss
    from ddrnet_zoo.models import create_segmentation_model

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    dev = torch.device(spec["device"])
    if dev.type == "cpu" and spec["flush_denormal"]:
        torch.set_flush_denormal(True)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = create_segmentation_model(spec["variant"], num_classes=19, aux_head=spec["aux"]).to(dev).train()
    if spec["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    crit = SegmentationLoss(type=spec["loss"]).to(dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=spec["amp"] == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(spec["amp"])
    b, h, w = spec["batch"], spec["height"], spec["width"]
    images = torch.randn(b, 3, h, w, device=dev)
    if spec["channels_last"]:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 19, (b, h, w), device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(images)
        loss, _ = crit(out, labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(spec["warmup"]):
        step()
    times = [step() for _ in range(spec["steps"])]
    med = statistics.median(times)
    result = {
        **spec,
        "step_s_median": med,
        "step_s_all": times,
        "images_per_s": b / med,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
    }
    if dev.type == "cuda":
        result["peak_mem_MiB"] = torch.cuda.max_memory_allocated() / 2**20
        result["peak_reserved_MiB"] = torch.cuda.max_memory_reserved() / 2**20
        result["memory_metric"] = "torch.cuda.max_memory_allocated"
    else:
        result["peak_mem_MiB"] = _rss_mib("VmHWM") - base_rss
        result["baseline_rss_MiB"] = base_rss
        result["memory_metric"] = "peak RSS (VmHWM) - RSS after importing torch"
    return result


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--aux", choices=("without", "with", "both"), default="both")
    p.add_argument("--loss", choices=("ohem", "ce"), default="ohem")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-flush-denormal", action="store_true", help="CPU: keep denormal floats (slower)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: List[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    import torch  # not at module level: the --worker processes must import it after their memory baseline

    from ddrnet_zoo.benchmark import machine_info

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    info = machine_info(device, args.threads)
    aux_modes = {"without": [False], "with": [True], "both": [False, True]}[args.aux]
    rows = []
    for variant in args.variants:
        for aux in aux_modes:
            spec = dict(
                variant=variant,
                aux=aux,
                batch=args.batch,
                height=args.height,
                width=args.width,
                loss=args.loss,
                device=device,
                amp=args.amp,
                channels_last=args.channels_last,
                warmup=args.warmup,
                steps=args.steps,
                threads=args.threads,
                flush_denormal=not args.no_flush_denormal,
            )
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                raise SystemExit(f"measurement failed: {variant} aux={aux}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"  {variant:<14} aux={'yes' if aux else 'no ':<3} {r['images_per_s']:8.2f} img/s", file=sys.stderr)

    settings = (
        f"batch {args.batch}, crop {args.width}x{args.height}, loss {args.loss} (+0.4 x CE on aux), SGD, "
        f"amp {args.amp}, channels_last {args.channels_last}, {args.warmup} warm-up + {args.steps} timed steps (median)"
    )
    print(f"\nDDRNet training step — {info['device']}: {info.get('gpu', info['cpu'])}")
    print(
        f"torch {info['torch']}, timm {info['timm']}, python {info['python']}, "
        f"{info['threads']} threads / {info['cpu_count']} cores, allocator: {info['allocator']}"
    )
    print(settings)
    print(f"memory: {rows[0]['memory_metric']}")
    print()
    header = f"| {'model':<14} | {'aux head':<8} | {'step s (median)':>15} | {'images/s':>9} | {'peak MiB':>9} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['variant']:<14} | {'with' if r['aux'] else 'without':<8} | {r['step_s_median']:>15.3f} | "
            f"{r['images_per_s']:>9.2f} | {r['peak_mem_MiB']:>9.0f} |"
        )
    print("\nPaper Table VIII (2080Ti, without aux head): DDRNet-23-slim 1629 MiB.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        from ddrnet_zoo.io import atomic_write_json

        atomic_write_json(args.json, {"machine": info, "settings": settings, "results": rows})
        print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
