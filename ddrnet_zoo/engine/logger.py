"""Logging on the main process: console/file messages that do not break tqdm bars, CSV metric logs
(and TensorBoard when installed)."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["setup_logging", "CSVLogger", "MetricLogger"]

_FMT = "%(asctime)s %(levelname)s %(message)s"


def setup_logging(is_main: bool, log_file: Optional[Path] = None) -> logging.Logger:
    """The ``ddrnet_zoo`` logger: INFO on the main process (console + ``log_file``), WARNING elsewhere.

    Console messages go to stderr; wrap code that shows progress bars in :func:`logging_redirect_tqdm`
    (``tqdm.contrib.logging``) so that they are written above the bars.
    """
    logger = logging.getLogger("ddrnet_zoo")
    for h in list(logger.handlers):
        if getattr(h, "_ddrnet_zoo", False):
            logger.removeHandler(h)
            h.close()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(_FMT, "%H:%M:%S"))
    console._ddrnet_zoo = True  # type: ignore[attr-defined]
    logger.addHandler(console)
    if is_main and log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter(_FMT))
        fh._ddrnet_zoo = True  # type: ignore[attr-defined]
        logger.addHandler(fh)
    return logger


class CSVLogger:
    """Appends rows to a CSV file with a fixed column order (set by the first row or ``columns``)."""

    def __init__(self, path: Path, columns: Optional[Sequence[str]] = None) -> None:
        self.path = Path(path)
        self.columns: Optional[List[str]] = list(columns) if columns else None
        if self.path.is_file() and self.columns is None:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            self.columns = header

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after ``iteration`` (by a run that crashed before its next checkpoint)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
            columns = list(rows[0].keys()) if rows else self.columns
        kept = [r for r in rows if int(float(r.get("iteration", 0) or 0)) <= iteration]
        with open(self.path, "w", newline="") as f:
            if columns:
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                w.writerows(kept)

    def log(self, row: Dict[str, Any]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if self.columns is None:
            self.columns = list(row)
        unknown = [k for k in row if k not in self.columns]
        if unknown:
            raise KeyError(f"{self.path}: columns {unknown} not in the header {self.columns}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in self.columns})


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)  # full precision: logged losses can be compared exactly
    return v


class MetricLogger:
    """CSV logs ``train_log.csv`` / ``eval_log.csv`` in ``out_dir`` and TensorBoard scalars when available."""

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.train_csv = CSVLogger(Path(out_dir) / "train_log.csv")
        self.eval_csv = CSVLogger(Path(out_dir) / "eval_log.csv")
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed
                self.tb = None

    def truncate_after(self, iteration: int) -> None:
        if self.enabled:
            self.train_csv.truncate_after(iteration)
            self.eval_csv.truncate_after(iteration)

    def log_train(self, row: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.train_csv.log(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("epoch", "iteration") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, row["iteration"])

    def log_eval(self, row: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.eval_csv.log(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("epoch", "iteration") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"val/{k}", v, row["iteration"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
