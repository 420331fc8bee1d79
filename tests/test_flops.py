"""fvcore parameter and FLOP counts reproduce the paper's Tables III, V and VII."""

from __future__ import annotations

import json

import pytest
import torch

from ddrnet_zoo.flops import (
    PAPER_COMPLEXITY,
    ComplexityRow,
    count_flops,
    count_params,
    format_table,
    measure_complexity,
)

TABLE_KEYS = {"III": "table_III_imagenet", "V": "table_V_cityscapes", "VII": "table_VII_cityscapes_sota"}


def test_embedded_figures_are_the_papers(paper_dir):
    tables = json.loads((paper_dir / "tables.json").read_text())
    for (table, model), (_, params, gflops) in PAPER_COMPLEXITY.items():
        entry = tables[TABLE_KEYS[table]][model.replace("_1_5x", "_1.5x")]
        assert (entry["params_M"], entry["gflops"]) == (params, gflops)


@pytest.mark.parametrize("key", [k for k in PAPER_COMPLEXITY if k[1] != "ddrnet39_1_5x"], ids=lambda k: "-".join(k))
def test_counts_within_half_a_percent(key):
    table, model = key
    size, paper_params, paper_gflops = PAPER_COMPLEXITY[key]
    task = "classification" if table == "III" else "segmentation"
    params, gflops = measure_complexity(model, task, size)
    assert params == pytest.approx(paper_params, rel=0.005)
    assert gflops == pytest.approx(paper_gflops, rel=0.005)


def test_ddrnet39_1_5x_within_one_percent():
    size, paper_params, paper_gflops = PAPER_COMPLEXITY[("VII", "ddrnet39_1_5x")]
    params, gflops = measure_complexity("ddrnet39_1_5x", "segmentation", size)
    assert params == pytest.approx(paper_params, rel=0.01)
    assert gflops == pytest.approx(paper_gflops, rel=0.01)


def test_batch_norm_exclusion_is_effective():
    """fvcore's set_op_handle(..., None) would keep BN; our convention must really drop it."""
    conv_bn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1, bias=False), torch.nn.BatchNorm2d(8))
    assert count_flops(conv_bn, (1, 3, 4, 4)) > count_flops(conv_bn, (1, 3, 4, 4), exclude_norm=True) == 3 * 8 * 16
    assert count_params(conv_bn) == 24 + 16 and count_params(conv_bn, exclude_norm=True) == 24


def test_format_table():
    row = ComplexityRow("V", "ddrnet23_slim", "segmentation", (1024, 2048), 5.68, 36.32, 5.7, 36.3)
    text = format_table([row])
    assert "ddrnet23_slim" in text and "0.996" in text and "1.001" in text
