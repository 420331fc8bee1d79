"""Export for deployment: ONNX (dynamic batch, height and width), ``torch.export`` programs and TorchScript.

Every export takes the model's **main output only** (never the auxiliary head's), BatchNorm
folded by default, and accepts any input size the model accepts (at least ``min_input_size``,
64 for segmentation models; sizes need not be multiples of 8). The model takes every resize
size from tensors, so traced/exported graphs stay valid for other sizes.

ONNX: the ``torch.export``-based exporter (``dynamo=True``) is tried first; if it fails, the
TorchScript-based exporter. :func:`verify_onnx` runs the file in onnxruntime and compares with
PyTorch at several sizes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.export import Dim

from ..errors import DDRNetError, InputError, require_extra
from ..io import atomic_path
from .fold import fold_batchnorm, max_relative_error

__all__ = [
    "EXPORT_OUTPUTS",
    "ONNX_EXPORTERS",
    "DEFAULT_VERIFY_SIZES",
    "SegmentationExportWrapper",
    "ExportResult",
    "export_onnx",
    "verify_onnx",
    "export_program",
    "export_torchscript",
]

EXPORT_OUTPUTS = ("logits", "labels", "probs")
ONNX_EXPORTERS = ("auto", "dynamo", "torchscript")
DEFAULT_VERIFY_SIZES: Tuple[Tuple[int, int], ...] = ((360, 480), (257, 321), (513, 513))
"""Sizes checked after export: CamVid's 360x480 and two sizes that are not multiples of 8."""

PathLike = Union[str, os.PathLike]


class SegmentationExportWrapper(nn.Module):
    """``images -> logits`` (main head only), or class ``labels`` (argmax) or softmax ``probs``."""

    def __init__(self, model: nn.Module, output: str = "logits") -> None:
        super().__init__()
        if output not in EXPORT_OUTPUTS:
            raise InputError(f"output must be one of {EXPORT_OUTPUTS}, got {output!r}")
        self.model = model
        self.output = output
        self._takes_return_aux = hasattr(model, "aux_head")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images, return_aux=False) if self._takes_return_aux else self.model(images)
        if isinstance(out, dict):
            out = out["out"]
        if self.output == "labels":
            return out.argmax(dim=1)
        if self.output == "probs":
            return out.softmax(dim=1)
        return out


@dataclass
class ExportResult:
    """What an export wrote and how."""

    path: Path
    format: str
    exporter: str
    seconds: float
    opset: Optional[int] = None
    folded: bool = True
    remaining_batchnorms: List[str] = field(default_factory=list)
    errors: Dict[str, float] = field(default_factory=dict)
    """Max relative error vs. PyTorch per verified size (``"NxHxW"``)."""
    fallback_reason: Optional[str] = None


class ExportError(DDRNetError, RuntimeError):
    """An exporter failed on the model (the message says which and why)."""


def _prepare(model: nn.Module, fold: bool, output: str) -> Tuple[SegmentationExportWrapper, List[str]]:
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be an nn.Module, got {type(model).__name__}")
    model = _eval_copy(model).float().to("cpu")
    if getattr(model, "aux_head", None) is not None:
        model.aux_head = None  # the deployed graph holds the main head only
    model = fold_batchnorm(model, inplace=True) if fold else model
    remaining = model.fold_report.remaining if fold else []
    return SegmentationExportWrapper(model, output).eval(), remaining


def _eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).eval()


