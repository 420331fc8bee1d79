"""Inference speed of DDRNet, every way of running it side by side: modes, timing, tables and plots.

The reusable part of ``scripts/benchmark_inference.py`` (the script parses the command line,
picks the allocator and writes the JSON). :func:`build_modes` lists the ways of running a model
(the original code's computation, eager, folded, channels_last, compiled, bf16/fp16, CUDA graphs,
onnxruntime float32 and INT8, torch INT8); a :class:`Runner`
times one mode with CUDA events on the GPU and ``time.perf_counter`` on the CPU;
:func:`benchmark_case` prepares every mode of one model at one size, checks each against the
eager model and times them (interleaved on the CPU so that slow drifts hit every mode alike).
:mod:`.benchmark_report` presents the results (tables, summary, plot).

Timing is written by hand rather than with ``torch.utils.benchmark.Timer``: that times one
statement in blocks, while the CPU protocol interleaves the modes call by call with a pause
before each, and onnxruntime sessions are timed by the same loop.
"""

from __future__ import annotations

import copy
import gc
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..benchmark import OTHER_LOAD_THRESHOLD, OtherLoad, cpu_busy, wait_until_idle
from ..device import DeviceError
from ..errors import InputError, require_extra
from ..flops import count_flops
from ..models import create_segmentation_model
from .fold import fold_batchnorm, max_relative_error
from .graph_export import export_onnx
from .onnx_model import session_options
from .quantize import calibration_images, image_tensor, quantize_onnx
from .runtime import optimize_for_inference

__all__ = [
    "Mode",
    "build_modes",
    "measure_peak",
    "sync",
    "Runner",
    "build_torch_runner",
    "build_ort_runner",
    "build_original_runner",
    "build_pt2e_runner",
    "BenchmarkSettings",
    "benchmark_case",
]

# ----------------------------------------------------------------------------------------------- modes


@dataclass(frozen=True)
class Mode:
    """One way of running a model: :func:`optimize_for_inference` options, or onnxruntime."""

    name: str
    description: str
    options: Dict[str, Any] = field(default_factory=dict)
    devices: Tuple[str, ...] = ("cpu", "cuda")
    reduced_precision: bool = False
    runtime: str = "torch"
    """``torch`` (:func:`optimize_for_inference`), ``original``, ``onnxruntime`` or ``pt2e`` (torch INT8)."""


