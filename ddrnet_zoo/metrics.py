"""Segmentation metrics from a confusion matrix kept on the device (and summed across processes).

Definitions (Cityscapes / PASCAL VOC convention): with ``M[t, p]`` the number of pixels of
true class ``t`` predicted as ``p`` (ignored pixels excluded),

- IoU of class c = ``M[c, c] / (sum_p M[c, p] + sum_t M[t, c] - M[c, c])``;
- mIoU = mean IoU over the classes that occur in the labels or the predictions (a class
  absent from both has no IoU: NaN, left out of the mean, as MMSegmentation);
- pixel accuracy = ``trace(M) / sum(M)``; class accuracy = ``M[c, c] / sum_p M[c, p]``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import torch

from .constants import IGNORE_INDEX
from .errors import InputError

__all__ = ["confusion_matrix", "ConfusionMatrix", "metrics_from_confusion", "format_metrics_table", "to_jsonable"]


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """(num_classes, num_classes) int64 matrix ``M[true, pred]`` of one batch, on the inputs' device.

    ``pred`` and ``target`` are integer tensors of the same shape. Target pixels equal to
    ``ignore_index`` are skipped; any other target or prediction outside ``[0, num_classes)``
    raises (checked without leaving the device only when it is cheap: on CPU always).
    """
    if pred.shape != target.shape:
        raise InputError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
    if pred.is_floating_point() or target.is_floating_point():
        raise InputError("pred and target must be integer class indices (take logits.argmax(1) first)")
    k = int(num_classes)
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    valid = target != ignore_index
    if pred.device.type == "cpu":
        bad_t = valid & ((target < 0) | (target >= k))
        if bad_t.any():
            raise InputError(
                f"labels contain values {sorted(set(target[bad_t].unique().tolist()))[:10]} outside 0..{k - 1} "
                f"that are not the ignore index {ignore_index}"
            )
        if ((pred < 0) | (pred >= k)).any():
            raise InputError(f"predictions outside 0..{k - 1}")
    # invalid pixels go to an extra bin that is dropped: no data-dependent shapes, no host sync
    index = torch.where(valid, target.clamp(0, k - 1) * k + pred.clamp(0, k - 1), torch.full_like(target, k * k))
    return torch.bincount(index, minlength=k * k + 1)[: k * k].reshape(k, k)


def metrics_from_confusion(matrix: torch.Tensor, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """mIoU, per-class IoU/accuracy and pixel accuracy (plain Python numbers) from ``M[true, pred]``."""
    m = matrix.detach().to("cpu", torch.float64)
    k = m.shape[0]
    tp = m.diag()
    gt = m.sum(1)
    pr = m.sum(0)
    union = gt + pr - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
    total = m.sum()
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise InputError(f"{len(names)} class names for a {k}-class confusion matrix")

    def nanmean(t: torch.Tensor) -> float:
        ok = ~torch.isnan(t)
        return float(t[ok].mean()) if ok.any() else float("nan")

    return {
        "miou": nanmean(iou),
        "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_acc": nanmean(acc),
        "num_pixels": int(total),
        "per_class": {
            n: {"iou": float(iou[i]), "acc": float(acc[i]), "pixels": int(gt[i])} for i, n in enumerate(names)
        },
    }


class ConfusionMatrix:
    """Accumulates a confusion matrix on a device; :meth:`all_reduce` sums it across processes.

    Example::

        cm = ConfusionMatrix(19, device="cuda")
        cm.update(logits.argmax(1), labels)
        cm.all_reduce()
        print(format_metrics_table(cm.compute(class_names)))
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu") -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true labels (same shape, any device; moved to the matrix's)."""
        self.matrix += confusion_matrix(
            pred.to(self.matrix.device), target.to(self.matrix.device), self.num_classes, self.ignore_index
        )

    def reset(self) -> None:
        self.matrix.zero_()

    def all_reduce(self) -> None:
        """Sum the matrices of all processes (no-op outside ``torch.distributed``)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix, op=torch.distributed.ReduceOp.SUM)

    def compute(self, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """See :func:`metrics_from_confusion`."""
        return metrics_from_confusion(self.matrix, class_names)


def _pct(v: float) -> str:
    return "   -  " if v is None or math.isnan(v) else f"{100 * v:6.2f}"


def format_metrics_table(metrics: Dict[str, Any], title: Optional[str] = None) -> str:
    """A per-class table (IoU %, accuracy %, labelled pixels) followed by mIoU and accuracies."""
    per_class = metrics["per_class"]
    width = max([len("class")] + [len(n) for n in per_class])
    lines: List[str] = []
    if title:
        lines.append(title)
    header = f"{'class':<{width}}  {'IoU %':>6}  {'Acc %':>6}  {'pixels':>12}"
    lines += [header, "-" * len(header)]
    for name, r in per_class.items():
        lines.append(f"{name:<{width}}  {_pct(r['iou'])}  {_pct(r['acc'])}  {r['pixels']:>12d}")
    lines.append("-" * len(header))
    lines.append(f"{'mIoU':<{width}}  {_pct(metrics['miou'])}")
    lines.append(f"{'mean acc':<{width}}  {'':>6}  {_pct(metrics['mean_acc'])}")
    lines.append(f"{'pixel acc':<{width}}  {'':>6}  {_pct(metrics['pixel_acc'])}  {metrics['num_pixels']:>12d}")
    return "\n".join(lines)


def to_jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None (strict JSON) and tuples as lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj
