"""Loading Hub folders and repositories (``ddrnet_zoo.load_model`` hands these sources here)."""

from __future__ import annotations

import os
from typing import Optional, Union

import timm
import torch
from torch import nn

from ..io import CheckpointError
from ..models import DDRNetSegmentation
from ..models.pretrained import WEIGHTS_NAME, open_hub_source

__all__ = ["from_pretrained"]


def from_pretrained(
    source: Union[str, os.PathLike],
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    map_location: Union[str, torch.device] = "cpu",
    strict: bool = True,
    local_files_only: bool = False,
    token: Optional[Union[str, bool]] = None,
    upsample_logits: Optional[bool] = None,
) -> nn.Module:
    """Load a DDRNet model from a Hub repository or a local Hub folder, in eval mode (same as
    :func:`ddrnet_zoo.load_model` for these sources).

    Args:
        source: ``ORG/NAME`` (optionally ``hf-hub:`` prefix and ``@revision``) or a local folder
            with ``config.json`` and ``model.safetensors``.
        revision: branch, tag or commit of the Hub repository.
        cache_dir: Hub cache (default: huggingface_hub's, ``HF_HUB_CACHE``).
        map_location: device for the weights.
        strict: refuse missing/unexpected keys (shape mismatches are always refused).
        local_files_only: use only the Hub cache (also implied by ``HF_HUB_OFFLINE=1``).
        token: Hub token for private repositories.
        upsample_logits: override the config's choice (``False``: logits at 1/8, as the original code).

    Segmentation folders return a :class:`~ddrnet_zoo.models.DDRNetSegmentation` (with ``.config``),
    through its :class:`~huggingface_hub.PyTorchModelHubMixin` hook ``_from_pretrained``; timm-format
    folders return the classifier built by ``timm.create_model``. Errors name the file:
    unreadable/corrupt config or weights, unknown architecture, missing/unexpected keys, wrong
    class count or weights of another variant.
    """
    hub = open_hub_source(source, revision, cache_dir, local_files_only, token)
    if hub.is_timm:  # timm's format: a classifier
        if hub.folder is not None:
            name = f"local-dir:{hub.folder}"
        else:
            name = f"hf-hub:{hub.repo_id}" + (f"@{hub.revision}" if hub.revision else "")
        hub.fetch(WEIGHTS_NAME)  # clear error (and download with our arguments) before timm reads it
        try:
            model = timm.create_model(name, pretrained=True, cache_dir=cache_dir)
        except Exception as e:  # timm raises many types for a bad folder; all name the source here
            raise CheckpointError(f"{source}: cannot load the timm-format checkpoint: {e}") from e
        return model.to(map_location).eval()
    return DDRNetSegmentation.from_hub_source(
        hub, cache_dir, local_files_only, token, map_location, strict, upsample_logits
    )
