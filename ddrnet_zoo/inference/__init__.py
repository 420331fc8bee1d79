"""Inference: test-time augmentation, prediction, deployment (BN folding, compile, CUDA graphs) and graph export.

Modules by job: :mod:`.tta` (multi-scale/flip logits), :mod:`.fold` (BatchNorm folding),
:mod:`.runtime` (the fast paths), :mod:`.graph_export` (ONNX, ``torch.export``, TorchScript),
:mod:`.benchmark` / :mod:`.benchmark_report` (timing every way of running a model, its tables),
:mod:`.files` (inputs and output names), :mod:`.onnx_model` (ONNX files in onnxruntime),
:mod:`.quantize` (INT8 quantization of ONNX exports), :mod:`.video` (video in and out, PyAV),
:mod:`.colors` (palettes, masks, overlays), :mod:`.writer` (background output writing) and
:mod:`.predict` (the :class:`Predictor`). Image decoding is
:func:`ddrnet_zoo.data.read_image` (and its ``ImageReadError``); devices and precisions are :mod:`ddrnet_zoo.device`.
"""

from ..device import PRECISIONS, precision_dtype, resolve_device
from .colors import PaletteError, colorize, overlay, resolve_palette
from .files import find_images
from .fold import FoldReport, batchnorm_names, fold_batchnorm, max_relative_error
from .graph_export import export_onnx, export_program, export_torchscript, verify_onnx
from .onnx_model import OnnxSegmentationModel, load_onnx_model
from .predict import Predictor, VideoSummary
from .quantize import Agreement, calibration_images, compare_onnx, quantize_onnx
from .runtime import InferenceModel, InferenceOptions, optimize_for_inference
from .tta import PAPER_SCALES, segment_logits
from .video import VideoError, probe_video, read_frames

__all__ = [
    "PAPER_SCALES",
    "segment_logits",
    "FoldReport",
    "batchnorm_names",
    "fold_batchnorm",
    "max_relative_error",
    "InferenceModel",
    "InferenceOptions",
    "optimize_for_inference",
    "PRECISIONS",
    "precision_dtype",
    "resolve_device",
    "Predictor",
    "PaletteError",
    "colorize",
    "find_images",
    "overlay",
    "resolve_palette",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "verify_onnx",
    "OnnxSegmentationModel",
    "load_onnx_model",
    "Agreement",
    "calibration_images",
    "compare_onnx",
    "quantize_onnx",
    "VideoSummary",
    "VideoError",
    "probe_video",
    "read_frames",
]
