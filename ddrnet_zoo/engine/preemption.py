"""Stopping on a scheduler's signal: finish the step, write ``last.pt``, exit with :data:`EXIT_PREEMPTED`.

SLURM and Kubernetes send ``SIGTERM`` (SLURM also a chosen signal such as ``SIGUSR1`` ahead of the
time limit) and kill the job a grace period later. :class:`StopSignals` replaces the default action
of the configured signals (``train.stop_signals``) by a handler that only records the signal; the
trainer asks :meth:`StopSignals.agreed` after every step, which all processes of a DDP run answer
together (one all-reduce of one integer on a CPU (gloo) group), so every process stops after the
same iteration, whichever of them was signalled. A second ``SIGINT`` (Ctrl-C twice) stops at once,
without a checkpoint.

Data-loader worker processes ignore the stop signals (:func:`ignore_stop_signals`, their
``worker_init_fn``): SLURM signals every process of a job step, and a worker that died of it would
abort the step the main process is finishing.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from types import FrameType
from typing import Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from . import distributed as dist_utils
from .schema import stop_signal

__all__ = [
    "EXIT_PREEMPTED",
    "DEFAULT_STOP_SIGNALS",
    "parse_signals",
    "StopSignals",
    "ignore_stop_signals",
    "stop_signals_worker_init",
]

EXIT_PREEMPTED = 75
"""``ddrnet-train``'s exit status after a stop signal: ``last.pt`` is written, continue with ``--resume``
(``EX_TEMPFAIL`` of sysexits.h: a temporary failure, try again later)."""

DEFAULT_STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")


def parse_signals(names: Sequence[str]) -> Tuple[signal.Signals, ...]:
    """Signals from names (``SIGTERM``, ``TERM`` or ``term``), without repeats; a :class:`ConfigError` for
    unknown or uncatchable ones."""
    return tuple(dict.fromkeys(stop_signal(name) for name in names))


class StopSignals:
    """Records the stop signals this process receives while active (a context manager).

    Args:
        names: the signals to catch (``train.stop_signals``); empty: none, the default actions stay.
        group: the process group :meth:`agreed` reduces over (a gloo group; ``None``: the default one).
    """

    def __init__(self, names: Sequence[str] = DEFAULT_STOP_SIGNALS, group: Optional[dist.ProcessGroup] = None) -> None:
        self.signals = parse_signals(names)
        self.group = group
        self.received: Optional[signal.Signals] = None
        self._previous: dict = {}
        self._owner = os.getpid()
        self._flag = torch.zeros(1, dtype=torch.int32)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if os.getpid() != self._owner:  # a forked child (data-loader worker) before its worker_init_fn
            return
        if self.received is None:
            self.received = signal.Signals(signum)
        elif signum == signal.SIGINT:  # Ctrl-C again: stop now
            raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def agreed(self) -> Optional[str]:
        """The name of a stop signal any process has received, or None (collective under DDP: call it on all)."""
        if not self.signals:  # none caught (the same config on every process): nothing to agree on
            return None
        if not dist_utils.is_distributed():
            return self.received.name if self.received is not None else None
        self._flag[0] = int(self.received or 0)
        dist.all_reduce(self._flag, op=dist.ReduceOp.MAX, group=self.group)
        value = int(self._flag[0])
        return signal.Signals(value).name if value else None


def ignore_stop_signals(signals: Sequence[signal.Signals], worker_id: int = 0) -> None:
    """Ignore ``signals`` in this process (a data-loader worker: the main process decides when to stop)."""
    for sig in signals:
        signal.signal(sig, signal.SIG_IGN)


def stop_signals_worker_init(names: Sequence[str]):
    """A data loader's ``worker_init_fn`` that makes its workers ignore the stop signals ``names``."""
    return functools.partial(ignore_stop_signals, parse_signals(names))
