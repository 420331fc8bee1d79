#!/usr/bin/env python
"""The model-zoo table: fvcore params/GFLOPs vs the paper (Tables III, V, VII) and CPU latency.

    python scripts/model_zoo.py                      # full table + latency of every variant
    python scripts/model_zoo.py --no-latency --json zoo.json
    python scripts/model_zoo.py --latency-size 512 1024 --runs 10
    python scripts/model_zoo.py --no-complexity --variants ddrnet23_slim --wait-idle 600

Latency: segmentation model (DAPPM, no auxiliary head, logits at input size), batch 1,
eval mode, float32, ``torch.inference_mode``; median (and p90) of ``--runs`` timed runs
after ``--warmup`` runs, measured with ``torch.utils.benchmark``. "eager" is the model as
built (BatchNorm unfolded, the original code's way); "deploy" is the deployment form
(BatchNorm folded, channels_last). The script re-executes itself with the best memory
allocator available (``--allocator``, see ``ddrnet_zoo/benchmark.py``). The variants are timed one
after the other, so other load on the machine can make a small model look slower than a large one:
the script measures the CPU share other processes took while each model was timed, prints it
beside the table and a WARNING when it exceeds 5% (``--wait-idle S`` waits for an idle CPU before
each model). Every other way of
running the models (torch.compile, bf16, onnxruntime, CUDA) is in
``scripts/benchmark_inference.py``.

A progress bar on stderr names what is being counted or timed (``--no-progress``: none); the tables go
to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddrnet_zoo.benchmark import (  # noqa: E402
    ALLOCATOR_CHOICES,
    OtherLoad,
    cpu_busy,
    machine_info,
    other_load_report,
    reexec_with_allocator,
    wait_until_idle,
)

if __name__ == "__main__":
    reexec_with_allocator(sys.argv[1:])

# torch.utils.benchmark imports torch.utils.cpp_extension, which logs "No CUDA runtime is found, using
# CUDA_HOME=..." on a machine with a CUDA toolkit but no GPU: nothing is compiled here, so it is noise
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.utils.benchmark as benchmark  # noqa: E402
from tqdm import tqdm  # noqa: E402

import ddrnet_zoo  # noqa: E402
from ddrnet_zoo.flops import format_table, paper_complexity_rows, paper_complexity_table  # noqa: E402
from ddrnet_zoo.inference import optimize_for_inference  # noqa: E402
from ddrnet_zoo.io import atomic_write_json  # noqa: E402

VARIANTS = ("ddrnet23_slim", "ddrnet23", "ddrnet39")


def time_model(
    model: torch.nn.Module, x: torch.Tensor, runs: int, warmup: int, progress: Optional[tqdm] = None
) -> dict:
    """Median / p90 latency in ms of ``model(x)`` (batch 1) with torch.utils.benchmark.

    ``progress`` (a tqdm bar) advances by one per run, warm-up included, between the timed calls.
    """
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
            if progress is not None:
                progress.update()
        timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
        for _ in range(runs):
            times.append(timer.timeit(1).raw_times[0])
            if progress is not None:
                progress.update()
    median, p90 = np.percentile(times, (50, 90))
    return {"median_ms": 1e3 * median, "p90_ms": 1e3 * p90, "runs": runs}


def latency_steps(variants: Sequence[str], runs: int, warmup: int) -> int:
    """The progress steps of :func:`latency_table`: every run, warm-up included, of both forms of each variant."""
    return len(variants) * 2 * (warmup + runs)


def latency_table(
    size: Sequence[int],
    runs: int,
    warmup: int,
    variants: Sequence[str] = VARIANTS,
    wait_idle: float = 0.0,
    progress: Optional[tqdm] = None,
) -> List[Dict[str, Any]]:
    """One row per variant: eager and deploy latency, and the CPU share other processes took meanwhile.

    ``progress`` (a tqdm bar) names the model and form being timed; :func:`latency_steps` steps in all.
    """
    rows = []
    say = progress.set_description_str if progress is not None else (lambda text: None)
    for name in variants:
        if wait_idle > 0:
            say(f"waiting up to {wait_idle:g} s for an idle CPU")
            wait_until_idle(wait_idle)
        model = ddrnet_zoo.create_segmentation_model(name, num_classes=19, aux_head=False).eval()
        deploy = optimize_for_inference(model, fold=True, channels_last=True)
        x = torch.randn(1, 3, *size)
        row: Dict[str, Any] = {"model": name, "input": list(size)}
        start = time.perf_counter()
        with OtherLoad() as others:
            say(f"timing {name} eager at {size[0]}x{size[1]}")
            row["eager"] = time_model(model, x, runs, warmup, progress)
            say(f"timing {name} deploy at {size[0]}x{size[1]}")
            row["deploy"] = time_model(deploy, x, runs, warmup, progress)
        row["timing_seconds"] = time.perf_counter() - start
        row["other_load"] = others.fraction
        rows.append(row)
    return rows


def latency_load_report(rows: List[Dict[str, Any]], busy_before: Optional[float] = None) -> List[str]:
    """The other-load lines printed under the latency table (a WARNING when any model was disturbed).

    The variants are timed one after the other, so the worst row decides: a disturbance while one
    model was timed makes it look slower than the others.
    """
    measured = [r for r in rows if r.get("other_load") is not None]
    if not measured:
        return []
    seconds = sum(r["timing_seconds"] for r in measured)
    overall = sum(r["other_load"] * r["timing_seconds"] for r in measured) / max(seconds, 1e-9)
    lines = other_load_report(overall, seconds, busy_before)[:1]
    worst = max(measured, key=lambda r: r["other_load"])
    what = "these timings" if len(measured) == 1 else f"these timings ({worst['model']} most)"
    lines += other_load_report(worst["other_load"], worst["timing_seconds"], what=what)[1:]
    return lines


def format_latency(rows: List[Dict[str, Any]]) -> str:
    """The latency table; the last column is the CPU share other processes took while the row was timed."""
    head = (
        f"{'model':<14} {'input':>9} | {'eager ms':>9} {'p90':>7} | {'deploy ms':>9} {'p90':>7} {'ratio':>6} | "
        f"{'other load':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        e, d = r["eager"], r["deploy"]
        load = r.get("other_load")
        lines.append(
            f"{r['model']:<14} {r['input'][0]:>4}x{r['input'][1]:<4} | {e['median_ms']:9.1f} {e['p90_ms']:7.1f} | "
            f"{d['median_ms']:9.1f} {d['p90_ms']:7.1f} {d['median_ms'] / e['median_ms']:6.3f} | "
            f"{'n/a' if load is None else f'{load:.0%}':>10}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-latency", action="store_true", help="skip the CPU latency table")
    parser.add_argument("--no-complexity", action="store_true", help="skip the parameter/FLOP table (fvcore)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, help="models to time")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, metavar="S", help="wait up to S s for an idle CPU before each model"
    )
    parser.add_argument("--latency-size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--runs", type=int, default=10, help="timed runs per model (median and p90 reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allocator", choices=ALLOCATOR_CHOICES, default="auto", help="memory allocator (re-executes the script)"
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Print the complexity and latency tables; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine_info("cpu")
    env = {
        "machine": f"{info['cpu']} ({info['cpu_count']} logical CPUs)",
        "python": info["python"],
        "torch": info["torch"],
        "timm": info["timm"],
        "ddrnet_zoo": ddrnet_zoo.__version__,
        "threads": info["threads"],
        "allocator": info["allocator"],
    }
    print("ddrnet_zoo model zoo — " + ", ".join(f"{k}: {v}" for k, v in env.items()), flush=True)
    result: Dict[str, Any] = {"environment": env}
    steps = 0 if args.no_complexity else paper_complexity_rows()
    steps += 0 if args.no_latency else latency_steps(args.variants, args.runs, args.warmup)
    tqdm.monitor_interval = 0  # no monitor thread waking up while models are timed
    with tqdm(total=steps, unit="step", leave=False, dynamic_ncols=True, disable=args.no_progress) as bar:
        if not args.no_complexity:
            rows = paper_complexity_table(progress=bar)
            bar.write("\nParameters and FLOPs (fvcore; paper conventions, see ddrnet_zoo/flops.py)\n")
            bar.write(format_table(rows))
            result["complexity"] = [r.as_dict() for r in rows]
        if not args.no_latency:
            h, w = args.latency_size
            bar.set_description_str("measuring the CPU load before timing")
            busy_before = cpu_busy(0.5)
            lat = latency_table((h, w), args.runs, args.warmup, args.variants, args.wait_idle, bar)
            bar.write(f"\nCPU latency, segmentation model, batch 1, {h}x{w}, float32, median of {args.runs} runs\n")
            bar.write(format_latency(lat))
            load_lines = latency_load_report(lat, busy_before)
            for line in load_lines:
                bar.write(line)
            result["latency"] = lat
            result["latency_cpu_busy_before"] = busy_before
            result["latency_warnings"] = [line for line in load_lines if line.startswith("WARNING")]
    if args.json:
        atomic_write_json(args.json, result)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
