"""Checkpoint layouts as key strings and shapes: no model is built here.

* :mod:`.detect`: reading a checkpoint file safely, unwrapping training wrappers, recognising the
  layout (ours, original release, MMSegmentation) and reading a model's fields from tensor shapes.
* :mod:`.original` / :mod:`.mmseg`: our keys -> the original release's / MMSegmentation's keys.

The converters (:mod:`ddrnet_zoo.convert`) and the timm pretrained filter
(:mod:`ddrnet_zoo.models.ddrnet`) build on these.
"""

from .detect import (
    IGNORED_EXTRA_KEYS,
    LAYOUTS,
    CheckpointContents,
    detect_layout,
    read_checkpoint,
    read_shapes,
    unwrap_state_dict,
)
from .mmseg import STEM_BIAS_KEYS, mmseg_keys, original_to_mmseg_key, stem_bn_key
from .original import original_keys

__all__ = [
    "IGNORED_EXTRA_KEYS",
    "LAYOUTS",
    "STEM_BIAS_KEYS",
    "CheckpointContents",
    "detect_layout",
    "mmseg_keys",
    "original_keys",
    "original_to_mmseg_key",
    "read_checkpoint",
    "read_shapes",
    "stem_bn_key",
    "unwrap_state_dict",
]
