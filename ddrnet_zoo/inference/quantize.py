"""Post-training static INT8 quantization of an ONNX export, calibrated on real images (onnxruntime's tools).

::

    sources = calibration_images("data/camvid/train", count=64)
    result = quantize_onnx("model.onnx", "model.int8.onnx", sources, mean, std)
    agreement = compare_onnx("model.onnx", "model.int8.onnx", verify_images, mean, std)

The float32 graph is pre-processed (``onnxruntime.quantization.quant_pre_process``: shape inference
and graph optimisation), then quantized statically in the QDQ format with ``quantize_static``:
per-channel symmetric int8 weights, uint8 activations whose ranges come from running the
calibration images (``MinMax``). The classifier (the last convolution) and everything after it
(the bilinear upsampling of the logits to the input size) stay float32: they decide the argmax at
every pixel and take little time. onnxruntime fuses the QDQ pairs into integer kernels
(``QLinearConv`` and friends; VNNI where the CPU has it) when the session loads.

Why onnxruntime rather than torch's PT2E flow (torchao's ``X86InductorQuantizer``): measured on
DDRNet-23-slim at 1x3x512x1024 (docs/inference.md), the onnxruntime INT8 graph runs faster, needs no
C++ compiler and no minute-long compilation per input size, keeps dynamic batch/height/width, and is
one portable file that ``ddrnet-predict`` and ``ddrnet-eval`` run like the float export.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import read_image, unreadable_images
from ..data.transforms import normalize
from ..errors import DDRNetError, InputError
from ..io import atomic_path
from .files import IMAGE_EXTENSIONS, find_images
from .onnx_model import require

__all__ = [
    "QUANTIZATION_MODES",
    "CALIBRATION_METHODS",
    "DEFAULT_CALIBRATION_COUNT",
    "QuantizationError",
    "Agreement",
    "QuantizationResult",
    "calibration_images",
    "image_tensor",
    "comparison_images",
    "float_tail",
    "quantize_onnx",
    "compare_onnx",
]

QUANTIZATION_MODES = ("int8",)
DEFAULT_CALIBRATION_COUNT = 64
"""Calibration images used by default (evenly spaced over the folder's sorted images)."""
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")

PathLike = Union[str, os.PathLike]


class QuantizationError(DDRNetError, RuntimeError):
    """Quantization failed on this graph (the message says where)."""


@dataclass
class Agreement:
    """How closely a quantized graph follows its float32 original on real images."""

    images: int
    pixel_agreement: float
    """Fraction of pixels whose argmax class is the same."""
    max_abs_error: float
    """Largest absolute logit difference over all images, pixels and classes."""
    max_abs_logit: float
    """Largest absolute float32 logit (for scale)."""
    mean_abs_error: float

    def summary(self) -> str:
        """One line: ``argmax agrees on 99.21% of pixels; max logit error 0.84 (of |logit| up to 23.1)``."""
        if self.max_abs_logit == 0:  # a labels graph: no logits to compare
            return f"labels agree on {self.pixel_agreement:.2%} of pixels"
        return (
            f"argmax agrees on {self.pixel_agreement:.2%} of pixels; max logit error "
            f"{self.max_abs_error:.3g} (mean {self.mean_abs_error:.3g}; |logits| up to {self.max_abs_logit:.3g})"
        )


@dataclass
class QuantizationResult:
    """What :func:`quantize_onnx` wrote and how."""

    path: Path
    calibration: List[Path]
    float_nodes: List[str]
    method: str
    seconds: float
    details: Dict[str, Any] = field(default_factory=dict)


def calibration_images(folder: PathLike, count: int = DEFAULT_CALIBRATION_COUNT) -> List[Path]:
    """``count`` images evenly spaced over the sorted images of ``folder`` (searched recursively).

    Raises :class:`~ddrnet_zoo.errors.InputError` for a missing or empty folder, a folder without
    images, or unreadable images (all named, before any work starts).
    """
    folder = Path(folder)
    hint = "give a folder of representative images (e.g. training frames)"
    if count < 1:
        raise InputError(f"--calibration-count must be at least 1, got {count}")
    if not folder.exists():
        raise InputError(f"calibration folder {folder} does not exist; {hint}")
    if not folder.is_dir():
        raise InputError(f"calibration source {folder} is not a folder; {hint}")
    try:
        found = [s.path for s in find_images(folder)]
    except FileNotFoundError:
        what = "is empty" if not any(folder.iterdir()) else f"holds no images ({', '.join(IMAGE_EXTENSIONS)})"
        raise InputError(f"calibration folder {folder} {what}; {hint}") from None
    picks = sorted({int(i) for i in np.linspace(0, len(found) - 1, min(count, len(found))).round()})
    chosen = [found[i] for i in picks]
    bad = unreadable_images(chosen)
    if bad:
        raise InputError(f"{len(bad)} calibration images cannot be read: {'; '.join(r for _, r in bad[:3])}")
    return chosen


def comparison_images(folder: PathLike, calibration: Sequence[Path], count: int) -> List[Path]:
    """Up to ``count`` images of ``folder`` that are not in ``calibration`` (evenly spaced); the calibration
    images themselves when the folder has no others."""
    if count < 1:
        return []
    used = set(calibration)
    rest = [s.path for s in find_images(folder) if s.path not in used] or list(calibration)
    picks = sorted({int(i) for i in np.linspace(0, len(rest) - 1, min(count, len(rest))).round()})
    chosen = [rest[i] for i in picks]
    bad = unreadable_images(chosen)
    if bad:
        raise InputError(f"{len(bad)} images to compare on cannot be read: {'; '.join(r for _, r in bad[:3])}")
    return chosen


def image_tensor(
    path: PathLike, mean: Sequence[float], std: Sequence[float], size: Optional[Tuple[int, int]] = None
) -> np.ndarray:
    """The image file ``path`` as model input: (1, 3, H, W) float32, normalised (read as ``ddrnet-predict`` reads),
    resized (bilinear) to ``size`` when given (for graphs with a fixed input size)."""
    image = torch.from_numpy(read_image(path, exif_transpose=True)).permute(2, 0, 1)[None]
    x = normalize(image, mean, std)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(x.numpy())


def float_tail(model: Any) -> List[str]:
    """Names of the nodes from the graph's output back to the last convolution (the classifier), inclusive.

    ``model`` is an ``onnx.ModelProto``. For a DDRNet export these are the classifier ``Conv`` and
    the ``Resize`` of the logits to the input size (and the ``ArgMax``/``Softmax`` of a labels or
    probs export): what :func:`quantize_onnx` keeps in float32.
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    initializers = {t.name for t in model.graph.initializer}
    names: List[str] = []
    frontier = [o.name for o in model.graph.output]
    seen = set()
    while frontier:
        node = producers.get(frontier.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        names.append(node.name)
        if node.op_type == "Conv":
            continue  # the classifier: stop here
        # follow data inputs (not weights or constants/shape computations)
        frontier.extend(
            i
            for i in node.input
            if i
            and i not in initializers
            and producers.get(i) is not None
            and producers[i].op_type not in ("Constant", "Shape", "Concat", "Cast", "Slice", "Gather")
        )
    if not any(producers.get(o.name) is not None for o in model.graph.output) or not names:
        raise QuantizationError("cannot find the classifier convolution at the end of the graph")
    return names


def _reader(paths: Sequence[Path], input_name: str, mean, std, size: Optional[Tuple[int, int]], progress: Any):
    """An onnxruntime ``CalibrationDataReader`` over ``paths`` (one image per batch, read when asked for)."""
    quant = require("onnxruntime.quantization", "INT8 quantization")

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        path = next(self.paths, None)
        if path is None:
            return None
        if progress is not None:
            progress(path)
        return {input_name: image_tensor(path, mean, std, size)}

    def rewind(self) -> None:
        self.paths = iter(paths)

    cls = type("ImageCalibrationReader", (quant.CalibrationDataReader,), {"get_next": get_next, "rewind": rewind})
    reader = cls()
    reader.rewind()
    return reader


class _PerChannelAxisFilter(logging.Filter):
    """Drops onnxruntime's 'Axis 1 is out-of-range for weight ... with rank 1' lines.

    They are printed once per 1-D weight (the scales of the BatchNorms that cannot be folded) when
    weights are quantized per channel; onnxruntime then gives that weight one scale, which is what a
    1-D tensor needs. Nothing for the user to act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Axis ") or "is out-of-range for weight" not in record.getMessage()


@contextlib.contextmanager
def _without_per_channel_axis_warnings() -> Iterator[None]:
    """The root logger without :class:`_PerChannelAxisFilter`'s lines, for the length of the block."""
    noise = _PerChannelAxisFilter()
    root = logging.getLogger()
    root.addFilter(noise)
    try:
        yield
    finally:
        root.removeFilter(noise)


def quantize_onnx(
    fp32_path: PathLike,
    int8_path: PathLike,
    calibration: Sequence[PathLike],
    mean: Sequence[float],
    std: Sequence[float],
    method: str = "minmax",
    per_channel: bool = True,
    keep_float_tail: bool = True,
    size: Optional[Tuple[int, int]] = None,
    progress: Any = None,
) -> QuantizationResult:
    """Quantize the float32 ONNX file ``fp32_path`` to INT8 (QDQ) at ``int8_path``, written atomically.

    Args:
        calibration: image files whose activations set the quantization ranges (read as
            ``ddrnet-predict`` reads them, normalised with ``mean``/``std``).
        method: ``minmax`` (default), ``percentile`` or ``entropy`` (onnxruntime's calibrators;
            the last two hold every activation of every calibration image in memory).
        per_channel: one weight scale per output channel (else per tensor).
        keep_float_tail: keep the classifier and the final upsampling in float32 (:func:`float_tail`).
        size: resize the calibration images to this (H, W) (for a graph with a fixed input size).
        progress: called with each calibration image's path as it is read.

    The metadata of the float file (config, normalisation, minimum input size) is copied, with a
    ``quantization`` entry describing how the file was made.
    """
    onnx = require("onnx", "INT8 quantization")
    quant = require("onnxruntime.quantization", "INT8 quantization")
    shape_inference = require("onnxruntime.quantization.shape_inference", "INT8 quantization")
    if method not in CALIBRATION_METHODS:
        raise InputError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    paths = [Path(p) for p in calibration]
    if not paths:
        raise InputError("quantization needs at least one calibration image")
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    source = onnx.load(str(fp32_path))
    meta = {p.key: p.value for p in source.metadata_props}
    input_name = source.graph.input[0].name
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ddrnet_quant_") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            shape_inference.quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        except Exception as e:  # onnxruntime raises plain exceptions from its graph tools
            raise QuantizationError(f"pre-processing {fp32_path} for quantization failed: {e}") from e
        prepared = onnx.load(str(pre))
        tail = float_tail(prepared) if keep_float_tail else []
        calibrate = {
            "minmax": quant.CalibrationMethod.MinMax,
            "percentile": quant.CalibrationMethod.Percentile,
            "entropy": quant.CalibrationMethod.Entropy,
        }[method]
        out = Path(tmp) / "int8.onnx"
        with _without_per_channel_axis_warnings():
            quant.quantize_static(
                str(pre),
                str(out),
                _reader(paths, input_name, mean, std, size, progress),
                quant_format=quant.QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=quant.QuantType.QUInt8,
                weight_type=quant.QuantType.QInt8,
                nodes_to_exclude=tail,
                calibrate_method=calibrate,
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        seconds = time.perf_counter() - start
        model = onnx.load(str(out))
        details = {
            "format": "QDQ",
            "weights": f"int8 ({'per channel' if per_channel else 'per tensor'}, symmetric)",
            "activations": "uint8 (per tensor, asymmetric)",
            "calibration_method": method,
            "calibration_images": len(paths),
            "float_nodes": [n.op_type for n in prepared.graph.node if n.name in set(tail)],
            "tool": f"onnxruntime {require('onnxruntime', 'INT8 quantization').__version__} quantize_static",
        }
        meta["quantization"] = json.dumps(details)
        del model.metadata_props[:]
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        with atomic_path(int8_path) as target:
            onnx.save(model, str(target))
    return QuantizationResult(int8_path, paths, tail, method, seconds, details)


def _session(path: Path, threads: Optional[int]):
    ort = require("onnxruntime", "comparing ONNX files")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _outputs(session, images: Sequence[Path], mean, std, size) -> Iterator[np.ndarray]:
    name = session.get_inputs()[0].name
    for path in images:
        yield session.run(None, {name: image_tensor(path, mean, std, size)})[0]


def compare_onnx(
    reference: PathLike,
    candidate: PathLike,
    images: Sequence[PathLike],
    mean: Sequence[float],
    std: Sequence[float],
    threads: Optional[int] = None,
    size: Optional[Tuple[int, int]] = None,
) -> Agreement:
    """Run two ONNX files (float32 and INT8) on ``images`` (resized to ``size`` when given): argmax pixel
    agreement and logit errors (labels outputs: the agreement only)."""
    images = [Path(p) for p in images]
    if not images:
        raise InputError("comparing two ONNX files needs at least one image")
    ref_s, cand_s = _session(Path(reference), threads), _session(Path(candidate), threads)
    same = total = 0
    max_err = max_logit = err_sum = 0.0
    n_values = 0
    for ref, got in zip(_outputs(ref_s, images, mean, std, size), _outputs(cand_s, images, mean, std, size)):
        if ref.ndim == 4:  # logits / probs: (N, C, H, W)
            diff = np.abs(ref.astype(np.float64) - got)
            max_err = max(max_err, float(diff.max()))
            err_sum += float(diff.sum())
            n_values += diff.size
            max_logit = max(max_logit, float(np.abs(ref).max()))
            ref, got = ref.argmax(1), got.argmax(1)
        same += int((ref == got).sum())
        total += ref.size
    return Agreement(len(images), same / total, max_err, max_logit, err_sum / max(n_values, 1))
