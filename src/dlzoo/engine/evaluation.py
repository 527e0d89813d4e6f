"""Models in evaluation mode: for the trainer's evaluations, and outside training for eval, predict and generate.

Kept apart from the training loop (`trainer.py`): tasks and the inference commands use these without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from dlzoo.tasks.base import Task


@contextlib.contextmanager
def eval_mode(models: Iterable[nn.Module]) -> Iterator[None]:
    """Models in eval mode without autograd for the block, then back to the modes they were in."""
    models = list(models)
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for model, training in zip(models, modes, strict=True):
            model.train(training)


@contextlib.contextmanager
def evaluation_mode(task: Task) -> Iterator[None]:
    """The task's models in `eval_mode`, in the run's autocast."""
    with eval_mode(task.models.values()), task.runtime.autocast():
        yield


def evaluate_split(task: Task, split: str) -> dict[str, float]:
    """A task's metrics on a split, in `evaluation_mode`."""
    with evaluation_mode(task):
        metrics = task.evaluate(split)
    return {key: float(value) for key, value in metrics.items()}
