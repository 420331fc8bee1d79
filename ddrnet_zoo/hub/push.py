"""Publishing to the Hub: a model as :func:`.save.save_pretrained` writes it, or a folder already written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from huggingface_hub import HfApi
from torch import nn

from .._version import __version__
from .card import MODEL_CARD_NAME
from .save import save_pretrained
from .source import CONFIG_NAME, WEIGHTS_NAME

__all__ = ["push_to_hub", "upload_folder_to_hub"]

_UPLOADED = [CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME]


def upload_folder_to_hub(
    folder: Union[str, os.PathLike],
    repo_id: str,
    commit_message: str = "Upload DDRNet weights (ddrnet_zoo)",
    private: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
):
    """Create ``repo_id`` if needed and upload a Hub folder written by :func:`save_pretrained`."""
    folder = Path(folder)
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not a Hub folder (missing {missing}); write it with save_pretrained")
    api = HfApi(token=token, library_name="ddrnet_zoo", library_version=__version__)
    repo = api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo.repo_id,
        folder_path=str(folder),
        revision=revision,
        create_pr=create_pr,
        commit_message=commit_message,
        allow_patterns=_UPLOADED,
    )


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    commit_message: str = "Upload DDRNet weights (ddrnet_zoo)",
    private: Optional[bool] = None,
    token: Optional[Union[str, bool]] = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
    results: Optional[Sequence[Dict[str, Any]]] = None,
    flops_input_size: Optional[Tuple[int, int]] = None,
):
    """Save ``model`` as a Hub folder (see :func:`save_pretrained`) and upload it to ``repo_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(
            model, Path(tmp) / "hub", repo_id=repo_id, results=results, flops_input_size=flops_input_size
        )
        return upload_folder_to_hub(folder, repo_id, commit_message, private, token, revision, create_pr)
