"""Benchmark plumbing shared by the scripts: machine and version report, memory allocator, CPU load.

The memory allocator changes CPU timings by 20-35% on small machines (glibc returns the large
activation buffers to the OS after every call and faults them back in):
:func:`reexec_with_allocator` restarts a script with tcmalloc or jemalloc preloaded when
installed (``apt-get install libtcmalloc-minimal4`` / ``libjemalloc2``), else with glibc tuned by
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``; :func:`allocator_in_use` reports which.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

__all__ = [
    "ALLOCATOR_CHOICES",
    "allocator_env",
    "allocator_in_use",
    "reexec_with_allocator",
    "cpu_model",
    "cpu_busy",
    "OtherLoad",
    "OTHER_LOAD_THRESHOLD",
    "other_load_report",
    "wait_until_idle",
    "package_version",
    "machine_info",
]

ALLOCATOR_CHOICES = ("auto", "tcmalloc", "jemalloc", "glibc-tuned", "system")

# ----------------------------------------------------------------------------------------------- allocator
# Decided before torch is imported: preloading a library or tuning glibc needs a fresh process.
_ALLOCATOR_ENV = "DDRNET_BENCH_ALLOCATOR"
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/usr/lib/aarch64-linux-gnu")
_LIBS = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2", "libjemalloc.so.1"),
}
# jemalloc as PyTorch's CPU performance guide configures it (keep freed pages, no decay)
_JEMALLOC_CONF = "oversize_threshold:0,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1"
_GLIBC_TUNING = {
    "MALLOC_MMAP_THRESHOLD_": str(2**31),  # large buffers from the heap, not mmap
    "MALLOC_TRIM_THRESHOLD_": str(2**31),  # never give the heap back to the OS
    "MALLOC_TOP_PAD_": str(2**28),
}


def _find_library(kind: str) -> Optional[str]:
    for d in _LIB_DIRS:
        for name in _LIBS[kind]:
            p = Path(d) / name
            if p.is_file():
                return str(p)
    return None


def allocator_env(choice: str) -> Tuple[str, Dict[str, str]]:
    """(label, environment additions) for ``choice``; ``auto`` prefers tcmalloc, then jemalloc, then tuned glibc."""
    order = ["tcmalloc", "jemalloc", "glibc-tuned"] if choice == "auto" else [choice]
    for kind in order:
        if kind in _LIBS:
            lib = _find_library(kind)
            if lib is None:
                if choice != "auto":
                    raise SystemExit(
                        f"--allocator {kind}: no {'/'.join(_LIBS[kind])} found in {', '.join(_LIB_DIRS)} "
                        f"(apt-get install {'libtcmalloc-minimal4' if kind == 'tcmalloc' else 'libjemalloc2'})"
                    )
                continue
            preload = " ".join(p for p in (lib, os.environ.get("LD_PRELOAD", "")) if p)
            env = {"LD_PRELOAD": preload}
            if kind == "jemalloc":
                env["MALLOC_CONF"] = os.environ.get("MALLOC_CONF", _JEMALLOC_CONF)
            return kind, env
        if kind == "glibc-tuned":
            return kind, dict(_GLIBC_TUNING)
        if kind == "system":
            return kind, {}
    raise SystemExit(f"unknown allocator {choice!r}")


def reexec_with_allocator(argv: List[str]) -> None:
    """Re-execute this script with the allocator chosen by ``--allocator`` in ``argv`` (default ``auto``).

    Does nothing when already done, for ``--allocator system`` or with ``--help``. Call it before
    heavy work: preloading a library or tuning glibc needs a fresh process.
    """
    choice = "auto"
    for i, a in enumerate(argv):
        if a == "--allocator" and i + 1 < len(argv):
            choice = argv[i + 1]
        elif a.startswith("--allocator="):
            choice = a.split("=", 1)[1]
    if os.environ.get(_ALLOCATOR_ENV) or choice == "system" or "-h" in argv or "--help" in argv:
        return
    label, env = allocator_env(choice)
    new_env = dict(os.environ, **env, **{_ALLOCATOR_ENV: label})
    os.execve(sys.executable, [sys.executable, os.path.abspath(sys.argv[0]), *argv], new_env)


def allocator_in_use() -> str:
    """What actually serves malloc in this process (from the loaded libraries and glibc's variables)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    for kind, names in _LIBS.items():
        if any(n.split(".so")[0] in maps for n in names):
            conf = (
                f" (MALLOC_CONF={os.environ['MALLOC_CONF']})"
                if kind == "jemalloc" and "MALLOC_CONF" in os.environ
                else ""
            )
            return f"{kind}{conf}"
    tuned = {k: os.environ[k] for k in _GLIBC_TUNING if k in os.environ}
    if tuned:
        return "glibc malloc, tuned: " + ", ".join(f"{k}={v}" for k, v in tuned.items())
    return "glibc malloc (default: large buffers are mmap'd and returned to the OS)"


# ----------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_times() -> Tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), idle


def cpu_busy(interval: float = 1.0) -> Optional[float]:
    """Fraction of all CPUs busy (any process) over ``interval`` seconds; None where /proc/stat is missing."""
    try:
        t0, i0 = _cpu_times()
        time.sleep(interval)
        t1, i1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


class OtherLoad:
    """CPU time used by *other* processes while a block runs: (all busy time - this process's) / capacity."""

    def __enter__(self) -> OtherLoad:
        self.fraction: Optional[float] = None
        try:
            self.start = (_cpu_times(), _own_cpu_seconds())
        except (OSError, ValueError, IndexError):
            self.start = None
        return self

    def __exit__(self, *exc) -> None:
        if self.start is None:
            return
        (t0, i0), own0 = self.start
        (t1, i1), own1 = _cpu_times(), _own_cpu_seconds()
        ticks = os.sysconf("SC_CLK_TCK")
        total, busy = (t1 - t0) / ticks, ((t1 - t0) - (i1 - i0)) / ticks
        self.fraction = max(0.0, (busy - (own1 - own0)) / total) if total > 0 else None


OTHER_LOAD_THRESHOLD = 0.05
"""Share of the CPUs that other processes may take while timing before the timings are flagged."""


def other_load_report(
    fraction: Optional[float],
    seconds: float,
    busy_before: Optional[float] = None,
    threshold: float = OTHER_LOAD_THRESHOLD,
    what: str = "these timings",
) -> List[str]:
    """Lines reporting the CPU share other processes took while timing, plus a WARNING above ``threshold``.

    ``fraction`` comes from :class:`OtherLoad` (None where /proc/stat is missing: nothing to report).
    """
    if fraction is None:
        return []
    before = f" (CPU busy just before: {busy_before:.0%})" if busy_before is not None else ""
    lines = [f"other processes used {fraction:.0%} of the CPUs during the {seconds:.0f} s of timing{before}"]
    if fraction > threshold:
        lines.append(
            f"WARNING: other processes took {fraction:.0%} of the CPUs while timing (more than {threshold:.0%}): "
            f"{what} are inflated and noisy, and models timed at different moments are not comparable; "
            "rerun on an idle machine (--wait-idle S waits for one)"
        )
    return lines


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def wait_until_idle(max_wait: float, threshold: float = 0.1) -> Optional[float]:
    """Wait (up to ``max_wait`` s) until other processes leave the CPUs idle; returns the last busy fraction."""
    deadline = time.time() + max_wait
    busy = cpu_busy()
    while busy is not None and busy > threshold and time.time() < deadline:
        print(f"  waiting for an idle CPU (busy {busy:.0%})...", flush=True)
        busy = cpu_busy(5.0)
    return busy


def package_version(pkg: str) -> Optional[str]:
    """Installed version of ``pkg`` (None if absent)."""
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def machine_info(device: Union[str, torch.device], threads: Optional[int] = None) -> Dict[str, Any]:
    """Machine, versions, threads and allocator: the header of every benchmark table."""
    device = torch.device(device)
    version = package_version
    threads = threads or torch.get_num_threads()
    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "allocator": allocator_in_use(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": version("onnxruntime") or version("onnxruntime-gpu"),
        "onnx": version("onnx"),
        "timm": version("timm"),
        "ddrnet_zoo": version("ddrnet_zoo"),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info
