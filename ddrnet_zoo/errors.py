"""Errors a user can fix, and how the command-line tools report them.

Every error that bad input, a bad file or a bad setting causes derives from :class:`DDRNetError`
(each also keeps its old built-in base, e.g. ``ValueError``, so existing ``except`` clauses still
work). The CLIs print these, and operating-system errors (permissions, a file where a folder
should be, a full disk), as ``PROG: error: ...`` with exit status 2. Anything else is a bug and
surfaces with its traceback. A message's first line is short and says what is wrong and what to do;
details and alternatives, when any, follow on lines indented by two spaces.
"""

from __future__ import annotations

import errno
import importlib
import re
import sys
from types import ModuleType
from typing import Callable, Tuple, Type

__all__ = [
    "DDRNetError",
    "InputError",
    "OutputPathError",
    "MissingExtraError",
    "require_extra",
    "user_message",
    "run_cli",
]


class DDRNetError(Exception):
    """Base class of the errors caused by input, files or settings (what the CLIs report in one line)."""


class InputError(DDRNetError, ValueError, TypeError):
    """A tensor or argument given to a model or function is of the wrong shape, type or value.

    It is both a ``ValueError`` and a ``TypeError``, so code written against either still catches it.
    """


class OutputPathError(DDRNetError, OSError):
    """An output location cannot be created or written."""


class MissingExtraError(DDRNetError, ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def require_extra(module: str, what: str, extra: str) -> ModuleType:
    """Import the optional package ``module``, or raise :class:`MissingExtraError` naming the extra to install.

    The one lazy import the package allows: optional extras (``onnx``, ``video``) that may be missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtraError(f"{what} needs the {package!r} package: pip install 'ddrnet_zoo[{extra}]'") from None


# torch.utils.data re-raises a worker's exception as "Caught X in DataLoader worker process N.\n
# Original Traceback (most recent call last): ... module.X: message"
_WORKER_HEADER = re.compile(r"^Caught (\w+) in DataLoader worker process (\d+)\.\nOriginal Traceback", re.S)

_OS_HINTS = {
    errno.EACCES: "check the permissions of the path or choose another location",
    errno.EPERM: "check the permissions of the path or choose another location",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another location",
    errno.EEXIST: "a file is in the way; choose another location or remove it",
    errno.ENOSPC: "the disk is full; free space or choose another location",
    errno.EISDIR: "the path is a folder; give a file name",
}


def user_message(exc: BaseException) -> str:
    """One readable message for ``exc``: a data-loader worker's traceback is reduced to its last line."""
    text = str(exc)
    match = _WORKER_HEADER.match(text)
    if match:
        name = match.group(1)
        # the last "[module.]Name: message" of the traceback (the message may span lines)
        tail = re.split(rf"^(?:[\w.]+\.)?{re.escape(name)}: ", text, flags=re.M)
        message = tail[-1].strip() if len(tail) > 1 else text.splitlines()[-1]
        first, *details = message.split("\n")  # the worker's number ends the first line, before the details
        text = "\n".join([f"{first} (in data-loader worker {match.group(2)})", *details])
    if isinstance(exc, OSError) and not isinstance(exc, DDRNetError):
        hint = _OS_HINTS.get(exc.errno or -1)
        if hint:
            text = f"{text}: {hint}" if exc.filename else f"{text} ({hint})"
    return text


def run_cli(prog: str, run: Callable[[], int], user_errors: Tuple[Type[BaseException], ...] = ()) -> int:
    """Call ``run()`` and turn user errors into ``PROG: error: ...`` on stderr and exit status 2.

    ``user_errors`` adds exception types to report that way (besides :class:`DDRNetError` and
    ``OSError``). Ctrl-C gives status 130 without a traceback.
    """
    try:
        return run()
    except (DDRNetError, OSError, *user_errors) as e:
        print(f"{prog}: error: {user_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
