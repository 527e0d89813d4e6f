"""The best epoch by one held-out metric (`trainer.keep_best=SPLIT.METRIC`, e.g. `val.accuracy`).

The last epoch is not always the best one, and picking by hand means keeping every checkpoint until the curves are
read. With `keep_best`, the trainer saves a checkpoint at each evaluated epoch that beats the best so far (whether
`checkpoint_every` falls due or not), keeps it beside the newest `keep_checkpoints`, and names it in summary.json
and in the run's last lines: `RUN/checkpoints/epoch-NNNN` is then what eval, predict, export and serve take.
Choose by a validation split (`data.val_fraction`), not the test set, whose accuracy is then the honest report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dlzoo.engine import checkpoint
from dlzoo.errors import UserError

if TYPE_CHECKING:
    from dlzoo.tasks.base import Task

Goal = Literal["max", "min"]


def parse(setting: str, splits: tuple[str, ...], goals: dict[str, Goal], recipe: str) -> tuple[str, str]:
    """(split, metric) of a `trainer.keep_best` value, refused unless the recipe's evaluations report it."""
    split, _, metric = setting.partition(".")
    if split in splits and metric in goals:
        return split, metric
    choices = ", ".join(f"{s}.{m}" for s in splits for m in goals)
    if not choices:
        raise UserError(f"trainer.keep_best: recipe '{recipe}' evaluates no metric to choose an epoch by")
    # `val` is evaluated only when the run holds it out: the likeliest reason it is missing is a forgotten fraction.
    hint = " (a val split is held out by data.val_fraction, in the recipes that take it)" if split == "val" else ""
    raise UserError(f"trainer.keep_best must name a split and metric that recipe '{recipe}' evaluates, one of: "
                    f"{choices}; got '{setting}'{hint}")


@dataclass
class BestEpoch:
    """The best score of `split`'s `metric` so far, the epoch that scored it, and that epoch's evaluations (the test
    accuracy to report for the chosen epoch)."""

    split: str
    metric: str
    goal: Goal
    epoch: int | None = None
    value: float | None = None
    metrics: dict[str, dict[str, float]] | None = None

    @classmethod
    def for_task(cls, task: Task) -> BestEpoch | None:
        """What the task's `trainer.keep_best` asks for (None: nothing)."""
        setting = task.config.trainer.keep_best
        if setting is None:
            return None
        goals = task.metric_goals(task.config)
        split, metric = parse(setting, task.eval_splits(task.config), goals, task.config.recipe)
        return cls(split, metric, goals[metric])

    def consider(self, evaluations: dict[str, dict[str, float]], epoch: int) -> bool:
        """Take in an epoch's evaluations; True when they beat the best (the epoch's checkpoint is then due). An
        epoch not evaluated, or scored NaN (a diverged run), is not the best."""
        value = evaluations.get(self.split, {}).get(self.metric)
        if value is None or not math.isfinite(value):
            return False
        if self.value is not None and not (value > self.value if self.goal == "max" else value < self.value):
            return False  # a tie keeps the earlier epoch
        self.epoch, self.value, self.metrics = epoch, value, evaluations
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"split": self.split, "metric": self.metric, "epoch": self.epoch, "value": self.value,
                "metrics": self.metrics}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore a resumed run's record (None: a checkpoint saved before `keep_best` existed)."""
        if state and (state["split"], state["metric"]) == (self.split, self.metric):
            self.epoch, self.value, self.metrics = state["epoch"], state["value"], state["metrics"]

    def resume(self, state: dict[str, Any], found: Path, run_dir: Path) -> list[str]:
        """Take up the record in a resumed checkpoint's training state (`found`'s state.pt); return what the user
        should know of it."""
        notes = []
        if "best" not in state:  # saved before keep_best existed, its config.yaml given the key since
            notes.append(f"{found.name} predates trainer.keep_best, so the best epoch is chosen from epoch "
                         f"{state['epoch'] + 1} on")
        self.load_state_dict(state.get("best"))
        kept = self.checkpoint()
        if kept is not None and not (run_dir / kept).is_dir():  # removed by hand: still the score to beat
            notes.append(f"the best epoch so far by {self.split} {self.metric} (epoch {self.epoch}, {self.value:.4f}) "
                         f"has no checkpoint any more ({kept} was removed); a later epoch is kept as the best only "
                         f"if it beats it")
        return notes

    def checkpoint(self) -> str | None:
        """The best epoch's checkpoint, relative to its run (`checkpoints/epoch-NNNN`)."""
        return None if self.epoch is None else f"{checkpoint.CHECKPOINTS}/{checkpoint.name_of(self.epoch)}"

    def summary(self, run_dir: Path | None) -> dict[str, Any] | None:
        """The record for summary.json; its checkpoint None where it is not in `run_dir` (removed by hand before
        a resume: the score stays the run's best, but nothing can use its weights). With no epoch chosen (every
        evaluation NaN), all but the split and metric are None: keep_best was asked for, and chose nothing."""
        if self.epoch is None:
            return {**self.state_dict(), "checkpoint": None}
        kept = run_dir is None or (Path(run_dir) / str(self.checkpoint())).is_dir()
        return {**self.state_dict(), "checkpoint": self.checkpoint() if kept else None}
