"""The one supervised training loop every domain's recipes use.

``Trainer(model, train_data, val_data, config=TrainConfig(...), out_dir=...).fit()``
trains with AdamW + warm-up/cosine (or your optimizer), AMP, gradient accumulation
and clipping; evaluates each epoch; keeps the best weights; stops early; writes
atomic pickle-free checkpoints it can resume from exactly (bit-identical in
deterministic mode); logs JSON lines; runs DDP under torchrun. ``out_dir`` ends
up a loadable zoo model (or ``weights.safetensors`` for a plain module).

Layout of ``out_dir``::

    metrics.jsonl                 one JSON object per event ("train" / "eval")
    best/model.safetensors        weights at the best monitored metric
    checkpoints/step-00001234/    see zoo.checkpoint: weights, optimizer state, RNGs, loop position; the
                                  newest ``keep_checkpoints`` (default 1, all an exact resume needs)
    checkpoints/latest            name of the newest complete checkpoint
    weights.safetensors card.json written at the end (best weights)
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from backends.device import resolve_device, to_device
from backends.distributed import all_gather_json, all_gather_rows, all_reduce_mean, dist_env, init_process_group
from backends.precision import auto_precision, autocast, check_precision, needs_grad_scaler
from backends.seed import (rng_state, rng_state_from_json, rng_state_to_json, seed_everything, set_deterministic,
                           set_rng_state)
from backends.state import load_state, save_state
from zoo.card import WEIGHTS_FILE
from zoo.checkpoint import TRAINER_FILE, Checkpoint, check_like, load_checkpoint, save_checkpoint
from zoo.errors import CheckpointError, InputError
from zoo.recipes import TrainConfig  # the loop's hyper-parameters; recipes compose one as their ``train``
from zoo.runs import MetricsLog, check_same_run, find_checkpoint

BEST_DIR = "best"
BEST_FILE = "model.safetensors"
# Changing any of these between a checkpoint and its resume changes the sample
# order or the schedule, so the resumed run would not continue the same run.
RESUME_MUST_MATCH = (
    "epochs", "batch_size", "lr", "weight_decay", "warmup_ratio", "schedule", "grad_accum_steps", "seed",
    "ema_decay",
)
EMA_PREFIX = "ema."
# The types of what a checkpoint's trainer.json must hold for Trainer._restore (see zoo.checkpoint).
TRAINER_FIELDS = {
    "scheduler": dict, "scaler": dict, "best": (float, int, type(None)), "best_metrics": dict, "bad_epochs": int,
    "stopped_early": bool, "epoch_loss_sum": (float, int), "epoch_steps": int, "history": list, "config": dict,
    "world_size": int, "train_size": int, "rank_rngs": list,
}
# What loading malformed nested state into torch objects raises.
_STATE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, OverflowError)


@dataclass
class TrainResult:
    """What ``fit`` returns; the same numbers are in ``out_dir/metrics.jsonl``."""

    out_dir: Path
    best_metrics: dict
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    last_checkpoint: Path | None = None
    out_of_time: bool = False  # the wall-time budget (``TrainConfig.max_minutes``) ended it


def cross_entropy_default(outputs, targets) -> torch.Tensor:
    """Cross-entropy on logits (or on ``outputs["logits"]`` for dict outputs)."""
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs
    return F.cross_entropy(logits, targets)


class LRSchedule:
    """Multiplier for LambdaLR: linear warm-up, then cosine to 0, linear to 0, or constant.

    A callable object rather than a lambda: LambdaLR stores its ``__dict__`` (ints
    and a string) in ``state_dict()``, which therefore stays JSON-able.
    """

    def __init__(self, total_steps: int, warmup_steps: int, kind: str = "cosine"):
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.kind = kind

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)  # never 0: the first step learns
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class ResumableBatchSampler(torch.utils.data.Sampler):
    """Shuffled batches, reproducible per epoch, startable at any batch.

    Epoch ``e`` uses ``randperm(n, generator=manual_seed(seed + e))``; under DDP the
    order is padded to a multiple of the world size and strided by rank, as
    ``DistributedSampler(drop_last=False)`` does. ``set_epoch(e, start_batch=k)``
    makes the next iteration skip ``k`` batches without loading them.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        per_rank = math.ceil(self.n / self.world_size)
        return math.ceil(per_rank / self.batch_size)

    def _indices(self) -> list[int]:
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        total = math.ceil(self.n / self.world_size) * self.world_size
        order += (order * math.ceil(total / max(1, self.n)))[: total - self.n]  # pad by wrapping around
        return order[self.rank :: self.world_size]

    def __iter__(self):
        indices = self._indices()
        for b in range(self.start_batch, self.batches_per_epoch()):
            yield indices[b * self.batch_size : (b + 1) * self.batch_size]

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch


