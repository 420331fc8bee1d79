"""Shared fixtures: tiny architectures for fast CPU tests, reference data and the CamVid location."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from ddrnet_zoo.models import DDRNetArch
from ddrnet_zoo.models.pretrained import build_with_weights

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DDRNET_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
PAPER = SHARED / "paper"

# Narrow widths with the real topologies, as the reference models in ../shared/reference.
TINY_ARCH_23 = DDRNetArch(width=8, depths=(2, 2, 2, 2), head_width=64, seg_head_width=16, context_width=16)
TINY_ARCH_39 = DDRNetArch(
    width=8, depths=(3, 4, 6, 3), conv4_fusions=2, head_width=64, seg_head_width=32, context_width=16
)


def model_of(converted):
    """The model of a conversion with its weights, as ``load_model`` builds it (from a copy of its meta model)."""
    return build_with_weights(lambda: copy.deepcopy(converted.meta_model), converted.state_dict, converted.source)


def pytest_addoption(parser):
    parser.addoption(
        "--camvid-root",
        default=None,
        help="CamVid in the SegNet layout (train/, trainannot/, train.txt, ...); defaults to $DDRNET_CAMVID_ROOT",
    )


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "cases.json").is_file():
        pytest.skip(f"reference models not found at {REFERENCE} (set DDRNET_SHARED to the shared folder)")
    return REFERENCE


@pytest.fixture(scope="session")
def paper_dir() -> Path:
    if not (PAPER / "tables.json").is_file():
        pytest.skip(f"paper tables not found at {PAPER} (set DDRNET_SHARED to the shared folder)")
    return PAPER


@pytest.fixture(scope="session")
def camvid_root(pytestconfig) -> Path:
    root = pytestconfig.getoption("--camvid-root") or os.environ.get("DDRNET_CAMVID_ROOT")
    if not root:
        pytest.skip("CamVid not configured: set DDRNET_CAMVID_ROOT or pass --camvid-root (.ci/run sets it)")
    root = Path(root)
    if not (root / "train.txt").is_file():
        pytest.skip(f"CamVid not found at {root} (expected train.txt there)")
    return root


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache, offline: HF_HUB_CACHE/HF_HUB_OFFLINE in the environment and huggingface_hub's constants."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read at import by huggingface_hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache
