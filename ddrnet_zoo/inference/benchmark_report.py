"""Presenting inference benchmarks: the per-case summary, the printed table and the speed/accuracy plot.

Results are the dicts of :func:`~ddrnet_zoo.inference.benchmark.benchmark_case`; the script
writes them as JSON unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import torch

from ..benchmark import other_load_report
from ..io import atomic_path

__all__ = ["PAPER_TEST_MIOU", "summarise", "format_case", "plot"]

PAPER_TEST_MIOU = {"ddrnet23_slim": 77.4, "ddrnet23": 79.4, "ddrnet39": 80.4}  # Table V, Cityscapes test


def summarise(case: Dict[str, Any]) -> Dict[str, Any]:
    """The fastest fp32 and any-precision torch modes of a case, as ratios to eager and onnxruntime."""
    rows = {r["mode"]: r for r in case["rows"]}
    torch_rows = [r for r in case["rows"] if r.get("runtime", "torch") in ("torch", "pt2e")]
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
    if "original" in rows:
        out["time_vs_original"] = {r["mode"]: r["median_ms"] / rows["original"]["median_ms"] for r in case["rows"]}
    return out


def format_case(case: Dict[str, Any], device: torch.device) -> str:
    """The printed table of one case (with its summary and, on the CPU, the other-load report)."""
    n, c, h, w = case["input"]
    lines = [
        f"\n{case['variant']}  input {n}x{c}x{h}x{w} (H={h}, W={w})"
        + (f"  {case['gmacs']:.2f} GMACs (fvcore)" if case.get("gmacs") else "")
    ]
    cols = ("median ms", 10), ("p90 ms", 9), ("FPS", 8), ("x eager", 8), ("time/eager", 10), ("GFLOP/s", 8)
    with_original = any(r.get("ratio_to_original") for r in case["rows"])
    if with_original:
        cols += (("time/orig", 9),)
    mw = max([28] + [len(r["mode"]) for r in case["rows"]] + [len(name) for name in case["skipped"]])
    head = f"{'mode':{mw}s} " + " ".join(f"{c:>{w}s}" for c, w in cols) + f" {'setup s':>8s} {'rel.err':>9s}"
    lines += [head, "-" * len(head)]
    for r in case["rows"]:
        lines.append(
            f"{r['mode']:{mw}s} {r['median_ms']:10.2f} {r['p90_ms']:9.2f} {r['fps']:8.2f} "
            f"{(r['speedup_vs_eager'] or 0):8.2f} {(r['ratio_to_eager'] or 0):10.3f} "
            f"{r.get('achieved_gflops', 0):8.1f} "
            + (f"{(r.get('ratio_to_original') or 0):9.3f} " if with_original else "")
            + f"{r['setup_seconds']:8.1f} {r['max_rel_error_vs_eager']:9.1e}"
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
    if "time_vs_original" in s:
        ratios = ", ".join(f"{mode} {ratio:.3f}" for mode, ratio in s["time_vs_original"].items() if mode != "original")
        lines.append(f"  time / the original code's: {ratios}")
    if device.type == "cpu":
        report = other_load_report(
            case.get("other_processes_cpu_during_timing"), case["timing_seconds"], case.get("cpu_busy_before")
        )
        if report and case["timing_attempts"] > 1:
            report[0] += f" (attempt {case['timing_attempts']})"
        lines += ["  " + line for line in report]
    for mode, rows in case.get("op_profiles", {}).items():
        lines += [
            f"\n{mode}: onnxruntime kernel time per operator type (its profiler)",
            f"{'op':24s} {'ms/run':>8s} {'share':>7s} {'nodes':>6s}",
        ]
        lines += [f"{r['op']:24s} {r['ms_per_run']:8.2f} {100 * r['share']:6.1f}% {r['nodes']:6d}" for r in rows[:12]]
        if len(rows) > 12:
            lines.append(f"{'(' + str(len(rows) - 12) + ' more)':24s} {sum(r['ms_per_run'] for r in rows[12:]):8.2f}")
    return "\n".join(lines)


def plot(
    cases: List[Dict[str, Any]], path: Path, accuracy: Dict[str, float], accuracy_label: str, machine: str
) -> None:
    """A speed (FPS) / accuracy (mIoU) figure of the eager, best fp32 and best modes, written atomically."""
    import matplotlib  # optional: only the --plot option needs it

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