def default_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights (ndim <= 1) get no weight decay.

    The fused kernel is used where torch has one (CPU and CUDA floating-point
    parameters): on CPU the per-tensor Python loop of the default AdamW is a
    quarter of a small transformer's step time.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, fused=fused)


class Trainer:
    """Supervised training of ``model`` on ``(inputs, target)`` datasets.

    ``loss_fn(outputs, targets) -> scalar`` (or None in eval mode for a model that computes its
    losses itself in train mode, as torchvision's detectors do: no ``loss`` metric then);
    ``metrics_fn(all_outputs, all_targets) -> {name: float}`` over the whole eval set (tensor outputs
    concatenated; per-item outputs, such as a detector's dicts, as lists of plain numbers);
    ``kept_outputs_fn(outputs)`` shrinks each eval batch's outputs to what ``metrics_fn`` needs (a
    segmenter's class masks rather than its logits), so a large eval set fits in memory; ``optimizer_fn(model) -> Optimizer``
    replaces AdamW (the schedule then scales each group's own lr); ``callbacks``
    are ``cb(trainer, {"step", "epoch", "loss", "lr"})`` after each optimizer step (before its checkpoint);
    ``provenance`` goes into the saved card. ``sampler_fn(n, batch_size, seed, rank,
    world_size)`` replaces the training batch sampler with a
    :class:`ResumableBatchSampler` subclass (e.g. length-bucketed batches for text);
    its batch order must depend only on the seed and epoch, so resume stays exact.
    ``clock() -> seconds`` times the wall-time budget (``config.max_minutes``); tests pass a fake one.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data,
        val_data=None,
        *,
        config: TrainConfig,
        out_dir: str | os.PathLike,
        loss_fn: Callable = cross_entropy_default,
        metrics_fn: Callable | None = None,
        collate_fn: Callable | None = None,
        optimizer_fn: Callable | None = None,
        provenance: dict | None = None,
        callbacks: Iterable[Callable] = (),
        sampler_fn: Callable[..., ResumableBatchSampler] | None = None,
        kept_outputs_fn: Callable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.model = model
        self.train_data, self.val_data = train_data, val_data
        self.config = config
        self.out_dir = Path(out_dir)
        self.loss_fn, self.metrics_fn = loss_fn, metrics_fn
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.optimizer_fn = optimizer_fn
        self.provenance = provenance or {}
        self.callbacks = list(callbacks)
        self.sampler_fn = sampler_fn or ResumableBatchSampler
        self.kept_outputs_fn = kept_outputs_fn
        self.clock = clock

        self.env = dist_env()
        self.device = resolve_device(config.device)
        if self.device.type == "cuda":  # an explicit index: set_device and DDP need one
            index = self.env.local_rank if self.env.is_distributed else self.device.index
            self.device = torch.device("cuda", torch.cuda.current_device() if index is None else index)
        self.precision = check_precision(
            auto_precision(self.device) if config.precision == "auto" else config.precision
        )
        # Loop position and bookkeeping: everything a checkpoint must carry.
        self.epoch = self.batch = self.step = 0
        self.best: float | None = None
        self.best_metrics: dict[str, Any] = {}
        self.bad_epochs = 0
        self.epoch_loss_sum, self.epoch_steps = 0.0, 0
        self.log = MetricsLog(self.out_dir, write=self.env.is_main)
        self.stopped_early = False
        self.last_checkpoint: Path | None = None
        # Wall time spent by the run before this fit() (from its checkpoint), and when this fit() began.
        self.seconds_before, self.started = 0.0, 0.0
        self.out_of_time = False

    # --- public ----------------------------------------------------------------

    def fit(self, resume: bool | str | os.PathLike = False) -> TrainResult:
        """Train to ``config.epochs`` (or early stop); ``resume=True`` continues from the
        latest checkpoint in ``out_dir`` (fresh if none), ``resume=PATH`` from that one."""
        checkpoint = find_checkpoint(self.out_dir, resume)
        self._setup()
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            seed_everything(self.config.seed)
            self.log.restart([])
        start_epoch, start_batch = self.epoch, self.batch
        self.started = self.clock()
        self.out_of_time = self._past_budget()  # a resume of a run that had spent its budget trains no more
        with EpochReport(self.config.progress and self.env.is_main, self.config.epochs) as self.report:
            for epoch in range(start_epoch, self.config.epochs):
                if self.stopped_early or self.out_of_time:
                    break
                self._train_epoch(epoch, start_batch if epoch == start_epoch else 0)
                self._end_epoch(epoch)
        return self._finish()

    @torch.no_grad()
    def evaluate(self, dataset, prefix: str = "val", module: nn.Module | None = None) -> dict[str, float]:
        """Mean loss (and ``metrics_fn``) of ``module`` (default: the model) over ``dataset``.

        Keys are ``f"{prefix}_{name}"``. Under DDP each rank evaluates a shard;
        sums are all-reduced and outputs gathered.
        """
        module = self.model if module is None else module
        was_training = module.training
        module.to(self.device).eval()
        indices = list(range(self.env.rank, len(dataset), self.env.world_size))
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(dataset, indices),
            batch_size=self.config.batch_size,
            collate_fn=self.collate_fn,
            num_workers=self.config.num_workers,
            generator=torch.Generator().manual_seed(0),  # keep the global RNG untouched
        )
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        rows = 0  # target rows: one an item, or several (the steps of a whole episode)
        outputs_all, targets_all = [], []
        has_loss = True
        for inputs, targets in loader:
            inputs, targets = to_device(inputs, self.device), to_device(targets, self.device)
            with autocast(self.device, self.precision):
                outputs = _forward(module, inputs)
                loss = self.loss_fn(outputs, targets)
            has_loss = loss is not None  # None: the model gives its losses in train mode only (detectors)
            if has_loss:
                loss_sum += loss.double() * len(targets)
                rows += len(targets)
            if self.metrics_fn is not None:
                if self.kept_outputs_fn is not None:
                    outputs = self.kept_outputs_fn(outputs)
                if torch.is_tensor(outputs):
                    outputs_all.append(outputs.float() if outputs.is_floating_point() else outputs)
                    targets_all.append(targets)
                else:  # per-item structures (a detector's dict per image): gathered as JSON, never pickled
                    outputs_all.extend(_plain(outputs))
                    targets_all.extend(_plain(targets))
        module.train(was_training)

        count = torch.tensor(float(rows), dtype=torch.float64, device=self.device)
        totals = all_reduce_mean(torch.stack([loss_sum, count]))
        metrics = {"loss": (totals[0] / totals[1].clamp_min(1)).item()} if has_loss else {}
        if self.metrics_fn is not None and outputs_all:
            if torch.is_tensor(outputs_all[0]):
                outputs, targets = all_gather_rows(torch.cat(outputs_all)), all_gather_rows(torch.cat(targets_all))
            else:
                outputs, targets = (sum(all_gather_json(items), []) for items in (outputs_all, targets_all))
            metrics.update({k: float(v) for k, v in self.metrics_fn(outputs, targets).items()})
        return {f"{prefix}_{k}": v for k, v in metrics.items()}

    # --- setup and resume ------------------------------------------------------

    def _setup(self) -> None:
        """Device, process group, DDP wrapper, sampler, optimizer, schedule, scaler."""
        if self.config.deterministic:
            set_deterministic(True)
        init_process_group(self.env, self.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.model.to(self.device)
        if self.config.channels_last:
            self.model.to(memory_format=torch.channels_last)  # 4-D weights; inputs follow inside each conv
        self.net = self.model
        if self.env.is_distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.sampler = self.sampler_fn(
            len(self.train_data), self.config.batch_size, self.config.seed, self.env.rank, self.env.world_size
        )
        self.optimizer = (
            self.optimizer_fn(self.model) if self.optimizer_fn else default_optimizer(self.model, self.config)
        )
        steps_per_epoch = math.ceil(self.sampler.batches_per_epoch() / self.config.grad_accum_steps)
        total = steps_per_epoch * self.config.epochs
        warmup = int(self.config.warmup_ratio * total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, LRSchedule(total, warmup, self.config.schedule)
        )
        self.optimizer.zero_grad(set_to_none=True)  # gradients left on the model are not ours
        self.ema = None
        if self.config.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay), use_buffers=True)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=needs_grad_scaler(self.device, self.precision)
        )
        if self.env.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    def _restore(self, path: Path) -> None:
        """Load a verified checkpoint into model, optimizer, schedule, scaler, loop and RNGs."""
        ckpt: Checkpoint = load_checkpoint(path, expected_model=self._checkpoint_tensors(), fields=TRAINER_FIELDS)
        state = ckpt.state
        self._check_compatible(ckpt)
        ema_state = {k[len(EMA_PREFIX):]: v for k, v in ckpt.model.items() if k.startswith(EMA_PREFIX)}
        for name, fresh in (("scheduler", self.scheduler), ("scaler", self.scaler)):
            check_like(state[name], fresh.state_dict(), f"checkpoint {path}: {TRAINER_FILE} {name}")
        try:
            self.model.load_state_dict({k: v for k, v in ckpt.model.items() if not k.startswith(EMA_PREFIX)})
            if self.ema is not None:
                self.ema.load_state_dict(ema_state)
            self.optimizer.load_state_dict(ckpt.optimizer)
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except _STATE_ERRORS as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this model/optimizer/schedule: {exc}") from None
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.best, self.best_metrics, self.bad_epochs = state["best"], state["best_metrics"], state["bad_epochs"]
        self.epoch_loss_sum, self.epoch_steps = state["epoch_loss_sum"], state["epoch_steps"]
        self.stopped_early = state["stopped_early"]
        self.seconds_before = _seconds_spent(state, path)
        self.last_checkpoint = ckpt.path
        self.log.restart(state["history"])
        # Last, so the RNG streams continue exactly where the checkpoint left them.
        rank, rank_rngs = self.env.rank, state["rank_rngs"]
        try:
            set_rng_state(rng_state_from_json(rank_rngs[rank - 1]) if 0 < rank <= len(rank_rngs) else ckpt.rng)
        except _STATE_ERRORS as exc:
            raise CheckpointError(f"checkpoint {path} holds malformed RNG states: {exc}") from None

    def _check_compatible(self, ckpt: Checkpoint) -> None:
        state = ckpt.state
        saved = {**state["config"], "world_size": state["world_size"], "train_size": state["train_size"]}
        now = {**asdict(self.config), "world_size": self.env.world_size, "train_size": len(self.train_data)}
        check_same_run(ckpt.path, saved, now, RESUME_MUST_MATCH + ("world_size", "train_size"))

    # --- the loop --------------------------------------------------------------

    def _train_epoch(self, epoch: int, start_batch: int) -> None:
        accum = self.config.grad_accum_steps
        n_batches = self.sampler.batches_per_epoch()
        self.sampler.set_epoch(epoch, start_batch)
        loader = torch.utils.data.DataLoader(
            self.train_data,
            batch_sampler=self.sampler,
            collate_fn=self.collate_fn,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            # Its own generator: the default one would draw from the global RNG when
            # the iterator starts, shifting dropout after a mid-epoch resume.
            generator=torch.Generator().manual_seed(self.config.seed + epoch),
        )
        self.net.train()
        window_loss = torch.zeros((), device=self.device)
        self.report.start_epoch(epoch, n_batches, start_batch)
        for i, (inputs, targets) in enumerate(loader, start=start_batch):
            window_start = i - i % accum
            window = min(accum, n_batches - window_start)  # a short last window at epoch end
            steps_now = i + 1 == window_start + window
            inputs, targets = to_device(inputs, self.device), to_device(targets, self.device)
            # Between optimizer steps DDP need not all-reduce gradients.
            sync = contextlib.nullcontext() if steps_now or self.net is self.model else self.net.no_sync()
            with sync:
                with autocast(self.device, self.precision):
                    loss = self.loss_fn(_forward(self.net, inputs), targets) / window
                self.scaler.scale(loss).backward()
            window_loss += loss.detach().float()
            if steps_now:
                # Averaged over ranks so every rank logs and accumulates the same number.
                loss_value = all_reduce_mean(window_loss).item()
                window_loss.zero_()
                self._optimizer_step(epoch, i + 1, n_batches, loss_value)
            running = self.epoch_loss_sum / self.epoch_steps if self.epoch_steps else None
            self.report.batch_done(_num_samples(inputs) * self.env.world_size, running)
            if steps_now and self._past_budget():
                self.out_of_time = True
                break

    def _optimizer_step(self, epoch: int, batch: int, n_batches: int, loss: float) -> None:
        self.scaler.unscale_(self.optimizer)
        if self.config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.scheduler.get_last_lr()[0]  # the lr this step used
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)

        self.step += 1
        self.epoch, self.batch = epoch, batch
        self.epoch_loss_sum += loss
        self.epoch_steps += 1
        event = {"step": self.step, "epoch": epoch, "loss": loss, "lr": lr}
        if self.config.log_every_steps and self.step % self.config.log_every_steps == 0:
            self.log.log({"event": "train", **event})
        # Callbacks first: the step's checkpoint then holds what they did (RNG draws too),
        # so a resume does not miss it.
        for callback in self.callbacks:
            callback(self, event)
        every = self.config.checkpoint_every_steps
        if every and self.step % every == 0 and batch < n_batches:  # epoch ends checkpoint anyway
            self._save_checkpoint()

    def _end_epoch(self, epoch: int) -> None:
        """Evaluate, keep the best weights, decide early stopping, checkpoint."""
        train_loss = self.epoch_loss_sum / max(1, self.epoch_steps)
        event = {"event": "eval", "epoch": epoch, "step": self.step, "train_loss": train_loss}
        if self.val_data is not None:
            metrics = self.evaluate(self.val_data, prefix="val", module=self._weights_to_keep())
            event.update(metrics)
            self._update_best(metrics, epoch)
        if self.out_of_time:
            event["stopped"] = "max_minutes"
        self.log.log(event)
        self.report.end_epoch(event)
        # Out of time mid-epoch, the checkpoint keeps the loop's place: a resume with a larger budget goes on there.
        if not self.out_of_time or self.batch >= self.sampler.batches_per_epoch():
            self.epoch, self.batch = epoch + 1, 0
            self.epoch_loss_sum, self.epoch_steps = 0.0, 0
        self._save_checkpoint()

    def elapsed_seconds(self) -> float:
        """Wall time the run has spent training: before this ``fit`` (its checkpoint's count) and in it."""
        return self.seconds_before + (self.clock() - self.started)

    def _past_budget(self) -> bool:
        if self.config.max_minutes is None:
            return False
        # Under DDP every rank must stop at the same step: they decide on one clock, the ranks' mean.
        elapsed = all_reduce_mean(torch.tensor(self.elapsed_seconds(), dtype=torch.float64, device=self.device))
        return elapsed.item() >= 60.0 * self.config.max_minutes

    def _update_best(self, metrics: dict[str, float], epoch: int) -> None:
        monitor = self.config.monitor
        if monitor not in metrics:
            raise InputError(f"monitor {monitor!r} is not among the eval metrics {sorted(metrics)}")
        value = metrics[monitor]
        if self.best is None:
            better = not math.isnan(value)
        else:
            better = value < self.best if self.config.monitor_mode == "min" else value > self.best
        if better:
            self.best, self.bad_epochs = value, 0
            self.best_metrics = {"epoch": epoch, "step": self.step, **metrics}
            if self.env.is_main:
                meta = {"epoch": str(epoch), "step": str(self.step), monitor: repr(value)}
                best = self._weights_to_keep().state_dict()
                save_state(best, self.out_dir / BEST_DIR / BEST_FILE, metadata=meta)
        else:
            self.bad_epochs += 1
            patience = self.config.early_stopping_patience
            self.stopped_early = patience is not None and self.bad_epochs >= patience

    # --- output ----------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        # Every rank's RNG state, so each one continues its own streams after a resume
        # (ranks draw differently where their batches differ in shape).
        rank_rngs = all_gather_json(rng_state_to_json(rng_state())) if self.env.is_distributed else []
        if not self.env.is_main:
            return
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best": self.best,
            "best_metrics": self.best_metrics,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_steps": self.epoch_steps,
            "history": self.log.history,
            "config": asdict(self.config),
            "world_size": self.env.world_size,
            "train_size": len(self.train_data),
            "rank_rngs": rank_rngs[1:],  # rank 0's is the checkpoint's own RNG file
            "train_seconds": self.elapsed_seconds(),
        }
        self.last_checkpoint = save_checkpoint(
            self.out_dir,
            self.step,
            model=self._checkpoint_tensors(),
            optimizer=self.optimizer.state_dict(),
            rng=rng_state(),
            state=state,
            keep=self.config.keep_checkpoints,
        )

    def _weights_to_keep(self) -> nn.Module:
        """What is evaluated and kept as best: the EMA of the weights when enabled, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def _checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The model's state, plus the EMA's (``n_averaged`` included) under ``ema.``."""
        tensors = dict(self.model.state_dict())
        if self.ema is not None:
            tensors.update({EMA_PREFIX + k: v for k, v in self.ema.state_dict().items()})
        return tensors

    def _finish(self) -> TrainResult:
        """Load the best weights, save ``out_dir`` as a model, and return the result."""
        best_file = self.out_dir / BEST_DIR / BEST_FILE
        if self.env.is_distributed:
            torch.distributed.barrier()  # rank 0 has finished writing best/
        if self.best is not None and best_file.is_file():
            self.model.load_state_dict(load_state(best_file, self.device))
        if self.env.is_main:
            if callable(getattr(self.model, "save", None)) and hasattr(self.model, "card"):
                self.model.card.provenance.update(self.provenance)
                # The wall time is recorded whether or not a budget bounded it: "trained in N minutes" is a claim
                # cards make (resumed runs add their checkpoint's time).
                run = {"epochs_run": self.epoch, "steps": self.step, "best": self.best_metrics,
                       "minutes": round(self.elapsed_seconds() / 60, 4)}
                if self.config.max_minutes is not None:
                    run["stopped_by_budget"] = self.out_of_time
                if "recipe" not in self.provenance:  # a recipe records the config in its own params
                    run = {"config": asdict(self.config), **run}
                self.model.card.provenance["train"] = run
                self.model.save(self.out_dir)
            else:
                save_state(self.model.state_dict(), self.out_dir / WEIGHTS_FILE)
        if self.env.is_distributed:
            torch.distributed.barrier()
        return TrainResult(
            out_dir=self.out_dir,
            best_metrics=self.best_metrics,
            history=self.log.history,
            stopped_early=self.stopped_early,
            last_checkpoint=self.last_checkpoint,
            out_of_time=self.out_of_time,
        )


