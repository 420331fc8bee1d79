"""Which of ddrnet_zoo's Hub repositories are published: the others fail fast, before any network call.

The default ``hf_hub_id`` of each pretrained tag (``ddrnet-zoo/ddrnet23_slim.in1k``, ...) and the
segmentation ids in the docs name where ``scripts/push_to_hub.py`` publishes weights. Until a
repository is uploaded, asking for it would cost huggingface_hub's retries and end in a raw
``LocalEntryNotFoundError``; instead :func:`check_published` raises :class:`WeightsNotPublishedError`
at once, saying what to do. Files already in the local Hub cache are always used.
"""

from __future__ import annotations

from pathlib import Path
from typing import FrozenSet, Optional

from huggingface_hub import constants
from huggingface_hub.file_download import repo_folder_name

from .io import CheckpointError

__all__ = ["HF_HUB_ORG", "PUBLISHED_HUB_IDS", "WeightsNotPublishedError", "is_unpublished", "check_published"]

HF_HUB_ORG = "ddrnet-zoo"
"""The Hugging Face organisation of ddrnet_zoo's weights."""

PUBLISHED_HUB_IDS: FrozenSet[str] = frozenset()
"""Repositories under :data:`HF_HUB_ORG` whose files are published (add an id once it is uploaded)."""


class WeightsNotPublishedError(CheckpointError):
    """The requested ddrnet_zoo weights are not published on the Hub yet (nor in the local Hub cache)."""


def _repo(repo_id: str) -> str:
    """``repo_id`` without an ``@revision`` suffix."""
    return repo_id.split("@", 1)[0]


def is_unpublished(repo_id: str, cache_dir: Optional[str] = None) -> bool:
    """True for a repository of :data:`HF_HUB_ORG` that is neither published nor in the local Hub cache.

    A repository already in the cache (any revision) goes the normal way, through huggingface_hub.
    """
    repo_id = _repo(repo_id)
    if not repo_id.startswith(HF_HUB_ORG + "/") or repo_id in PUBLISHED_HUB_IDS:
        return False
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    return not (cache / repo_folder_name(repo_id=repo_id, repo_type="model")).is_dir()


def check_published(repo_id: str, load: str, *others: str, cache_dir: Optional[str] = None) -> None:
    """Raise :class:`WeightsNotPublishedError` if :func:`is_unpublished`.

    The message's first line says what is wrong and what to do; the steps follow, one a line: convert
    the original checkpoint, then ``load`` (``{folder}`` is replaced by the converted folder), then
    ``others`` (the alternatives).
    """
    if is_unpublished(repo_id, cache_dir):
        repo_id = _repo(repo_id)
        folder = f"hub/{repo_id.split('/', 1)[1]}"
        lines = [
            f"{repo_id} is not published on the Hugging Face Hub yet: convert the original checkpoint (below)",
            f"  convert: ddrnet-convert CHECKPOINT {folder}  (the original files: docs/weights.md)",
            f"  then load: {load.format(folder=folder)}",
            *(f"  or {other}" for other in others),
            "  (nothing was downloaded; a copy of the repository in the local Hub cache would be used)",
        ]
        raise WeightsNotPublishedError("\n".join(lines))
