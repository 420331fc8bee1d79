"""The training loop: the paper's recipe on one device, on CPU, or on N processes under ``torchrun``.

Per step: forward (autocast bf16/fp16 optional, channels_last optional, optionally
``torch.compile``-d), loss of Eq. 3 (OHEM on the main output), backward (GradScaler for fp16,
optional gradient accumulation with ``no_sync``), SGD step, poly LR step. Under DDP,
SyncBatchNorm on GPUs and a :class:`TrainSampler` (a ``DistributedSampler``) split each
global batch between processes; rank 0 logs, evaluates the summed confusion matrix, writes
checkpoints and exports models.

Outputs in ``train.output_dir``: ``config.yaml``, ``train.log``, ``train_log.csv``,
``eval_log.csv`` (+ ``tensorboard/`` if installed), ``last.pt`` (resumable), ``best/`` and
``final/`` (Hub format: ``model.safetensors`` + ``config.json``), ``results.json``.

Preemption: the signals of ``train.stop_signals`` (SIGTERM, SIGINT, SIGUSR1) end the run after the
current step with ``last.pt`` written (every process stops after the same iteration; see
:mod:`.preemption`); ``--resume`` continues to the weights of an uninterrupted run. Under
``torchrun --max-restarts``, a restarted worker group resumes from the run's ``last.pt`` by itself.
Writes that fail (a full disk) fail on every process with the main process's message.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from timm.layers import convert_sync_batchnorm
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..device import autocast_dtype
from ..errors import DDRNetError, user_message
from ..io import CheckpointError, atomic_write_json, atomic_write_text, check_output_dir
from ..metrics import format_metrics_table, to_jsonable
from ..text import plural
from . import distributed as dist_utils
from .budget import TimeBudget
from .builders import build_eval_dataset, build_loss, build_model, build_train_dataset, build_train_loader
from .checkpoint import gather_rng_states, load_checkpoint, restore_rng_state, save_checkpoint
from .config import ConfigError, TrainConfig, config_diff, config_from_dict, config_to_dict, format_config
from .evaluator import build_eval_loader, evaluate
from .export import load_model_weights
from .logger import MetricLogger, setup_logging
from .optim import PolyLR, build_optimizer
from .preemption import StopSignals, stop_signals_worker_init
from .reporting import eval_row, export_run_model, train_row
from .sampler import TrainSampler
from .step import StepContext, train_step

__all__ = ["Trainer", "train"]


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs :meth:`fit`.

    Args:
        cfg: the configuration.
        resume: a checkpoint to continue from, ``"auto"`` (``<output_dir>/last.pt`` if it
            exists), or None. A worker group restarted by ``torchrun`` (``TORCHELASTIC_RESTART_COUNT``
            > 0) continues from ``<output_dir>/last.pt`` when it exists, whatever ``resume`` says.
    """

    def __init__(self, cfg: TrainConfig, resume: Optional[str] = None) -> None:
        self.cfg = cfg
        self.dist = dist_utils.init_distributed(cfg.train.device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.out_dir = check_output_dir(cfg.train.output_dir or Path("runs") / cfg.name, "training output folder")
        self.log = setup_logging(self.is_main, self.out_dir / "train.log" if self.is_main else None)
        self.stop_signals = StopSignals(cfg.train.stop_signals, dist_utils.cpu_group())
        self.stop_signal: Optional[str] = None  # the signal that stopped this session
        self._seed_everything()
        t = cfg.train
        world = self.dist.world_size
        per = world * t.accum_steps
        if cfg.data.batch_size % per:
            raise ConfigError(
                f"data.batch_size={cfg.data.batch_size} (the global batch) must be divisible by "
                f"world size {world} x train.accum_steps {t.accum_steps}"
            )
        self.global_batch = cfg.data.batch_size
        self.micro_batch = cfg.data.batch_size // per

        # data
        self.train_set = build_train_dataset(cfg)
        self.info = self.train_set.info
        self.val_set = build_eval_dataset(cfg) if cfg.data.val_split else None
        if self.val_set is not None and self.val_set.num_classes != self.info.num_classes:
            raise ConfigError(f"train and val splits have different classes: {self.info} vs {self.val_set.info}")
        self.sampler = TrainSampler(
            self.train_set, world, self.dist.rank, seed=t.seed, chunk=self.micro_batch * t.accum_steps
        )
        self.iters_per_epoch = self.sampler.steps
        sync_bn = cfg.model.sync_bn and world > 1 and self.device.type == "cuda"
        if self.micro_batch < 2 and not sync_bn and cfg.model.context != "none":
            raise ConfigError(
                f"{self.micro_batch} image per process: use at least 2 (raise data.batch_size)\n"
                "  images per process = data.batch_size / (processes x train.accum_steps); with 1, the context "
                "module's global pooling gives BatchNorm one value per channel, which it cannot train on "
                "(or use model.sync_bn on GPUs)"
            )
        if self.iters_per_epoch < 1:
            raise ConfigError(
                f"{self.train_set} has fewer samples than one global batch ({self.global_batch}); lower data.batch_size"
            )
        self.max_iters = t.max_iters or t.epochs * self.iters_per_epoch
        self.iter_ceiling = self.max_iters  # a time budget plans at most this many
        self.epochs = math.ceil(self.max_iters / self.iters_per_epoch)
        self.budget = TimeBudget(t.time_budget_minutes) if t.time_budget_minutes else None
        self._last_checkpoint = time.monotonic()
        self.loader = build_train_loader(
            cfg, self.train_set, self.sampler, self.micro_batch, self.device, progress=self.is_main and t.progress
        )
        self.val_loader = (
            build_eval_loader(
                self.val_set,
                cfg.eval.batch_size,
                cfg.eval.num_workers,
                pin_memory=self.device.type == "cuda",
                worker_init_fn=stop_signals_worker_init(t.stop_signals) if cfg.eval.num_workers else None,
            )
            if self.val_set is not None
            else None
        )

        # model
        model = build_model(cfg, self.info).to(self.device)
        if t.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.ddp: Optional[DistributedDataParallel] = None
        if world > 1:
            if cfg.model.sync_bn and self.device.type == "cuda":
                model = convert_sync_batchnorm(model)
            elif cfg.model.sync_bn and self.is_main:
                self.log.warning(
                    "model.sync_bn: SyncBatchNorm needs GPUs; on %s each process normalises with its own "
                    "batch statistics (as model.sync_bn=false)",
                    self.device.type,
                )
            self.ddp = DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.model = model
        self.train_model: torch.nn.Module = self.ddp if self.ddp is not None else model
        if t.compile:
            self.train_model = torch.compile(self.train_model)
        self.criterion = build_loss(cfg).to(self.device)
        o = cfg.optim
        self.optimizer = build_optimizer(self.model, o.lr, o.momentum, o.weight_decay, o.nesterov)
        self.scheduler = PolyLR(self.optimizer, self.max_iters, o.poly_power, o.min_lr, o.warmup_iters, o.warmup_ratio)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=autocast_dtype(t.amp) == torch.float16)
        self.iteration = 0
        self.best: Dict[str, Any] = {"miou": None, "iteration": None, "epoch": None}
        self.metrics: Optional[Dict[str, Any]] = None  # of the latest evaluation
        self._pending_epoch_end: Optional[int] = None  # an epoch whose evaluation/checkpoint a stop cut off
        self._saved_iteration: Optional[int] = None
        self.metric_log = MetricLogger(self.out_dir, enabled=self.is_main, tensorboard=t.tensorboard)
        restarts = dist_utils.elastic_restart_count()
        if restarts and (resume is None or (self.out_dir / "last.pt").is_file()):
            self.log.info("torchrun restart %d: continuing from %s if it exists", restarts, self.out_dir / "last.pt")
            resume = "auto"
        if resume:
            self._resume(resume)

    # ------------------------------------------------------------------ set-up
    def _seed_everything(self) -> None:
        t = self.cfg.train
        random.seed(t.seed + self.dist.rank)
        np.random.seed((t.seed + self.dist.rank) % 2**32)
        torch.manual_seed(t.seed)  # same initial weights on every process
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not t.deterministic
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if self.device.type == "cpu" and t.flush_denormal:
            torch.set_flush_denormal(True)

    def _resume(self, resume: str) -> None:
        path = self.out_dir / "last.pt" if resume == "auto" else Path(resume)
        if resume == "auto" and not path.is_file():
            self.log.info("--resume auto: no checkpoint at %s, starting a new run", path)
            return
        state = load_checkpoint(path)
        load_model_weights(self.model, state["model"], str(path))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            raise CheckpointError(
                f"{path}: its optimizer, LR schedule or GradScaler state does not fit this run "
                f"({type(e).__name__}: {e}); resume with the config it was written with"
            ) from None
        for group in self.optimizer.param_groups:  # load_state_dict takes buffers of any shape
            for param in group["params"]:
                for name, value in self.optimizer.state.get(param, {}).items():
                    if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                        raise CheckpointError(
                            f"{path}: its optimizer's {name} of shape {list(value.shape)} does not fit a "
                            f"parameter of shape {list(param.shape)}: corrupt, or written by another model"
                        )
        self.iteration = int(state["iteration"])
        self.best = dict(state["best"])
        self.metrics = state.get("metrics")
        self._pending_epoch_end = state.get("pending_epoch_end")
        if self.budget is not None:
            self.budget = TimeBudget(self.cfg.train.time_budget_minutes, float(state.get("seconds_spent") or 0.0))
            self._set_max_iters(int(state.get("max_iters") or self.max_iters))
        rng = state["rng"]
        if len(rng) != self.dist.world_size:
            self.log.warning(
                "resuming with %d processes a run saved with %d: the data order differs from an uninterrupted run",
                self.dist.world_size,
                len(rng),
            )
        try:
            restore_rng_state(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            raise CheckpointError(f"{path}: its random states cannot be restored ({e}): corrupt") from None
        try:
            saved = config_to_dict(config_from_dict(state["config"]))
        except ConfigError as e:
            raise CheckpointError(f"{path}: the config it holds is invalid: {e}") from None
        changed = config_diff(
            saved,
            config_to_dict(self.cfg),
            ignore={
                "train.stop_at_iter",
                "train.output_dir",
                "train.progress",
                "train.time_budget_minutes",
                "train.stop_signals",
            },
        )
        if changed:
            self.log.warning("config differs from the checkpoint's: %s", "; ".join(changed))
        self.metric_log.truncate_after(self.iteration)
        self.log.info("resumed from %s at iteration %d (epoch %d)", path, self.iteration, self.epoch)

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.iteration // self.iters_per_epoch

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "epoch": self.epoch,
            "best": dict(self.best),
            "config": config_to_dict(self.cfg),
            "model_config": dict(self.model.config),
            "world_size": self.dist.world_size,
            "max_iters": self.max_iters,
            "seconds_spent": self.budget.elapsed() if self.budget is not None else None,
            "metrics": self.metrics,
            "pending_epoch_end": self._pending_epoch_end,
        }

    def save_checkpoint(self) -> None:
        """Write ``last.pt`` (collective: gathers every process's RNG state; a failed write fails on all)."""
        rng = gather_rng_states()
        path = self.out_dir / "last.pt"
        self._on_main(lambda: save_checkpoint(path, {**self.state_dict(), "rng": rng}))
        self._saved_iteration = self.iteration
        self._last_checkpoint = time.monotonic()

    def _on_main(self, work: Callable[[], Any]) -> Any:
        """``work()`` on the main process (writes); collective: if it fails, every process raises its message.

        Without this, a failed write (a full disk) on the main process would leave the others waiting
        in their next collective until its timeout.
        """
        result, error = None, None
        if self.is_main:
            try:
                result = work()
            except (DDRNetError, OSError) as e:
                error = e
        if self.dist.distributed:
            message = dist_utils.broadcast_object(user_message(error) if error is not None else None)
            if error is None and message is not None:
                raise DDRNetError(f"on the main process: {message}")
        if error is not None:
            raise error
        return result

    def _set_max_iters(self, total: int) -> None:
        """Change the run's length (time budget): the poly schedule and the epoch count follow."""
        self.max_iters = max(int(total), self.iteration, 1)
        self.scheduler.max_iters = self.max_iters
        self.epochs = math.ceil(self.max_iters / self.iters_per_epoch)

    def _timed_decisions(self) -> bool:
        """At a log point: re-plan the time budget and decide a timed checkpoint, on the main process for all.

        Returns whether to write a checkpoint now."""
        t = self.cfg.train
        total, save = self.max_iters, False
        if self.is_main:
            if self.budget is not None:
                if self.budget.exhausted():
                    total = self.iteration
                else:
                    planned = self.budget.plan(self.iteration, self.iter_ceiling)
                    if planned is not None:
                        total = planned
            if t.checkpoint_interval_minutes:
                save = time.monotonic() - self._last_checkpoint >= 60.0 * t.checkpoint_interval_minutes
        decision = torch.tensor([total, int(save)], dtype=torch.int64, device=self.device)
        dist_utils.broadcast_tensor(decision)
        total, save = int(decision[0]), bool(decision[1])
        if total != self.max_iters:
            self._set_max_iters(total)
        return save

    def _export(self, name: str, metrics: Optional[Dict[str, Any]] = None) -> Path:
        return export_run_model(self.model, self.out_dir, name, self.cfg, self.iteration, self.epoch, metrics)

    # ------------------------------------------------------------------ loop
    def fit(self) -> Dict[str, Any]:
        """Train to ``max_iters`` (or ``train.stop_at_iter``); returns the final/best metrics."""
        cfg, t = self.cfg, self.cfg.train
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out_dir / "config.yaml", format_config(cfg))
            n_params = sum(p.numel() for p in self.model.parameters())
            self.log.info(
                "%s: %s (%.2fM params) on %s x%d, %s, %d train / %s val images, global batch %d "
                "(%d per process x %d accumulation), %s per epoch, %s (%s), amp=%s%s",
                cfg.name,
                cfg.model.name,
                n_params / 1e6,
                self.device,
                self.dist.world_size,
                self.info.name,
                len(self.train_set),
                len(self.val_set) if self.val_set is not None else "no",
                self.global_batch,
                self.micro_batch,
                t.accum_steps,
                plural(self.iters_per_epoch, "iteration"),
                plural(self.max_iters, "iteration"),
                plural(self.epochs, "epoch"),
                t.amp,
                f", time budget {t.time_budget_minutes:g} min (iterations planned from the measured throughput)"
                if self.budget is not None
                else "",
            )
        complete = self.iteration >= self.max_iters and self._pending_epoch_end is None
        if complete and (self.out_dir / "results.json").is_file():
            self.log.info("the run is complete (iteration %d of %d): nothing to do", self.iteration, self.max_iters)
            return {"iteration": self.iteration, "stopped_early": False, "best": self.best, "already_complete": True}
        # messages above the progress bars; the stop signals only record themselves until the next step ends
        with logging_redirect_tqdm([self.log]), self.stop_signals:
            stopped = False
            try:
                if self._pending_epoch_end is not None:  # a stop came between an epoch's last step and its end
                    self._end_epoch(self._pending_epoch_end)
                    if self._saved_iteration != self.iteration:  # last.pt no longer says it is pending
                        self.save_checkpoint()
                while self.iteration < self.max_iters:
                    if self._stop_requested(epoch_end=None):
                        stopped = True
                        break
                    epoch = self.epoch
                    skip = self.iteration - epoch * self.iters_per_epoch
                    self.sampler.set_epoch(epoch)
                    self.sampler.set_start(skip * self.micro_batch * t.accum_steps)
                    stopped = self._train_epoch(epoch, skip)
                    if stopped:
                        break
                    self._end_epoch(epoch)
                results: Dict[str, Any] = {
                    "iteration": self.iteration,
                    "stopped_early": stopped,
                    "stop_signal": self.stop_signal,
                    "best": self.best,
                }
                if stopped:
                    results["checkpoint"] = str(self.out_dir / "last.pt")
                if not stopped:
                    results["final"] = self.metrics
                    results["final_model"] = str(self.out_dir / "final")

                    def finish() -> None:
                        self._export("final", self.metrics)
                        atomic_write_json(self.out_dir / "results.json", to_jsonable(results))

                    self._on_main(finish)
                return results
            finally:
                self.metric_log.close()

    def _end_epoch(self, epoch: int) -> None:
        """After the last step of ``epoch`` (or of the run): evaluation and checkpoint when they are due."""
        t = self.cfg.train
        last = self.iteration >= self.max_iters
        whole = self.iteration % self.iters_per_epoch == 0  # not cut short by the time budget
        self._pending_epoch_end = None
        if self.val_loader is not None and (((epoch + 1) % t.eval_interval == 0 and whole) or last):
            self.metrics = self._evaluate(epoch)
        if ((epoch + 1) % t.checkpoint_interval == 0 and whole) or last:
            self.save_checkpoint()

    def _stop_requested(self, epoch_end: Optional[int]) -> bool:
        """Whether a stop signal reached any process (collective); if so, write ``last.pt`` and say so.

        ``epoch_end``: the epoch whose last step just ended (its evaluation and checkpoint, not done yet,
        are then done first when the run is resumed)."""
        name = self.stop_signals.agreed()
        if name is None:
            return False
        self.stop_signal = name
        self._pending_epoch_end = epoch_end
        if self._saved_iteration != self.iteration or epoch_end is not None:
            self.save_checkpoint()
        self.log.info(
            "%s: stopped after iteration %d of %d, %s written; continue with --resume",
            name,
            self.iteration,
            self.max_iters,
            self.out_dir / "last.pt",
        )
        return True

    def _train_epoch(self, epoch: int, skip: int) -> bool:
        t = self.cfg.train

        def steps_in_epoch() -> int:  # the time budget may change max_iters during the epoch
            return min(self.iters_per_epoch, self.max_iters - epoch * self.iters_per_epoch)

        self.train_model.train()
        bar = tqdm(
            total=steps_in_epoch(),
            initial=skip,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            disable=not (self.is_main and t.progress),
            dynamic_ncols=True,
            leave=False,
        )
        step_context = StepContext(
            self.train_model,
            self.criterion,
            self.optimizer,
            self.scaler,
            t.accum_steps,
            t.amp,
            t.channels_last,
            self.ddp,
        )
        data = iter(self.loader)
        sums = torch.zeros(3, device=self.device)
        count = 0
        tic = time.perf_counter()
        try:
            step = skip
            while step < steps_in_epoch():
                lr = self.optimizer.param_groups[0]["lr"]
                train_step(step_context, data, sums)
                self.scheduler.step()
                self.iteration += 1
                step += 1
                count += 1
                bar.update(1)
                if self.budget is not None:
                    self.budget.observe(self.iteration)
                timed_save = False
                if self.iteration % t.log_interval == 0 or step >= steps_in_epoch():
                    self._log_train(epoch, sums / count, lr, count, time.perf_counter() - tic, bar)
                    sums.zero_()
                    count = 0
                    if self.budget is not None or t.checkpoint_interval_minutes:
                        timed_save = self._timed_decisions()
                        bar.total = steps_in_epoch()
                        bar.set_description(f"epoch {epoch + 1}/{self.epochs}")
                    tic = time.perf_counter()
                if timed_save or (t.checkpoint_interval_iters and self.iteration % t.checkpoint_interval_iters == 0):
                    self.save_checkpoint()
                epoch_end = epoch if step >= steps_in_epoch() else None
                if t.stop_at_iter is not None and self.iteration >= t.stop_at_iter:
                    self._pending_epoch_end = epoch_end
                    if self._saved_iteration != self.iteration or epoch_end is not None:
                        self.save_checkpoint()
                    self.log.info(
                        "stopped at iteration %d (train.stop_at_iter); continue with --resume", self.iteration
                    )
                    return True
                if self._stop_requested(epoch_end):
                    return True
        finally:
            bar.close()
        return False

    def _log_train(self, epoch: int, mean: torch.Tensor, lr: float, steps: int, seconds: float, bar) -> None:
        dist_utils.all_reduce_mean(mean)
        row = train_row(epoch, self.iteration, mean.tolist(), lr, steps * self.global_batch, seconds)
        self.metric_log.log_train(row)
        loss, ips = row["loss"], row["images_per_s"]
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}")
        if not self.cfg.train.progress:
            self.log.info(
                "epoch %d iter %d/%d loss %.4f lr %.3e %.1f img/s",
                epoch + 1,
                self.iteration,
                self.max_iters,
                loss,
                lr,
                ips,
            )

    def _evaluate(self, epoch: int) -> Dict[str, Any]:
        cfg = self.cfg
        tic = time.monotonic()
        dist_utils.broadcast_bn_stats(self.model)  # every process evaluates rank 0's BN statistics
        metrics = evaluate(
            self.model,
            self.val_loader,
            self.info.num_classes,
            self.device,
            class_names=self.info.class_names,
            scales=cfg.eval.scales,
            flip=cfg.eval.flip,
            image_scale=cfg.data.image_scale,
            amp=cfg.train.amp,
            channels_last=cfg.train.channels_last,
            progress=self.is_main and cfg.train.progress,
        )
        if self.is_main:
            self.log.info(
                "%s\n",
                format_metrics_table(
                    metrics, title=f"{self.val_set.name} after epoch {epoch + 1} (iteration {self.iteration})"
                ),
            )
            self.metric_log.log_eval(eval_row(epoch, self.iteration, metrics))
        if self.budget is not None:
            self.budget.record_eval(time.monotonic() - tic)
        if self.best["miou"] is None or metrics["miou"] > self.best["miou"]:
            self.best = {"miou": metrics["miou"], "iteration": self.iteration, "epoch": epoch + 1}
            self._on_main(lambda: self._export("best", metrics))
            self.log.info("new best mIoU %.2f%% -> %s", 100 * metrics["miou"], self.out_dir / "best")
        return metrics


def train(cfg: TrainConfig, resume: Optional[str] = None) -> Dict[str, Any]:
    """Train with ``cfg`` (see :class:`Trainer`); returns the results written to ``results.json``."""
    return Trainer(cfg, resume).fit()
