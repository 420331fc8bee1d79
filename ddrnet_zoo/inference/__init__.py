"""Inference: test-time augmentation, prediction, deployment (BN folding, compile, CUDA graphs) and export."""

from .export import export_onnx, export_program, export_torchscript, verify_onnx
from .fold import FoldReport, batchnorm_names, fold_batchnorm, max_relative_error
from .predict import (
    ImageReadError,
    PaletteError,
    Predictor,
    colorize,
    find_images,
    load_segmentation_model,
    overlay,
    read_image,
    resolve_palette,
)
from .runtime import InferenceModel, InferenceOptions, optimize_for_inference
from .tta import PAPER_SCALES, segment_logits

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
    "Predictor",
    "ImageReadError",
    "PaletteError",
    "colorize",
    "find_images",
    "load_segmentation_model",
    "overlay",
    "read_image",
    "resolve_palette",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "verify_onnx",
]
