"""The architecture reproduces the original code's outputs (tiny reference models in ../shared/reference)."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from conftest import TINY_ARCH_23, TINY_ARCH_39
from safetensors.torch import load_file

from ddrnet_zoo.convert import original_key_map
from ddrnet_zoo.models import create_segmentation_model

CASES = {
    "official_cls_ddrnet23_tiny": ("classification", TINY_ARCH_23),
    "official_cls_ddrnet39_tiny": ("classification", TINY_ARCH_39),
    "official_seg_ddrnet23_tiny": ("segmentation", TINY_ARCH_23),
    "official_seg_ddrnet39_tiny": ("segmentation", TINY_ARCH_39),
}


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max()).item()


def build(kind: str, arch, num_classes: int):
    if kind == "classification":
        return timm.create_model("ddrnet23_slim", arch=arch, num_classes=num_classes)
    return create_segmentation_model("ddrnet23_slim", arch=arch, num_classes=num_classes, upsample_logits=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_outputs_reproduced(reference_dir, case):
    kind, arch = CASES[case]
    meta = json.loads((reference_dir / "cases.json").read_text())[case]
    assert tuple(meta["layers"]) == arch.depths and meta["planes"] == arch.width
    model = build(kind, arch, meta["num_classes"]).eval()
    state = load_file(reference_dir / f"{case}.weights.safetensors")
    mapping = original_key_map(model)
    assert len(state) == meta["num_tensors"]
    assert sorted(mapping.values()) == sorted(state), "every original key mapped, none left over"
    model.load_state_dict({ours: state[theirs] for ours, theirs in mapping.items()})
    io = load_file(reference_dir / f"{case}.io.safetensors")
    with torch.no_grad():
        if kind == "classification":
            assert relative_error(model(io["input"]), io["output"]) < 1e-5
        else:
            out = model(io["input"], return_aux=True)
            assert out["out"].shape == io["output"].shape
            assert relative_error(out["out"], io["output"]) < 1e-5
            assert relative_error(out["aux"], io["aux_output"]) < 1e-5


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_wrong_topology_is_detected(reference_dir, case):
    """The check above can fail: with the other variant's depths the keys do not match."""
    kind, arch = CASES[case]
    other = TINY_ARCH_39 if arch is TINY_ARCH_23 else TINY_ARCH_23
    state = load_file(reference_dir / f"{case}.weights.safetensors")
    assert sorted(original_key_map(build(kind, other, 5)).values()) != sorted(state)


# The full-size key lists of ../shared/reference are checked in tests/test_convert.py
# (test_full_size_official_keys_map_completely), through the same original_key_map.
