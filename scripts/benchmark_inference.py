#!/usr/bin/env python
"""Inference speed of DDRNet, every way of running it side by side (the paper's protocol).

Protocol (paper Sec. IV-C): batch 1, BatchNorm folded, warm-up, then many timed forward passes
(500 on GPU; fewer on CPU, ``--runs``), reporting the median and 90th-percentile latency and FPS.
CUDA times come from CUDA events around each call, with synchronisation. On CPU the modes are
timed *interleaved* (one call of each mode per round, an untimed 10 ms pause before each call so
that the previous mode's spinning worker threads have parked) so that slow drifts hit every mode
alike; the table reports how much CPU other processes took meanwhile (with 2 cores, any other
load inflates OpenMP timings several-fold: use ``--wait-idle``).

Modes (``--modes``; default: all that apply to the device)::

    original         the original code's computation: unfolded fp32 NCHW, auxiliary head computed too
                     (its test-time model), 1/8 logits upsampled after the model; the table's reference
    eager            unfolded fp32, NCHW, main head only
    folded           BN folded into the convs (fp32)
    folded+cl        folded + channels_last
    compiled         folded + channels_last + torch.compile (inductor; CPU: freezing), --compile-modes
    bf16 / fp16      folded + channels_last, half weights (reduced precision; fp16 GPU only)
    bf16-compiled    ... + torch.compile
    fp16-compiled    (GPU)
    fp16-cuda-graphs folded + channels_last + fp16 weights, one CUDA graph replayed (GPU)
    fp16-compiled-cuda-graphs   ... + torch.compile(max-autotune-no-cudagraphs) inside the graph (GPU)
    onnxruntime      the ONNX export (folded) in onnxruntime (CPU EP / CUDA EP), same thread count
    onnxruntime-int8 ddrnet-export --quantize int8 of that export (CPU; calibrated on --calibration images)
    torch-int8       torch.export + PT2E INT8 (torchao X86InductorQuantizer) + torch.compile (CPU; the
                     'pt2e' extra and a C++ compiler; calibrated on the same images)

The memory allocator matters on CPU (glibc returns the large activation buffers to the OS after
every call and faults them back in): ``--allocator auto`` re-executes the script with tcmalloc or
jemalloc preloaded when installed (``apt-get install libtcmalloc-minimal4`` / ``libjemalloc2``),
else with glibc tuned by ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``; the table says which.

Examples::

    # the CPU target: DDRNet-23-slim at 1x3x512x1024 on this machine
    python scripts/benchmark_inference.py --variants ddrnet23_slim --sizes 512x1024 --runs 50 --json bench_cpu.json
    # the paper's table on a GPU (2048x1024 and 960x720, 500 runs)
    python scripts/benchmark_inference.py --device cuda --variants ddrnet23_slim ddrnet23 ddrnet39 \\
        --sizes 1024x2048 720x960 --json bench_gpu.json --plot speed_accuracy.png

Sizes are given as HxW (tensor order): the paper's "2048x1024" (W x H) is 1024x2048 here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ddrnet_zoo.benchmark import (
    ALLOCATOR_CHOICES,
    OTHER_LOAD_THRESHOLD,
    OtherLoad,
    machine_info,
    reexec_with_allocator,
    wait_until_idle,
)

if __name__ == "__main__":
    reexec_with_allocator(sys.argv[1:])

import torch  # noqa: E402

from ddrnet_zoo.device import DeviceError, resolve_device  # noqa: E402
from ddrnet_zoo.inference.benchmark import BenchmarkSettings, benchmark_case, build_modes, measure_peak  # noqa: E402
from ddrnet_zoo.inference.benchmark_report import PAPER_TEST_MIOU, format_case, plot, summarise  # noqa: E402
from ddrnet_zoo.inference.runtime import COMPILE_MODES  # noqa: E402
from ddrnet_zoo.io import atomic_write_json  # noqa: E402
from ddrnet_zoo.models import MODEL_ARCHS  # noqa: E402


def _size(text: str) -> Tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def _default_calibration() -> Optional[str]:
    root = os.environ.get("DDRNET_CAMVID_ROOT")
    return str(Path(root) / "train") if root and (Path(root) / "train").is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--variants", nargs="+", default=["ddrnet23_slim"], choices=list(MODEL_ARCHS))
    p.add_argument("--sizes", nargs="+", type=_size, help="HxW (default: 512x1024 on CPU, 1024x2048 720x960 on GPU)")
    p.add_argument("--device", default="auto", help="cpu, cuda (default: cuda if available)")
    p.add_argument("--modes", nargs="+", help="modes to run (default: all for the device; see above)")
    p.add_argument(
        "--compile-modes",
        nargs="+",
        default=["default"],
        choices=[m for m in COMPILE_MODES if m not in ("reduce-overhead", "max-autotune")],
        help="torch.compile modes for the 'compiled' rows (default: default)",
    )
    p.add_argument("--runs", type=int, help="timed runs per mode (default 500 on GPU, 30 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed runs per mode after setup (default 50 on GPU, 3 on CPU)")
    p.add_argument("--batch", type=int, default=1, help="batch size (the paper: 1)")
    p.add_argument("--num-classes", type=int, default=19, help="classes (19: Cityscapes, 11: CamVid)")
    p.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: all cores)")
    p.add_argument(
        "--allocator",
        default="auto",
        choices=ALLOCATOR_CHOICES,
        help="memory allocator (re-executes the script; default auto)",
    )
    p.add_argument("--schedule", choices=("interleaved", "blocked"), help="default: interleaved on CPU, blocked on GPU")
    p.add_argument(
        "--gap-ms",
        type=float,
        help="untimed pause before each timed call, so that the previous mode's worker threads (OpenMP, "
        "onnxruntime) stop spinning first (default 10 on CPU, 0 on GPU)",
    )
    p.add_argument(
        "--max-other-load",
        type=float,
        default=OTHER_LOAD_THRESHOLD,
        help="CPU: time again when other processes took more than this fraction of the CPUs "
        f"(default {OTHER_LOAD_THRESHOLD})",
    )
    p.add_argument("--retries", type=int, default=0, help="CPU: how many times to time again (default 0)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="S", help="wait up to S seconds for an idle CPU")
    p.add_argument("--no-flops", action="store_true", help="skip the fvcore FLOP count")
    p.add_argument(
        "--calibration",
        default=_default_calibration(),
        help="folder of real images for the INT8 modes (default: $DDRNET_CAMVID_ROOT/train when set)",
    )
    p.add_argument("--calibration-count", type=int, default=16, help="calibration images (default 16)")
    p.add_argument("--op-profile", action="store_true", help="onnxruntime modes: also print the time per operator type")
    p.add_argument("--no-peak", action="store_true", help="skip measuring the achievable GFLOP/s")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--plot", type=Path, help="speed/accuracy figure (needs matplotlib)")
    p.add_argument(
        "--accuracy",
        type=Path,
        help="JSON {variant: mIoU} measured with ddrnet-eval for the plot (default: the paper's Cityscapes test mIoU)",
    )
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
    except DeviceError as e:
        raise SystemExit(f"--device {args.device}: {e}") from None
    gpu = device.type == "cuda"
    args.runs = args.runs or (500 if gpu else 30)
    args.warmup = args.warmup if args.warmup is not None else (50 if gpu else 3)
    args.schedule = args.schedule or ("blocked" if gpu else "interleaved")
    args.gap_ms = args.gap_ms if args.gap_ms is not None else (0.0 if gpu else 10.0)
    args.sizes = args.sizes or ([(1024, 2048), (720, 960)] if gpu else [(512, 1024)])
    if not args.threads:
        args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(args.threads)
    if gpu:
        torch.backends.cudnn.benchmark = True
    settings = BenchmarkSettings(**{f.name: getattr(args, f.name) for f in fields(BenchmarkSettings)})
    all_modes = build_modes(args.compile_modes)
    names = args.modes or [m.name for m in all_modes.values() if device.type in m.devices]
    unknown = [n for n in names if n not in all_modes]
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; available: {', '.join(all_modes)}")
    modes = [all_modes[n] for n in names if device.type in all_modes[n].devices]
    for n in names:
        if device.type not in all_modes[n].devices:
            print(f"  mode {n} runs on {'/'.join(all_modes[n].devices)} only: not measured on {device.type}")
    info = machine_info(device, args.threads)
    print("DDRNet inference benchmark")
    for k, v in info.items():
        print(f"  {k:15s} {v}")
    print(
        f"  {'protocol':15s} batch {args.batch}, {args.warmup} warm-up + {args.runs} timed runs per mode, "
        f"{args.schedule}, {args.gap_ms:g} ms pause before each call"
    )
    peak: Dict[str, float] = {}
    for _ in range(0 if args.no_peak else args.retries + 1):
        if args.wait_idle > 0 and not gpu:
            wait_until_idle(args.wait_idle)
        with OtherLoad() as others:
            peak = measure_peak(device)
        if gpu or others.fraction is None or others.fraction <= args.max_other_load:
            break
        print(f"  other processes took {others.fraction:.0%} of the CPUs while measuring the peak: again")
    for k, v in peak.items():
        print(f"  {k:15s} {v:.0f}")
    cases = []
    with tempfile.TemporaryDirectory(prefix="ddrnet_bench_") as tmp:
        for name in args.variants:
            for size in args.sizes:
                print(f"\n== {name} at {args.batch}x3x{size[0]}x{size[1]}", flush=True)
                if args.wait_idle > 0 and not gpu:
                    wait_until_idle(args.wait_idle)
                case = benchmark_case(name, size, modes, settings, device, Path(tmp))
                case["summary"] = summarise(case)
                cases.append(case)
                print(format_case(case, device), flush=True)
    result = {"machine": info, "peak": peak, "settings": {k: str(v) for k, v in vars(args).items()}, "cases": cases}
    result["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    if args.json:
        atomic_write_json(args.json, result)
        print(f"\nwrote {args.json}")
    if args.plot:
        if args.accuracy:
            accuracy, label = json.loads(args.accuracy.read_text()), f"measured: {args.accuracy.name}"
        else:
            accuracy, label = PAPER_TEST_MIOU, "paper Table V, Cityscapes test"
        plot(cases, args.plot, accuracy, label, info.get("gpu") or info["cpu"])
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