# --- helpers -------------------------------------------------------------------


def _seconds_spent(state: dict, path) -> float:
    """The wall time a checkpoint's run had spent (0 for a checkpoint from before budgets were recorded)."""
    seconds = state.get("train_seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise CheckpointError(f"checkpoint {path}: {TRAINER_FILE} train_seconds must be a number >= 0, got {seconds!r}")
    return float(seconds)


def _forward(model: nn.Module, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def _plain(data):
    """Tensors nested in dicts and lists as nested lists of numbers (JSON-able), on the CPU."""
    if torch.is_tensor(data):
        return data.detach().cpu().tolist()
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def _num_samples(inputs) -> int:
    """Samples in a batch of inputs: a tensor's first dimension; a list's length (one picture a sample, as
    detectors take them); a dict's (text) or tuple's first tensor or list."""
    if isinstance(inputs, (dict, tuple)):
        values = inputs.values() if isinstance(inputs, dict) else inputs
        inputs = next((value for value in values if torch.is_tensor(value) or isinstance(value, list)), None)
    if isinstance(inputs, list):
        return len(inputs)
    if torch.is_tensor(inputs):
        return int(inputs.shape[0]) if inputs.ndim else 1
    return 0


class EpochReport:
    """What a person watching a run sees: per epoch, its batches, the running mean of the training loss,
    samples/s and the validation metrics.

    On a terminal a rich bar per epoch that stays on screen once done; elsewhere (logs, pipes,
    notebooks' captured output) one plain line per epoch, printed when it is evaluated.
    """

    def __init__(self, enabled: bool, epochs: int):
        self.enabled, self.epochs = enabled, epochs
        self.bar = None
        if enabled:
            from rich.console import Console

            console = Console()
            if console.is_terminal:
                self.bar = _progress_bar(console)
        self.loss: float | None = None

    def __enter__(self) -> "EpochReport":
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start_epoch(self, epoch: int, n_batches: int, start_batch: int) -> None:
        self.epoch, self.n_batches, self.batches = epoch, n_batches, start_batch
        self.samples, self.started, self.rate = 0, time.perf_counter(), None
        if self.bar is not None:
            self.task = self.bar.add_task("", total=n_batches, completed=start_batch,
                                          epoch=f"{epoch + 1}/{self.epochs}", status=self._status())

    def batch_done(self, samples: int, loss: float | None) -> None:
        """After each batch; ``loss`` is the epoch's running mean, None before its first optimizer step."""
        if not self.enabled:
            return
        self.batches += 1
        self.samples += samples
        self.rate = self.samples / max(time.perf_counter() - self.started, 1e-9)
        if loss is not None:
            self.loss = loss
        if self.bar is not None:
            self.bar.update(self.task, advance=1, status=self._status())

    def end_epoch(self, event: dict) -> None:
        """After the epoch's evaluation: its validation metrics join the line."""
        if not self.enabled:
            return
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in event.items() if k.startswith("val_"))
        status = self._status(metrics)
        if self.bar is not None:
            self.bar.update(self.task, status=status)
        else:
            elapsed = time.perf_counter() - self.started
            print(f"epoch {self.epoch + 1}/{self.epochs}  {self.batches}/{self.n_batches} batches  {status}  "
                  f"{elapsed:.1f}s", flush=True)

    def _status(self, metrics: str = "") -> str:
        # Before an epoch's first optimizer step its mean is of nothing: the last one stays, else "-" (never nan).
        parts = [f"train_loss {self.loss:.4f}" if self.loss is not None else "train_loss -"]
        parts.append(f"{self.rate:,.0f} samples/s" if self.rate is not None else "- samples/s")
        return "  ".join(parts + ([metrics] if metrics else []))


def _progress_bar(console):
    """A rich bar per epoch (kept on screen when done): batches, time, train loss, samples/s, val metrics."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Column

    # On a narrow terminal the status wraps; the counts and times are never cut.
    return Progress(
        TextColumn("epoch {task.fields[epoch]}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=24),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(elapsed_when_finished=True, table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[status]}", table_column=Column(ratio=1, overflow="fold")),
        console=console,
        transient=False,
    )
