"""DDRNet models: timm backbones and segmentation models."""

from ..constants import AUX_LOSS_WEIGHT
from .context import CONTEXT_MODULES, DAPPM, PPM, ContextProjection, build_context
from .counting import count_flops, count_params
from .ddrnet import (
    MODEL_ARCHS,
    DDRNet,
    DDRNetArch,
    DualResolutionFeatureNet,
    DualResolutionFeatures,
    checkpoint_filter_fn,
    create_ddrnet,
)
from .pretrained import load_state_dict_strict
from .segmentation import (
    DDRNetSegmentation,
    SegmentationHead,
    create_segmentation_model,
    read_model_config,
)
from .spec import infer_model_args, model_from_args

__all__ = [
    "model_from_args",
    "checkpoint_filter_fn",
    "count_flops",
    "count_params",
    "infer_model_args",
    "load_state_dict_strict",
    "AUX_LOSS_WEIGHT",
    "CONTEXT_MODULES",
    "DAPPM",
    "PPM",
    "ContextProjection",
    "build_context",
    "DDRNetSegmentation",
    "SegmentationHead",
    "create_segmentation_model",
    "read_model_config",
    "MODEL_ARCHS",
    "DDRNet",
    "DDRNetArch",
    "DualResolutionFeatureNet",
    "DualResolutionFeatures",
    "create_ddrnet",
]
