"""A wall-clock budget for a training run: how many iterations fit, planned from the measured throughput.

:class:`TimeBudget` keeps the seconds spent (across resumed sessions, through the checkpoint) and
the rate measured in this session after a few warm-up iterations; :meth:`TimeBudget.plan` turns the
remaining time into the run's total iteration count, keeping back what the final evaluation and
export need. The trainer re-plans at every log interval (the poly schedule follows the plan) and
stops when the time left is only that reserve. Decisions are made on the main process and
broadcast, so every process of a DDP run follows the same plan.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

__all__ = ["TimeBudget"]


class TimeBudget:
    """Plans iterations for a budget of ``minutes`` of wall clock, of which ``spent_seconds`` are already used.

    Args:
        minutes: the whole run's budget, final evaluation and export included.
        spent_seconds: time already spent by earlier sessions of the run (from the checkpoint).
        warmup_iters: iterations of this session not used to measure the rate (allocator and cache warm-up).
        reserve_fraction: share of the budget kept for the final evaluation and export until an
            evaluation has been timed (then its measured duration plus 20%, and 10 s for the export).
        clock: the clock, in seconds (``time.monotonic``).
    """

    def __init__(
        self,
        minutes: float,
        spent_seconds: float = 0.0,
        warmup_iters: int = 3,
        reserve_fraction: float = 0.03,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if minutes <= 0:
            raise ValueError(f"the time budget must be positive, got {minutes} minutes")
        self.total_seconds = float(minutes) * 60.0
        self.spent_before = float(spent_seconds)
        self.warmup_iters = int(warmup_iters)
        self.reserve_fraction = float(reserve_fraction)
        self.clock = clock
        self._session_start = clock()
        self._rate_start: Optional[tuple] = None  # (monotonic time, iteration) after the warm-up
        self._session_first_iter: Optional[int] = None
        self.eval_seconds: Optional[float] = None

    def elapsed(self) -> float:
        """Seconds spent by the run so far (earlier sessions included)."""
        return self.spent_before + self.clock() - self._session_start

    def remaining(self) -> float:
        """Seconds left of the budget."""
        return self.total_seconds - self.elapsed()

    def reserve(self) -> float:
        """Seconds kept back for the final evaluation and export."""
        if self.eval_seconds is None:
            return self.reserve_fraction * self.total_seconds
        return 1.2 * self.eval_seconds + 10.0

    def record_eval(self, seconds: float) -> None:
        """The duration of an evaluation (sizes the final one's reserve)."""
        self.eval_seconds = float(seconds)

    def observe(self, iteration: int) -> None:
        """Called after each iteration: starts the rate measurement once the warm-up is over."""
        if self._session_first_iter is None:
            self._session_first_iter = iteration - 1
        if self._rate_start is None and iteration - self._session_first_iter >= self.warmup_iters:
            self._rate_start = (self.clock(), iteration)

    def seconds_per_iter(self, iteration: int) -> Optional[float]:
        """Measured wall seconds per iteration in this session (periodic evaluations and checkpoints included),
        or None before two measured iterations."""
        if self._rate_start is None or iteration - self._rate_start[1] < 2:
            return None
        t0, i0 = self._rate_start
        return (self.clock() - t0) / (iteration - i0)

    def plan(self, iteration: int, ceiling: Optional[int] = None) -> Optional[int]:
        """The run's total iterations that fit the budget (at least ``iteration``, at most ``ceiling``),
        or None while the rate is not measured yet."""
        rate = self.seconds_per_iter(iteration)
        if rate is None:
            return None
        more = max(0, math.floor((self.remaining() - self.reserve()) / rate))
        total = iteration + more
        return min(total, ceiling) if ceiling else total

    def exhausted(self) -> bool:
        """True when only the reserve is left: stop training, evaluate and export."""
        return self.remaining() <= self.reserve()
