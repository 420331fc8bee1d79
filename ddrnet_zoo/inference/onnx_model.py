"""ONNX files (float32 or INT8) run by onnxruntime with the interface of a prepared PyTorch model.

:class:`OnnxSegmentationModel` is what :class:`~ddrnet_zoo.inference.Predictor` (``ddrnet-predict``)
and the evaluator (``ddrnet-eval``) call in place of an :class:`~ddrnet_zoo.inference.InferenceModel`:
``forward(images) -> logits`` on torch tensors, with ``config``, ``num_classes`` and
``min_input_size`` read from the file's metadata (written by :func:`~ddrnet_zoo.inference.export_onnx`)::

    model = load_onnx_model("ddrnet23_slim.int8.onnx")
    logits = model(images)   # (N, 3, H, W) normalised float32 -> (N, classes, H, W) float32

onnxruntime is the ``onnx`` extra (``pip install 'ddrnet_zoo[onnx]'``); it is imported when a file is opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from torch import nn

from ..device import DeviceError
from ..errors import InputError, require_extra
from ..models import read_model_config
from ..models.segmentation import dataset_description

__all__ = [
    "ONNX_SUFFIXES",
    "OnnxOptions",
    "OnnxSegmentationModel",
    "is_onnx_file",
    "load_onnx_model",
    "require",
    "session_options",
]

ONNX_SUFFIXES = (".onnx",)
PathLike = Union[str, os.PathLike]


def require(module: str, what: str, extra: str = "onnx") -> Any:
    """Import the optional ``module`` (:func:`~ddrnet_zoo.errors.require_extra`; by default the ``onnx`` extra)."""
    return require_extra(module, what, extra)


def is_onnx_file(source: PathLike) -> bool:
    """Whether ``source`` names an ONNX file (by its suffix)."""
    return Path(str(source)).suffix.lower() in ONNX_SUFFIXES


def session_options(threads: Optional[int] = None, profile_prefix: Optional[str] = None) -> Any:
    """The ``onnxruntime.SessionOptions`` every session that runs a model here uses.

    All graph optimisations; ``threads`` intra-op threads (default: onnxruntime's, one per physical core)
    and one inter-op thread; no spin-waiting between runs: idle threads would spin on the cores that
    decode, write and encode frames, or that the next benchmarked mode runs on (measured on 2 cores: INT8
    video 18.2 frames/s spinning, 26.9 without; the INT8 session 34 ms alone, 61 ms right after a spinning
    float32 session; docs/inference.md). ``profile_prefix`` turns on onnxruntime's profiler.
    """
    ort = require("onnxruntime", "running an ONNX file")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return opts


class OnnxOptions:
    """What runs the file: the counterpart of :class:`~ddrnet_zoo.inference.InferenceOptions` (``describe()``)."""

    def __init__(self, version: str, provider: str, precision: str, threads: Optional[int]) -> None:
        self.version = version
        self.provider = provider
        self.precision = precision
        self.threads = threads

    def describe(self) -> str:
        """A short label such as ``onnxruntime 1.32 (CPUExecutionProvider, int8)``."""
        threads = f", {self.threads} threads" if self.threads else ""
        return f"onnxruntime {self.version} ({self.provider}, {self.precision}{threads})"


class OnnxSegmentationModel(nn.Module):
    """An ONNX segmentation model in an onnxruntime session: ``forward(images) -> logits`` on torch tensors.

    Args:
        path: the ``.onnx`` file (``images`` (N, 3, H, W) float32 in; ``logits`` or ``probs`` out).
        device: ``"cpu"`` (CPU execution provider) or ``"cuda"`` (needs onnxruntime-gpu).
        threads: intra-op threads (default: onnxruntime's, one per physical core).

    Attributes: ``config`` (the model's ``config.json`` arguments stored at export, or None), ``dataset``
    and ``metadata`` (as a :class:`~ddrnet_zoo.models.DDRNetSegmentation`'s; defaults without a config),
    ``num_classes``, ``min_input_size``, ``precision`` (``"fp32"`` or ``"int8"``), ``options``.
    The module has no parameters; ``.to()`` and ``.eval()`` are accepted and change nothing.
    """

    def __init__(self, path: PathLike, device: Union[str, torch.device] = "cpu", threads: Optional[int] = None):
        super().__init__()
        ort = require("onnxruntime", "running an ONNX file")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such ONNX file: {self.path}")
        self.device = torch.device(device)
        if self.device.type not in ("cpu", "cuda"):
            raise DeviceError(f"onnxruntime runs on cpu or cuda, not {self.device}")
        provider = "CUDAExecutionProvider" if self.device.type == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise DeviceError(
                f"this onnxruntime has no {provider}; install onnxruntime-gpu for CUDA, or pass --device cpu"
            )
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads), providers=[provider])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise InputError(f"{self.path}: onnxruntime cannot load it as a model ({str(e).splitlines()[0]})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            found = [(i.name, i.shape, i.type) for i in inputs]
            raise InputError(f"{self.path}: expected one float input (N, C, H, W), got {found}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        meta: Dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        self.file_metadata = meta
        kind = meta.get("output", self.output_name)
        if kind == "labels" or len(outputs[0].shape) != 4:
            raise InputError(
                f"{self.path} outputs class labels (exported with --output labels); prediction and evaluation "
                "need logits: export again without --output labels"
            )
        try:
            self.config: Optional[Dict[str, Any]] = (
                read_model_config(json.loads(meta["config"])) if "config" in meta else None
            )
        except ValueError as e:  # bad JSON or an unreadable config
            raise InputError(f"{self.path}: unreadable model config in its metadata: {e}") from None
        classes = outputs[0].shape[1]
        if self.config is not None:
            self.num_classes = int(self.config["num_classes"])
        elif isinstance(classes, int):
            self.num_classes = classes
        else:
            raise InputError(f"{self.path}: the number of classes is neither in its metadata nor in its output shape")
        self.min_input_size = int(meta.get("min_input_size", 64 if meta.get("producer") == "ddrnet_zoo" else 1))
        self.in_chans = inputs[0].shape[1] if isinstance(inputs[0].shape[1], int) else 3
        config = self.config or {}
        self.dataset = dataset_description(config.get("dataset"), self.num_classes, self.in_chans)
        self.metadata: Dict[str, Any] = dict(config.get("metadata") or {})
        self.precision = "int8" if "quantization" in meta else "fp32"
        self.quantization: Dict[str, Any] = json.loads(meta["quantization"]) if "quantization" in meta else {}
        self.options = OnnxOptions(".".join(ort.__version__.split(".")[:2]), provider, self.precision, threads)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise InputError(f"images must be a (N, C, H, W) tensor, got {type(images).__name__}")
        if min(images.shape[-2:]) < self.min_input_size:
            raise InputError(
                f"input {tuple(images.shape)} is below the model's minimum input {self.min_input_size} pixels"
            )
        x = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        return torch.from_numpy(out)

    def extra_repr(self) -> str:
        return f"{self.path}, {self.options.describe()}"


def load_onnx_model(
    path: PathLike, device: Union[str, torch.device] = "cpu", threads: Optional[int] = None
) -> OnnxSegmentationModel:
    """Open ``path`` in onnxruntime (see :class:`OnnxSegmentationModel`)."""
    return OnnxSegmentationModel(path, device=device, threads=threads)
