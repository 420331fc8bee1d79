"""What clusters do to a run: stop signals (preemption), a restarted torchrun worker group, a full disk.

Weights are compared with ``torch.equal``: the runs execute the same kernels in this process with the
same thread count, so any difference is a resume bug, not rounding.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import REPO, TINY_ARCH_23
from safetensors import SafetensorError
from safetensors.torch import load_file
from test_data import write_folder_dataset
from test_ddp import _free_port
from test_train import fast_cpu, synthetic_overrides  # noqa: F401  (the fast_cpu fixture)

from ddrnet_zoo import create_segmentation_model, load_model
from ddrnet_zoo import train as train_cli
from ddrnet_zoo.engine import ConfigError, load_config, train
from ddrnet_zoo.engine import checkpoint as checkpoint_module
from ddrnet_zoo.engine import distributed as dist_utils
from ddrnet_zoo.engine import trainer as trainer_module
from ddrnet_zoo.engine.checkpoint import load_checkpoint
from ddrnet_zoo.engine.preemption import EXIT_PREEMPTED, parse_signals
from ddrnet_zoo.engine.trainer import Trainer
from ddrnet_zoo.hub import save_pretrained
from ddrnet_zoo.io import CheckpointError, DiskFullError
from ddrnet_zoo.models import segmentation as segmentation_module


def read_rows(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def weights(run: Path) -> dict:
    return load_file(run / "final" / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, different[:5]


def signal_at(monkeypatch, iteration: int, sig: signal.Signals) -> None:
    """Send ``sig`` to this process when optimizer step ``iteration`` has been taken (as a scheduler would)."""
    real, calls = trainer_module.train_step, [0]

    def step(*args, **kwargs):
        real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == iteration:
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(trainer_module, "train_step", step)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The uninterrupted run the others are compared with: its data, overrides and output folder ``a``."""
    tmp = tmp_path_factory.mktemp("straight")
    root = write_folder_dataset(tmp / "data", n=4)
    mkldnn = torch.backends.mkldnn.enabled  # the settings of the fast_cpu fixture, for a module-scoped run
    torch.backends.mkldnn.enabled = False
    torch.set_flush_denormal(True)
    try:
        results = train(load_config(None, synthetic_overrides(root, tmp / "a")))
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        torch.set_flush_denormal(False)
    return {"root": root, "out": tmp / "a", "results": results}


# ---------------------------------------------------------------------------------------------- signals
@pytest.mark.usefixtures("fast_cpu")
def test_a_signalled_run_resumes_to_the_weights_of_a_straight_run(straight, tmp_path, monkeypatch):
    """2 iterations per epoch, evaluation after each. SIGTERM after iteration 4 comes between the epoch's last
    step and its evaluation, which the resumed run does first: the evaluation log matches too."""
    root, out = straight["root"], tmp_path / "b"
    before = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as m:
        signal_at(m, 4, signal.SIGTERM)
        stopped = train(load_config(None, synthetic_overrides(root, out)))
    assert stopped["stop_signal"] == "SIGTERM" and stopped["stopped_early"] and stopped["iteration"] == 4
    assert signal.getsignal(signal.SIGTERM) is before  # the process's handler again after the run
    state = load_checkpoint(out / "last.pt")
    assert state["iteration"] == 4 and state["pending_epoch_end"] == 1  # no finished step lost
    assert not (out / "final").exists() and len(read_rows(out / "eval_log.csv")) == 1
    resumed = train(load_config(None, synthetic_overrides(root, out)), "auto")
    assert resumed["iteration"] == 6 and resumed["stop_signal"] is None
    assert_same_weights(straight["out"], out)
    ea, eb = read_rows(straight["out"] / "eval_log.csv"), read_rows(out / "eval_log.csv")
    assert [(r["iteration"], r["miou"]) for r in ea] == [(r["iteration"], r["miou"]) for r in eb] and len(ea) == 3
    assert resumed["final"]["miou"] == straight["results"]["final"]["miou"]


