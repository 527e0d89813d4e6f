"""Helpers shared by benchmarks: train a recipe through the real CLI path and read back its summary; one epoch of the
hand-written loop their baselines use."""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dlzoo.errors import UserError
from dlzoo.provenance import environment


def train_recipe(recipe: str, overrides: list[str], out: Path | None = None, quiet: bool = True) -> dict[str, Any]:
    """`dlzoo train RECIPE OVERRIDES` in this process; returns summary.json (plus the run directory). Without `out`
    the run is kept in a new temporary folder, which a line on stderr names: a benchmark reports it, to be reused
    (a judge, a reader trained for an hour); one whose runs are only scored uses `temporary_run`."""
    import io
    import sys

    from dlzoo.cli import run_command
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config, read_summary

    # A bad option (batch_size=0) is the user's mistake: say so in one line before any run starts, rather than
    # as a failed training deep inside the benchmark.
    build_config(get_recipe(recipe), None, overrides)
    kept = out is None
    out = out or Path(tempfile.mkdtemp(prefix=f"bench-{recipe}-")) / "run"
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            # A mistake training meets (a judge run not there) is raised, for the benchmark's caller to say once.
            code = run_command(["train", recipe, *overrides, "--out", str(out)])
    except BaseException:
        if kept and not out.exists():  # the folder made for a run that never began: nothing in it to report
            out.parent.rmdir()
        raise
    if code in (130, 143):  # stopped by Ctrl-C or SIGTERM, which training has told of: the benchmark stops too
        raise KeyboardInterrupt
    if code != 0:
        raise RuntimeError(f"training {recipe} failed with status {code}: {sink.getvalue()[-2000:]}")
    summary = read_summary(out / "summary.json")
    summary["run_dir"] = str(out)
    if kept:
        print(f"{recipe} run kept in {out} (remove it when done)", file=sys.stderr, flush=True)
    return summary


@contextlib.contextmanager
def temporary_run(recipe: str, overrides: list[str]) -> Iterator[dict[str, Any]]:
    """`train_recipe` in a scratch directory that is removed afterwards, whether training and the reading of its
    results succeed or not (AlexNet's weights alone are 190 MB)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{recipe}-"))
    try:
        yield train_recipe(recipe, overrides, out=scratch / "run")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def compare_settings(recipe: str, variants: dict[str, list[str]], scores: Callable[[dict[str, Any]], dict[str, Any]],
                     threads: int | None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Train `recipe` once per named list of overrides (each run's folder removed), in torch's `threads` on the
    CPU; returns {name: scores(summary)} and the machine they ran on."""
    results = {}
    with torch_threads(threads):
        for name, overrides in variants.items():
            with temporary_run(recipe, ["trainer.device=cpu", *overrides]) as summary:
                results[name] = scores(summary)
        where = machine(torch.device("cpu"))  # names the thread count in use
    return results, where


def require_at_least(minimum: int, **counts: int | None) -> None:
    """A benchmark's counts (seeds, epochs, pictures), checked before any work: `seeds=0` would otherwise fail only
    after its baseline had trained for minutes. None is a count left to the benchmark."""
    for key, value in counts.items():
        if value is not None and value < minimum:
            raise UserError(f"{key} must be >= {minimum}, got {value}")


def spread(values: list[float]) -> dict[str, float]:
    """A measure over seeds as every benchmark over seeds reports it: mean, sample standard deviation (0 for one
    seed), min and max."""
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def machine(device: torch.device) -> dict[str, Any]:
    info = environment(device)
    return {"device": info["device"], "device_name": info["device_name"], "git_commit": info["git_commit"],
            "torch": info["versions"]["torch"]}


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a benchmark's baseline and recipe runs on `threads` torch CPU threads (None: leave it), then restore.

    On a shared machine, two jobs each asking for every core slow each other far more than they share (spinning
    OpenMP threads); `threads=1` makes a benchmark's seconds mean something beside another job."""
    require_at_least(1, threads=threads)
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)  # recipe runs keep it: their trainer.threads stays unset
        yield
    finally:
        torch.set_num_threads(before)


def textbook_epoch(model: torch.nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                   device: torch.device) -> int:
    """One epoch of the training loop as learners write it (forward, cross-entropy, zero_grad, backward, step, a
    batch at a time, moved to `device` as it comes); returns the number of samples trained on. The caller puts the
    model in training mode first, so that each baseline's timed span stays what it was."""
    samples = 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        samples += len(labels)
    return samples
