"""The one training loop, for every recipe.

    for epoch:
        for batch in task.train_loader():
            out = task.train_step(batch, ctx)      # under autocast; returns scalars to log, with `loss`
            ctx.optimize(out["loss"])              # unless the task optimizes itself (GANs: several optimizers)
            fp16 loss scale and schedulers step
            task.after_step(ctx)                   # e.g. a weight average takes in the new weights
        train metrics (mean over steps, reduced over ranks) -> metrics.jsonl, TensorBoard, console
        task.evaluate(split) for each held-out split  -> the same
        checkpoint (atomic; see checkpoint.py)

The loop knows nothing about images, text or tables. Resume restores optimizers, schedulers, the grad scaler, RNG
states (every rank's) and counters, and the data order (and a streamed picture's augmentation) is a function of
(seed, epoch), so a resumed run retraces the original bit for bit on the CPU, in one process or under torchrun with
as many processes as it trained with (another count is refused: the schedule counts its steps per epoch).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from dlzoo.config import to_dict
from dlzoo.engine import best, checkpoint
from dlzoo.engine.evaluation import evaluate_split
from dlzoo.engine.optim import build_scheduler
from dlzoo.engine.reporting import (
    Console,
    EpochProgress,
    RunLog,
    format_metrics,
    plot_curves,
    read_metrics,
    truncate_metrics,
)
from dlzoo.engine.runtime import Runtime
from dlzoo.errors import UserError, stop_if_interrupted
from dlzoo.files import json_text, write_text_whole
from dlzoo.provenance import device_description, environment

if TYPE_CHECKING:
    from dlzoo.tasks.base import Loader, Task

SUMMARY = "summary.json"

# What `_save` puts in state.pt that `_restore` reads back (`best` may be absent: None when nothing is kept best).
RESTORED = ("epoch", "step", "train_seconds", "samples_seen", "world_size", "optimizers", "schedulers", "scaler", "rng",
            "task")


class EpochResult(NamedTuple):
    metrics: dict[str, float]  # the epoch's mean train metrics, over all ranks
    seconds: float  # device synced at both ends
    samples: int  # trained on, over all ranks


class Trainer:
    """Runs a task's training; doubles as the `ctx` its `train_step` receives."""

    def __init__(self, task: Task, runtime: Runtime, run_dir: Path | None, console: Console | None = None):
        self.task = task
        self.runtime = runtime
        self.config = task.config
        # Only rank 0 writes the run directory.
        self.run_dir = Path(run_dir) if run_dir is not None and runtime.is_main else None
        self.console = console or Console(enabled=runtime.is_main)
        # Where the code stands as training starts, not when it ends hours later: commits made meanwhile are not
        # this run's.
        self._environment = environment(runtime.device)
        self.epoch = 0
        self.step = 0
        self.samples_seen = 0  # over all ranks, for the summary's throughput
        self.total_steps = 1
        # Built by `prepare`: the models as trained (compiled, DDP-wrapped), their optimizers and schedules, and
        # the fp16 loss scaler (a no-op in any other precision).
        self.models: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.autocast_dtype == torch.float16)
        self._scaled = False  # whether an optimizer stepped through the scaler since its last update
        self.best = best.BestEpoch.for_task(task)  # None unless trainer.keep_best names a metric

    # --- what train_step uses ------------------------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]."""
        return self.step / self.total_steps

    def optimize(self, loss: torch.Tensor, name: str = "net") -> None:
        """Backward, optional gradient clipping, optimizer step; fp16 loss scaling handled here (the scale is
        updated once per training step, after every optimizer of the step has stepped)."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.trainer.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.config.trainer.grad_clip)
        self.scaler.step(optimizer)
        self._scaled = True

    # --- the loop -------------------------------------------------------------------------------------------
    def prepare(self) -> Loader:
        """Build what training steps need (optimizers, schedules, the fp16 grad scaler, compiled or DDP-wrapped
        models) for a run of `trainer.epochs`; return the training loader. `fit` starts with it; a profiler can
        call it and then time `train_epoch` alone."""
        task, trainer_config = self.task, self.config.trainer
        loader = task.train_loader()
        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:  # too few samples to give each process a batch (data.limit under torchrun)
            processes = _processes(self.runtime.world_size)
            raise UserError(f"the training data gives no training step per epoch in {processes}: use more samples "
                            f"(data.limit) or fewer processes")
        self.total_steps = max(1, trainer_config.epochs * steps_per_epoch)
        self.optimizers = task.configure_optimizers()
        self.schedulers = {name: build_scheduler(self.config.optim, optimizer, trainer_config.epochs,
                                                 steps_per_epoch) for name, optimizer in self.optimizers.items()}
        self.models = self._wrap_for_training(task.models)
        return loader

    def fit(self, resume_from: Path | None = None) -> dict[str, Any]:
        """Train `task` (already `setup`) to the configured number of epochs; return the summary."""
        started = time.perf_counter()
        task, trainer_config = self.task, self.config.trainer
        loader = self.prepare()
        steps_per_epoch = len(loader)

        train_seconds = 0.0
        start_epoch = 0
        if resume_from is not None:
            start_epoch, train_seconds = self._restore(resume_from)
            if self.run_dir is not None:
                truncate_metrics(self.run_dir, start_epoch)
        # TensorBoard forgets what was logged after the checkpoint; its own epoch was logged at its step, and stays.
        log = RunLog(self.run_dir, purge_step=self.step + 1 if resume_from is not None else None)
        self.console.line(self._banner(steps_per_epoch, start_epoch))
        for note in task.notes:
            self.console.line(f"  {note}")

        evaluations: dict[str, dict[str, float]] = {}
        last_train: dict[str, float] = {}
        told_diverged = False
        with contextlib.closing(log):
            for epoch in range(start_epoch, trainer_config.epochs):
                self.epoch = epoch
                loader.set_epoch(epoch)
                result = self.train_epoch(loader, epoch)
                train_seconds += result.seconds
                self.samples_seen += result.samples
                last_train = result.metrics
                evaluated, line = self._log_and_evaluate(log, epoch, result, started)
                evaluations.update(evaluated)
                done = epoch + 1  # epochs trained: what callbacks, checkpoints and notes count
                task.on_epoch_end(done, self.run_dir)
                improved = self._improved(evaluated, done)
                # A new best epoch is saved whether a checkpoint is due or not: the next epoch changes its weights.
                if done % trainer_config.checkpoint_every == 0 or done == trainer_config.epochs or improved:
                    self._save(done, train_seconds)
                self.console.line(line)  # after its checkpoint (when one is due): a kill cannot take it back
                if not told_diverged and not _finite(task.models, result.metrics, *evaluated.values()):
                    # NaN stays NaN: every later epoch is lost, and every prediction from these weights
                    self.console.line(f"note: weights or metrics are no longer finite after epoch {done}: "
                                      f"training has diverged; train again with a lower optim.lr or a "
                                      f"trainer.grad_clip")
                    told_diverged = True

        if resume_from is not None and not evaluations:  # resumed a finished run: evaluate it again
            evaluations = {split: self.evaluate(split) for split in task.eval_splits(task.config)}
            last_train = self._logged_train_metrics(start_epoch)
        # train_seconds spans every process of a resumed run; wall time only this one's.
        summary = self._summary(evaluations, last_train, train_seconds, time.perf_counter() - started)
        if self.run_dir is not None:
            _write_json(self.run_dir / SUMMARY, summary)
            plot_curves(self.run_dir)
        return summary

    def _improved(self, evaluations: dict[str, dict[str, float]], epoch: int) -> bool:
        """Whether the epoch beats the best so far (`trainer.keep_best`): rank 0's verdict, and record, on every
        rank. A save is a collective, and a metric each rank computes for itself on its own device (a judge's
        Fréchet distance) can differ in its last bits: ranks deciding apart would wait on each other forever."""
        if self.best is None:
            return False
        improved = self.best.consider(evaluations, epoch)
        if self.runtime.distributed:
            improved, record = self.runtime.broadcast_object((improved, self.best.state_dict()))
            self.best.load_state_dict(record)
        return bool(improved)

    def _log_and_evaluate(self, log: RunLog, epoch: int, result: EpochResult,
                          started: float) -> tuple[dict[str, dict[str, float]], str]:
        """Log the epoch's train metrics, evaluate the held-out splits when due (every `eval_every` epochs and
        after the last) and log them; return the evaluations made and the epoch's console line."""
        trainer_config, done = self.config.trainer, epoch + 1
        entry = {"epoch": done, "step": self.step, "split": "train", "metrics": result.metrics,
                 "lr": self._current_lr(), "samples_per_s": result.samples / max(result.seconds, 1e-9),
                 "epoch_seconds": result.seconds, "elapsed_s": time.perf_counter() - started}
        log.record(entry)
        line = [f"epoch {done}/{trainer_config.epochs}", format_metrics(result.metrics)]
        evaluations = {}
        if done % trainer_config.eval_every == 0 or done == trainer_config.epochs:
            for split in self.task.eval_splits(self.task.config):
                evaluations[split] = self.evaluate(split)
                log.record({"epoch": done, "step": self.step, "split": split, "metrics": evaluations[split],
                            "elapsed_s": time.perf_counter() - started})
                line.append(f"{split} {format_metrics(evaluations[split])}")
        line.append(f"lr {entry['lr']:.4g}  {entry['samples_per_s']:,.0f} samples/s  {result.seconds:.1f} s")
        return evaluations, "  ".join(line)

    def train_epoch(self, loader: Loader, epoch: int) -> EpochResult:
        """One pass over `loader`."""
        task, runtime = self.task, self.runtime
        for model in task.models.values():
            model.train()
        sums: dict[str, torch.Tensor] = {}
        batches = samples = 0
        progress = EpochProgress(self.console, len(loader), f"epoch {epoch + 1}", self.config.trainer.log_every_s)
        self._sync()
        began = time.perf_counter()
        for batch in loader:
            stop_if_interrupted()
            with runtime.autocast(), _batch_norm_fed_one_value(self.config.data.batch_size):
                out = task.train_step(batch, self)
            if not task.optimizes_itself:
                self.optimize(out["loss"])
            self._end_step()
            task.after_step(self)
            batches += 1
            samples += task.samples_in(batch)
            # Sums stay on the device: reading a value forces a GPU sync, so it happens once per epoch.
            for key, value in out.items():
                value = (value.detach().float() if torch.is_tensor(value)
                         else torch.tensor(float(value), device=runtime.device))  # all-reduced from the device
                sums[key] = sums[key] + value if key in sums else value
            progress.update(lambda done=batches: {k: float(v) / done for k, v in sums.items()})
        self._sync()
        seconds = time.perf_counter() - began
        progress.close()
        metrics = {key: float(runtime.all_reduce_mean(value / max(batches, 1))) for key, value in sums.items()}
        return EpochResult(metrics, seconds, samples * runtime.world_size)

    def _end_step(self) -> None:
        """What follows the optimizers' steps: the fp16 loss scale's update, the schedules, the step count."""
        if self._scaled:
            self.scaler.update()
            self._scaled = False
        if self.step == 0:
            # A scheduler checks on its first step (only) that its optimizer stepped before it; a GAN's generator
            # may not step on the first batch, so that warning is noise. Filtered here alone: catch_warnings also
            # resets which warnings were shown, so around every step they would all repeat.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                self._step_schedules()
        else:
            self._step_schedules()
        self.step += 1

    def _step_schedules(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def evaluate(self, split: str) -> dict[str, float]:
        # DDP keeps parameters equal, but each rank's last forward updated its own BatchNorm statistics: evaluate
        # every shard with rank 0's, which are the ones the checkpoint keeps.
        for model in self.task.models.values():
            self.runtime.broadcast_buffers(model)
        return evaluate_split(self.task, split)

    # --- helpers --------------------------------------------------------------------------------------------
    def _wrap_for_training(self, models: dict[str, nn.Module]) -> dict[str, nn.Module]:
        wrapped = {}
        for name, model in models.items():
            if self.config.trainer.compile:
                model = torch.compile(model, mode=self.config.trainer.compile_mode)
            trainable = any(p.requires_grad for p in model.parameters())
            if self.runtime.distributed and trainable:
                device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
                model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
            wrapped[name] = model
        return wrapped

    def _logged_train_metrics(self, epoch: int) -> dict[str, float]:
        """The train metrics metrics.jsonl holds for `epoch`: a finished run, resumed, trains no epoch of its own."""
        if self.run_dir is None:
            return {}
        logged = [e for e in read_metrics(self.run_dir) if e["split"] == "train" and e["epoch"] == epoch]
        return logged[-1]["metrics"] if logged else {}

    def _current_lr(self) -> float:
        optimizer = next(iter(self.optimizers.values()))
        return float(optimizer.param_groups[0]["lr"])

    def _sync(self) -> None:
        if self.runtime.device.type == "cuda":
            torch.cuda.synchronize(self.runtime.device)

    def _save(self, epoch: int, train_seconds: float) -> None:
        rng = self.runtime.gather_object(checkpoint.rng_state())  # a collective: every rank takes part
        if self.run_dir is None:
            return
        state = {
            "epoch": epoch,
            "step": self.step,
            "train_seconds": train_seconds,
            "samples_seen": self.samples_seen,
            "world_size": self.runtime.world_size,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng,  # one per rank
            "task": self.task.state_dict(),
            "best": self.best.state_dict() if self.best is not None else None,
        }
        checkpoint.save(self.run_dir, epoch, self.task.models, checkpoint_metadata(self.task, epoch, self.step),
                        state, keep=self.config.trainer.keep_checkpoints,
                        also_keep=self.best.epoch if self.best is not None else None)

    def _restore(self, run_dir: Path) -> tuple[int, float]:
        """Everything training needs from the run's latest checkpoint; return its epoch and train seconds."""
        found = checkpoint.latest(run_dir)
        state = checkpoint.read_training_state(found, RESTORED)
        self._check_resumable(run_dir, found, state)
        checkpoint.load_weights_into(self.task.models, checkpoint.read_weights(found / checkpoint.WEIGHTS))
        try:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
                _check_state_shapes(optimizer)
            for name, scheduler in self.schedulers.items():
                scheduler.load_state_dict(state["schedulers"][name])
        except (KeyError, ValueError) as error:  # a state.pt of another run put beside these weights
            raise UserError(f"{found / checkpoint.STATE} does not fit this run's optimizers ({error}): it belongs to "
                            f"another run") from None
        self.scaler.load_state_dict(state["scaler"])
        self.task.load_state_dict(state["task"])
        if self.best is not None:
            for note in self.best.resume(state, found, run_dir):
                self.console.line(f"note: {note}")
        checkpoint.set_rng_state(state["rng"][self.runtime.rank])  # one per rank
        self.step = state["step"]
        self.samples_seen = state["samples_seen"]
        self.console.line(f"resumed from {found} (epoch {state['epoch']}, step {self.step})")
        return state["epoch"], float(state["train_seconds"])

    def _check_resumable(self, run_dir: Path, found: Path, state: dict[str, Any]) -> None:
        """Refuse, before anything is restored, a resume in another number of processes or on other data."""
        trained_with = state["world_size"]
        if trained_with != self.runtime.world_size:
            how = "without torchrun" if trained_with == 1 else f"with torchrun --nproc_per_node {trained_with}"
            raise UserError(f"{run_dir} trained in {_processes(trained_with)}, not {self.runtime.world_size}: resume "
                            f"it {how} (its schedule and data order count its processes)")
        changed = checkpoint.data_change(checkpoint.read_metadata(found / checkpoint.WEIGHTS).get("meta", {}),
                                         self.task.meta)
        if changed:
            raise UserError(f"{run_dir} would resume on other data than it trained on: {changed}; resume it on the "
                            f"data it trained on, or train a new run")

    def _banner(self, steps_per_epoch: int, start_epoch: int) -> str:
        runtime = self.runtime
        epochs = self.config.trainer.epochs
        parts = [f"{self.config.recipe}: {epochs} epoch{'s' if epochs != 1 else ''} x {steps_per_epoch} steps",
                 f"on {runtime.device.type} ({device_description(runtime.device)})"]
        if runtime.world_size > 1:
            parts.append(f"x{runtime.world_size} processes")
        if runtime.autocast_dtype is not None:
            parts.append(f"autocast {runtime.precision}")
        if start_epoch:
            parts.append(f"from epoch {start_epoch}")
        if self.run_dir is not None:
            parts.append(f"-> {self.run_dir}")
        return "  ".join(parts)

    def _summary(self, evaluations: dict[str, dict[str, float]], train: dict[str, float], train_seconds: float,
                 wall_seconds: float) -> dict[str, Any]:
        summary = {
            "recipe": self.config.recipe,
            "metrics": {**evaluations, "train": train},
            "main_metric": self.task.main_metric,
            "epochs": self.config.trainer.epochs,
            "steps": self.step,
            "train_seconds": round(train_seconds, 3),
            "wall_seconds": round(wall_seconds, 3),
            "samples_per_s": round(self.samples_seen / train_seconds, 1) if train_seconds else None,
            "parameters": {name: sum(p.numel() for p in model.parameters())
                           for name, model in self.task.models.items()},
            "best": self.best.summary(self.run_dir) if self.best is not None else None,
            "world_size": self.runtime.world_size,
            "precision": self.runtime.precision,
            **self._environment,
        }
        extra = self.task.summary_extra() if self.runtime.is_main else {}  # only rank 0 writes summary.json
        clashes = sorted(set(extra) & set(summary))
        if clashes:
            raise ValueError(f"{type(self.task).__name__}.summary_extra() would replace the engine's {clashes}")
        return {**summary, **extra}


def _finite(models: dict[str, nn.Module], *metrics: dict[str, float]) -> bool:
    """Whether every parameter of the models and every metric is a finite number (one sync with the device; once an
    epoch). Weights can stay finite yet so large that the scores they give are not."""
    if not all(math.isfinite(value) for values in metrics for value in values.values()):
        return False
    checks = [torch.isfinite(p).all() for model in models.values() for p in model.parameters()]
    return bool(torch.stack(checks).all()) if checks else True


def _check_state_shapes(optimizer: torch.optim.Optimizer) -> None:
    """`load_state_dict` matches parameters by position and count only: a momentum buffer of another shape (another
    model's state) would reach the fused update kernels, which do not check it (SGD's crashed the process)."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape != parameter.shape:
                    raise ValueError(f"its {key} of shape {tuple(value.shape)} is for a parameter of another shape "
                                     f"than {tuple(parameter.shape)}")


@contextlib.contextmanager
def _batch_norm_fed_one_value(batch_size: int) -> Iterator[None]:
    """BatchNorm cannot train on one value per channel (a batch of one, after a flatten): that is the user's
    `data.batch_size` or `data.limit`, not a bug. (A last batch of one after others is never drawn:
    `drop_short_last`.)"""
    try:
        yield
    except (ValueError, RuntimeError) as error:  # ValueError from torch, RuntimeError from a compiled model
        if "more than 1 value per channel" not in str(error):
            raise
        raise UserError(f"a batch of one sample (data.batch_size={batch_size}, or data.limit) is too small for the "
                        f"model's BatchNorm layers, which need more than one value per channel") from None


def checkpoint_metadata(task: Task, epoch: int, step: int) -> dict[str, Any]:
    """The `dlzoo` header of a checkpoint's model.safetensors: the whole config and the task's `meta`, from which
    eval, predict, export and serve rebuild the task with that one file (`runs.read_checkpoint_metadata`)."""
    from dlzoo import __version__

    return {"recipe": task.config.recipe, "task": type(task).__name__, "config": to_dict(task.config),
            "meta": task.meta, "epoch": epoch, "step": step, "dlzoo_version": __version__}


def _processes(count: int) -> str:
    return "one process" if count == 1 else f"{count} processes"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_whole(path, json_text(data, indent=2) + "\n")
