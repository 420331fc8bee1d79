"""Small helpers for the messages the command-line tools print."""

from __future__ import annotations

from typing import Any, Optional, Sequence

__all__ = ["listing", "plural"]


def plural(count: int, noun: str, plural_noun: Optional[str] = None) -> str:
    """``count`` and ``noun`` in the matching number: ``plural(1, "image")`` is ``"1 image"``, 2 gives ``"2 images"``.

    ``plural_noun`` is the plural when it is not ``noun + "s"`` (``plural(n, "BN remains", "BNs remain")``).
    """
    return f"{count} {noun if count == 1 else (plural_noun or noun + 's')}"


def listing(items: Sequence[Any], limit: int = 12) -> str:
    """The first ``limit`` of ``items``, comma-separated, with the total when some are left out."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown
