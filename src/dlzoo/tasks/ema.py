"""An exponential moving average (EMA) of a model's weights, kept by a task as a second model.

The average is torch's own `AveragedModel` (weights *and* BatchNorm statistics, `use_buffers=True`), frozen so the
optimizer ignores it. As one of the task's models it lives in every checkpoint (keys `ema.module.*` and
`ema.n_averaged`), so a resumed run continues the same average and prediction can use it from the checkpoint alone.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dlzoo.errors import UserError


def weight_average(model: nn.Module, decay: float) -> AveragedModel:
    """A frozen copy of `model`; each `average.update_parameters(model)` moves it (1 - decay) of the way towards
    `model`, except the first, which copies `model` (so an average started late does not remember the init)."""
    if not 0 < decay < 1:
        raise UserError(f"the EMA decay must be in (0, 1), got {decay}")
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    return average.requires_grad_(False)


def started(average: AveragedModel) -> bool:
    """Whether the average holds anything but the initial weights yet."""
    return bool(average.n_averaged > 0)
