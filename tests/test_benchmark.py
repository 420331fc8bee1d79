"""Benchmark plumbing: the other-load report and the model-zoo script's warning when the machine was busy."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

from ddrnet_zoo.benchmark import OTHER_LOAD_THRESHOLD, OtherLoad, other_load_report

needs_proc_stat = pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="CPU load needs /proc/stat (Linux)")


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BusyLoops:
    """One busy-looping process per CPU, started and running before the block, stopped after it."""

    def __enter__(self) -> BusyLoops:
        code = "import sys, time\nprint('ready', flush=True)\nend = time.time() + 60\nwhile time.time() < end: pass"
        self.procs = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            for _ in range(os.cpu_count() or 1)
        ]
        for p in self.procs:
            assert p.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
            p.stdout.close()


def test_other_load_report_warns_above_the_threshold_only():
    assert other_load_report(None, 3.0) == []  # no /proc/stat: nothing claimed
    for fraction in (0.0, 0.01, OTHER_LOAD_THRESHOLD):
        lines = other_load_report(fraction, 12.0, busy_before=0.02)
        assert len(lines) == 1 and "WARNING" not in lines[0]
        assert lines[0] == (
            f"other processes used {fraction:.0%} of the CPUs during the 12 s of timing (CPU busy just before: 2%)"
        )
    lines = other_load_report(0.37, 12.0)
    assert len(lines) == 2
    assert lines[1].startswith("WARNING: other processes took 37% of the CPUs while timing (more than 5%): these")
    assert "rerun on an idle machine" in lines[1]


def test_model_zoo_load_report_is_decided_by_the_worst_row():
    zoo = _load_script("model_zoo")
    quiet = {"model": "ddrnet23", "timing_seconds": 9.0, "other_load": 0.0}
    disturbed = {"model": "ddrnet23_slim", "timing_seconds": 1.0, "other_load": 0.3}
    lines = zoo.latency_load_report([disturbed, quiet], busy_before=0.0)
    # 3% over all the timing, but 30% while the slim model was timed: its row is not trustworthy
    assert lines[0].startswith("other processes used 3% of the CPUs during the 10 s of timing")
    assert lines[1].startswith("WARNING: other processes took 30% of the CPUs while timing")
    assert "(ddrnet23_slim most)" in lines[1]
    assert zoo.latency_load_report([quiet, dict(quiet, model="ddrnet39")]) == [
        "other processes used 0% of the CPUs during the 18 s of timing"
    ]
    assert zoo.latency_load_report([dict(quiet, other_load=None)]) == []


@needs_proc_stat
def test_other_load_measures_a_busy_loop():
    with BusyLoops(), OtherLoad() as others:
        time.sleep(0.5)
    assert others.fraction is not None and others.fraction > 0.5
    assert any(line.startswith("WARNING") for line in other_load_report(others.fraction, 0.5))


@needs_proc_stat
def test_model_zoo_warns_when_the_machine_was_busy_while_timing(capsys):
    zoo = _load_script("model_zoo")
    argv = ["--no-complexity", "--variants", "ddrnet23_slim", "--latency-size", "64", "64", "--runs", "2"]
    threads = torch.get_num_threads()
    try:
        with BusyLoops():  # one thread: OpenMP threads fighting the busy loops would take many seconds
            assert zoo.main([*argv, "--warmup", "0", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    table = out.split("CPU latency", 1)[1]
    assert "other load" in table and "ddrnet23_slim" in table
    assert "\nother processes used " in table
    assert "\nWARNING: other processes took " in table and "rerun on an idle machine" in table
