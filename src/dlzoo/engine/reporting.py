"""What a run tells the world: console progress, `metrics.jsonl`, TensorBoard events and `curves.png`.

On a terminal a tqdm bar shows progress; when output goes to a file or CI log, a plain line is printed at most every
`log_every_s` seconds instead, so logs stay readable. Only rank 0 reports.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dlzoo.files import json_text, new_figure, save_figure, write_text_whole

METRICS = "metrics.jsonl"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"  # the folder of TensorBoard event files


def format_metrics(metrics: dict[str, float]) -> str:
    """`key value` pairs; numbered keys in a row (fold1_log_rmse, fold2_log_rmse, ...) share one name, so that a
    line with a metric per fold still fits a terminal: `fold1-5_log_rmse 0.1741 0.1594 ...`."""
    groups: list[tuple[str, str, list[int], list[str]]] = []  # (before the number, after it, numbers, values)
    for key, value in metrics.items():
        if isinstance(value, float):
            text = f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
        else:
            text = str(value)
        numbered = re.fullmatch(r"([a-z_]*?)(\d+)(_\w+)", key)
        if not numbered:
            groups.append((key, "", [], [text]))
            continue
        before, number, after = numbered[1], int(numbered[2]), numbered[3]
        if groups and groups[-1][:2] == (before, after) and groups[-1][2][-1] == number - 1:
            groups[-1][2].append(number)
            groups[-1][3].append(text)
        else:
            groups.append((before, after, [number], [text]))
    parts = []
    for before, after, numbers, texts in groups:
        span = f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else "".join(map(str, numbers))
        parts.append(f"{before}{span}{after} {' '.join(texts)}")
    return "  ".join(parts)


class Console:
    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stdout

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        try:
            tqdm.write(text, file=self.stream)
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away (`dlzoo train ... | head`): training goes on to its end and its files; only
            # the lines stop. The stream is pointed at /dev/null, or Python's own flush at exit would fail again.
            self.enabled = False
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


class EpochProgress:
    """A bar on a terminal, periodic plain lines otherwise."""

    def __init__(self, console: Console, total: int, description: str, log_every_s: float):
        self.console, self.total, self.description = console, total, description
        self.interactive = console.enabled and console.stream.isatty()
        self.bar = tqdm(total=total, desc=description, leave=False, dynamic_ncols=True,
                        file=console.stream) if self.interactive else None
        self.log_every_s = log_every_s
        self.last_line = time.perf_counter()
        self.done = 0

    def update(self, metrics: Callable[[], dict[str, float]]) -> None:
        """`metrics` is called only when a value is shown: reading GPU values costs a sync."""
        self.done += 1
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(1)
            if now - self.last_line >= 0.5:
                self.last_line = now
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics().items()}, refresh=False)
        elif self.console.enabled and now - self.last_line >= self.log_every_s:
            self.last_line = now
            suffix = f"  {format_metrics(metrics())}"
            self.console.line(f"{self.description}  {self.done}/{self.total}{suffix}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunLog:
    """metrics.jsonl plus TensorBoard; a no-op on ranks other than 0."""

    def __init__(self, run_dir: Path | None, purge_step: int | None = None):
        self.run_dir = run_dir
        self.writer = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # import cost only where a run is written

            self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD), purge_step=purge_step)

    def record(self, entry: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        with open(self.run_dir / METRICS, "a", encoding="utf-8") as handle:
            handle.write(json_text(entry) + "\n")
        step, split = entry["step"], entry["split"]
        for key, value in entry.get("metrics", {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{split}/{key}", value, step)
        if "lr" in entry:
            self.writer.add_scalar("train/lr", entry["lr"], step)
        if "samples_per_s" in entry:
            self.writer.add_scalar("train/samples_per_s", entry["samples_per_s"], step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    entries = []
    for line in path.read_bytes().splitlines():
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):  # a line cut by a kill, or damaged since
            continue
        if _is_entry(entry):
            if "metrics" in entry:
                entry["metrics"] = nan_for_null(entry["metrics"])
            entries.append(entry)
    return entries


def nan_for_null(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics as read from a file: a null is a value that was not finite (`files.json_text` writes NaN and inf
    so), NaN again here, so that a diverged run's numbers stay numbers to whoever compares or averages them."""
    return {key: math.nan if value is None else value for key, value in metrics.items()}


def _is_entry(entry: Any) -> bool:
    """Whether a parsed line has the shape `RunLog.record` writes, which its readers rely on: others (damaged by
    hand) are passed over like a cut line, not met by a resume as a TypeError after its training."""
    return (isinstance(entry, dict) and isinstance(entry.get("epoch"), int) and isinstance(entry.get("split"), str)
            and isinstance(entry.get("metrics", {}), dict))


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """On resume, forget what was logged after the checkpoint we continue from (written atomically)."""
    path = Path(run_dir) / METRICS
    kept = [entry for entry in read_metrics(run_dir) if entry.get("epoch", 0) <= last_epoch]
    write_text_whole(path, "".join(json_text(entry) + "\n" for entry in kept))


def plot_curves(run_dir: Path) -> Path | None:
    """One panel per metric, one line per split, against epoch."""
    entries = read_metrics(run_dir)
    if not entries:
        return None
    from matplotlib.ticker import MaxNLocator

    series: dict[str, dict[str, tuple[list, list]]] = {}
    for entry in entries:
        for key, value in entry.get("metrics", {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                xs, ys = series.setdefault(key, {}).setdefault(entry["split"], ([], []))
                xs.append(entry["epoch"])
                ys.append(value)
    if not series:
        return None
    columns = min(3, len(series))
    rows = math.ceil(len(series) / columns)
    figure = new_figure(figsize=(4.5 * columns, 3.2 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, (metric, splits) in zip(axes.flat, series.items(), strict=False):
        for split, (xs, ys) in splits.items():
            axis.plot(xs, ys, marker="o", markersize=3, label=split)
        axis.set_title(metric)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 1.25
        axis.grid(alpha=0.3)
        axis.legend()
    for axis in list(axes.flat)[len(series):]:
        axis.axis("off")
    figure.tight_layout()
    return save_figure(figure, Path(run_dir) / CURVES, dpi=100)
