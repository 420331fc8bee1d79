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

    eager            unfolded fp32, NCHW: how the original code runs
    folded           BN folded into the convs (fp32)
    folded+cl        folded + channels_last
    compiled         folded + channels_last + torch.compile (inductor; CPU: freezing), --compile-modes
    bf16 / fp16      folded + channels_last, half weights (reduced precision; fp16 GPU only)
    bf16-compiled    ... + torch.compile
    fp16-compiled    (GPU)
    fp16-cuda-graphs folded + channels_last + fp16 weights, one CUDA graph replayed (GPU)
    fp16-compiled-cuda-graphs   ... + torch.compile(max-autotune-no-cudagraphs) inside the graph (GPU)
    onnxruntime      the ONNX export (folded) in onnxruntime (CPU EP / CUDA EP), same thread count

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
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ddrnet_zoo.benchmark import (
    ALLOCATOR_CHOICES,
    OTHER_LOAD_THRESHOLD,
    OtherLoad,
    cpu_busy,
    machine_info,
    other_load_report,
    reexec_with_allocator,
    wait_until_idle,
)

if __name__ == "__main__":
    reexec_with_allocator(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ddrnet_zoo.inference.fold import max_relative_error  # noqa: E402
from ddrnet_zoo.inference.runtime import COMPILE_MODES, optimize_for_inference  # noqa: E402
from ddrnet_zoo.io import atomic_path, atomic_write_json  # noqa: E402
from ddrnet_zoo.models import MODEL_ARCHS, create_segmentation_model  # noqa: E402

# ----------------------------------------------------------------------------------------------- modes


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    options: Dict[str, Any] = field(default_factory=dict)
    devices: Tuple[str, ...] = ("cpu", "cuda")
    reduced_precision: bool = False
    runtime: str = "torch"


def build_modes(compile_modes: List[str]) -> Dict[str, Mode]:
    fp32 = dict(fold=True, channels_last=True)
    modes = [
        Mode("eager", "unfolded fp32 NCHW eager (the original code's way)", dict(fold=False)),
        Mode("folded", "BN folded, fp32 NCHW eager", dict(fold=True)),
        Mode("folded+cl", "folded, channels_last, fp32 eager", fp32),
    ]
    for cm in compile_modes:
        suffix = "" if cm == "default" else f"-{cm}"
        modes.append(Mode(f"compiled{suffix}", f"folded, channels_last, torch.compile({cm})", dict(fp32, compile=cm)))
    for prec, devices in (("bf16", ("cpu", "cuda")), ("fp16", ("cuda",))):
        half = dict(fp32, precision=prec, half_weights=True)
        modes.append(Mode(prec, f"folded, channels_last, {prec} weights", half, devices, True))
        modes.append(
            Mode(
                f"{prec}-compiled",
                f"{prec} weights + torch.compile(default)",
                dict(half, compile="default"),
                devices,
                True,
            )
        )
    modes.append(
        Mode(
            "fp16-cuda-graphs",
            "fp16 weights, one CUDA graph replayed",
            dict(fp32, precision="fp16", half_weights=True, cuda_graphs=True),
            ("cuda",),
            True,
        )
    )
    modes.append(
        Mode(
            "fp16-compiled-cuda-graphs",
            "fp16 weights + torch.compile(max-autotune-no-cudagraphs) in a CUDA graph",
            dict(fp32, precision="fp16", half_weights=True, cuda_graphs=True, compile="max-autotune-no-cudagraphs"),
            ("cuda",),
            True,
        )
    )
    modes.append(Mode("onnxruntime", "ONNX export (folded) in onnxruntime", {}, ("cpu", "cuda"), runtime="onnxruntime"))
    return {m.name: m for m in modes}


def measure_peak(device: torch.device) -> Dict[str, float]:
    """Achievable fp32 GFLOP/s here: a 2048^3 matmul and a 64->64 3x3 conv at 128x256 (channels_last)."""

    def rate(fn: Callable[[], Any], flop: float, n: int = 10) -> float:
        fn()
        fn()
        sync(device)
        t = time.perf_counter()
        for _ in range(n):
            fn()
        sync(device)
        return flop * n / (time.perf_counter() - t) / 1e9

    out = {}
    with torch.inference_mode():
        a = torch.randn(2048, 2048, device=device)
        out["matmul_fp32_gflops"] = rate(lambda: a @ a, 2 * 2048**3)
        conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(device, memory_format=torch.channels_last)
        x = torch.randn(1, 64, 128, 256, device=device).contiguous(memory_format=torch.channels_last)
        out["conv3x3_fp32_gflops"] = rate(lambda: conv(x), 2 * 64 * 64 * 9 * 128 * 256)
        if device.type == "cpu" or torch.cuda.is_bf16_supported():
            ab = a.bfloat16()
            out["matmul_bf16_gflops"] = rate(lambda: ab @ ab, 2 * 2048**3)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------- runners


class Runner:
    """One mode of one model at one size: ``call()`` runs a forward pass; ``timed()`` returns its seconds."""

    def __init__(
        self,
        mode: Mode,
        fn: Callable[[], Any],
        output: Callable[[], torch.Tensor],
        device: torch.device,
        setup_seconds: float = 0.0,
        host_timing: bool = False,
    ):
        self.mode = mode
        self.fn = fn
        self.output = output
        self.device = device
        self.host_timing = host_timing
        self.setup_seconds = setup_seconds
        self.times: List[float] = []
        if device.type == "cuda":
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)

    def timed(self) -> float:
        if self.device.type == "cuda" and not self.host_timing:
            self.start.record()
            self.fn()
            self.end.record()
            self.end.synchronize()
            return self.start.elapsed_time(self.end) / 1000.0
        t = time.perf_counter()
        self.fn()
        return time.perf_counter() - t


