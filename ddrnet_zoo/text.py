"""Small helpers for the messages the command-line tools print."""

from __future__ import annotations

import reprlib
from typing import Any, Optional, Sequence

__all__ = ["brief", "listing", "plural"]

_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxdict = 6
_BRIEF.maxlevel = 3


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


def brief(value: Any) -> str:
    """``repr(value)`` shortened for an error message: a value read from a file can be megabytes long."""
    return _BRIEF.repr(value)
