"""ddrnet_zoo: DDRNet for timm — backbones, segmentation models, weights, training and deployment."""

from .models import (
    MODEL_ARCHS,
    DDRNet,
    DDRNetArch,
    DDRNetSegmentation,
    DualResolutionFeatures,
    SegmentationConfig,
    create_ddrnet,
    create_segmentation_model,
    create_segmentation_model_from_config,
)

__version__ = "0.1.0"

__all__ = [
    "MODEL_ARCHS",
    "DDRNet",
    "DDRNetArch",
    "DDRNetSegmentation",
    "DualResolutionFeatures",
    "create_ddrnet",
    "SegmentationConfig",
    "create_segmentation_model",
    "create_segmentation_model_from_config",
    "__version__",
]
