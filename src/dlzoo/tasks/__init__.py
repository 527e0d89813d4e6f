"""Tasks: what each kind of problem needs (data, models, a training step, metrics, prediction)."""

from dlzoo.tasks.base import Task

__all__ = ["Task"]