def _example(model: nn.Module, size: Tuple[int, int], batch: int) -> torch.Tensor:
    in_chans = int(getattr(model, "in_chans", 3))
    min_size = int(getattr(model, "min_input_size", 1))
    h, w = int(size[0]), int(size[1])
    if min(h, w) < min_size:
        raise InputError(f"example size {h}x{w} is below the model's minimum input {min_size}")
    return torch.randn(batch, in_chans, h, w, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def _size_oblivious():
    """Treat symbolic sizes as never being 1 while tracing (no guards from layout checks on 1-pixel maps).

    Without it, ``torch.export`` specialises on whether DAPPM's pooled maps (1/128 ... 1/512 of the
    input) are one pixel wide, and refuses a dynamic height/width over the full range.
    """
    try:
        import torch.fx.experimental._config as fx_config

        with fx_config.patch(backed_size_oblivious=True):
            yield
    except (ImportError, AttributeError):  # older torch: no such switch
        yield


def _dynamic_shapes(min_size: int, dynamic_batch: bool):
    dims = {2: Dim("height", min=min_size), 3: Dim("width", min=min_size)}
    if dynamic_batch:
        dims[0] = Dim("batch", min=1)
    return {"images": dims}


def _require(*modules: str) -> None:
    """A clear ImportError naming the extra to install when an ONNX package is missing."""
    for name in modules:
        require_extra(name, "ONNX export/verification", "onnx")


def _onnx_metadata(path: Path, model: nn.Module, output: str) -> None:
    """Add the model config (classes, palette, normalisation) to the ONNX file's metadata."""
    import onnx

    proto = onnx.load(str(path))
    cfg = getattr(model, "config", None)
    meta = {"producer": "ddrnet_zoo", "output": output, "min_input_size": str(getattr(model, "min_input_size", 1))}
    if cfg is not None:
        meta["config"] = json.dumps(dict(cfg))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def export_onnx(
    model: nn.Module,
    path: PathLike,
    opset: int = 18,
    exporter: str = "auto",
    fold: bool = True,
    output: str = "logits",
    example_size: Tuple[int, int] = (512, 512),
    dynamic: bool = True,
    verify_sizes: Optional[Sequence[Tuple[int, int]]] = DEFAULT_VERIFY_SIZES,
    rtol: float = 1e-4,
) -> ExportResult:
    """Write ``model`` (main output) as ONNX with dynamic batch, height and width; returns an :class:`ExportResult`.

    Args:
        model: a segmentation model (eval-mode logits at the input size).
        path: the ``.onnx`` file (written atomically).
        opset: ONNX opset (18 by default; bilinear ``Resize`` with ``half_pixel`` coordinates).
        exporter: ``"dynamo"`` (``torch.onnx.export(dynamo=True)``), ``"torchscript"`` (the legacy
            exporter) or ``"auto"``: dynamo, falling back to TorchScript if it fails.
        fold: fold BatchNorm first (the graph then has no BN nodes except the pre-activation ones).
        output: ``"logits"`` (N, classes, H, W), ``"labels"`` (N, H, W int64) or ``"probs"``.
        example_size: (H, W) of the tracing example (any valid size works for every size).
        dynamic: dynamic batch/height/width (else fixed to the example).
        verify_sizes: (H, W) sizes to check in onnxruntime against PyTorch (float32, within
            ``rtol`` relative); ``None`` or empty skips the check (onnxruntime not needed then).
    """
    if exporter not in ONNX_EXPORTERS:
        raise InputError(f"exporter must be one of {ONNX_EXPORTERS}, got {exporter!r}")
    _require("onnx", "onnxscript")
    if verify_sizes:
        _require("onnxruntime")
    path = Path(path)
    wrapper, remaining = _prepare(model, fold, output)
    example = _example(model, example_size, batch=2 if dynamic else 1)
    min_size = int(getattr(model, "min_input_size", 1))
    start = time.perf_counter()
    used, reason = None, None
    with atomic_path(path) as tmp:
        if exporter in ("auto", "dynamo"):
            try:
                with _size_oblivious(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    program = torch.onnx.export(
                        wrapper,
                        (example,),
                        dynamo=True,
                        input_names=["images"],
                        output_names=[output],
                        dynamic_shapes=_dynamic_shapes(min_size, True) if dynamic else None,
                        opset_version=opset,
                        verbose=False,
                    )
                program.save(str(tmp))
                used = "dynamo"
            except Exception as e:  # the exporter raises many types
                if exporter == "dynamo":
                    raise ExportError(f"the dynamo ONNX exporter failed: {type(e).__name__}: {e}") from e
                reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if used is None:
            axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {}
            out_axes = {0: "batch", 1: "height", 2: "width"} if output == "labels" else axes
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapper,
                    (example,),
                    str(tmp),
                    dynamo=False,
                    input_names=["images"],
                    output_names=[output],
                    dynamic_axes={"images": axes, output: out_axes} if dynamic else None,
                    opset_version=opset,
                )
            used = "torchscript"
        _onnx_metadata(tmp, model, output)
    result = ExportResult(
        path=path,
        format="onnx",
        exporter=used,
        seconds=time.perf_counter() - start,
        opset=opset,
        folded=fold,
        remaining_batchnorms=remaining,
        fallback_reason=reason,
    )
    if verify_sizes:
        batch = 2 if dynamic else 1
        sizes = [s for s in verify_sizes] if dynamic else [tuple(example_size)]
        result.errors = verify_onnx(path, model, sizes, batch=batch, output=output, rtol=rtol)
    return result


def verify_onnx(
    path: PathLike,
    model: nn.Module,
    sizes: Sequence[Tuple[int, int]] = DEFAULT_VERIFY_SIZES,
    batch: int = 1,
    output: str = "logits",
    rtol: float = 1e-4,
    threads: Optional[int] = None,
) -> Dict[str, float]:
    """Run ``path`` in onnxruntime (CPU) and compare with ``model`` (PyTorch, float32) at ``sizes``.

    Returns ``{"NxHxW": max relative error}`` (``max|ort - torch| / max|torch|``; for ``labels``
    the fraction of differing pixels). Raises ``ValueError`` for a wrong output shape or a
    logits/probs error above ``rtol``.
    """
    _require("onnxruntime")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    wrapper = SegmentationExportWrapper(_eval_copy(model).float().to("cpu"), output).eval()
    errors: Dict[str, float] = {}
    for h, w in sizes:
        x = _example(model, (h, w), batch)
        with torch.no_grad():
            ref = wrapper(x)
        got = torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])
        if got.shape != ref.shape:
            raise InputError(
                f"{path}: output shape {tuple(got.shape)} at input {tuple(x.shape)}, expected {tuple(ref.shape)}"
            )
        err = float((got != ref).float().mean()) if output == "labels" else max_relative_error(got, ref)
        errors[f"{batch}x{h}x{w}"] = err
        if err > rtol and output != "labels":
            raise InputError(
                f"{path}: onnxruntime differs from PyTorch by {err:.2e} (relative) at {batch}x{h}x{w}, above {rtol:g}"
            )
    return errors


