#!/usr/bin/env python
"""What clusters do to a training run, done to real ``ddrnet-train`` processes, with the outcome measured.

- ``preempt``: a straight run; the same run sent a signal (default SIGTERM) once it has logged
  ``--signal-at`` iterations, then resumed with ``--resume``. Reports the exit status, the seconds from
  the signal to the exit, the iterations lost (logged but not in ``last.pt``), and whether the resumed
  run's final weights equal the straight run's, tensor for tensor.
- ``preempt-torchrun``: the same for ``torchrun --nproc_per_node 2`` (CPU, gloo): SIGTERM to torchrun alone
  (``--signal-to torchrun``: Kubernetes signals a container's first process) or to torchrun and its
  workers (``all``: SLURM signals every process of a job step); resumed under torchrun, compared with an
  uninterrupted torchrun run.
- ``dead-worker``: the same under ``torchrun --nproc_per_node 2 --max-restarts 2`` (CPU, gloo): one worker
  is killed with SIGKILL once ``--signal-at`` iterations are logged; torchrun restarts the group, which
  resumes from its last checkpoint by itself. Reports torchrun's exit status, the restarts, the
  iterations repeated (the last logged before the restart minus the one resumed at), and the comparison
  with an uninterrupted ``torchrun`` run.
- ``full-disk``: the run writes into a small tmpfs (root only: ``mount -t tmpfs``), so that a checkpoint
  or model folder finds the disk full. Reports the exit status, the message, and whether the last
  complete ``last.pt`` loads.

Every run uses the same command line apart from the output folder, so the weights can be compared. Progress
(the phase, each wait, the seconds) goes to stderr; every wait has a deadline (``--timeout``), past which the
run is killed with its workers and the script stops with their state and last lines of output::

    python scripts/cluster_faults.py preempt --config smoke_camvid --data-root ../shared/data/camvid
    python scripts/cluster_faults.py dead-worker --config smoke_camvid --data-root ../shared/data/camvid
    python scripts/cluster_faults.py full-disk --config smoke_camvid --data-root ../shared/data/camvid
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from safetensors.torch import load_file

from ddrnet_zoo.engine.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> List[Dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _logged(out: Path) -> int:
    rows = _rows(out / "train_log.csv")
    return int(rows[-1]["iteration"]) if rows else 0


def _train_cmd(args: argparse.Namespace, out: Path, resume: bool = False) -> List[str]:
    cmd = ["-m", "ddrnet_zoo.train", "--config", args.config, "--train.output_dir", str(out)]
    if args.data_root:
        cmd += ["--data.root", args.data_root]
    cmd += ["--set", "train.progress=false", "train.log_interval=1", *args.set]
    return cmd + (["--resume"] if resume else [])


_MARK = "DDRNET_CLUSTER_FAULTS_RUN"
"""An environment variable every process the script starts inherits (torchrun's workers too, which torch starts
in sessions of their own, out of reach of a signal to torchrun's process group): the cleanup finds them by it."""


def _env() -> Dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        _MARK: f"{os.getpid()}",
    }


