"""Confusion matrix and metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ddrnet_zoo.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    format_metrics_table,
    metrics_from_confusion,
    to_jsonable,
)

# target/prediction of 6 pixels, 3 classes, one ignored pixel
TARGET = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 0, 2]])
# M[true, pred]: class 0 -> (0, 1), class 1 -> (1, 1), class 2 -> (0); the ignored pixel is skipped
HAND = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 0]])


def test_confusion_matrix_by_hand():
    assert torch.equal(confusion_matrix(PRED, TARGET, 3), HAND)


def test_metrics_by_hand():
    m = metrics_from_confusion(HAND, ["a", "b", "c"])
    # IoU = TP / (row + col - TP): a = 1 / (2 + 2 - 1), b = 2 / (2 + 3 - 2), c = 0 / (1 + 0 - 0)
    assert m["per_class"]["a"]["iou"] == pytest.approx(1 / 3)
    assert m["per_class"]["b"]["iou"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["iou"] == 0.0
    assert m["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert m["pixel_acc"] == pytest.approx(3 / 5)
    assert m["mean_acc"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["num_pixels"] == 5
    assert [m["per_class"][k]["pixels"] for k in "abc"] == [2, 2, 1]


def test_class_absent_from_labels_and_predictions_is_left_out():
    m = metrics_from_confusion(torch.nn.functional.pad(HAND, (0, 1, 0, 1)))  # a 4th class never seen
    assert math.isnan(m["per_class"]["3"]["iou"])
    assert m["miou"] == pytest.approx(1 / 3)
    # predicted but never labelled: IoU 0 and counted
    extra = torch.nn.functional.pad(HAND, (0, 1, 0, 1))
    extra[0, 3] = 1
    assert metrics_from_confusion(extra)["per_class"]["3"]["iou"] == 0.0


def test_accumulation_over_batches_equals_one_batch():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 5, (6, 17, 19), generator=g)
    t[torch.rand(6, 17, 19, generator=g) < 0.1] = 255
    p = torch.randint(0, 5, (6, 17, 19), generator=g)
    cm = ConfusionMatrix(5)
    for i in range(0, 6, 2):
        cm.update(p[i : i + 2], t[i : i + 2])
    assert torch.equal(cm.matrix, confusion_matrix(p, t, 5))
    # against a loop over pixels
    ref = torch.zeros(5, 5, dtype=torch.int64)
    for tv, pv in zip(t.flatten().tolist(), p.flatten().tolist()):
        if tv != 255:
            ref[tv, pv] += 1
    assert torch.equal(cm.matrix, ref)
    cm.all_reduce()  # no process group: unchanged
    assert torch.equal(cm.matrix, ref)
    cm.reset()
    assert cm.matrix.sum() == 0


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 2]), 3)
    with pytest.raises(TypeError, match="argmax"):
        confusion_matrix(torch.rand(2), torch.tensor([0, 1]), 3)


def test_table_and_json():
    m = metrics_from_confusion(torch.nn.functional.pad(HAND, (0, 1, 0, 1)), ["road", "car", "sky", "train"])
    table = format_metrics_table(m, title="val")
    lines = table.splitlines()
    assert lines[0] == "val"
    assert any(line.startswith("car") and "66.67" in line for line in lines)
    assert any(line.startswith("mIoU") and "33.33" in line for line in lines)
    assert any(line.startswith("train") and " - " in line for line in lines)  # NaN shown as '-'
    j = to_jsonable(m)
    assert j["per_class"]["train"]["iou"] is None and j["miou"] == pytest.approx(1 / 3)
