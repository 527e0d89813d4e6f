"""`dlzoo bench step-profile`: where a recipe's training step spends its time, from torch.profiler.

A step that does little arithmetic (fashion-speedrun on an H100: ~0.7 ms of bf16 work at batch 2048, in ~7 ms) is
bound by how many operators Python dispatches and how many kernels the device launches, not by FLOPs. This benchmark
trains one untimed epoch of `steps` steps (cuDNN's search, compilation), times a second without the profiler (its
recording slows a step, on a CPU by ~15%), then profiles a third, and reports per step: the wall time (from the
second epoch), the operators dispatched, the device kernels launched and their busy time, and the operators and
kernels that cost most. `trace=FILE` also writes the Chrome trace (chrome://tracing, Perfetto).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from typing import Any, Literal

from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from dlzoo.bench import benchmark
from dlzoo.bench.common import machine, require_at_least
from dlzoo.engine.reporting import Console
from dlzoo.engine.runtime import Runtime
from dlzoo.engine.trainer import Trainer
from dlzoo.errors import UserError
from dlzoo.files import check_destination, written_whole
from dlzoo.recipes import get_recipe
from dlzoo.runs import build_config, check_not_a_run_file


@benchmark("step-profile", "a recipe's training step under torch.profiler: operators, kernels and time per step")
def step_profile(recipe: str = "fashion-speedrun", steps: int = 20, device: Literal["auto", "cpu", "cuda"] = "auto",
                 overrides: str = "", top: int = 12, trace: str | None = None) -> dict[str, Any]:
    """steps: steps profiled (and warmed up before); overrides: the recipe's KEY=VALUE settings separated by
    spaces, e.g. "trainer.compile=true data.batch_size=1024"; top: how many operators and kernels to list."""
    require_at_least(2, steps=steps)
    require_at_least(1, top=top)
    if trace:  # before minutes of profiling, as `bench --out` is
        check_not_a_run_file(check_destination(trace, "trace.json"))
    found = get_recipe(recipe)
    config = build_config(found, None, [f"trainer.device={device}", *overrides.split()])
    # An epoch of exactly `steps` steps: the first pass warms up, the second is timed, the third profiled.
    config.data.limit = steps * config.data.batch_size
    config.trainer.epochs = max(config.trainer.epochs, 3)  # a one-cycle schedule must last the three epochs
    runtime = Runtime.create(config.trainer, init_process_group=False)
    task = found.task(config)
    task.setup(runtime)
    trainer = Trainer(task, runtime, run_dir=None, console=Console(enabled=False))
    loader = trainer.prepare()
    if len(loader) != steps:
        raise UserError(f"{recipe}'s training data gives {len(loader)} steps of batch {config.data.batch_size}, "
                        f"not {steps}: try fewer steps")
    loader.set_epoch(0)
    trainer.train_epoch(loader, 0)
    loader.set_epoch(1)
    seconds = trainer.train_epoch(loader, 1).seconds
    on_gpu = runtime.device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]
    loader.set_epoch(2)
    with _without_profiler_log_lines():
        with profile(activities=activities) as profiler:
            trainer.train_epoch(loader, 2)
        per_step = _per_step(profiler.events(), steps, top)
    if trace:
        with written_whole(trace) as tmp:
            profiler.export_chrome_trace(str(tmp))
    return {
        "benchmark": "step-profile",
        "recipe": recipe,
        "overrides": overrides,
        "steps": steps,
        "batch_size": config.data.batch_size,
        "ms_per_step": round(1000 * seconds / steps, 3),
        **per_step,
        "machine": machine(runtime.device),
    }


# "USDT:2026-12-06 08:45:19 26706:26706 SyncActivityProfilerHandler.cpp:39] profiler_start"
_PROFILER_LOG_LINE = re.compile(r"[A-Z]+:\d{4}-\d\d-\d\d [\d:]+ \d+:\d+ \w+\.cpp:\d+\] ")


@contextlib.contextmanager
def _without_profiler_log_lines() -> Iterator[None]:
    """The profiler's C++ library (Kineto) logs straight to the process's stderr: that it starts and stops, and on
    a machine without a GPU that it found none ("ERROR: ... gpuGetDeviceCount failed"), alarming and meaningless
    beside the benchmark's result. Its lines are dropped; anything else written there meanwhile is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not _PROFILER_LOG_LINE.match(line):
                    sys.stderr.write(line)


def _per_step(events: list, steps: int, top: int) -> dict[str, Any]:
    """Operators dispatched from Python or autograd (the outermost `aten::` calls: those whose overhead a step
    pays once each) and device kernels, counted and timed per step."""
    outermost = [e for e in events if e.device_type == DeviceType.CPU and e.name.startswith("aten::")
                 and not _inside_aten(e)]
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    operator_ms = Counter()
    for event in outermost:
        operator_ms[event.name] += event.cpu_time_total / 1000
    kernel_ms = Counter()
    for event in kernels:
        kernel_ms[event.name] += event.device_time_total / 1000
    operator_counts = Counter(e.name for e in outermost)
    return {
        "operators_per_step": round(len(outermost) / steps, 1),
        "operator_cpu_ms_per_step": round(sum(operator_ms.values()) / steps, 3),
        "kernels_per_step": round(len(kernels) / steps, 1),
        "kernel_ms_per_step": round(sum(kernel_ms.values()) / steps, 3),
        "top_operators": [{"name": name, "per_step": round(operator_counts[name] / steps, 1),
                           "cpu_ms_per_step": round(ms / steps, 3)} for name, ms in operator_ms.most_common(top)],
        "top_kernels": [{"name": name[:120], "ms_per_step": round(ms / steps, 3)}
                        for name, ms in kernel_ms.most_common(top)],
    }


def _inside_aten(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False
