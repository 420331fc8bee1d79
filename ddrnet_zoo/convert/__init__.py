"""Checkpoint converters between ddrnet_zoo and the layouts users already have, and the one loader.

* :func:`convert_checkpoint` / :func:`convert_state_dict`: any layout (ours, original release,
  MMSegmentation; auto-detected, variant inferred from shapes) -> ours, strictly.
* :func:`load_model` (also ``ddrnet_zoo.load_model``): the one way to load a model (a file of any
  layout, a training checkpoint, a Hub folder or id).
* :func:`export_state_dict` / :func:`to_original_state_dict` / :func:`to_mmseg_state_dict`: ours -> theirs.
* Command line: ``ddrnet-convert SRC DST`` (``python -m ddrnet_zoo.convert``).

Reading files and recognising layouts is :mod:`ddrnet_zoo.layouts`' job; variants from shapes,
:mod:`ddrnet_zoo.models.spec` (``infer_model_args``).
"""

from .core import EXPORT_LAYOUTS, ConvertedCheckpoint, convert_checkpoint, convert_state_dict, export_state_dict
from .loading import TRAIN_STATE_FORMAT, load_model
from .mmseg import mmseg_key_map, to_mmseg_state_dict
from .original import original_key_map, to_original_state_dict

__all__ = [
    "EXPORT_LAYOUTS",
    "TRAIN_STATE_FORMAT",
    "ConvertedCheckpoint",
    "convert_checkpoint",
    "convert_state_dict",
    "export_state_dict",
    "load_model",
    "mmseg_key_map",
    "original_key_map",
    "to_mmseg_state_dict",
    "to_original_state_dict",
]
