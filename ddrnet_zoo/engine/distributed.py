"""Distributed helpers: process-group set-up from ``torchrun``'s environment, rank-0 gating, reductions.

The same code runs as a single process (no process group), under ``torchrun`` on GPUs (NCCL,
one device per process, ``cuda:LOCAL_RANK``) and on CPUs (gloo). ``resolve_device`` is
:func:`ddrnet_zoo.device.resolve_device`, re-exported.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist
from timm.utils import distribute_bn

from ..device import resolve_device

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "is_distributed",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "barrier",
    "all_reduce_sum",
    "all_reduce_mean",
    "broadcast_tensor",
    "broadcast_object",
    "broadcast_bn_stats",
    "cpu_group",
    "elastic_restart_count",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, local rank and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Initialise ``torch.distributed`` when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Backend: NCCL for CUDA devices, gloo for CPU. On CPU with several processes per machine
    and no ``OMP_NUM_THREADS``, each process gets an equal share of the cores.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {}
        if dev.type == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
            kwargs["device_id"] = dev  # torch >= 2.3: eager NCCL communicator bound to this GPU
        timeout = datetime.timedelta(minutes=timeout_minutes)
        store = _restarted_group_store(world_size, timeout)
        if store is not None:
            kwargs.update(store=store, rank=rank, world_size=world_size)
        dist.init_process_group(backend=backend, timeout=timeout, **kwargs)
        if dev.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    elif dev.type == "cuda":
        torch.cuda.set_device(dev)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def _restarted_group_store(world_size: int, timeout: datetime.timedelta) -> Optional[dist.Store]:
    """The store of a worker group that ``torchrun`` restarted on one node: torchrun's, under a prefix of this
    restart (None otherwise: ``init_process_group`` makes its own from the environment).

    torchrun (torch >= 2.5) lends its rendezvous store to the workers (``TORCHELASTIC_USE_AGENT_STORE``)
    for every restart without a prefix per restart: a restarted group then reads the keys of the group
    before it (the gloo addresses of dead processes, an old NCCL id) and fails to connect, or waits until
    the timeout (pytorch/pytorch#135712). On one node (``GROUP_WORLD_SIZE`` 1: one agent), every process of
    the group has the same ``TORCHELASTIC_RESTART_COUNT``, so keys under it are this group's own. Several
    nodes' agents may count restarts differently: there, ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (set for
    torchrun) gives each restart a new store instead.
    """
    restarts = elastic_restart_count()
    shared = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if not (restarts and shared and os.environ.get("GROUP_WORLD_SIZE") == "1"):
        return None
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    store = dist.TCPStore(addr, port, world_size, is_master=False, timeout=timeout)
    return dist.PrefixStore(f"ddrnet_zoo/restart_{restarts}", store)


def cleanup_distributed() -> None:
    """Destroy the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes (returns ``t``)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """In-place mean over processes (returns ``t``)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= dist.get_world_size()
    return t


def broadcast_tensor(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """In-place broadcast of ``t`` from process ``src`` (returns ``t``; a no-op in a single process)."""
    if is_distributed():
        dist.broadcast(t, src)
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every process."""
    if not is_distributed():
        return obj
    box: List[Optional[Any]] = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_bn_stats(model: torch.nn.Module) -> None:
    """Give every process rank 0's BatchNorm running statistics (``timm.utils.distribute_bn``); no-op alone."""
    if is_distributed():
        distribute_bn(model, get_world_size(), reduce=False)


def cpu_group() -> Optional[dist.ProcessGroup]:
    """A process group for small CPU tensors: the default group under gloo, else a new gloo group.

    Collective (every process must call it, in the same order); None in a single process. Flags
    reduced on it need no device synchronisation under NCCL.
    """
    if not is_distributed():
        return None
    if dist.get_backend() == "gloo":
        return None  # the default group
    return dist.new_group(backend="gloo")


def elastic_restart_count() -> int:
    """How often ``torchrun`` has restarted this worker group (``TORCHELASTIC_RESTART_COUNT``; 0 outside it)."""
    try:
        return max(0, int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")))
    except ValueError:
        return 0
