"""The CamVid model shipped in the repository (weights/ddrnet23_slim.camvid) and the README's first command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from safetensors import safe_open

import ddrnet_zoo
from ddrnet_zoo.data.images import read_image, read_label
from ddrnet_zoo.inference import Predictor

SHIPPED = REPO / "weights" / "ddrnet23_slim.camvid"
FRAMES = REPO / "examples" / "camvid" / "frames"
LABELS = REPO / "examples" / "camvid" / "labels"
CAMVID_CLASSES = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign/symbol", "fence", "car", "pedestrian",
                  "bicyclist"]  # fmt: skip


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return Predictor(ddrnet_zoo.load_model(SHIPPED), device="cpu")


def test_shipped_folder_is_complete_small_and_outside_the_package():
    files = {p.name: p.stat().st_size for p in SHIPPED.iterdir()}
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    assert max(files.values()) < 25 * 2**20
    config = json.loads((SHIPPED / "config.json").read_text())
    dataset = config["dataset"]
    assert dataset["class_names"] == CAMVID_CLASSES and len(dataset["palette"]) == 11
    assert dataset["mean"] and dataset["std"] and config["architecture"] == "ddrnet23_slim"
    with safe_open(str(SHIPPED / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes <= {"F16", "F32", "I64"}, dtypes
    card = (SHIPPED / "README.md").read_text()
    assert "from scratch" in card and "367" in card and "2 CPU cores" in card and "ddrnet-train --config" in card
    assert "ddrnet_zoo" not in SHIPPED.relative_to(REPO).parts  # not package data: stays out of the wheel
    sizes = sum(p.stat().st_size for p in (REPO / "examples" / "camvid").rglob("*") if p.is_file())
    assert sizes < 2 * 2**20


def test_shipped_model_segments_a_road_frame_plausibly(predictor):
    frame = sorted(FRAMES.glob("*.jpg"))[0]
    labels = predictor.predict(read_image(frame))
    h = labels.shape[0]
    names = predictor.class_names
    bottom = np.bincount(labels[int(0.85 * h) :].ravel(), minlength=11)
    top = np.bincount(labels[: int(0.1 * h)].ravel(), minlength=11)
    assert names[int(bottom.argmax())] == "road", dict(zip(names, bottom))
    assert names[int(top.argmax())] in ("sky", "building", "tree"), dict(zip(names, top))
    truth = read_label(LABELS / (frame.stem + ".png")).astype(np.int64)
    valid = truth < 11
    assert (labels[valid] == truth[valid]).mean() > 0.7  # pixel accuracy on a frame it never trained on


def test_readme_first_command_segments_the_bundled_frames(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "segment_camvid.py"), "-o", str(out), "--threads", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    frames = sorted(p.stem for p in FRAMES.glob("*.jpg"))
    assert sorted(p.stem for p in (out / "overlay").glob("*.jpg")) == frames
    assert sorted(p.stem for p in (out / "labels").glob("*.png")) == frames
    for name in frames:
        assert name in proc.stdout
    assert "ms per frame" in proc.stdout and str(out / "overlay") in proc.stdout and "pixels right" in proc.stdout


def test_push_to_hub_publishes_the_shipped_folder_as_written(tmp_path):
    """``push_to_hub.py --dry-run`` on the shipped folder: loads it strictly, keeps its fp16 weights and card."""
    out = tmp_path / "hub"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "push_to_hub.py"), str(SHIPPED), "--repo-id", "org/x", "--dry-run",
         "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "nothing uploaded" in proc.stdout
    for name in ("model.safetensors", "config.json", "README.md"):
        assert (out / name).read_bytes() == (SHIPPED / name).read_bytes(), name