def test_stop_signals_config(tmp_path):
    assert parse_signals(["TERM", "sigusr1", "SIGTERM"]) == (signal.SIGTERM, signal.SIGUSR1)
    root = write_folder_dataset(tmp_path / "data", n=4)
    for bad in ("SIGKILL", "SIGNOPE"):
        with pytest.raises(ConfigError, match=f"train.stop_signals: '{bad}' is not a signal that can be caught"):
            load_config(None, synthetic_overrides(root, tmp_path / "a", **{"train.stop_signals": f"[{bad}]"}))
    assert load_config(None, synthetic_overrides(root, tmp_path / "a", **{"train.stop_signals": "[]"}))


def test_the_cli_stops_on_sigterm_with_a_checkpoint_and_one_line(tmp_path):
    """A real ``ddrnet-train`` process and its data-loader worker, SIGTERM to both (as SLURM signals every
    process of a job): exit status 75, one line, no traceback, and ``last.pt`` holds every logged iteration."""
    root = write_folder_dataset(tmp_path / "data", n=4)
    out = tmp_path / "run"
    argv = ["--set", *synthetic_overrides(root, out, **{"train.epochs": 1000, "data.num_workers": 1})]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddrnet_zoo.train", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, with its loader worker
    )
    try:
        log = out / "train_log.csv"
        while proc.poll() is None and not (log.is_file() and len(read_rows(log)) >= 3):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode()
    assert proc.returncode == EXIT_PREEMPTED, err
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    rows = read_rows(out / "train_log.csv")
    state = load_checkpoint(out / "last.pt")
    assert state["iteration"] == int(rows[-1]["iteration"]) >= 3
    assert last_line == (
        f"ddrnet-train: stopped by SIGTERM after iteration {state['iteration']}; {out / 'last.pt'} is written: "
        f"continue with --resume (exit status {EXIT_PREEMPTED})"
    )
    print(f"\nSIGTERM -> exit {proc.returncode} in {seconds:.2f} s, stopped after iteration {state['iteration']}")


