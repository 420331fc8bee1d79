"""Robustness: interrupted saves, whole-folder replacement, file permissions, output locations that
cannot be written, data-loader worker errors and bad model arguments, each with a clear message."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_ARCH_23
from PIL import Image
from test_data import write_folder_dataset
from test_train import synthetic_overrides

from ddrnet_zoo import create_segmentation_model, load_model
from ddrnet_zoo.convert.cli import main as convert_main
from ddrnet_zoo.errors import DDRNetError, InputError, OutputPathError, run_cli, user_message
from ddrnet_zoo.evaluate import main as eval_main
from ddrnet_zoo.export import main as export_main
from ddrnet_zoo.hub import save_pretrained
from ddrnet_zoo.io import (
    atomic_directory,
    atomic_write_text,
    check_output_dir,
    read_state_dict,
    remove_stale_temporaries,
)
from ddrnet_zoo.predict import main as predict_main
from ddrnet_zoo.train import main as train_main


def tiny(num_classes: int = 3, **kwargs):
    return create_segmentation_model("ddrnet23_slim", num_classes=num_classes, arch=TINY_ARCH_23, **kwargs)


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)


# ---------------------------------------------------------------------------------------------- saves
def test_killed_writes_leave_temporaries_that_the_next_write_removes(tmp_path):
    target, folder = tmp_path / "last.pt", tmp_path / "hub"
    # a real process killed (SIGKILL) in the middle of an atomic file write and an atomic folder write
    proc = run_python(
        f"""
        import os, signal
        from ddrnet_zoo.io import atomic_directory, atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"partial")
            with atomic_directory({str(folder)!r}) as staging:
                (staging / "model.safetensors").write_bytes(b"partial")
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists() and not folder.exists()  # nothing half-written in place
    assert len(leftovers(tmp_path)) == 2  # ... but the temporaries of the killed process remain
    atomic_write_text(target, "complete")
    assert target.read_text() == "complete" and leftovers(tmp_path) == [f".hub.{leftovers(tmp_path)[0][5:]}"]
    with atomic_directory(folder) as staging:
        (staging / "a.txt").write_text("a")
    assert leftovers(tmp_path) == [] and sorted(os.listdir(folder)) == ["a.txt"]


def test_temporaries_of_live_or_foreign_writers_are_kept(tmp_path):
    target = tmp_path / "model.safetensors"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())
    mine = tmp_path / f".model.safetensors.{os.getpid()}@{host}.abc.tmp"  # this process: still writing
    foreign = tmp_path / f".model.safetensors.{dead.pid}@other-host.abc.tmp"  # another machine's writer
    stale = tmp_path / f".model.safetensors.{dead.pid}@{host}.abc.tmp"
    unrelated = tmp_path / f".other.{dead.pid}@{host}.abc.tmp"
    for p in (mine, foreign, stale, unrelated):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(target) == 1
    assert not stale.exists() and mine.exists() and foreign.exists() and unrelated.exists()


