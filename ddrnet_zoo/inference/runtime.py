"""Fast inference: BN folding, channels_last, reduced precision, ``torch.compile`` and CUDA graphs.

:func:`optimize_for_inference` turns a segmentation model into an :class:`InferenceModel`: a module
with the model's eval forward (``images -> logits`` at the input size) that applies the chosen
optimisations. Each one is selectable, so the benchmark can compare them side by side::

    fast = optimize_for_inference(model, channels_last=True, compile="default")   # CPU: freezing on
    fast = optimize_for_inference(model, device="cuda", precision="fp16", cuda_graphs=True)
    logits = fast(images)   # (N, C, H, W) float32 in, (N, classes, H, W) out

On CPU, ``torch.compile`` (inductor) is used with *freezing* by default: weights become constants,
convolutions are pre-packed for oneDNN and fused with their bias/ReLU/sum, which is what makes the
compiled model faster than eager there.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..device import DeviceError, autocast_dtype, canonical_precision, precision_dtype, resolve_device
from ..errors import InputError
from .fold import fold_batchnorm

__all__ = ["COMPILE_MODES", "InferenceOptions", "InferenceModel", "CUDAGraphRunner", "optimize_for_inference"]
# PRECISIONS, resolve_device and precision_dtype are re-exported from ddrnet_zoo.device (one vocabulary)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class InferenceOptions:
    """What :func:`optimize_for_inference` does (every field is independent)."""

    device: str = "cpu"
    fold: bool = True
    """Fold BatchNorm into the preceding convolutions (:func:`~ddrnet_zoo.inference.fold_batchnorm`)."""
    fold_head_input: bool = False
    """Also fold the head's input BN backwards (exact for the logits; see ``fold_batchnorm``)."""
    channels_last: bool = False
    """NHWC memory format for weights and inputs (faster convolutions with oneDNN / cuDNN)."""
    precision: str = "fp32"
    """``fp32``, ``fp16`` or ``bf16`` (:data:`ddrnet_zoo.device.PRECISIONS`; aliases such as ``none`` accepted)."""
    half_weights: bool = False
    """With fp16/bf16: convert weights and inputs to that dtype instead of using autocast."""
    compile: Optional[str] = None
    """``None`` (eager) or a ``torch.compile`` mode: ``default``, ``max-autotune-no-cudagraphs``, ..."""
    compile_backend: Union[str, Callable] = "inductor"
    """``torch.compile`` backend (a name or a callable)."""
    freezing: Optional[bool] = None
    """Inductor freezing (constant weights, pre-packed convs); default: on for CPU, off for CUDA."""
    dynamic: Optional[bool] = None
    """``torch.compile(dynamic=...)``: ``False`` specialises on each input shape (fastest for fixed sizes)."""
    cuda_graphs: bool = False
    """Capture one CUDA graph per input shape and replay it (CUDA only; shapes must repeat)."""

    def __post_init__(self) -> None:
        try:
            self.precision = canonical_precision(self.precision)
        except DeviceError as e:
            raise InputError(str(e)) from None
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise InputError(f"compile must be None or one of {COMPILE_MODES}, got {self.compile!r}")
        if self.half_weights and self.precision == "fp32":
            raise InputError("half_weights needs precision='fp16' or 'bf16'")

    def describe(self) -> str:
        """A short label such as ``folded+channels_last+compiled(default)+bf16-autocast``."""
        parts = ["folded" if self.fold else "unfolded"]
        if self.fold_head_input:
            parts.append("head-input-folded")
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append(f"compiled({self.compile}{', freezing' if self._freezing() else ''})")
        if self.precision != "fp32":
            parts.append(f"{self.precision}-{'weights' if self.half_weights else 'autocast'}")
        if self.cuda_graphs:
            parts.append("cuda-graphs")
        return "+".join(parts)

    def _freezing(self) -> bool:
        return (torch.device(self.device).type == "cpu") if self.freezing is None else self.freezing

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class CUDAGraphRunner:
    """Replays one captured CUDA graph per (shape, dtype) of the input: no launch overhead at batch 1.

    The first call with a new shape warms ``fn`` up on a side stream and captures it. Outputs are
    copied out of the graph's static buffer unless ``clone_outputs=False`` (then the next call
    overwrites them).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], warmup: int = 3, clone_outputs: bool = True):
        self.fn = fn
        self.warmup = warmup
        self.clone_outputs = clone_outputs
        self.graphs: Dict[Tuple, Tuple[Any, torch.Tensor, torch.Tensor]] = {}

    def _capture(self, x: torch.Tensor):
        static_in = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                self.fn(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.fn(static_in)
        return graph, static_in, static_out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cuda":
            raise InputError("CUDA graphs need a CUDA input")
        key = (tuple(x.shape), x.dtype, x.stride())
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone() if self.clone_outputs else static_out


class InferenceModel(nn.Module):
    """A prepared segmentation model: ``forward(images) -> logits`` with the chosen optimisations.

    Inputs may be any float tensor (N, C, H, W) on any device; they are moved to the model's
    device, memory format and dtype. Outputs are logits at the input size, in the compute dtype
    (float32 unless ``precision`` is fp16/bf16). Runs under ``torch.no_grad``.
    Attributes: ``model`` (the folded/converted module), ``options``, ``fold_report`` (or None),
    ``compile_seconds`` (time of the first compiled call per shape, filled by :meth:`warmup`).
    """

    def __init__(self, model: nn.Module, options: InferenceOptions) -> None:
        super().__init__()
        self.model = model
        self.options = options
        self.device = torch.device(options.device)
        self.dtype = precision_dtype(options.precision)
        self.fold_report = getattr(model, "fold_report", None)
        self.compile_seconds: Dict[Tuple[int, ...], float] = {}
        self._fn: Callable[[torch.Tensor], torch.Tensor] = self._eager
        self._compile_context: Callable[[], Any] = contextlib.nullcontext
        if options.compile:
            kwargs: Dict[str, Any] = {"backend": options.compile_backend, "dynamic": options.dynamic}
            if options.compile_backend == "inductor":
                kwargs["options"] = dict(torch._inductor.list_mode_options(options.compile))
            if options._freezing():
                # read from the global config while dynamo traces (torch.compile's options= does not reach
                # it), so it is set around every call: compilation happens lazily, per new input shape
                import torch._inductor.config as inductor_config

                self._compile_context = lambda: inductor_config.patch(freezing=True)
            self._fn = torch.compile(self._eager, **kwargs)
        self._graphs = CUDAGraphRunner(self._fn) if options.cuda_graphs else None

    # attributes the rest of ddrnet_zoo reads from segmentation models
    @property
    def min_input_size(self) -> int:
        return getattr(self.model, "min_input_size", 1)

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def dataset(self) -> Optional[Dict[str, Any]]:
        """The model's dataset description (class names, palette, mean/std), if it has one."""
        return getattr(self.model, "dataset", None)

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["out"] if isinstance(out, dict) else out

    def _autocast(self):
        dtype = autocast_dtype(self.options.precision)
        if dtype is None or self.options.half_weights:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Move ``x`` to the model's device, memory format and (with ``half_weights``) dtype."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"images must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
        x = x.to(self.device, non_blocking=True)
        if self.options.half_weights:
            x = x.to(self.dtype)
        if self.options.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare_input(x)
        with torch.no_grad(), self._autocast(), self._compile_context():
            if self._graphs is not None:
                return self._graphs(x)
            return self._fn(x)

    def warmup(self, x: torch.Tensor, iters: int = 1) -> float:
        """Run ``iters`` calls (compiling / capturing for this shape); returns the seconds of the first."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        self(x)
        sync()
        first = time.perf_counter() - t0
        for _ in range(iters - 1):
            self(x)
        sync()
        if self.options.compile:
            self.compile_seconds[tuple(x.shape)] = first
        return first


def optimize_for_inference(
    model: nn.Module,
    device: Union[str, torch.device] = "cpu",
    fold: bool = True,
    fold_head_input: bool = False,
    channels_last: bool = False,
    precision: str = "fp32",
    half_weights: bool = False,
    compile: Optional[Union[str, bool]] = None,
    compile_backend: Union[str, Callable] = "inductor",
    freezing: Optional[bool] = None,
    dynamic: Optional[bool] = None,
    cuda_graphs: bool = False,
) -> InferenceModel:
    """Prepare ``model`` for fast inference (see :class:`InferenceOptions` for each option).

    ``model`` itself is not modified (folding works on a copy; without folding the model is
    copied too, so that moving it or changing its memory format does not affect the caller).
    ``compile=True`` means mode ``"default"``. CUDA graphs need ``device="cuda"``.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(model, InferenceModel):
        raise InputError("model is already an InferenceModel; pass its .model or the original model")
    dev = resolve_device(device)
    if compile is True:
        compile = "default"
    options = InferenceOptions(
        device=str(dev),
        fold=fold,
        fold_head_input=fold_head_input,
        channels_last=channels_last,
        precision=precision,
        half_weights=half_weights,
        compile=compile or None,
        compile_backend=compile_backend,
        freezing=freezing,
        dynamic=dynamic,
        cuda_graphs=cuda_graphs,
    )
    if cuda_graphs and dev.type != "cuda":
        raise InputError("cuda_graphs=True needs device='cuda'")
    if cuda_graphs and compile in ("reduce-overhead", "max-autotune"):
        raise InputError(
            f"compile mode {compile!r} already uses CUDA graphs; with cuda_graphs=True use "
            "'default' or 'max-autotune-no-cudagraphs'"
        )
    if fold:
        prepared = fold_batchnorm(model, fold_head_input=fold_head_input)
    else:
        if fold_head_input:
            raise InputError("fold_head_input needs fold=True")
        prepared = copy.deepcopy(model).eval()
    prepared = prepared.to(dev)
    if half_weights:
        prepared = prepared.to(precision_dtype(precision))
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    for p in prepared.parameters():
        p.requires_grad_(False)
    return InferenceModel(prepared, options).eval()
