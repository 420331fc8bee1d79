#!/usr/bin/env python
"""The model-zoo table: fvcore params/GFLOPs vs the paper (Tables III, V, VII) and CPU latency.

    python scripts/model_zoo.py                      # full table + latency of every variant
    python scripts/model_zoo.py --no-latency --json zoo.json
    python scripts/model_zoo.py --latency-size 512 1024 --runs 10

Latency: segmentation model (DAPPM, no auxiliary head, logits at input size), batch 1,
eval mode, float32, ``torch.inference_mode``; median (and p90) of ``--runs`` timed runs
after ``--warmup`` runs, measured with ``torch.utils.benchmark``. "eager" is the model as
built (BatchNorm unfolded, the original code's way); "deploy" is the deployment form
(BatchNorm folded, channels_last). The script re-executes itself with the best memory
allocator available (``--allocator``, see ``ddrnet_zoo/benchmark.py``). Every other way of
running the models (torch.compile, bf16, onnxruntime, CUDA) is in
``scripts/benchmark_inference.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddrnet_zoo.benchmark import ALLOCATOR_CHOICES, machine_info, reexec_with_allocator  # noqa: E402

if __name__ == "__main__":
    reexec_with_allocator(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.utils.benchmark as benchmark  # noqa: E402

import ddrnet_zoo  # noqa: E402
from ddrnet_zoo.flops import format_table, paper_complexity_table  # noqa: E402
from ddrnet_zoo.inference import optimize_for_inference  # noqa: E402

VARIANTS = ("ddrnet23_slim", "ddrnet23", "ddrnet39")


def time_model(model: torch.nn.Module, x: torch.Tensor, runs: int, warmup: int) -> dict:
    """Median / p90 latency in ms of ``model(x)`` (batch 1) with torch.utils.benchmark."""
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
        times = [timer.timeit(1).raw_times[0] for _ in range(runs)]
    median, p90 = np.percentile(times, (50, 90))
    return {"median_ms": 1e3 * median, "p90_ms": 1e3 * p90, "runs": runs}


def latency_table(size, runs: int, warmup: int) -> list:
    rows = []
    for name in VARIANTS:
        model = ddrnet_zoo.create_segmentation_model(name, num_classes=19, aux_head=False).eval()
        x = torch.randn(1, 3, *size)
        row = {"model": name, "input": list(size), "eager": time_model(model, x, runs, warmup)}
        deploy = optimize_for_inference(model, fold=True, channels_last=True)
        row["deploy"] = time_model(deploy, x, runs, warmup)
        rows.append(row)
        print(f"  timed {name}", file=sys.stderr, flush=True)
    return rows


def format_latency(rows: list) -> str:
    head = f"{'model':<14} {'input':>9} | {'eager ms':>9} {'p90':>7} | {'deploy ms':>9} {'p90':>7} {'ratio':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        e, d = r["eager"], r["deploy"]
        lines.append(
            f"{r['model']:<14} {r['input'][0]:>4}x{r['input'][1]:<4} | {e['median_ms']:9.1f} {e['p90_ms']:7.1f} | "
            f"{d['median_ms']:9.1f} {d['p90_ms']:7.1f} {d['median_ms'] / e['median_ms']:6.3f}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-latency", action="store_true", help="skip the CPU latency table")
    parser.add_argument("--latency-size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--runs", type=int, default=10, help="timed runs per model (median and p90 reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument(
        "--allocator", choices=ALLOCATOR_CHOICES, default="auto", help="memory allocator (re-executes the script)"
    )
    return parser


def main(argv=None) -> int:
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
    print("ddrnet_zoo model zoo — " + ", ".join(f"{k}: {v}" for k, v in env.items()))
    print("\nParameters and FLOPs (fvcore; paper conventions, see ddrnet_zoo/flops.py)\n")
    rows = paper_complexity_table()
    print(format_table(rows))
    result = {"environment": env, "complexity": [r.as_dict() for r in rows]}
    if not args.no_latency:
        h, w = args.latency_size
        print(f"\nCPU latency, segmentation model, batch 1, {h}x{w}, float32, median of {args.runs} runs\n")
        lat = latency_table((h, w), args.runs, args.warmup)
        print(format_latency(lat))
        result["latency"] = lat
    if args.json:
        from ddrnet_zoo.io import atomic_write_json

        atomic_write_json(args.json, result)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
