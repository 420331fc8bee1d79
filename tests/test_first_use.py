"""What a new user meets first (issue 22): a model path that does not exist, a training run's folder,
a smoke-test model, ddrnet-eval beside (not inside) a model folder, short first lines of the common
errors, and a model-zoo script with a progress bar and without the libraries' noise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_ARCH_23
from PIL import Image
from test_data import write_folder_dataset
from test_train import synthetic_overrides

import ddrnet_zoo.hub.source as source_module
from ddrnet_zoo import create_segmentation_model, load_model
from ddrnet_zoo.convert.cli import main as convert_main
from ddrnet_zoo.evaluate import default_results_path
from ddrnet_zoo.evaluate import main as eval_main
from ddrnet_zoo.flops import paper_complexity_rows, paper_complexity_table
from ddrnet_zoo.hub import save_pretrained
from ddrnet_zoo.hub.source import is_hub_id
from ddrnet_zoo.io import CheckpointError
from ddrnet_zoo.predict import main as predict_main
from ddrnet_zoo.train import main as train_main

FIRST_LINE_MAX = 160
"""The longest first line of a common error, ``PROG: error: `` included, with the test's temporary folder as TMP."""


def tiny(num_classes: int = 3):
    return create_segmentation_model("ddrnet23_slim", num_classes=num_classes, arch=TINY_ARCH_23)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_pretrained(tiny(), tmp_path_factory.mktemp("hub") / "tiny", model_card=False)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(root / "a.png")
    return root


@pytest.fixture
def no_hub(monkeypatch) -> None:
    """A source read as a path must never reach the Hub: any download fails the test."""

    def refuse(repo_id, *args, **kwargs):
        raise AssertionError(f"the Hub was asked for {repo_id}")

    monkeypatch.setattr(source_module, "hf_hub_download", refuse)


def error_lines(capsys, prog: str) -> List[str]:
    err = capsys.readouterr().err
    assert err.startswith(f"{prog}: error: ") and "Traceback" not in err, err
    return err.rstrip("\n").splitlines()


# ------------------------------------------------------------------------ points 3 and 4: model sources
def test_which_sources_are_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    assert is_hub_id("someone/model") and is_hub_id("someone/model@v1") and is_hub_id("hf-hub:hub/model")
    for path in ("hub/model", "runs/x", "mine/model", "./a/b", "/abs/b", "~/a", "a/b.pth", "a/b/c", "model"):
        assert not is_hub_id(path), path