def export_program(
    model: nn.Module,
    path: PathLike,
    fold: bool = True,
    output: str = "logits",
    example_size: Tuple[int, int] = (512, 512),
    dynamic: bool = True,
) -> ExportResult:
    """Save a ``torch.export`` program (``.pt2``) with dynamic batch/height/width (``torch.export.load`` reads it)."""
    wrapper, remaining = _prepare(model, fold, output)
    example = _example(model, example_size, batch=2 if dynamic else 1)
    min_size = int(getattr(model, "min_input_size", 1))
    start = time.perf_counter()
    with _size_oblivious():
        program = torch.export.export(
            wrapper, (example,), dynamic_shapes=_dynamic_shapes(min_size, True) if dynamic else None
        )
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.export.save(program, f)
    return ExportResult(path, "torch.export", "torch.export", time.perf_counter() - start, None, fold, remaining)


def export_torchscript(
    model: nn.Module,
    path: PathLike,
    fold: bool = True,
    output: str = "logits",
    example_size: Tuple[int, int] = (512, 512),
) -> ExportResult:
    """Save a traced TorchScript module (``torch.jit.load`` reads it); valid for every input size."""
    wrapper, remaining = _prepare(model, fold, output)
    example = _example(model, example_size, batch=1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit is deprecated, still widely used
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.jit.save(traced, str(tmp))
    return ExportResult(path, "torchscript", "torch.jit.trace", time.perf_counter() - start, None, fold, remaining)