def build_torch_runner(mode: Mode, model: torch.nn.Module, x: torch.Tensor, device: torch.device, warmup: int):
    engine = optimize_for_inference(model, device=device, **mode.options)
    xx = engine.prepare_input(x)  # device, dtype and memory format conversions are not timed
    t = time.perf_counter()
    engine.warmup(xx, iters=1)
    first = time.perf_counter() - t
    for _ in range(warmup):
        engine(xx)
    sync(device)
    setup = first if mode.options.get("compile") else 0.0
    return Runner(mode, lambda: engine(xx), lambda: engine(xx).float(), device, setup)


def build_ort_runner(
    mode: Mode, model: torch.nn.Module, x: torch.Tensor, device: torch.device, threads: int, warmup: int, workdir: Path
):
    import onnxruntime as ort

    from ddrnet_zoo.inference.graph_export import export_onnx

    path = workdir / f"model_{id(model)}.onnx"
    if not path.exists():
        export_onnx(model, path, verify_sizes=None)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("onnxruntime has no CUDAExecutionProvider here (pip install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    t = time.perf_counter()
    session = ort.InferenceSession(str(path), opts, providers=providers)
    setup = time.perf_counter() - t
    feed = {session.get_inputs()[0].name: x.cpu().numpy()}
    for _ in range(warmup + 1):
        session.run(None, feed)
    # session.run is synchronous and returns host arrays (input copied from the host each call): host timing
    return Runner(
        mode,
        lambda: session.run(None, feed),
        lambda: torch.from_numpy(session.run(None, feed)[0]),
        device,
        setup,
        host_timing=True,
    )


# ----------------------------------------------------------------------------------------------- benchmark


def percentile(values: List[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def count_gmacs(name: str, num_classes: int, size: Tuple[int, int]) -> Optional[float]:
    """fvcore multiply-adds of the benchmarked model (no auxiliary head, BN excluded, logits at input size)."""
    try:
        from ddrnet_zoo.flops import count_flops

        m = create_segmentation_model(name, num_classes=num_classes, aux_head=False)
        return count_flops(m, (1, 3, *size), exclude_norm=True) / 1e9
    except Exception as e:  # fvcore is optional for the benchmark
        print(f"  (no FLOP count: {type(e).__name__}: {e})")
        return None


def benchmark_case(
    name: str,
    size: Tuple[int, int],
    modes: List[Mode],
    args: argparse.Namespace,
    device: torch.device,
    workdir: Path,
) -> Dict[str, Any]:
    torch.manual_seed(0)
    model = create_segmentation_model(name, num_classes=args.num_classes).eval()
    x = torch.randn(args.batch, 3, *size)
    runners: List[Runner] = []
    skipped: Dict[str, str] = {}
    for mode in modes:
        print(f"  preparing {mode.name} ...", flush=True)
        try:
            if mode.runtime == "onnxruntime":
                r = build_ort_runner(mode, model, x, device, args.threads, args.warmup, workdir)
            else:
                r = build_torch_runner(mode, model, x, device, args.warmup)
            runners.append(r)
        except Exception as e:  # report and carry on with the other modes
            skipped[mode.name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"  skipped {mode.name}: {skipped[mode.name]}")
    # accuracy of every mode against the eager fp32 model
    with torch.no_grad():
        reference = model.to(device)(x.to(device)).float().cpu()
        model.cpu()
    errors = {}
    for r in runners:
        out = r.output().float().cpu()
        errors[r.mode.name] = max_relative_error(out, reference)
        agree = (out.argmax(1) == reference.argmax(1)).float().mean().item()
        errors[r.mode.name + ":argmax_agreement"] = agree
    gap = args.gap_ms / 1000.0
    attempts = 0
    while True:
        attempts += 1
        busy_before = cpu_busy(0.5) if device.type == "cpu" else None
        for r in runners:
            r.times = []
        start = time.perf_counter()
        with OtherLoad() as others:
            if args.schedule == "interleaved":
                for _ in range(args.runs):
                    for r in runners:
                        time.sleep(gap)
                        r.times.append(r.timed())
            else:
                for r in runners:
                    for _ in range(args.runs):
                        time.sleep(gap)
                        r.times.append(r.timed())
        elapsed = time.perf_counter() - start
        load = others.fraction
        if device.type != "cpu" or load is None or load <= args.max_other_load or attempts > args.retries:
            break
        print(f"  other processes took {load:.0%} of the CPUs while timing: timing again ({attempts}/{args.retries})")
        if args.wait_idle > 0:
            wait_until_idle(args.wait_idle)
    gmacs = None if args.no_flops else count_gmacs(name, args.num_classes, size)
    rows = []
    eager = next((r for r in runners if r.mode.name == "eager"), None)
    eager_median = statistics.median(eager.times) if eager else None
    for r in runners:
        med = statistics.median(r.times)
        row = {
            "mode": r.mode.name,
            "description": r.mode.description,
            "reduced_precision": r.mode.reduced_precision,
            "median_ms": med * 1000,
            "p90_ms": percentile(r.times, 90) * 1000,
            "mean_ms": statistics.fmean(r.times) * 1000,
            "min_ms": min(r.times) * 1000,
            "fps": args.batch / med,
            "ratio_to_eager": med / eager_median if eager_median else None,
            "speedup_vs_eager": eager_median / med if eager_median else None,
            "setup_seconds": r.setup_seconds,
            "max_rel_error_vs_eager": errors[r.mode.name],
            "argmax_agreement_vs_eager": errors[r.mode.name + ":argmax_agreement"],
            "runs": len(r.times),
        }
        if gmacs:
            row["achieved_gflops"] = 2 * gmacs * args.batch / med
        rows.append(row)
    del runners
    gc.collect()
    return {
        "variant": name,
        "input": [args.batch, 3, *size],
        "gmacs": gmacs,
        "rows": rows,
        "skipped": skipped,
        "timing_seconds": elapsed,
        "cpu_busy_before": busy_before,
        "other_processes_cpu_during_timing": others.fraction,
        "timing_attempts": attempts,
    }


def summarise(case: Dict[str, Any]) -> Dict[str, Any]:
    rows = {r["mode"]: r for r in case["rows"]}
    torch_rows = [r for r in case["rows"] if r["mode"] != "onnxruntime"]
    out: Dict[str, Any] = {}
    for label, pool in (
        ("best_fp32", [r for r in torch_rows if not r["reduced_precision"]]),
        ("best_any_precision", torch_rows),
    ):
        if not pool:
            continue
        best = min(pool, key=lambda r: r["median_ms"])
        entry = {"mode": best["mode"], "median_ms": best["median_ms"]}
        if "eager" in rows:
            entry["ratio_to_eager"] = best["median_ms"] / rows["eager"]["median_ms"]
        if "onnxruntime" in rows:
            entry["ratio_to_onnxruntime"] = best["median_ms"] / rows["onnxruntime"]["median_ms"]
        out[label] = entry
    return out


def format_case(case: Dict[str, Any], device: torch.device) -> str:
    n, c, h, w = case["input"]
    lines = [
        f"\n{case['variant']}  input {n}x{c}x{h}x{w} (H={h}, W={w})"
        + (f"  {case['gmacs']:.2f} GMACs (fvcore)" if case.get("gmacs") else "")
    ]
    cols = ("median ms", 10), ("p90 ms", 9), ("FPS", 8), ("x eager", 8), ("time/eager", 10), ("GFLOP/s", 8)
    mw = max([28] + [len(r["mode"]) for r in case["rows"]] + [len(name) for name in case["skipped"]])
    head = f"{'mode':{mw}s} " + " ".join(f"{c:>{w}s}" for c, w in cols) + f" {'setup s':>8s} {'rel.err':>9s}"
    lines += [head, "-" * len(head)]
    for r in case["rows"]:
        lines.append(
            f"{r['mode']:{mw}s} {r['median_ms']:10.2f} {r['p90_ms']:9.2f} {r['fps']:8.2f} "
            f"{(r['speedup_vs_eager'] or 0):8.2f} {(r['ratio_to_eager'] or 0):10.3f} "
            f"{r.get('achieved_gflops', 0):8.1f} {r['setup_seconds']:8.1f} {r['max_rel_error_vs_eager']:9.1e}"
        )
    for name, why in case["skipped"].items():
        lines.append(f"{name:{mw}s} skipped: {why}")
    s = case["summary"]
    for label in ("best_fp32", "best_any_precision"):
        if label in s:
            e = s[label]
            parts = [f"{label.replace('_', ' ')}: {e['mode']} {e['median_ms']:.2f} ms"]
            if "ratio_to_eager" in e:
                parts.append(f"{e['ratio_to_eager']:.3f} of eager ({1 / e['ratio_to_eager']:.2f}x faster)")
            if "ratio_to_onnxruntime" in e:
                parts.append(f"{e['ratio_to_onnxruntime']:.3f} of onnxruntime")
            lines.append("  " + "; ".join(parts))
    if device.type == "cpu":
        report = other_load_report(
            case.get("other_processes_cpu_during_timing"), case["timing_seconds"], case.get("cpu_busy_before")
        )
        if report and case["timing_attempts"] > 1:
            report[0] += f" (attempt {case['timing_attempts']})"
        lines += ["  " + line for line in report]
    return "\n".join(lines)


def plot(
    cases: List[Dict[str, Any]], path: Path, accuracy: Dict[str, float], accuracy_label: str, machine: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for case in cases:
        name = case["variant"]
        if name not in accuracy:
            continue
        rows = {r["mode"]: r for r in case["rows"]}
        size = "x".join(str(v) for v in case["input"][2:])
        summary = case["summary"]
        best_fp32 = summary.get("best_fp32", {}).get("mode")
        best_any = summary.get("best_any_precision", {}).get("mode")
        for mode, marker in (("eager", "o"), (best_fp32, "s"), (best_any, "*")):
            if mode in rows:
                ax.scatter(rows[mode]["fps"], accuracy[name], marker=marker, s=80 if marker == "*" else 40)
                ax.annotate(f"{name} {size}\n{mode}", (rows[mode]["fps"], accuracy[name]), fontsize=7)
    ax.set_xlabel(f"FPS (batch 1, measured: {machine})")
    ax.set_ylabel(f"mIoU (%) ({accuracy_label})")
    ax.set_title("DDRNet speed / accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)


def _size(text: str) -> Tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


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
    p.add_argument("--no-peak", action="store_true", help="skip measuring the achievable GFLOP/s")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--plot", type=Path, help="speed/accuracy figure (needs matplotlib)")
    p.add_argument(
        "--accuracy",
        type=Path,
        help="JSON {variant: mIoU} measured with ddrnet-eval for the plot (default: the paper's Cityscapes test mIoU)",
    )
    return p


PAPER_TEST_MIOU = {"ddrnet23_slim": 77.4, "ddrnet23": 79.4, "ddrnet39": 80.4}  # Table V, Cityscapes test


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
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
                case = benchmark_case(name, size, modes, args, device, Path(tmp))
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