@pytest.mark.parametrize("source", ["hub/model", "runs/x", "mine/model", "weights.pth"])
def test_a_missing_path_fails_at_once_saying_so(source, tmp_path, monkeypatch, no_hub, image_dir, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine" / "other").mkdir(parents=True)
    with pytest.raises(CheckpointError) as info:
        load_model(source)
    first, *rest = str(info.value).splitlines()
    assert (
        first == f"no such model folder or file: {source} (give a Hub folder, a checkpoint file or a Hub id ORG/NAME)"
    )
    parent = source.rsplit("/", 1)[0]
    if source == "mine/model":
        assert rest == ["  mine/ holds: other/", "  a Hub repository of that name: hf-hub:mine/model"]
    elif "/" in source:
        assert rest == [
            f"  {parent}/ does not exist either (current folder: {tmp_path})",
            f"  a Hub repository of that name: hf-hub:{source}",
        ]
    else:
        assert rest == [f"  the current folder ({tmp_path}) holds: mine/"]
    # the command lines say the same, in their first line
    assert predict_main(["-m", source, str(image_dir), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    assert error_lines(capsys, "ddrnet-predict")[0] == f"ddrnet-predict: error: {first}"
    assert eval_main(["--checkpoint", source, "--no-progress"]) == 2
    assert error_lines(capsys, "ddrnet-eval")[0] == f"ddrnet-eval: error: {first}"


def test_a_training_run_folder_points_to_its_models(model_dir, image_dir, tmp_path, capsys):
    run = tmp_path / "runs" / "x"
    for name in ("final", "best"):
        shutil.copytree(model_dir, run / name)
    (run / "last.pt").write_bytes(b"")
    (run / "train_log.csv").write_text("epoch\n")
    expected = [
        f"{run} is a training run folder, not a model folder: use {run / 'best'}",
        "  its models: best/ (the best validation mIoU), final/ (the last iteration)",
    ]
    with pytest.raises(CheckpointError) as info:
        load_model(run)
    assert str(info.value).splitlines() == expected
    assert predict_main(["-m", str(run), str(image_dir), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    assert error_lines(capsys, "ddrnet-predict") == [f"ddrnet-predict: error: {expected[0]}", expected[1]]
    assert eval_main(["--checkpoint", str(run), "--no-progress"]) == 2
    assert error_lines(capsys, "ddrnet-eval") == [f"ddrnet-eval: error: {expected[0]}", expected[1]]
    assert load_model(run / "best").num_classes == 3  # what it points to loads
    # a run that has exported nothing yet points to its checkpoint; another folder says what a model folder is
    shutil.rmtree(run / "best")
    shutil.rmtree(run / "final")
    with pytest.raises(CheckpointError, match=r"^\S+ is a training run without an exported model yet: use its"):
        load_model(run)
    with pytest.raises(CheckpointError, match=r"images\d*: no config\.json in this folder: give a Hub folder"):
        load_model(image_dir)


# ------------------------------------------------------------------------ point 5: smoke-test models
def test_predict_warns_about_a_smoke_test_model(tmp_path, image_dir, capsys):
    model = tiny()
    model.metadata["training"] = {"smoke_test": True, "iteration": 4}
    smoke = save_pretrained(model, tmp_path / "smoke")
    assert "**Smoke test, not a trained model**" in (smoke / "README.md").read_text()
    warning = (
        f"ddrnet-predict: warning: {smoke} is a smoke test, not a trained model (its card says so): "
        "its predictions are noise"
    )
    assert predict_main(["-m", str(smoke), str(image_dir), "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    assert warning in capsys.readouterr().err.splitlines()
    del model.metadata["training"]
    trained = save_pretrained(model, tmp_path / "trained", model_card=False)
    assert predict_main(["-m", str(trained), str(image_dir), "-o", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err


# ------------------------------------------------------------------------ point 8: ddrnet-eval's results
def test_eval_writes_beside_the_model_folder_not_into_it(model_dir, tmp_path, capsys):
    data = write_folder_dataset(tmp_path / "data", n=2)
    folder = Path(shutil.copytree(model_dir, tmp_path / "models" / "tiny"))
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    data_args = [f"data.root={data}", "data.dataset=folder", "data.class_names=[a, b, c]", "data.val_split=train"]
    assert eval_main(["--checkpoint", str(folder), "--no-progress", "--set", *data_args]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    out = tmp_path / "models" / "tiny.eval_train.json"
    assert json.loads(out.read_text())["images"] == 2
    assert f"results written to {out} (--output to choose)" in capsys.readouterr().out.splitlines()
    # --output: where asked; the message says so
    asked = tmp_path / "reports" / "r.json"
    assert eval_main(["--checkpoint", str(folder), "--no-progress", "--output", str(asked), "--set", *data_args]) == 0
    assert json.loads(asked.read_text())["images"] == 2
    assert f"results written to {asked}" in capsys.readouterr().out.splitlines()
    # a weights file inside a model folder, a training checkpoint, an ONNX file: beside them
    assert default_results_path(folder / "model.safetensors", "val") == tmp_path / "models" / "tiny.eval_val.json"
    assert default_results_path(tmp_path / "runs" / "x" / "last.pt", "val", "_ms_flip") == (
        tmp_path / "runs" / "x" / "last.eval_val_ms_flip.json"
    )
    assert default_results_path(tmp_path / "m.int8.onnx", "test") == tmp_path / "m.int8.eval_test.json"


# ------------------------------------------------------------------------ point 9: short first lines
def _train_args(data: Path, out: Path, **extra) -> List[str]:
    return ["--set", *synthetic_overrides(data, out, **extra)]


def test_the_common_errors_have_a_short_first_line(model_dir, image_dir, tmp_path, monkeypatch, hub_cache, capsys):
    monkeypatch.chdir(tmp_path)
    data = write_folder_dataset(tmp_path / "data", n=2)
    run = tmp_path / "runs" / "x"
    shutil.copytree(model_dir, run / "best")
    wrong_variant = Path(shutil.copytree(model_dir, tmp_path / "wrong_variant"))
    config = json.loads((wrong_variant / "config.json").read_text())
    (wrong_variant / "config.json").write_text(json.dumps({**config, "arch": None}))  # says full-size 23-slim
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.0.weight": torch.ones(1)}, "payload": _Exploit()}, evil)
    palette = tmp_path / "palette.json"
    palette.write_text("[[0, 0, 0], [255, 255, 255]]")
    predict = ["-o", str(tmp_path / "out"), str(image_dir), "--no-progress"]
    cases = {
        "missing path": (predict_main, ["-m", "hub/model", *predict], "no such model folder or file"),
        "run folder": (eval_main, ["--checkpoint", str(run)], "is a training run folder"),
        "unpublished": (predict_main, ["-m", "ddrnet-zoo/ddrnet23_slim.cityscapes", *predict], "not published"),
        "Hub id not found": (predict_main, ["-m", "someone/model", *predict], "cannot get config.json"),
        "no such split": (train_main, _train_args(data, tmp_path / "r1", **{"data.val_split": "test"}), "no split"),
        "backbone weights": (
            train_main,
            _train_args(data, tmp_path / "r2", **{"model.pretrained_backbone": "true"}),
            "set model.backbone_weights=FILE or model.pretrained_backbone=false",
        ),
        "another variant": (predict_main, ["-m", str(wrong_variant), *predict], "another variant"),
        "pickled code": (convert_main, [str(evil), "--check"], "refused"),
        "palette": (predict_main, ["-m", str(model_dir), "--palette", str(palette), *predict], "2 colours"),
    }
    progs = {predict_main: "ddrnet-predict", eval_main: "ddrnet-eval", train_main: "ddrnet-train"}
    progs[convert_main] = "ddrnet-convert"
    for name, (main, argv, says) in cases.items():
        assert main(argv) == 2, name
        lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line or line.startswith("  ")]
        first = lines[0].replace(str(tmp_path), "TMP")
        assert first.startswith(f"{progs[main]}: error: ") and says in first, (name, first)
        assert len(first) <= FIRST_LINE_MAX, f"{name}: a first line of {len(first)} characters:\n{first}"
    assert not (tmp_path / "out").exists()


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


# ------------------------------------------------------------------------ point 6: the model-zoo script
def test_model_zoo_script_shows_what_it_measures_and_no_library_noise(tmp_path):
    env = dict(os.environ, CUDA_HOME=str(tmp_path), PYTHONWARNINGS="default")  # a CUDA toolkit, no GPU
    if torch.cuda.is_available():
        pytest.skip("torch logs 'No CUDA runtime' only without a GPU")
    # what the libraries print without the script's care, so that the check below means something
    control = subprocess.run(
        [sys.executable, "-c", "import torch.utils.benchmark, fvcore.nn"], env=env, capture_output=True, text=True
    )
    assert "No CUDA runtime is found" in control.stderr, "torch no longer logs it: drop model_zoo.py's silencing"
    assert "`torch.jit.script` is deprecated" in control.stderr, "fvcore no longer warns: drop counting.py's filter"
    argv = ["--no-complexity", "--variants", "ddrnet23_slim", "--latency-size", "64", "64", "--runs", "2"]
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "model_zoo.py"), *argv, "--warmup", "1", "--threads", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "No CUDA runtime" not in out.stderr and "Warning" not in out.stderr, out.stderr
    assert "timing ddrnet23_slim eager at 64x64" in out.stderr and "timing ddrnet23_slim deploy at 64x64" in out.stderr
    assert "6/6" in out.stderr  # one step per run, warm-up included, of each form: 2 x (1 + 2)
    assert "ddrnet23_slim    64x64" in out.stdout and "  timed ddrnet23_slim" not in out.stderr  # the old lines
    # fvcore's FutureWarning is silenced where ddrnet_zoo imports it
    count = (
        "import torch; from ddrnet_zoo.models.counting import count_flops; "
        "print(count_flops(torch.nn.Conv2d(3, 4, 3), (1, 3, 8, 8)))"
    )
    flops = subprocess.run([sys.executable, "-c", count], env=env, capture_output=True, text=True, cwd=REPO)
    assert flops.returncode == 0 and flops.stdout.strip() == "3888" and "Warning" not in flops.stderr, flops.stderr


def test_complexity_table_names_each_count_on_the_bar():
    class Bar:
        def __init__(self) -> None:
            self.events: List[str] = []

        def set_description_str(self, text: str) -> None:
            self.events.append(text)

        def update(self, n: int = 1) -> None:
            self.events.append(f"+{n}")

    bar = Bar()
    rows = paper_complexity_table(("III",), progress=bar)
    assert len(rows) == paper_complexity_rows(("III",)) == 3
    assert bar.events == [
        *("counting ddrnet23_slim at 224x224 (Table III)", "+1"),
        *("counting ddrnet23 at 224x224 (Table III)", "+1"),
        *("counting ddrnet39 at 224x224 (Table III)", "+1"),
    ]