def build_modes(compile_modes: List[str]) -> Dict[str, Mode]:
    """Every mode by name (one ``compiled`` row per ``torch.compile`` mode in ``compile_modes``)."""
    fp32 = dict(fold=True, channels_last=True)
    modes = [
        Mode(
            "original",
            "the original code's computation: unfolded fp32 NCHW eager, auxiliary head computed too, 1/8 logits "
            "upsampled after the model",
            runtime="original",
        ),
        Mode("eager", "unfolded fp32 NCHW eager, main head only", dict(fold=False)),
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
    modes.append(
        Mode(
            "onnxruntime-int8",
            "ddrnet-export --quantize int8 (static QDQ, calibrated on --calibration images) in onnxruntime",
            dict(quantize="int8"),
            ("cpu",),
            True,
            runtime="onnxruntime",
        )
    )
    modes.append(
        Mode(
            "torch-int8",
            "torch.export + PT2E static INT8 (torchao X86InductorQuantizer) + torch.compile(freezing)",
            {},
            ("cpu",),
            True,
            runtime="pt2e",
        )
    )
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
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
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
        self.op_profile: Optional[Callable[[], List[Dict[str, Any]]]] = None
        """onnxruntime modes: where the time goes, per operator type (:func:`onnx_op_profile`)."""
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


def build_torch_runner(
    mode: Mode, model: torch.nn.Module, x: torch.Tensor, device: torch.device, warmup: int
) -> Runner:
    """A :class:`Runner` of ``model`` prepared as ``mode`` says, compiled and warmed up (compile time = setup)."""
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


def build_original_runner(mode: Mode, model: torch.nn.Module, x: torch.Tensor, device: torch.device, warmup: int):
    """A :class:`Runner` of the original code's computation, on ``model``'s weights.

    The original segmentation model (``augment=True``, as its test script builds it) runs in eval mode with
    every BatchNorm, NCHW, computes the auxiliary head too and returns 1/8-resolution logits, which its test
    code upsamples (bilinear, ``align_corners=False``) to the input size. ``model`` with ``upsample_logits``
    off and ``return_aux=True`` computes exactly that (``tests/test_parity.py`` checks both outputs against
    the original code's), so this row times the original code's arithmetic with the same kernels.
    """
    if getattr(model, "aux_head", None) is None:
        raise InputError("the original-code mode needs a model with its auxiliary head")
    m = copy.deepcopy(model).eval().to(device)
    m.upsample_logits = False

    def fn() -> torch.Tensor:
        with torch.no_grad():
            out = m(xx, return_aux=True)
            return F.interpolate(out["out"], size=xx.shape[-2:], mode="bilinear", align_corners=False)

    xx = x.to(device)
    for _ in range(warmup + 1):
        fn()
    sync(device)
    return Runner(mode, fn, fn, device)


def _calibration_batches(settings: BenchmarkSettings, size: Tuple[int, int]) -> List[Path]:
    if not settings.calibration:
        raise InputError("INT8 modes need --calibration DIR (a folder of real images, e.g. CamVid train)")
    return calibration_images(settings.calibration, settings.calibration_count)


def _calibration_tensor(path: Path, model: torch.nn.Module, size: Tuple[int, int]) -> torch.Tensor:
    """A calibration image normalised as the model expects, resized to the benchmarked size."""
    x = torch.from_numpy(image_tensor(path, model.dataset["mean"], model.dataset["std"]))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def build_pt2e_runner(
    mode: Mode,
    model: torch.nn.Module,
    x: torch.Tensor,
    device: torch.device,
    warmup: int,
    calibration: List[torch.Tensor],
) -> Runner:
    """A :class:`Runner` of torch's own INT8 path: ``torch.export``, PT2E static quantization with torchao's
    ``X86InductorQuantizer`` (per-channel int8 weights, uint8 activations, calibrated on ``calibration``),
    then ``torch.compile`` with inductor freezing. Needs torchao (the ``pt2e`` extra) and a C++ compiler;
    the compile time is the setup time."""
    pt2e = require_extra("torchao.quantization.pt2e.quantize_pt2e", "the torch INT8 benchmark mode", "pt2e")
    xiq = require_extra(
        "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", "the torch INT8 benchmark mode", "pt2e"
    )
    import torch._inductor.config as inductor_config  # torch's own module (no ddrnet_zoo import)

    folded = fold_batchnorm(model)
    folded.aux_head = None
    start = time.perf_counter()
    with torch.no_grad():
        graph = torch.export.export(folded.eval(), (x,)).module()
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = pt2e.prepare_pt2e(graph, quantizer)
        for batch in calibration:
            prepared(batch)
        converted = pt2e.convert_pt2e(prepared)
        with inductor_config.patch(freezing=True):
            compiled = torch.compile(converted)
            compiled(x)
    setup = time.perf_counter() - start

    def fn() -> torch.Tensor:
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return compiled(x)

    for _ in range(warmup):
        fn()
    return Runner(mode, fn, fn, device, setup)


def build_ort_runner(
    mode: Mode,
    model: torch.nn.Module,
    x: torch.Tensor,
    device: torch.device,
    threads: int,
    warmup: int,
    workdir: Path,
    calibration: Optional[List[Path]] = None,
) -> Runner:
    """A :class:`Runner` of ``model``'s ONNX export (written to ``workdir``) in an onnxruntime session.

    With ``mode.options["quantize"] == "int8"`` the export is quantized as ``ddrnet-export --quantize int8``
    does it, calibrated on the image files ``calibration``."""
    ort = require_extra("onnxruntime", "the onnxruntime benchmark modes", "onnx")

    path = workdir / f"model_{id(model)}.onnx"
    if not path.exists():
        export_onnx(model, path, verify_sizes=None)
    if mode.options.get("quantize") == "int8":
        if not calibration:
            raise InputError("INT8 modes need --calibration DIR (a folder of real images, e.g. CamVid train)")
        int8 = workdir / f"model_{id(model)}.int8.onnx"
        if not int8.exists():
            quantize_onnx(path, int8, calibration, model.dataset["mean"], model.dataset["std"])
        path = int8
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError("onnxruntime has no CUDAExecutionProvider here (pip install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    t = time.perf_counter()
    session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
    setup = time.perf_counter() - t
    feed = {session.get_inputs()[0].name: x.cpu().numpy()}
    for _ in range(warmup + 1):
        session.run(None, feed)
    # session.run is synchronous and returns host arrays (input copied from the host each call): host timing
    runner = Runner(
        mode,
        lambda: session.run(None, feed),
        lambda: torch.from_numpy(session.run(None, feed)[0]),
        device,
        setup,
        host_timing=True,
    )
    runner.op_profile = lambda: onnx_op_profile(path, feed, threads, providers, workdir)
    return runner


def onnx_op_profile(
    path: Path, feed: Dict[str, np.ndarray], threads: int, providers: List[str], workdir: Path, runs: int = 10
) -> List[Dict[str, Any]]:
    """Where the time of an ONNX file in onnxruntime goes: kernel time per operator type over ``runs`` runs
    after one warm-up, from onnxruntime's own profiler (a session of its own, with the benchmark's options).

    Rows ``{"op", "ms_per_run", "share", "nodes"}``, the most expensive first; ``share`` of all kernel time.
    """
    ort = require_extra("onnxruntime", "the onnxruntime benchmark modes", "onnx")
    profiled = session_options(threads, profile_prefix=str(workdir / f"profile_{path.stem}"))
    session = ort.InferenceSession(str(path), profiled, providers=providers)
    session.run(None, feed)
    for _ in range(runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text(encoding="utf-8"))
    trace.unlink()
    kernel_us: Dict[str, float] = {}
    nodes: Dict[str, set] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            kernel_us[op] = kernel_us.get(op, 0.0) + float(e["dur"])
            nodes.setdefault(op, set()).add(e["name"])
    total = sum(kernel_us.values()) or 1.0
    return [
        {"op": op, "ms_per_run": us / 1000 / (runs + 1), "share": us / total, "nodes": len(nodes[op])}
        for op, us in sorted(kernel_us.items(), key=lambda kv: -kv[1])
    ]


# ----------------------------------------------------------------------------------------------- benchmark


@dataclass
class BenchmarkSettings:
    """How :func:`benchmark_case` times (the script's options of the same names)."""

    runs: int = 30
    """Timed runs per mode."""
    warmup: int = 3
    """Untimed runs per mode after setup."""
    batch: int = 1
    num_classes: int = 19
    threads: int = 1
    """CPU threads for onnxruntime (torch's are set by the caller)."""
    schedule: str = "interleaved"
    """``interleaved`` (one call of each mode per round) or ``blocked`` (all calls of a mode in a row)."""
    gap_ms: float = 10.0
    """Untimed pause before each timed call."""
    max_other_load: float = OTHER_LOAD_THRESHOLD
    """CPU: time again when other processes took more than this fraction of the CPUs."""
    retries: int = 0
    wait_idle: float = 0.0
    """Wait up to this many seconds for an idle CPU before timing again."""
    no_flops: bool = False
    """Skip the fvcore FLOP count."""
    calibration: Optional[str] = None
    """Folder of real images that the INT8 modes are calibrated on."""
    calibration_count: int = 16
    op_profile: bool = False
    """onnxruntime modes: also report the time per operator type (:func:`onnx_op_profile`)."""


def percentile(values: List[float], q: float) -> float:
    """The ``q``-th percentile of ``values``."""
    return float(np.percentile(np.asarray(values), q))


def count_gmacs(name: str, num_classes: int, size: Tuple[int, int]) -> Optional[float]:
    """fvcore multiply-adds of the benchmarked model (no auxiliary head, BN excluded, logits at input size)."""
    try:
        m = create_segmentation_model(name, num_classes=num_classes, aux_head=False)
        return count_flops(m, (1, 3, *size), exclude_norm=True) / 1e9
    except Exception as e:  # fvcore is optional for the benchmark
        print(f"  (no FLOP count: {type(e).__name__}: {e})")
        return None


def benchmark_case(
    name: str,
    size: Tuple[int, int],
    modes: List[Mode],
    args: BenchmarkSettings,
    device: torch.device,
    workdir: Path,
) -> Dict[str, Any]:
    """Prepare every mode of ``name`` at ``size``, check each against eager fp32, time them; one result dict."""
    torch.manual_seed(0)
    model = create_segmentation_model(name, num_classes=args.num_classes).eval()
    x = torch.randn(args.batch, 3, *size)
    runners: List[Runner] = []
    skipped: Dict[str, str] = {}
    for mode in modes:
        print(f"  preparing {mode.name} ...", flush=True)
        try:
            if mode.runtime == "onnxruntime":
                files = _calibration_batches(args, size) if mode.options.get("quantize") else None
                r = build_ort_runner(mode, model, x, device, args.threads, args.warmup, workdir, files)
            elif mode.runtime == "original":
                r = build_original_runner(mode, model, x, device, args.warmup)
            elif mode.runtime == "pt2e":
                files = _calibration_batches(args, size)
                batches = [_calibration_tensor(f, model, size) for f in files]
                r = build_pt2e_runner(mode, model, x, device, args.warmup, batches)
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
    op_profiles = {r.mode.name: r.op_profile() for r in runners if args.op_profile and r.op_profile is not None}
    gmacs = None if args.no_flops else count_gmacs(name, args.num_classes, size)
    rows = []
    eager = next((r for r in runners if r.mode.name == "eager"), None)
    eager_median = statistics.median(eager.times) if eager else None
    original = next((r for r in runners if r.mode.name == "original"), None)
    original_median = statistics.median(original.times) if original else None
    for r in runners:
        med = statistics.median(r.times)
        row = {
            "mode": r.mode.name,
            "runtime": r.mode.runtime,
            "description": r.mode.description,
            "reduced_precision": r.mode.reduced_precision,
            "median_ms": med * 1000,
            "p90_ms": percentile(r.times, 90) * 1000,
            "mean_ms": statistics.fmean(r.times) * 1000,
            "min_ms": min(r.times) * 1000,
            "fps": args.batch / med,
            "ratio_to_eager": med / eager_median if eager_median else None,
            "speedup_vs_eager": eager_median / med if eager_median else None,
            "ratio_to_original": med / original_median if original_median else None,
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
        "op_profiles": op_profiles,
    }