def test_files_and_folders_get_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        folder = save_pretrained(tiny(), tmp_path / "hub")
        text = atomic_write_text(tmp_path / "notes.txt", "x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {"config.json": 0o640, "model.safetensors": 0o640, "README.md": 0o640}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert stat.S_IMODE(text.stat().st_mode) == 0o640


def test_a_hub_folder_is_replaced_as_a_whole(tmp_path):
    folder = save_pretrained(tiny(3), tmp_path / "hub", model_card=False)
    (folder / "eval_val.json").write_text("{}")  # a report the user keeps beside the model
    (folder / "pytorch_model.bin").write_bytes(b"weights of an older format")
    (folder / "README.md").write_text("an old card")
    new = tiny(5, context="ppm", aux_head=False)
    save_pretrained(new, folder, model_card=False)
    # the new save's files only; the report is kept, the old format's weights and card are gone
    assert sorted(os.listdir(folder)) == ["config.json", "eval_val.json", "model.safetensors"]
    loaded = load_model(folder)
    assert loaded.num_classes == 5 and loaded.context_name == "ppm" and loaded.aux_head is None
    saved = read_state_dict(folder / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in new.state_dict().items())
    assert leftovers(tmp_path) == []


def test_an_interrupted_resave_leaves_the_old_folder_loadable(tmp_path):
    folder = save_pretrained(tiny(3), tmp_path / "hub", model_card=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # killed (SIGKILL) after the new config and weights are written, as the folders are about to be swapped
    proc = run_python(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from conftest import TINY_ARCH_23
        from ddrnet_zoo import create_segmentation_model
        from ddrnet_zoo.hub import save_pretrained

        def kill_at_swap(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "_exchange":
                os.kill(os.getpid(), signal.SIGKILL)

        model = create_segmentation_model("ddrnet23_slim", num_classes=7, arch=TINY_ARCH_23)
        sys.setprofile(kill_at_swap)
        save_pretrained(model, {str(folder)!r}, model_card=False)
        """
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert load_model(folder).num_classes == 3
    save_pretrained(tiny(4), folder, model_card=False)
    assert load_model(folder).num_classes == 4 and leftovers(tmp_path) == []


def test_save_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        save_pretrained(tiny(), tmp_path / "file" / "hub")
    with pytest.raises(OutputPathError, match="exists and is not a folder"):
        save_pretrained(tiny(), tmp_path / "file")
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------- CLIs
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_pretrained(tiny(3), tmp_path_factory.mktemp("hub") / "tiny", model_card=False)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(root / "a.png")
    return root


def unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create: under a read-only folder, or under /sys for root."""
    if os.geteuid() == 0:
        try:
            os.mkdir("/sys/ddrnet_zoo_probe")
        except PermissionError:
            return Path("/sys/ddrnet_zoo_probe/out")
        pytest.skip("no location here refuses root's writes")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "out"


def cli_cases(model_dir: Path, image_dir: Path, out: Path, tmp_path: Path):
    data = write_folder_dataset(tmp_path / "data", n=2)
    return {
        "ddrnet-predict": (predict_main, ["-m", str(model_dir), str(image_dir), "-o", str(out), "--no-progress"]),
        "ddrnet-export": (export_main, ["-m", str(model_dir), "-o", str(out / "m.pt2"), "--no-fold"]),
        "ddrnet-train": (train_main, ["--set", *synthetic_overrides(data, out)]),
        "ddrnet-eval": (
            eval_main,
            ["--checkpoint", str(model_dir), "--output", str(out / "r.json"), "--no-progress", "--set"]
            + [f"data.root={data}", "data.dataset=folder", "data.class_names=[a, b, c]", "data.val_split=train"],
        ),
        "ddrnet-convert": (
            convert_main,
            [str(model_dir / "model.safetensors"), str(out / "w.pth"), "--to", "original"],
        ),
    }


@pytest.mark.parametrize("where", ["file", "permission"])
@pytest.mark.parametrize("prog", ["ddrnet-predict", "ddrnet-export", "ddrnet-train", "ddrnet-eval", "ddrnet-convert"])
def test_clis_report_unwritable_outputs_in_one_line(prog, where, model_dir, image_dir, tmp_path, capsys):
    if where == "file":
        (tmp_path / "blocker").write_text("a file where a folder should be")
        out = tmp_path / "blocker" / "out"
    else:
        out = unwritable(tmp_path)
    main, argv = cli_cases(model_dir, image_dir, out, tmp_path)[prog]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    if where == "file":
        assert "blocker is a file, not a folder" in err, err
    else:
        assert "not permitted" in err or "permission" in err.lower() or "not writable" in err, err
    assert not out.exists()


def test_worker_errors_reach_the_user_as_one_line(tmp_path, capsys):
    data = write_folder_dataset(tmp_path / "data", n=4)
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(data / "ann" / "train1.png")  # an RGB label: refused
    argv = ["--set", *synthetic_overrides(data, tmp_path / "run", **{"data.num_workers": 2})]
    assert train_main(argv) == 2
    log = capsys.readouterr().err.strip()
    err = log[log.index("ddrnet-train: error:") :].splitlines()  # after the training log's lines
    assert "Traceback" not in log and log.count("ddrnet-train: error:") == 1, log
    assert err[0].startswith("ddrnet-train: error: label image") and "train1.png is RGB, not class indices" in err[0]
    assert err[0].endswith("(in data-loader worker 0)") or err[0].endswith("(in data-loader worker 1)"), err
    assert len(err) == 2 and err[1].startswith("  labels are 8/16-bit grayscale"), err  # the details, indented


def test_truncated_image_with_workers(model_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rgb = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src / "whole.jpg", quality=90)
    data = (src / "whole.jpg").read_bytes()
    (src / "cut.jpg").write_bytes(data[: len(data) // 2])  # a valid header, half the data
    argv = ["-m", str(model_dir), str(src), "-o", str(tmp_path / "out"), "--workers", "2", "--no-progress"]
    assert predict_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "cut.jpg" in err, err


def test_user_message_reduces_a_worker_traceback():
    from torch._utils import ExceptionWrapper

    try:
        raise OutputPathError("the output folder x is not writable\n  choose another location")
    except OutputPathError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 3")
    with pytest.raises(OutputPathError) as info:
        wrapped.reraise()
    assert "Original Traceback" in str(info.value)
    assert user_message(info.value) == (  # the worker's number ends the first line; the details follow
        "the output folder x is not writable (in data-loader worker 3)\n  choose another location"
    )
    err = PermissionError(13, "Permission denied", "/x/y")
    assert user_message(err) == "[Errno 13] Permission denied: '/x/y': check the permissions of the path or choose " \
        "another location"  # fmt: skip


def test_check_output_dir_creates_nothing(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match=r"f is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "b")
    assert issubclass(OutputPathError, DDRNetError) and issubclass(OutputPathError, OSError)


# ---------------------------------------------------------------------------------------------- model arguments
@pytest.mark.parametrize("bad", [2.5, -3, 0, True, "5", None])
def test_num_classes_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match=rf"num_classes must be a positive integer .* got {bad!r}"):
        create_segmentation_model("ddrnet23_slim", num_classes=bad)


def test_num_classes_accepts_integer_types():
    model = tiny(np.int64(4))
    assert model.num_classes == 4 and type(model.config["num_classes"]) is int
    json.dumps(dict(model.config))


def test_run_cli_reports_user_errors_and_lets_bugs_surface(capsys):
    def user_error() -> int:
        raise InputError("num_classes must be a positive integer, got 0")

    def bug() -> int:
        raise KeyError("an internal bug")

    assert run_cli("prog", user_error) == 2
    assert capsys.readouterr().err == "prog: error: num_classes must be a positive integer, got 0\n"
    with pytest.raises(KeyError, match="an internal bug"):
        run_cli("prog", bug)
    with pytest.raises(ValueError):  # a plain ValueError is a bug, not a user error: it keeps its traceback
        run_cli("prog", lambda: int("x"))
