"""DDRNet models: timm backbones and segmentation models."""

from .config import SegmentationConfig
from .context import CONTEXT_MODULES, DAPPM, PPM, ContextProjection, build_context
from .ddrnet import (
    MODEL_ARCHS,
    DDRNet,
    DDRNetArch,
    DualResolutionFeatureNet,
    DualResolutionFeatures,
    create_ddrnet,
)
from .segmentation import (
    AUX_LOSS_WEIGHT,
    DDRNetSegmentation,
    SegmentationHead,
    create_segmentation_model,
    create_segmentation_model_from_config,
)

__all__ = [
    "AUX_LOSS_WEIGHT",
    "CONTEXT_MODULES",
    "DAPPM",
    "PPM",
    "ContextProjection",
    "build_context",
    "DDRNetSegmentation",
    "SegmentationHead",
    "create_segmentation_model",
    "create_segmentation_model_from_config",
    "SegmentationConfig",
    "MODEL_ARCHS",
    "DDRNet",
    "DDRNetArch",
    "DualResolutionFeatureNet",
    "DualResolutionFeatures",
    "create_ddrnet",
]
