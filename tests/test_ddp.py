"""Two CPU processes with the gloo backend (as under torchrun): DDP training equals one process with
gradient accumulation over the same micro-batches, ranks stay in sync, the confusion matrix is summed."""

from __future__ import annotations

import contextlib
import copy
import csv
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from test_data import write_folder_dataset
from test_train import synthetic_overrides
from torch.nn.parallel import DistributedDataParallel

from ddrnet_zoo.engine import distributed as dist_utils
from ddrnet_zoo.engine.config import load_config
from ddrnet_zoo.engine.step import StepContext, train_step
from ddrnet_zoo.engine.trainer import Trainer
from ddrnet_zoo.metrics import ConfusionMatrix, confusion_matrix


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _labels(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (4, 16, 16), generator=g)
    target[torch.rand(4, 16, 16, generator=g) < 0.1] = 255
    return target, torch.randint(0, 3, (4, 16, 16), generator=g)


def _worker(rank: int, world: int, port: int, overrides: list, out: str) -> None:
    # the environment torchrun gives each process
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
    torch.set_flush_denormal(True)
    try:
        trainer = Trainer(load_config(None, overrides))
        assert trainer.dist.world_size == world and torch.distributed.get_backend() == "gloo"
        trainer.fit()
        torch.save(trainer.model.state_dict(), Path(out) / f"rank{rank}.pt")
        # each process counts half of the pixels; all_reduce sums them
        target, pred = _labels()
        cm = ConfusionMatrix(3)
        cm.update(pred[rank::world], target[rank::world])
        cm.all_reduce()
        torch.save(cm.matrix, Path(out) / f"cm{rank}.pt")
    finally:
        dist_utils.cleanup_distributed()


def _losses(path: Path):
    with open(path, newline="") as f:
        return [(int(r["iteration"]), float(r["loss"]), float(r["lr"])) for r in csv.DictReader(f)]


def test_two_process_gloo_ddp_matches_gradient_accumulation(tmp_path):
    root = write_folder_dataset(tmp_path / "data", n=8)
    common = {"data.batch_size": 4, "train.epochs": 2, "train.eval_interval": 2, "model.sync_bn": "true"}
    ddp_out = tmp_path / "ddp"
    ddp_overrides = synthetic_overrides(root, ddp_out, **common)
    mp.spawn(_worker, args=(2, _free_port(), ddp_overrides, str(tmp_path)), nprocs=2, join=True)

    # the reference under the workers' settings: one thread (the tiny model with 2-image BatchNorm
    # amplifies the rounding differences of other thread counts to ~1% of the loss after a step)
    mkldnn, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    torch.backends.mkldnn.enabled = False
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    try:
        ref_out = tmp_path / "ref"
        ref = Trainer(load_config(None, synthetic_overrides(root, ref_out, **common, **{"train.accum_steps": 2})))
        assert ref.micro_batch == 2 and ref.iters_per_epoch == 2
        ref.fit()
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)

    # rank 0 logged the loss averaged over both processes: the same as the accumulated loss
    ddp_log, ref_log = _losses(ddp_out / "train_log.csv"), _losses(ref_out / "train_log.csv")
    assert [r[0] for r in ddp_log] == [1, 2, 3, 4] == [r[0] for r in ref_log]
    # bit-exact: DDP's (g0 + g1) / 2 equals the accumulated g0 / 2 + g1 / 2 in floating point
    assert ddp_log == ref_log
    # both ranks hold identical parameters, equal to the single-process run's
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    mine = ref.model.state_dict()
    for k, _ in ref.model.named_parameters():
        assert torch.equal(r0[k], r1[k]) and torch.equal(r0[k], mine[k]), k
    assert (ddp_out / "final" / "model.safetensors").is_file() and (ddp_out / "last.pt").is_file()
    assert not (ddp_out / "rank1").exists()
    # summed confusion matrix == the matrix of all pixels
    target, pred = _labels()
    full = confusion_matrix(pred, target, 3)
    assert torch.equal(torch.load(tmp_path / "cm0.pt"), full) and torch.equal(torch.load(tmp_path / "cm1.pt"), full)


def _squared_error(out: torch.Tensor, target: torch.Tensor):
    loss = (out - target).square().mean()
    return loss, {"loss_main": loss.detach()}


def test_train_step_skips_the_all_reduce_through_the_ddp_handle(tmp_path):
    """Under DDP a step enters ``ddp.no_sync()`` for all but the last micro-batch, also when the module that
    runs forward is not the DDP wrapper (as a compiled one is not); the result is plain accumulation's."""
    torch.distributed.init_process_group(
        "gloo", store=torch.distributed.FileStore(str(tmp_path / "s"), 1), world_size=1, rank=0
    )
    try:
        torch.manual_seed(0)
        net = torch.nn.Conv2d(3, 2, 1)
        ref = copy.deepcopy(net)
        ddp = DistributedDataParallel(net)
        real, entered = ddp.no_sync, []

        @contextlib.contextmanager
        def no_sync():
            entered.append(1)
            with real():
                yield

        ddp.no_sync = no_sync
        batches = [{"image": torch.rand(2, 3, 4, 4), "label": torch.rand(2, 2, 4, 4)} for _ in range(3)]
        results = []
        for model, handle, params in ((torch.nn.Sequential(ddp), ddp, net), (ref, None, ref)):
            optimizer = torch.optim.SGD(params.parameters(), lr=0.1)
            ctx = StepContext(
                model, _squared_error, optimizer, torch.amp.GradScaler("cpu", enabled=False), 3, ddp=handle
            )
            totals = torch.zeros(3)
            train_step(ctx, iter(batches), totals)
            results.append((totals, [p.detach().clone() for p in params.parameters()]))
        assert len(entered) == 2  # micro-batches 1 and 2 of 3; the last one synchronises
        torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-7)
    finally:
        torch.distributed.destroy_process_group()
