"""Small helpers for the messages the command-line tools print."""

from __future__ import annotations

from typing import Optional

__all__ = ["plural"]


def plural(count: int, noun: str, plural_noun: Optional[str] = None) -> str:
    """``count`` and ``noun`` in the matching number: ``plural(1, "image")`` is ``"1 image"``, 2 gives ``"2 images"``.

    ``plural_noun`` is the plural when it is not ``noun + "s"`` (``plural(n, "BN remains", "BNs remain")``).
    """
    return f"{count} {noun if count == 1 else (plural_noun or noun + 's')}"
