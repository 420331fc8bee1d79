"""Weights on the Hugging Face Hub: where models come from, saving, publishing, model cards.

A Hub folder holds ``model.safetensors``, ``config.json`` and a generated model card ``README.md``.

* Segmentation models: ``config.json`` holds the arguments of :class:`~ddrnet_zoo.models.DDRNetSegmentation`
  (variant, classes, context module, heads, custom widths, ``dataset``: class names, palette, mean/std,
  training size; ``metadata``), as :class:`huggingface_hub.PyTorchModelHubMixin` records a model's
  arguments; its hooks on the model write and read the weights and ``config.json``.
* Classification backbones: timm's own format (``architecture``, ``num_classes``, ``model_args``,
  ``pretrained_cfg``), written by :func:`timm.models.save_for_hf`; they load with
  ``timm.create_model('hf-hub:ORG/NAME', pretrained=True)`` (after ``import ddrnet_zoo``).

Any model loads with :func:`ddrnet_zoo.load_model`. Jobs: :mod:`.source` (parsing a source, Hub
downloads, folders), :mod:`.card` (model card), :mod:`.save`, :mod:`.push`.

Where the mixin is not used, and why (one reason each):

* :func:`save_pretrained` writes a whole new folder beside the old one and swaps it in
  (:func:`ddrnet_zoo.io.atomic_directory`); the mixin's ``save_pretrained`` writes file by file.
* The model card is built by hand on ``ModelCard``: the mixin's template has no slots for measured
  figures, the commands that measured them, or the class/palette table.
* Classifiers (:class:`~ddrnet_zoo.models.DDRNet`) are timm models: timm's ``save_for_hf`` /
  ``hf-hub:`` loading is their Hub format, and a mixin config would not be timm's.
* :func:`upload_folder_to_hub` uploads a folder already written (``scripts/push_to_hub.py --dry-run``
  writes it first, for review); :func:`push_to_hub` writes one with :func:`save_pretrained` and uploads it.

Downloads go through :func:`huggingface_hub.hf_hub_download` (its cache, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, tokens and revisions); uploads through ``create_repo`` + ``upload_folder``.
"""

from .card import CITATION, MODEL_CARD_NAME, build_model_card
from .push import push_to_hub, upload_folder_to_hub
from .save import HUB_FOLDER_FILES, save_pretrained
from .source import CONFIG_NAME, WEIGHTS_NAME

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_CARD_NAME",
    "HUB_FOLDER_FILES",
    "CITATION",
    "save_pretrained",
    "push_to_hub",
    "upload_folder_to_hub",
    "build_model_card",
]
