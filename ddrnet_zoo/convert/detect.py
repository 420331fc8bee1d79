"""Reading checkpoints, recognising their layout and inferring the model they hold.

The key-string and shape work lives in :mod:`ddrnet_zoo.layouts`; matching to a variant and
building the model in :mod:`ddrnet_zoo.models.spec`. This module keeps the names converters use.
"""

from ..layouts.detect import (
    IGNORED_EXTRA_KEYS,
    LAYOUTS,
    CheckpointContents,
    detect_layout,
    read_checkpoint,
    read_shapes,
    unwrap_state_dict,
)
from ..models.spec import ModelSpec, infer_model_spec

__all__ = [
    "LAYOUTS",
    "IGNORED_EXTRA_KEYS",
    "CheckpointContents",
    "ModelSpec",
    "read_checkpoint",
    "read_shapes",
    "unwrap_state_dict",
    "detect_layout",
    "infer_model_spec",
]
