"""Hostile checkpoint and config files: every reader ends in a clear CheckpointError or ConfigError.

A seeded subset of ``scripts/fuzz_readers.py`` (the full run and its figures: docs/training.md), and every
pickle that would run code or allocate without bound, in each container.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from ddrnet_zoo import load_model
from ddrnet_zoo.engine import load_checkpoint
from ddrnet_zoo.io import CheckpointError, read_state_dict

SCRIPT = REPO / "scripts" / "fuzz_readers.py"


def _script():
    spec = importlib.util.spec_from_file_location("fuzz_readers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fuzz = _script()


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bases")
    return folder, fuzz.make_bases(folder)


def test_pickles_that_would_run_code_or_allocate_are_refused(bases, tmp_path):
    folder, files = bases
    canary = tmp_path / fuzz.CANARY_NAME
    zipped, legacy, state = (files[k].read_bytes() for k in ("pth-zip", "pth-legacy", "train-state"))
    pickles, rest = fuzz._split_legacy(legacy)
    for name, raw in fuzz.hostile_calls(canary):
        cases = {
            "zip.pth": fuzz._zip_with(zipped, {"data.pkl": raw}),
            "legacy.pth": b"".join(pickles[:3]) + raw + b"".join(pickles[4:]) + rest,
            "last.pt": fuzz._zip_with(state, {"data.pkl": raw}),
        }
        for file_name, data in cases.items():
            path = tmp_path / file_name
            path.write_bytes(data)
            for read in (read_state_dict, load_model) if file_name != "last.pt" else (load_checkpoint, load_model):
                with pytest.raises(CheckpointError, match=str(path)):
                    read(path)
            assert not canary.exists(), (name, file_name)


def test_a_zip_bomb_is_refused_before_it_inflates(bases, tmp_path):
    folder, files = bases
    path = tmp_path / "bomb.pth"
    path.write_bytes(fuzz._bomb_zip(files["pth-zip"].read_bytes(), chunks=8))  # 128 MiB of zeros, deflated
    assert path.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match=r"entry .*data/0 is compressed .* \(a zip bomb\): refused"):
        load_model(path)


def test_tensors_not_stored_in_the_file_are_refused(bases, tmp_path):
    folder, files = bases
    data = files["pth-zip"].read_bytes()
    path = tmp_path / "meta.pth"
    path.write_bytes(fuzz._zip_with(data, {"data.pkl": fuzz.call_pickle("torch", "FloatTensor", 2**28, wrap=True)}))
    with pytest.raises(CheckpointError, match="its tensors take 1073741824 bytes, more than the file's"):
        read_state_dict(path)
    sd = torch.load(files["pth-zip"], weights_only=True)
    sd[next(iter(sd))] = sd[next(iter(sd))].to(torch.int32)
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"tensor 'backbone.stem.0.conv.weight' is int32; weights are floating"):
        load_model(path)


def test_fuzzed_files_give_clean_errors_in_bounded_memory(tmp_path):
    """100 mutated files (20 of each kind) in a worker process: no other exception, crash or code run."""
    out = tmp_path / "fuzz.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--cases", "100", "--seed", "20", "--json", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )
    report = json.loads(out.read_text()) if out.is_file() else {}
    assert run.returncode == 0 and report, run.stdout[-3000:] + run.stderr[-3000:]
    assert report["cases"] == 100 and not report["findings"]
    assert set(report["results"]) <= {"clean", "loaded"} and report["results"]["clean"] >= 70
    assert report["peak_rss_above_baseline_mib"] < 256, report["worst_memory_case"]
    print(f"\nfuzz subset: {report['results']}, peak RSS +{report['peak_rss_above_baseline_mib']} MiB")


def test_a_training_checkpoint_describing_another_model_names_the_file(bases, tmp_path):
    """Found by the full fuzz run (case 1148): values read_model_config lets through but the model refuses
    (an unknown variant, a megabyte-long name) are a CheckpointError naming the file, shortened."""
    folder, files = bases
    state = torch.load(files["train-state"], weights_only=True)
    for architecture, shown in [("resnet50", "'resnet50'"), ("x" * 10**6, "'xxxxxxxx")]:
        state["model_config"]["architecture"] = architecture
        path = tmp_path / "last.pt"
        torch.save(state, path)
        with pytest.raises(CheckpointError, match=f"{path}: .*unknown DDRNet model {shown}") as info:
            load_model(path)
        assert len(str(info.value)) < 500
