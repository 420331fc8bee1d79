"""Which of ddrnet_zoo's Hub repositories are published: the others fail fast, before any network call.

The default ``hf_hub_id`` of each pretrained tag (``ddrnet-zoo/ddrnet23_slim.in1k``, ...) and the
segmentation ids in the docs name where ``scripts/push_to_hub.py`` publishes weights. Until a
repository is uploaded, asking for it would cost huggingface_hub's retries and end in a raw
``LocalEntryNotFoundError``; instead :func:`check_published` raises :class:`WeightsNotPublishedError`
at once, saying what to do. Files already in the local Hub cache are always used.
"""

from __future__ import annotations

from typing import FrozenSet, Optional, Sequence

from huggingface_hub import try_to_load_from_cache

from .io import CheckpointError

__all__ = ["HF_HUB_ORG", "PUBLISHED_HUB_IDS", "WeightsNotPublishedError", "is_unpublished", "check_published"]

HF_HUB_ORG = "ddrnet-zoo"
"""The Hugging Face organisation of ddrnet_zoo's weights."""

PUBLISHED_HUB_IDS: FrozenSet[str] = frozenset()
"""Repositories under :data:`HF_HUB_ORG` whose files are published (add an id once it is uploaded)."""


class WeightsNotPublishedError(CheckpointError):
    """The requested ddrnet_zoo weights are not published on the Hub yet (nor in the local Hub cache)."""


def _split_revision(repo_id: str, revision: Optional[str]) -> tuple:
    if "@" in repo_id:
        repo_id, rev = repo_id.split("@", 1)
        revision = revision or rev
    return repo_id, revision


def is_unpublished(
    repo_id: str, filenames: Sequence[str], revision: Optional[str] = None, cache_dir: Optional[str] = None
) -> bool:
    """True for a repository of :data:`HF_HUB_ORG` that is not published and has none of ``filenames`` cached."""
    repo_id, revision = _split_revision(repo_id, revision)
    if not repo_id.startswith(HF_HUB_ORG + "/") or repo_id in PUBLISHED_HUB_IDS:
        return False
    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
        if isinstance(cached, str):
            return False
    return True


def check_published(
    repo_id: str,
    filenames: Sequence[str],
    alternative: str,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
) -> None:
    """Raise :class:`WeightsNotPublishedError` if :func:`is_unpublished`.

    ``alternative`` says how to load the converted folder instead (``{folder}`` is replaced by its path).
    """
    if is_unpublished(repo_id, filenames, revision, cache_dir):
        repo_id, _ = _split_revision(repo_id, revision)
        name = repo_id.split("/", 1)[1]
        raise WeightsNotPublishedError(
            f"the weights {repo_id} are not published on the Hugging Face Hub yet (and are not in the local "
            f"Hub cache), so nothing is downloaded. Convert the original release's checkpoint with "
            f"`ddrnet-convert CHECKPOINT hub/{name}` (see docs/weights.md) and load the converted folder: "
            f"{alternative.format(folder=f'hub/{name}')}"
        )
