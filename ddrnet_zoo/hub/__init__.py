"""Weights on the Hugging Face Hub: save, load and publish DDRNet models.

A Hub folder holds ``model.safetensors``, ``config.json`` and a generated model card ``README.md``.

* Segmentation models: ``config.json`` is :meth:`SegmentationConfig.to_dict` (architecture, classes,
  class names, palette, mean/std, context module, training size, dataset). The Hub I/O is
  :class:`huggingface_hub.PyTorchModelHubMixin` on :class:`~ddrnet_zoo.models.DDRNetSegmentation`
  (``model.save_pretrained``, ``model.push_to_hub``, ``DDRNetSegmentation.from_pretrained``); the
  functions here take any DDRNet model and hand segmentation models to those methods.
* Classification backbones: timm's own format (``architecture``, ``num_classes``, ``model_args``,
  ``pretrained_cfg``), written by :func:`timm.models.save_for_hf`; load with
  ``timm.create_model('hf-hub:ORG/NAME', pretrained=True)`` (after ``import ddrnet_zoo``) or
  :func:`from_pretrained`. Any model: :func:`ddrnet_zoo.load_model`.

Jobs: :mod:`.card` (model card), :mod:`.save`, :mod:`.load`, :mod:`.push`.

Where the mixin is not used, and why (one reason each):

* ``DDRNetSegmentation.save_pretrained`` wraps the mixin's: the mixin writes into the folder file by
  file; we swap in a whole new folder (:func:`ddrnet_zoo.io.atomic_directory`).
* ``DDRNetSegmentation.from_pretrained`` replaces the mixin's (``_from_pretrained`` is the mixin's hook):
  the mixin's reads ``config.json`` with no error naming the file, turns a Hub download error into
  "no config", and knows neither ``hf-hub:``/``@revision`` ids nor unpublished ddrnet_zoo weights.
* The model card is built by hand on ``ModelCard``: the mixin's template has no slots for measured
  figures, the commands that measured them, or the class/palette table.
* Classifiers (:class:`~ddrnet_zoo.models.DDRNet`) are timm models: timm's ``save_for_hf`` /
  ``hf-hub:`` loading is their Hub format, and a mixin config would not be timm's.
* :func:`upload_folder_to_hub` uploads a folder already written (``scripts/push_to_hub.py --dry-run``
  writes it first, for review); the mixin's ``push_to_hub`` always saves a model anew.

Downloads go through :func:`huggingface_hub.hf_hub_download` (its cache, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, tokens and revisions); uploads through ``create_repo`` + ``upload_folder``.
"""

from ..models.card import CITATION
from ..models.pretrained import CONFIG_NAME, WEIGHTS_NAME
from .card import MODEL_CARD_NAME, build_model_card, config_from_model
from .load import from_pretrained
from .push import push_to_hub, upload_folder_to_hub
from .save import HUB_FOLDER_FILES, save_pretrained

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_CARD_NAME",
    "HUB_FOLDER_FILES",
    "CITATION",
    "save_pretrained",
    "from_pretrained",
    "push_to_hub",
    "upload_folder_to_hub",
    "build_model_card",
    "config_from_model",
]