def _ddp_worker(rank: int, world: int, port: int, overrides: list, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    try:
        trainer = Trainer(load_config(None, overrides))
        if rank == 1:  # only rank 1 is signalled, after its third step
            real, calls = trainer_module.train_step, [0]

            def step(*args, **kwargs):
                real(*args, **kwargs)
                calls[0] += 1
                if calls[0] == 3:
                    os.kill(os.getpid(), signal.SIGUSR1)

            trainer_module.train_step = step
        results = trainer.fit()
        torch.save({"iteration": results["iteration"], "signal": results["stop_signal"]}, Path(out) / f"r{rank}.pt")
    finally:
        dist_utils.cleanup_distributed()


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    root = write_folder_dataset(tmp_path / "data", n=8)
    overrides = synthetic_overrides(root, tmp_path / "run", **{"data.batch_size": 4, "train.epochs": 4})
    mp.spawn(_ddp_worker, args=(2, _free_port(), overrides, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "r0.pt"), torch.load(tmp_path / "r1.pt")
    assert r0 == r1 == {"iteration": 3, "signal": "SIGUSR1"}
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 3


@pytest.mark.usefixtures("fast_cpu")
def test_a_checkpoint_that_does_not_fit_is_refused_on_resume(straight, tmp_path):
    """Parts that torch would take and fail on later (an optimizer buffer of another shape, no random states)."""
    state = torch.load(straight["out"] / "last.pt", weights_only=True)
    first = next(iter(state["optimizer"]["state"]))
    state["optimizer"]["state"][first]["momentum_buffer"] = torch.zeros(7)
    torch.save(state, tmp_path / "a.pt")
    del state["rng"]
    torch.save(state, tmp_path / "b.pt")
    cfg = load_config(None, synthetic_overrides(straight["root"], tmp_path / "run"))
    with pytest.raises(CheckpointError, match=r"a.pt: its optimizer's momentum_buffer of shape \[7\] does not fit"):
        Trainer(cfg, resume=str(tmp_path / "a.pt"))
    with pytest.raises(CheckpointError, match=r"b.pt: a training checkpoint without 'rng': incomplete or corrupt"):
        Trainer(cfg, resume=str(tmp_path / "b.pt"))


# ---------------------------------------------------------------------------------------------- restarts
@pytest.mark.usefixtures("fast_cpu")
def test_a_restarted_worker_group_resumes_by_itself(straight, tmp_path, monkeypatch):
    """torchrun restarts a failed group with TORCHELASTIC_RESTART_COUNT > 0: the run continues from its own
    last.pt, even when the command line names another checkpoint, to the weights of a straight run."""
    root, out = straight["root"], tmp_path / "b"
    train(load_config(None, synthetic_overrides(root, out, **{"train.stop_at_iter": 3})))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    trainer = Trainer(load_config(None, synthetic_overrides(root, out)), resume=str(straight["out"] / "last.pt"))
    assert trainer.iteration == 3
    trainer.fit()
    assert_same_weights(straight["out"], out)
    # the first start of a group (count 0) resumes nothing unless told to
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert Trainer(load_config(None, synthetic_overrides(root, out))).iteration == 0


_MARK = "DDRNET_TEST_TORCHRUN"


def _processes_marked(mark: str) -> list:
    """The processes whose environment holds ``_MARK=mark``: a torchrun started by a test and its workers (torch
    starts each worker in a session of its own, out of reach of a signal to torchrun's process group)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"{_MARK}={mark}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours
                pass
    return found


def _worker_of_rank(torchrun_pid: int, rank: int) -> int:
    """The pid of torchrun's worker process of ``rank`` (its environment says RANK)."""
    for task in Path(f"/proc/{torchrun_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return int(pid)
    raise AssertionError(f"no worker of rank {rank} under torchrun (pid {torchrun_pid})")


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or not torch.distributed.is_available()
    or not torch.distributed.is_gloo_available(),
    reason="needs Linux (/proc) and torch.distributed with gloo (torchrun on CPU)",
)
def test_torchrun_restarts_a_group_whose_worker_was_killed_and_it_resumes_by_itself(tmp_path):
    """``torchrun --max-restarts 1``, two CPU (gloo) workers; rank 1 SIGKILLed mid-run, after a checkpoint.
    torchrun restarts the group, which continues from its last.pt by itself to the weights of an uninterrupted
    torchrun run (same data, seed and thread count; the checkpoint restores every process's random state)."""
    root = write_folder_dataset(tmp_path / "data", n=8)
    max_iters = 40  # 2 per epoch (8 images, 4 per step over 2 processes); last.pt every 2 epochs (4 iterations)
    extra = {"data.batch_size": 4, "train.epochs": max_iters // 2, "train.eval_interval": 1000}
    extra["train.checkpoint_interval"] = 2  # killed after iteration 5 or so: the restart computes some again
    mark = f"{os.getpid()}-{tmp_path.name}"
    env = {**os.environ, "PYTHONPATH": str(REPO), _MARK: mark}

    def torchrun(out: Path) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        cmd += ["--max-restarts", "1", "-m", "ddrnet_zoo.train", "--set", *synthetic_overrides(root, out, **extra)]
        with open(tmp_path / f"{out.name}.out", "wb") as f:
            return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def output(out: Path) -> str:
        return (tmp_path / f"{out.name}.out").read_text(errors="replace")

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    try:
        proc = torchrun(straight)
        assert proc.wait(timeout=180) == 0, output(straight)[-3000:]
        t = time.monotonic()
        proc = torchrun(killed)
        log = killed / "train_log.csv"
        while proc.poll() is None and not (
            (killed / "last.pt").is_file() and log.is_file() and len(read_rows(log)) >= 3
        ):
            assert time.monotonic() - t < 180, f"no checkpoint and 5 iterations in 180 s:\n{output(killed)[-3000:]}"
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it was killed:\n{output(killed)[-3000:]}"
        victim = _worker_of_rank(proc.pid, 1)
        saved = load_checkpoint(killed / "last.pt")["iteration"]  # written atomically: whole or the previous one
        os.kill(victim, signal.SIGKILL)
        logged = int(read_rows(log)[-1]["iteration"])
        assert logged < max_iters, "the run ended before the kill; make it longer"
        assert proc.wait(timeout=180) == 0, output(killed)[-3000:]
        seconds = time.monotonic() - t
    finally:
        for pid in _processes_marked(mark):  # torchrun and its workers, also when an assertion failed
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert re.search(r"exitcode\W+-9\b", output(killed)), "torchrun did not report a worker killed by SIGKILL"
    text = (killed / "train.log").read_text()
    before, _, after = text.partition("torchrun restart 1: continuing from")  # TORCHELASTIC_RESTART_COUNT=1
    assert after and "torchrun restart" not in after, "not exactly one restart"
    last_before = max(int(n) for n in re.findall(r" iter (\d+)/", before))
    resumed = [int(n) for n in re.findall(r"resumed from \S+last\.pt at iteration (\d+)", after)]
    assert len(resumed) == 1 and saved <= resumed[0] <= last_before, (saved, resumed, last_before)
    assert json.loads((killed / "results.json").read_text())["iteration"] == max_iters
    assert [int(r["iteration"]) for r in read_rows(log)] == list(range(1, max_iters + 1))  # repeats replaced
    assert_same_weights(straight, killed)
    print(
        f"\nSIGKILL to rank 1 after iteration {logged} (last.pt: {saved}); torchrun restarted the group, which "
        f"resumed at iteration {resumed[0]} ({last_before - resumed[0]} repeated) and finished in {seconds:.1f} s"
    )


# ---------------------------------------------------------------------------------------------- full disk
class _DiskWithRoomFor:
    """``open`` for one module: files opened for writing take ``free`` more bytes, then fail with ENOSPC."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if "w" not in mode:
            return f
        disk, real_write = self, f.write

        def write(data) -> int:
            n = len(memoryview(data).cast("B"))
            if n > disk.free:
                real_write(memoryview(data).cast("B")[: disk.free])
                disk.free = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            disk.free -= n
            return real_write(data)

        class Handle:  # the file, with the failing write
            def __getattr__(self, name):
                return write if name == "write" else getattr(f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

        return Handle()


@pytest.mark.usefixtures("fast_cpu")
def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    root = write_folder_dataset(tmp_path / "data", n=4)
    out = tmp_path / "run"
    argv = ["--set", *synthetic_overrides(root, out, **{"train.eval_interval": 100})]
    saves = [0]
    real_save = checkpoint_module.save_checkpoint

    def save(path, state):  # the second checkpoint (iteration 4) finds the disk full 1000 bytes into the file
        saves[0] += 1
        if saves[0] == 2:
            monkeypatch.setattr(checkpoint_module, "open", _DiskWithRoomFor(1000), raising=False)
        try:
            return real_save(path, state)
        finally:
            monkeypatch.delattr(checkpoint_module, "open", raising=False)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]  # after the log messages
    assert last_line.startswith(f"ddrnet-train: error: cannot write {out / 'last.pt'}: the disk is full (")
    assert last_line.endswith(
        "the previous last.pt is unchanged and the partial temporary was removed. Free space or choose another location"
    )
    assert load_checkpoint(out / "last.pt")["iteration"] == 2  # the first checkpoint, intact and loadable
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    # the run continues from it once there is room
    assert train_cli.main([*argv, "--resume"]) == 0 and load_checkpoint(out / "last.pt")["iteration"] == 6


def test_a_full_disk_at_a_hub_folder_save_keeps_the_previous_folder(tmp_path, monkeypatch):
    """safetensors writes in Rust; a full disk reaches Python as SafetensorError("... (os error 28)")."""
    folder = tmp_path / "best"
    model = create_segmentation_model("ddrnet23_slim", num_classes=3, arch=TINY_ARCH_23)
    save_pretrained(model, folder)
    before = load_file(folder / "model.safetensors")
    real_save_file = segmentation_module.save_file

    def save_file(tensors, filename, metadata=None):  # the disk fills half-way through the new folder
        Path(filename).write_bytes(b"\0" * 100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(segmentation_module, "save_file", save_file)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(DiskFullError) as caught:
        save_pretrained(model, folder)
    assert str(caught.value).startswith(f"cannot write {folder}: the disk is full (")
    assert "the previous best is unchanged and the partial temporary was removed" in str(caught.value)
    after = load_file(folder / "model.safetensors")  # the first save, intact and loadable
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert load_model(folder) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no temporary left
    monkeypatch.setattr(segmentation_module, "save_file", real_save_file)
