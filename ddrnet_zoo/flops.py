"""Parameter and FLOP counts with fvcore, under the conventions that reproduce the paper's tables.

* Classification (Table III): every parameter (BN included); fvcore's default FLOP handles
  (one multiply-add = one FLOP, BN counted); input 1x3x224x224.
* Segmentation (Tables V, VII): convolution/linear weights and biases only (BN excluded, as
  if folded); BN FLOPs excluded; no auxiliary head; logits at 1/8 as the original code;
  input 1x3x1024x2048 (Table V) or 1x3x1024x1024 (Table VII).

Note: fvcore's ``set_op_handle("aten::batch_norm", None)`` does *not* drop BN (a handle
registered by default takes precedence over the ignore list); we register a handle that
counts zero instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import timm
from torch import nn
from tqdm import tqdm

from .errors import InputError
from .models import create_segmentation_model
from .models.counting import count_flops, count_params

__all__ = [
    "PAPER_COMPLEXITY",
    "ComplexityRow",
    "measure_complexity",
    "paper_complexity_table",
    "paper_complexity_rows",
    "format_table",
]

# Paper figures: (table, model, input HxW) -> (params in M, GFLOPs).
PAPER_COMPLEXITY: Dict[Tuple[str, str], Tuple[Tuple[int, int], float, float]] = {
    ("III", "ddrnet23_slim"): ((224, 224), 7.57, 0.98),
    ("III", "ddrnet23"): ((224, 224), 28.22, 3.88),
    ("III", "ddrnet39"): ((224, 224), 40.13, 6.95),
    ("V", "ddrnet23_slim"): ((1024, 2048), 5.7, 36.3),
    ("V", "ddrnet23"): ((1024, 2048), 20.1, 143.1),
    ("V", "ddrnet39"): ((1024, 2048), 32.3, 281.2),
    ("VII", "ddrnet39"): ((1024, 1024), 32.3, 140.6),
    ("VII", "ddrnet39_1_5x"): ((1024, 1024), 70.2, 303.0),
}
TASK_OF_TABLE = {"III": "classification", "V": "segmentation", "VII": "segmentation"}


@dataclass
class ComplexityRow:
    """One row of the complexity table: measured counts next to the paper's."""

    table: str
    model: str
    task: str
    input_size: Tuple[int, int]
    params_m: float
    gflops: float
    paper_params_m: Optional[float] = None
    paper_gflops: Optional[float] = None

    @property
    def params_ratio(self) -> Optional[float]:
        return None if self.paper_params_m is None else self.params_m / self.paper_params_m

    @property
    def gflops_ratio(self) -> Optional[float]:
        return None if self.paper_gflops is None else self.gflops / self.paper_gflops

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.update(params_ratio=self.params_ratio, gflops_ratio=self.gflops_ratio)
        return d


def build_for_counting(model_name: str, task: str, **kwargs) -> nn.Module:
    """The model as the paper counts it (segmentation: no auxiliary head, 1/8 logits)."""
    if task == "classification":
        return timm.create_model(model_name, **kwargs)
    if task == "segmentation":
        kwargs.setdefault("num_classes", 19)
        return create_segmentation_model(model_name, aux_head=False, upsample_logits=False, **kwargs)
    raise InputError(f"task must be 'classification' or 'segmentation', got {task!r}")


def measure_complexity(model_name: str, task: str, input_size: Tuple[int, int], **kwargs) -> Tuple[float, float]:
    """(params in millions, GFLOPs) of ``model_name`` under the paper's convention for ``task``."""
    model = build_for_counting(model_name, task, **kwargs)
    seg = task == "segmentation"
    params = count_params(model, exclude_norm=seg)
    flops = count_flops(model, (1, 3, *input_size), exclude_norm=seg)
    return params / 1e6, flops / 1e9


def paper_complexity_table(
    tables: Sequence[str] = ("III", "V", "VII"), progress: Optional[tqdm] = None
) -> List[ComplexityRow]:
    """Measure every variant of Tables III, V and VII and pair each with the paper's figures.

    ``progress``, a tqdm bar, names each count as it starts and advances by one per row
    (:func:`paper_complexity_rows` rows in all).
    """
    rows = []
    for (table, model), (size, p_params, p_flops) in PAPER_COMPLEXITY.items():
        if table not in tables:
            continue
        task = TASK_OF_TABLE[table]
        if progress is not None:
            progress.set_description_str(f"counting {model} at {size[0]}x{size[1]} (Table {table})")
        params, gflops = measure_complexity(model, task, size)
        rows.append(ComplexityRow(table, model, task, size, params, gflops, p_params, p_flops))
        if progress is not None:
            progress.update()
    return rows


def paper_complexity_rows(tables: Sequence[str] = ("III", "V", "VII")) -> int:
    """How many rows :func:`paper_complexity_table` measures for ``tables``."""
    return sum(table in tables for table, _ in PAPER_COMPLEXITY)


def format_table(rows: Sequence[ComplexityRow]) -> str:
    """A fixed-width text table of measured vs paper counts."""
    head = (
        f"{'table':<5} {'model':<14} {'task':<14} {'input':>9} | {'params M':>8} {'paper':>6} {'ratio':>6} | "
        f"{'GFLOPs':>7} {'paper':>6} {'ratio':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.table:<5} {r.model:<14} {r.task:<14} {r.input_size[0]:>4}x{r.input_size[1]:<4} | "
            f"{r.params_m:8.2f} {r.paper_params_m:6.2f} {r.params_ratio:6.3f} | "
            f"{r.gflops:7.2f} {r.paper_gflops:6.2f} {r.gflops_ratio:6.3f}"
        )
    return "\n".join(lines)
