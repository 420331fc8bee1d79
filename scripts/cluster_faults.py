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
  iterations repeated, and the comparison with an uninterrupted ``torchrun`` run.
- ``full-disk``: the run writes into a small tmpfs (root only: ``mount -t tmpfs``), so that a checkpoint
  or model folder finds the disk full. Reports the exit status, the message, and whether the last
  complete ``last.pt`` loads.

Every run uses the same command line apart from the output folder, so the weights can be compared::

    python scripts/cluster_faults.py preempt --config smoke_camvid --data-root ../shared/data/camvid
    python scripts/cluster_faults.py dead-worker --config smoke_camvid --data-root ../shared/data/camvid
    python scripts/cluster_faults.py full-disk --config smoke_camvid --data-root ../shared/data/camvid
"""

from __future__ import annotations

import argparse
import csv
import json
import os
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


def _env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _wait_for(proc: subprocess.Popen, out: Path, iteration: int) -> None:
    while proc.poll() is None and _logged(out) < iteration:
        time.sleep(0.05)
    if proc.poll() is not None:
        raise SystemExit(f"the run ended (exit {proc.returncode}) before iteration {iteration}: raise train.max_iters")


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


def preempt(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    env = _env()
    straight, stopped = work / "straight", work / "stopped"
    t = time.monotonic()
    subprocess.run([sys.executable, *_train_cmd(args, straight)], env=env, check=True, capture_output=True)
    straight_s = time.monotonic() - t
    proc = subprocess.Popen(
        [sys.executable, *_train_cmd(args, stopped)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _wait_for(proc, stopped, args.signal_at)
    sig = signal.Signals[args.signal]
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate()
    exit_s = time.monotonic() - sent
    logged, saved = _logged(stopped), _checkpoint_iteration(stopped)
    resumed = subprocess.run(
        [sys.executable, *_train_cmd(args, stopped, resume=True)], env=env, capture_output=True, text=True
    )
    return {
        "signal": sig.name,
        "sent_after_iteration": args.signal_at,
        "exit_status": proc.returncode,
        "seconds_signal_to_exit": round(exit_s, 2),
        "last_stderr_line": err.decode().strip().splitlines()[-1] if err.strip() else "",
        "traceback": "Traceback" in err.decode(),
        "iterations_logged": logged,
        "iterations_in_last_pt": saved,
        "iterations_lost": None if saved is None else logged - saved,
        "resume_exit_status": resumed.returncode,
        "straight_run_seconds": round(straight_s, 1),
        "final_weights_vs_straight": compare(straight, stopped) if resumed.returncode == 0 else None,
    }


def _children(pid: int) -> List[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


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
    env = _env()
    straight, stopped = work / "ddp_straight", work / "ddp_stopped"
    subprocess.run(_torchrun(args, straight, 0), env=env, check=True, capture_output=True)
    proc = subprocess.Popen(_torchrun(args, stopped, 0), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for(proc, stopped, args.signal_at)
    sig = signal.Signals[args.signal]
    targets = [proc.pid] + (_children(proc.pid) if args.signal_to == "all" else [])
    sent = time.monotonic()
    for pid in targets:
        os.kill(pid, sig)
    output, _ = proc.communicate()
    exit_s = time.monotonic() - sent
    logged, saved = _logged(stopped), _checkpoint_iteration(stopped)
    resumed = subprocess.run(_torchrun(args, stopped, 0) + ["--resume"], env=env, capture_output=True, text=True)
    lines = [line for line in output.decode().splitlines() if "ddrnet-train: stopped by" in line]
    return {
        "signal": f"{sig.name} to {'torchrun and its workers' if args.signal_to == 'all' else 'torchrun'}",
        "sent_after_iteration": args.signal_at,
        "torchrun_exit_status": proc.returncode,
        "seconds_signal_to_exit": round(exit_s, 2),
        "workers_said": lines[:1],
        "iterations_logged": logged,
        "iterations_in_last_pt": saved,
        "iterations_lost": None if saved is None else logged - saved,
        "resume_exit_status": resumed.returncode,
        "final_weights_vs_straight": compare(straight, stopped) if resumed.returncode == 0 else None,
    }


def dead_worker(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    env = _env()
    straight, faulty = work / "ddp_straight", work / "ddp_killed"
    t = time.monotonic()
    subprocess.run(_torchrun(args, straight, 0), env=env, check=True, capture_output=True)
    straight_s = time.monotonic() - t
    t = time.monotonic()
    proc = subprocess.Popen(_torchrun(args, faulty, 2), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for(proc, faulty, args.signal_at)
    victims = [p for p in _children(proc.pid) if _rank_of(p) == args.kill_rank]
    if not victims:
        raise SystemExit("no worker of that rank found under torchrun")
    killed_after, saved_before = _logged(faulty), _checkpoint_iteration(faulty)
    os.kill(victims[0], signal.SIGKILL)
    try:
        output, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        output += f"\n(no exit after {args.timeout} s: killed)".encode()
    text = output.decode()
    log = (faulty / "train.log").read_text() if (faulty / "train.log").is_file() else ""
    results = json.loads((faulty / "results.json").read_text()) if (faulty / "results.json").is_file() else {}
    return {
        "killed": f"rank {args.kill_rank} (pid {victims[0]}) with SIGKILL after iteration {killed_after}",
        "last_pt_iteration_when_killed": saved_before,
        "iterations_repeated": None if saved_before is None else killed_after - saved_before,
        "torchrun_exit_status": proc.returncode,
        "restarts": log.count("torchrun restart"),
        "resumed_from": [line.split("INFO ", 1)[-1] for line in log.splitlines() if "resumed from" in line],
        "final_iteration": results.get("iteration"),
        "seconds": round(time.monotonic() - t, 1),
        "straight_run_seconds": round(straight_s, 1),
        "final_weights_vs_straight": compare(straight, faulty) if results else None,
        "torchrun_tail": text.strip().splitlines()[-3:],
    }


def full_disk(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    mount = work / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.size}", "tmpfs", str(mount)], check=True)
    try:
        out = mount / "run"
        run = subprocess.run([sys.executable, *_train_cmd(args, out)], env=_env(), capture_output=True, text=True)
        leftovers = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) if out.is_dir() else []
        return {
            "tmpfs_size": args.size,
            "exit_status": run.returncode,
            "last_stderr_line": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "",
            "traceback": "Traceback" in run.stderr,
            "last_pt_iteration": _checkpoint_iteration(out) if (out / "last.pt").exists() else None,
            "temporaries_left": leftovers,
        }
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("fault", choices=("preempt", "preempt-torchrun", "dead-worker", "full-disk"))
    p.add_argument("--config", default="smoke_camvid", help="recipe (ddrnet-train --config)")
    p.add_argument("--data-root", help="dataset folder (data.root)")
    p.add_argument("--set", nargs="*", default=["train.max_iters=40"], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--signal", default="SIGTERM", help="preempt: the signal to send")
    p.add_argument("--signal-at", type=int, default=13, help="signal / kill once this many iterations are logged")
    p.add_argument("--kill-rank", type=int, default=1, help="dead-worker: the rank to kill")
    p.add_argument("--signal-to", choices=("torchrun", "all"), default="all", help="preempt-torchrun: who is signalled")
    p.add_argument("--size", default="5m", help="full-disk: tmpfs size")
    p.add_argument("--timeout", type=float, default=600, help="dead-worker: seconds to wait for torchrun")
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="faults_"))
    try:
        run = {
            "preempt": preempt,
            "preempt-torchrun": preempt_torchrun,
            "dead-worker": dead_worker,
            "full-disk": full_disk,
        }[args.fault]
        report = {"fault": args.fault, "config": args.config, "set": args.set, **run(args, work)}
    finally:
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
