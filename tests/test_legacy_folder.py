"""Folders written by earlier releases keep loading: tests/fixtures/legacy_hub_folder/ (format_version 1).

The folder was written once, by the release that used that format (commit bf91f0e,
``tests/fixtures/make_legacy_hub_folder.py``: a width-8 ddrnet23_slim, 4 classes, seed 19, BN statistics
drawn at random); its logits on a fixed input are stored beside it. Never rewrite it: it is the contract.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import ddrnet_zoo

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FOLDER = FIXTURES / "legacy_hub_folder"


def probe_input() -> torch.Tensor:
    n = 3 * 64 * 96
    return torch.sin(torch.arange(n, dtype=torch.float32) * 0.37).reshape(1, 3, 64, 96)


def test_legacy_folder_loads_with_the_same_logits():
    expected = json.loads((FIXTURES / "legacy_hub_folder_expected.json").read_text(encoding="utf-8"))
    model = ddrnet_zoo.load_model(FOLDER)
    assert not model.training
    with torch.no_grad():
        logits = model(probe_input())
    assert list(logits.shape) == expected["shape"]
    want = torch.tensor(expected["logits_every_8th"])
    torch.testing.assert_close(logits[0, :, ::8, ::8].flatten(), want, rtol=1e-5, atol=1e-5)
    assert not math.isclose(float(want.abs().max()), 0.0)  # a model that says something


def test_legacy_folder_keeps_its_dataset_metadata():
    model = ddrnet_zoo.load_model(FOLDER)
    assert model.num_classes == 4
    assert model.aux_head is not None
    assert model.backbone.arch.width == 8
    assert model.dataset["class_names"] == ["road", "car", "tree", "sky"]
    assert model.dataset["palette"][1] == [0, 0, 142]
    assert model.dataset["name"] == "toy" and model.dataset["train_size"] == [64, 96]


def test_legacy_folder_through_the_mixins_from_pretrained():
    """huggingface_hub's own entry point reads the same folder to the same model."""
    model = ddrnet_zoo.DDRNetSegmentation.from_pretrained(FOLDER)
    with torch.no_grad():
        torch.testing.assert_close(model(probe_input()), ddrnet_zoo.load_model(FOLDER)(probe_input()))
    assert model.dataset["class_names"] == ["road", "car", "tree", "sky"]


def test_the_mixins_save_pretrained_writes_a_folder_load_model_reads(tmp_path):
    model = ddrnet_zoo.load_model(FOLDER)
    model.save_pretrained(tmp_path / "mixin")  # huggingface_hub's own method: config.json is model.config
    written = json.loads((tmp_path / "mixin" / "config.json").read_text())
    assert written["format_version"] == 2 and written["dataset"]["name"] == "toy"
    again = ddrnet_zoo.load_model(tmp_path / "mixin")
    assert again.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(again(probe_input()), model(probe_input()), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [{"num_classes": 19}, {"model_name": "ddrnet23"}])
def test_legacy_folder_checked_against_what_is_expected(kwargs):
    with pytest.raises(ddrnet_zoo.errors.DDRNetError):
        ddrnet_zoo.load_model(FOLDER, **kwargs)