def _marked() -> List[int]:
    """The processes this script started, with their descendants (by the environment variable ``_MARK``)."""
    mark, found = f"{_MARK}={os.getpid()}".encode(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours
                pass
    return found


_START = time.monotonic()


def _say(message: str) -> None:
    """Progress on stderr: the phase and each wait, with the seconds since the script started."""
    print(f"[cluster_faults {time.monotonic() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def _start(cmd: List[str], output: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (so that it can be killed with its workers), its stdout and
    stderr into the file ``output`` (a pipe nobody reads while the script waits would fill and block it)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as f:
        return subprocess.Popen(cmd, env=_env(), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _group_state(proc: subprocess.Popen) -> str:
    """The processes the script started, with their state and what they wait in (for a message)."""
    pids = ",".join(str(p) for p in [proc.pid, *_marked()])
    try:
        ps = subprocess.run(
            ["ps", "-o", "pid,ppid,stat,wchan:24,etime,args", "-p", pids], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"    (ps failed: {e})"
    return "\n".join("    " + line[:160] for line in ps.stdout.strip().splitlines())


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``, its process group and every other process the script started (torch starts
    torchrun's workers in sessions of their own), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in _marked():
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def _finish(proc: subprocess.Popen, timeout: float, what: str, output: Path) -> int:
    """Wait at most ``timeout`` seconds for ``proc`` to exit; past it, kill its group and stop the script."""
    _say(f"waiting up to {timeout:g} s for {what} to exit")
    t = time.monotonic()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        state = _group_state(proc)
        _kill_group(proc)
        raise SystemExit(
            f"cluster_faults: {what} did not exit within {timeout:g} s (killed with its process group); "
            f"raise --timeout if it is only slow. Its processes then:\n{state}\n"
            f"The last lines of {output}:\n{_tail(output)}"
        ) from None
    _say(f"{what} exited with status {code} after {time.monotonic() - t:.1f} s")
    return code


def _run(cmd: List[str], timeout: float, what: str, output: Path) -> float:
    """Run ``cmd`` to its end (at most ``timeout`` seconds); it must succeed. Returns its seconds."""
    _say(f"starting {what}")
    t = time.monotonic()
    proc = _start(cmd, output)
    try:
        code = _finish(proc, timeout, what, output)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    if code != 0:
        raise SystemExit(
            f"cluster_faults: {what} failed (exit status {code}). The last lines of {output}:\n{_tail(output)}"
        )
    return time.monotonic() - t


def _check_signal_at(args: argparse.Namespace, total: Optional[int], where: str) -> None:
    """Refuse a ``--signal-at`` the run never reaches (it would be waited for in vain)."""
    if args.signal_at < 1:
        raise SystemExit(f"cluster_faults: --signal-at {args.signal_at}: give an iteration >= 1")
    if total is not None and args.signal_at >= total:
        raise SystemExit(
            f"cluster_faults: --signal-at {args.signal_at} is never reached before the run ends: {where} "
            f"{total} iterations; give --signal-at below {total} or raise train.max_iters"
        )


def _max_iters_set(args: argparse.Namespace) -> Optional[int]:
    """``train.max_iters`` of ``--set``, if given (else the recipe's epochs decide the length)."""
    for item in args.set:
        key, _, value = item.partition("=")
        if key.strip() == "train.max_iters" and value.strip().isdigit():
            return int(value)
    return None


def _wait_for(proc: subprocess.Popen, out: Path, iteration: int, timeout: float, output: Path) -> None:
    """Wait until the run in ``out`` has logged ``iteration`` (at most ``timeout`` seconds).

    Stops the script with a message when the run exits before it or the deadline passes (the run is
    then killed with its process group)."""
    _say(f"waiting up to {timeout:g} s for iteration {iteration} in {out / 'train_log.csv'}")
    t = time.monotonic()
    said = t
    while proc.poll() is None and _logged(out) < iteration:
        now = time.monotonic()
        if now - t > timeout:
            logged, state = _logged(out), _group_state(proc)
            _kill_group(proc)
            raise SystemExit(
                f"cluster_faults: iteration {iteration} was not logged within {timeout:g} s (the run had logged "
                f"{logged}; killed with its process group); raise --timeout if it is only slow. Its processes "
                f"then:\n{state}\nThe last lines of {output}:\n{_tail(output)}"
            )
        if now - said >= 10:
            _say(f"  ... {now - t:.0f} s: {_logged(out)} of {iteration} iterations logged")
            said = now
        time.sleep(0.05)
    if proc.poll() is not None:
        raise SystemExit(
            f"cluster_faults: the run exited (status {proc.returncode}) after logging {_logged(out)} iterations, "
            f"before iteration {iteration}: give a smaller --signal-at or raise train.max_iters. "
            f"The last lines of {output}:\n{_tail(output)}"
        )
    _say(f"iteration {_logged(out)} logged after {time.monotonic() - t:.1f} s")


def compare(a: Path, b: Path) -> Dict[str, Any]:
    """Tensor-for-tensor comparison of two ``final/model.safetensors``."""
    wa, wb = load_file(a / "final" / "model.safetensors"), load_file(b / "final" / "model.safetensors")
    equal = [k for k in wa if k in wb and torch.equal(wa[k], wb[k])]
    diff = max(((wa[k].double() - wb[k].double()).abs().max().item() for k in wa if k in wb), default=0.0)
    return {"tensors": len(wa), "identical": len(equal), "max_abs_diff": diff, "same_keys": wa.keys() == wb.keys()}


def _checkpoint_iteration(out: Path) -> Optional[int]:
    try:
        return int(load_checkpoint(out / "last.pt")["iteration"])
    except Exception as e:  # noqa: BLE001  (reported)
        print(f"last.pt does not load: {e}", file=sys.stderr)
        return None


def _straight(args: argparse.Namespace, cmd: List[str], out: Path, what: str) -> float:
    """The uninterrupted run; refuses a ``--signal-at`` it does not pass. Returns its seconds."""
    seconds = _run(cmd, args.timeout, what, out.parent / f"{out.name}.out")
    _check_signal_at(args, _logged(out), "the uninterrupted run logged")
    return seconds


def _stop(proc: subprocess.Popen, args: argparse.Namespace, what: str, output: Path) -> None:
    """After a stop signal: wait for the run's exit (at most ``--timeout``)."""
    try:
        _finish(proc, args.timeout, what, output)
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def _last_line(output: Path) -> str:
    lines = output.read_text(errors="replace").strip().splitlines() if output.is_file() else []
    return lines[-1] if lines else ""


def preempt(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    straight, stopped = work / "straight", work / "stopped"
    straight_s = _straight(args, [sys.executable, *_train_cmd(args, straight)], straight, "the straight run")
    _say("starting the run to be signalled")
    output = work / "stopped.out"
    proc = _start([sys.executable, *_train_cmd(args, stopped)], output)
    try:
        _wait_for(proc, stopped, args.signal_at, args.timeout, output)
        sig = signal.Signals[args.signal]
        _say(f"sending {sig.name} to ddrnet-train (pid {proc.pid})")
        sent = time.monotonic()
        proc.send_signal(sig)
        _stop(proc, args, "the signalled run", output)
        exit_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    logged, saved = _logged(stopped), _checkpoint_iteration(stopped)
    err = output.read_text(errors="replace")
    _say("resuming it with --resume")
    resume_out = work / "resumed.out"
    resumed = _start([sys.executable, *_train_cmd(args, stopped, resume=True)], resume_out)
    resumed_status = _finish(resumed, args.timeout, "the resumed run", resume_out)
    return {
        "signal": sig.name,
        "sent_after_iteration": args.signal_at,
        "exit_status": proc.returncode,
        "seconds_signal_to_exit": round(exit_s, 2),
        "last_stderr_line": _last_line(output),
        "traceback": "Traceback" in err,
        "iterations_logged": logged,
        "iterations_in_last_pt": saved,
        "iterations_lost": None if saved is None else logged - saved,
        "resume_exit_status": resumed_status,
        "straight_run_seconds": round(straight_s, 1),
        "final_weights_vs_straight": compare(straight, stopped) if resumed_status == 0 else None,
    }


def _children(pid: int) -> List[int]:
    """The child processes of ``pid`` (started by any of its threads)."""
    found: List[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _rank_of(pid: int) -> Optional[int]:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def _torchrun(args: argparse.Namespace, out: Path, restarts: int) -> List[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--max-restarts",
        str(restarts),
        "--monitor-interval",
        "0.5",
        *_train_cmd(args, out),
    ]


def preempt_torchrun(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    straight, stopped = work / "ddp_straight", work / "ddp_stopped"
    _straight(args, _torchrun(args, straight, 0), straight, "the straight torchrun run")
    _say("starting the torchrun run to be signalled")
    output = work / "ddp_stopped.out"
    proc = _start(_torchrun(args, stopped, 0), output)
    try:
        _wait_for(proc, stopped, args.signal_at, args.timeout, output)
        sig = signal.Signals[args.signal]
        targets = [proc.pid] + (_children(proc.pid) if args.signal_to == "all" else [])
        _say(f"sending {sig.name} to pids {targets}")
        sent = time.monotonic()
        for pid in targets:
            os.kill(pid, sig)
        _stop(proc, args, "the signalled torchrun", output)
        exit_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    logged, saved = _logged(stopped), _checkpoint_iteration(stopped)
    _say("resuming it under torchrun with --resume")
    resume_out = work / "ddp_resumed.out"
    resumed = _start(_torchrun(args, stopped, 0) + ["--resume"], resume_out)
    resumed_status = _finish(resumed, args.timeout, "the resumed torchrun", resume_out)
    text = output.read_text(errors="replace")
    lines = [line for line in text.splitlines() if "ddrnet-train: stopped by" in line]
    return {
        "signal": f"{sig.name} to {'torchrun and its workers' if args.signal_to == 'all' else 'torchrun'}",
        "sent_after_iteration": args.signal_at,
        "torchrun_exit_status": proc.returncode,
        "seconds_signal_to_exit": round(exit_s, 2),
        "workers_said": lines[:1],
        "iterations_logged": logged,
        "iterations_in_last_pt": saved,
        "iterations_lost": None if saved is None else logged - saved,
        "resume_exit_status": resumed_status,
        "final_weights_vs_straight": compare(straight, stopped) if resumed_status == 0 else None,
    }


_ITER = re.compile(r" iter (\d+)/\d+ ")
_RESUMED = re.compile(r"resumed from .* at iteration (\d+)")


def restarts_in_log(log: str) -> List[Dict[str, int]]:
    """Each torchrun restart in a ``train.log``: the last iteration logged before it and the iteration the
    restarted group resumed from (0: it started again)."""
    found: List[Dict[str, int]] = []
    last = 0
    for line in log.splitlines():
        if "torchrun restart" in line:
            found.append({"last_logged": last, "resumed_at": 0})
        elif found and (m := _RESUMED.search(line)):
            found[-1]["resumed_at"] = int(m.group(1))
        elif m := _ITER.search(line):
            last = int(m.group(1))
    return found


def dead_worker(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    straight, faulty = work / "ddp_straight", work / "ddp_killed"
    straight_s = _straight(args, _torchrun(args, straight, 0), straight, "the straight torchrun run")
    _say(f"starting torchrun --max-restarts {args.max_restarts}, to kill rank {args.kill_rank}")
    output = work / "ddp_killed.out"
    t = time.monotonic()
    proc = _start(_torchrun(args, faulty, args.max_restarts), output)
    try:
        _wait_for(proc, faulty, args.signal_at, args.timeout, output)
        victims = [p for p in _children(proc.pid) if _rank_of(p) == args.kill_rank]
        if not victims:
            raise SystemExit(
                f"cluster_faults: no worker of rank {args.kill_rank} found under torchrun (pid {proc.pid})"
            )
        killed_after, saved_before = _logged(faulty), _checkpoint_iteration(faulty)
        _say(f"SIGKILL to rank {args.kill_rank} (pid {victims[0]}) after iteration {killed_after}")
        os.kill(victims[0], signal.SIGKILL)
        _stop(proc, args, "torchrun (restarting the group)", output)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    seconds = time.monotonic() - t
    log = (faulty / "train.log").read_text() if (faulty / "train.log").is_file() else ""
    results = json.loads((faulty / "results.json").read_text()) if (faulty / "results.json").is_file() else {}
    restarts = restarts_in_log(log)
    return {
        "killed": f"rank {args.kill_rank} (pid {victims[0]}) with SIGKILL after iteration {killed_after} was logged",
        "last_pt_iteration_when_killed": saved_before,
        "torchrun_exit_status": proc.returncode,
        "restarts": len(restarts),
        "resumed_from": [line.split("INFO ", 1)[-1] for line in log.splitlines() if "resumed from" in line],
        "iterations_repeated": [r["last_logged"] - r["resumed_at"] for r in restarts],
        "final_iteration": results.get("iteration"),
        "seconds": round(seconds, 1),
        "straight_run_seconds": round(straight_s, 1),
        "final_weights_vs_straight": compare(straight, faulty) if results else None,
        "torchrun_tail": output.read_text(errors="replace").strip().splitlines()[-3:],
    }


def full_disk(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    mount = work / "tmpfs"
    mount.mkdir()
    _say(f"mounting a {args.size} tmpfs at {mount}")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.size}", "tmpfs", str(mount)], check=True, timeout=60)
    try:
        out = mount / "run"
        _say("starting the run on it")
        output = work / "run.out"
        proc = _start([sys.executable, *_train_cmd(args, out)], output)
        try:
            status = _finish(proc, args.timeout, "the run on the small disk", output)
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        err = output.read_text(errors="replace")
        leftovers = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) if out.is_dir() else []
        return {
            "tmpfs_size": args.size,
            "exit_status": status,
            "last_stderr_line": _last_line(output),
            "traceback": "Traceback" in err,
            "last_pt_iteration": _checkpoint_iteration(out) if (out / "last.pt").exists() else None,
            "temporaries_left": leftovers,
        }
    finally:
        subprocess.run(["umount", str(mount)], check=False, timeout=60)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("fault", choices=("preempt", "preempt-torchrun", "dead-worker", "full-disk"))
    p.add_argument("--config", default="smoke_camvid", help="recipe (ddrnet-train --config)")
    p.add_argument("--data-root", help="dataset folder (data.root)")
    p.add_argument("--set", nargs="*", default=["train.max_iters=40"], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--signal", default="SIGTERM", help="preempt: the signal to send")
    p.add_argument("--signal-at", type=int, default=13, help="signal / kill once this many iterations are logged")
    p.add_argument("--kill-rank", type=int, default=1, help="dead-worker: the rank to kill")
    p.add_argument("--max-restarts", type=int, default=2, help="dead-worker: torchrun --max-restarts")
    p.add_argument("--signal-to", choices=("torchrun", "all"), default="all", help="preempt-torchrun: who is signalled")
    p.add_argument("--size", default="5m", help="full-disk: tmpfs size")
    p.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="seconds each wait may take (a run to its end, an iteration to be logged); past it the run is "
        "killed with its process group and the script stops with a message",
    )
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.fault != "full-disk":
        _check_signal_at(args, _max_iters_set(args), "train.max_iters is")
    work = Path(tempfile.mkdtemp(prefix="faults_"))
    _say(f"{args.fault}: run folders in {work}")
    try:
        run = {
            "preempt": preempt,
            "preempt-torchrun": preempt_torchrun,
            "dead-worker": dead_worker,
            "full-disk": full_disk,
        }[args.fault]
        report = {"fault": args.fault, "config": args.config, "set": args.set, **run(args, work)}
    finally:
        for pid in _marked():  # nothing the script started outlives it
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if args.keep:
            print(f"run folders: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
