"""ddrnet_zoo: DDRNet for timm — backbones, segmentation models, weights, training and deployment."""

from ._version import __version__
from .convert import load_model
from .hub import push_to_hub, save_pretrained
from .models import (
    MODEL_ARCHS,
    DDRNet,
    DDRNetArch,
    DDRNetSegmentation,
    DualResolutionFeatures,
    create_ddrnet,
    create_segmentation_model,
)

__all__ = [
    "MODEL_ARCHS",
    "DDRNet",
    "DDRNetArch",
    "DDRNetSegmentation",
    "DualResolutionFeatures",
    "create_ddrnet",
    "create_segmentation_model",
    "load_model",
    "push_to_hub",
    "save_pretrained",
    "__version__",
]
