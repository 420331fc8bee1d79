"""Writing prediction outputs in background threads while the model works on the next batch.

``concurrent.futures`` runs the writes (PNG/JPEG encoding releases the GIL); each file is
written atomically, and a write error is re-raised in the caller when it is collected.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from ..io import atomic_path
from .colors import colorize, label_image, overlay
from .files import ImageSource, output_path

__all__ = ["PredictionSummary", "OutputWriter"]


@dataclass
class PredictionSummary:
    """What :meth:`~ddrnet_zoo.inference.Predictor.predict_files` did."""

    output_dir: Path
    num_images: int = 0
    written: Dict[str, int] = field(default_factory=dict)
    failures: List[Tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def write_outputs(
    source: ImageSource,
    image: np.ndarray,
    labels: np.ndarray,
    output_dir: Path,
    save: Sequence[str],
    palette: np.ndarray,
    alpha: float = 0.5,
    label_ids: bool = False,
) -> List[str]:
    """Write the ``save`` kinds (label, color, overlay) of one image atomically; returns the kinds written."""
    done = []
    color = colorize(labels, palette) if ("color" in save or "overlay" in save) else None
    for kind in save:
        path = output_path(output_dir, source, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "label":
            im, fmt, kw = label_image(labels, palette, label_ids), "PNG", {}
        elif kind == "color":
            im, fmt, kw = Image.fromarray(color), "PNG", {}
        else:
            im, fmt, kw = Image.fromarray(overlay(image, color, alpha)), "JPEG", {"quality": 92, "subsampling": 0}
        with atomic_path(path) as tmp:
            im.save(tmp, format=fmt, **kw)
        done.append(kind)
    return done


class OutputWriter:
    """Writes the outputs of predicted images in a thread pool and counts them into a :class:`PredictionSummary`.

    Use as a context manager; :meth:`submit` queues one image, :meth:`collect` counts finished
    writes (re-raising their errors); leaving the block waits for every write.
    """

    def __init__(
        self,
        summary: PredictionSummary,
        save: Sequence[str],
        palette: np.ndarray,
        alpha: float = 0.5,
        label_ids: bool = False,
        threads: int = 2,
    ) -> None:
        self.summary = summary
        self.save = tuple(save)
        self.palette = palette
        self.alpha = alpha
        self.label_ids = label_ids
        self.pending: List[Future] = []
        self._pool = ThreadPoolExecutor(max_workers=threads)

    def __enter__(self) -> OutputWriter:
        self._pool.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.collect(wait=True)
        finally:
            self._pool.__exit__(*exc)

    def submit(self, source: ImageSource, image: np.ndarray, labels: np.ndarray) -> None:
        """Queue the outputs of one image."""
        self.pending.append(
            self._pool.submit(
                write_outputs,
                source,
                image,
                labels,
                self.summary.output_dir,
                self.save,
                self.palette,
                self.alpha,
                self.label_ids,
            )
        )

    def collect(self, wait: bool = False) -> None:
        """Count finished writes into the summary (all of them with ``wait``); re-raises write errors."""
        left = []
        for fut in self.pending:
            if wait or fut.done():
                for kind in fut.result():  # re-raises write errors
                    self.summary.written[kind] += 1
            else:
                left.append(fut)
        self.pending = left
