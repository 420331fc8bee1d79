"""Checkpoint converters between ddrnet_zoo and the layouts users already have.

* :func:`convert_checkpoint` / :func:`convert_state_dict`: any layout (ours, original release,
  MMSegmentation; auto-detected, variant inferred from shapes) -> ours, strictly.
* :func:`load_checkpoint_any`: same as :func:`ddrnet_zoo.load_model` (a file of any layout, a Hub folder or id).
* :func:`export_state_dict` / :func:`to_original_state_dict` / :func:`to_mmseg_state_dict`: ours -> theirs.
* Command line: ``ddrnet-convert SRC DST`` (``python -m ddrnet_zoo.convert``).
"""

from .core import (
    EXPORT_LAYOUTS,
    ConvertedCheckpoint,
    checkpoint_filter_fn,
    convert_checkpoint,
    convert_state_dict,
    export_state_dict,
    load_state_dict_strict,
)
from .detect import LAYOUTS, CheckpointContents, ModelSpec, detect_layout, infer_model_spec, read_checkpoint
from .loading import TRAIN_STATE_FORMAT, load_checkpoint_any, load_model, model_from_train_state
from .mmseg import mmseg_key_map, to_mmseg_state_dict
from .original import original_key_map, to_original_state_dict

__all__ = [
    "EXPORT_LAYOUTS",
    "LAYOUTS",
    "TRAIN_STATE_FORMAT",
    "CheckpointContents",
    "ConvertedCheckpoint",
    "ModelSpec",
    "checkpoint_filter_fn",
    "convert_checkpoint",
    "convert_state_dict",
    "detect_layout",
    "export_state_dict",
    "infer_model_spec",
    "load_checkpoint_any",
    "load_model",
    "load_state_dict_strict",
    "mmseg_key_map",
    "model_from_train_state",
    "original_key_map",
    "read_checkpoint",
    "to_mmseg_state_dict",
    "to_original_state_dict",
]
