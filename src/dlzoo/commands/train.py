"""`dlzoo train`: a new run, or `--resume RUN_DIR` to continue one exactly where its last checkpoint left it."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dlzoo.cli import command
from dlzoo.engine.reporting import Console, format_metrics
from dlzoo.errors import UserError

if TYPE_CHECKING:
    from dlzoo.config import RecipeConfig
    from dlzoo.engine.runtime import Runtime
    from dlzoo.recipes import Recipe


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", help="recipe name (see `dlzoo list`); omitted with --resume")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, type-checked")
    parser.add_argument("--config", metavar="FILE", help="YAML file of config values (applied before overrides)")
    parser.add_argument("--out", metavar="DIR", help="run directory to create (default runs/<recipe>-<time>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")


@command("train", "train a recipe; writes a run directory", _arguments)
def train(args: argparse.Namespace) -> int:
    return run_training(args)[0]


def run_training(args: argparse.Namespace) -> tuple[int, Path | None]:
    """What `dlzoo train` does: the exit status (0, or 130/143 after Ctrl-C/SIGTERM) and the run directory trained
    (None when a stopped new run left nothing); `dlzoo.train` in Python calls it too."""
    from dlzoo.engine.runtime import Runtime
    from dlzoo.engine.trainer import Trainer
    from dlzoo.runs import discard_unstarted_run, hold_new_run, hold_run, outermost_missing, release, write_config

    recipe, config, run_dir = _recipe_and_config(args)
    runtime = Runtime.create(config.trainer)
    new_run: Path | None = None  # this command's own run directory, until its first checkpoint
    made: Path | None = None  # the outermost folder it made (--out new/dir/run: new), removed with it
    held: int | None = None  # rank 0's hold on the run directory (`hold_run`), until training ends
    restore_sigterm = _stop_training_at_sigterm(not runtime.distributed)  # from setup on: it may write the run
    try:
        if run_dir is not None and runtime.is_main:
            held = hold_run(run_dir)
        task = recipe.task(config)
        task.setup(runtime)  # data and models: every user error about them comes before anything is written
        if run_dir is None:
            made = outermost_missing(Path(args.out or "runs"))
            path, held = hold_new_run(recipe.name, args.out, recipe.task.run_files) if runtime.is_main else (None, None)
            run_dir = runtime.broadcast_object(path)
            if runtime.is_main:
                new_run = run_dir
                made = made or (None if args.out else run_dir)  # runs/ was there: the run's own folder is new
                write_config(run_dir, config)
        console = Console(enabled=runtime.is_main)
        resume_from = _resume_point(run_dir, runtime, console, recipe.task.run_files) if args.resume else None
        if resume_from is not None and _finished(run_dir, config.trainer.epochs):
            epochs = f"{config.trainer.epochs} epoch{'s' if config.trainer.epochs != 1 else ''}"
            console.line(f"{run_dir} has trained all its {epochs}: nothing to continue "
                         f"(`dlzoo eval {run_dir}` scores it)")
            return 0, run_dir
        summary = Trainer(task, runtime, run_dir, console).fit(resume_from=resume_from)
        _print_summary(console, summary, run_dir)
    except BaseException as error:
        # A new run stopped before its first checkpoint (a kill, or an error no check caught) leaves nothing
        # behind; one with a checkpoint is kept, to be resumed.
        discarded = new_run is not None and discard_unstarted_run(new_run, made, recipe.task.run_files)
        if not isinstance(error, KeyboardInterrupt):
            raise
        if runtime.is_main:
            how = "terminated" if isinstance(error, Terminated) else "interrupted"
            print(_interrupted(None if discarded else run_dir, runtime.world_size, how), file=sys.stderr)
        status = 143 if isinstance(error, Terminated) else 130  # the shell's codes for SIGTERM and SIGINT
        return status, None if discarded else run_dir
    finally:
        restore_sigterm()
        runtime.shutdown()
        release(held)
    return 0, run_dir


def _resume_point(run_dir: Path, runtime: Runtime, console: Console, run_files: tuple[str, ...]) -> Path | None:
    """Where `--resume` goes on from: the run directory, whose newest complete checkpoint `Trainer.fit` loads, or
    None for a run stopped in its first epoch, which trains again from the start. Temporary files a killed write
    left are swept first, so that they are not taken for checkpoints or outputs."""
    from dlzoo.engine import checkpoint
    from dlzoo.runs import forget_unfinished_epoch, sweep_temporaries

    if runtime.is_main:
        sweep_temporaries(run_dir, run_files)
    found = checkpoint.list_checkpoints(run_dir)
    if not found:  # killed in its first epoch: nothing to continue, so start over
        if runtime.is_main:
            forget_unfinished_epoch(run_dir, run_files)
        console.line(f"{run_dir} has no checkpoint yet (stopped in its first epoch): training from the start")
        return None
    for damaged in checkpoint.newer_without_weights(run_dir, found[-1]):  # weights a hand or a disk removed
        console.line(f"note: {damaged} has no {checkpoint.WEIGHTS}: going on from {found[-1].name}")
    return run_dir


def _finished(run_dir: Path, epochs: int) -> bool:
    """Whether a run has its last epoch's checkpoint and its summary: a resume has nothing left to do (one killed
    between the two writes the summary). Rewriting it would put the resuming process's machine in it."""
    from dlzoo.engine import checkpoint
    from dlzoo.engine.trainer import SUMMARY

    return checkpoint.epoch_of(checkpoint.latest(run_dir)) >= epochs and (run_dir / SUMMARY).is_file()


def _print_summary(console: Console, summary: dict, run_dir: Path) -> None:
    for split, metrics in summary["metrics"].items():
        if split != "train":
            console.line(f"final {split}: {format_metrics(metrics)}")
    baseline, metric = summary.get("baseline"), summary["main_metric"]
    if isinstance(baseline, dict) and metric in baseline:  # a reference model scored on the same data
        console.line(f"baseline, {baseline.get('model', 'reference model')}: {metric} {baseline[metric]:.4f}")
    chosen = summary.get("best")
    if chosen and chosen["epoch"] is None:  # trainer.keep_best, but no epoch scored a number (a diverged run)
        console.line(f"best {chosen['split']} {chosen['metric']}: none, no evaluated epoch scored a finite value "
                     f"(no checkpoint kept for it)")
    elif chosen:  # trainer.keep_best; the other splits' score at that epoch is the one to report
        metric = chosen["metric"]
        others = ", ".join(f"{split} {metric} {scores[metric]:.4f}" for split, scores in chosen["metrics"].items()
                           if split != chosen["split"] and metric in scores)
        kept = (f"kept as {run_dir / chosen['checkpoint']}" if chosen["checkpoint"]
                else "its checkpoint was removed before the run resumed")
        console.line(f"best {chosen['split']} {metric}: {chosen['value']:.4f} at epoch {chosen['epoch']}"
                     f"{f' ({others})' if others else ''}, {kept}")
    epochs = summary["epochs"]
    console.line(f"trained {epochs} epoch{'s' if epochs != 1 else ''} in {summary['train_seconds']:.1f} s "
                 f"({summary['wall_seconds']:.1f} s wall); run directory: {run_dir}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where training is, so that it stops as at Ctrl-C (a KeyboardInterrupt) and says so."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def _stop_training_at_sigterm(wanted: bool) -> Callable[[], None]:
    """Make SIGTERM (`kill`, `timeout`, a job scheduler) stop training as Ctrl-C does, so that the run says how to
    resume it; returns what puts the previous handler back. Not `wanted` under torchrun, which also sends SIGTERM
    to every process when one has failed: then the failure is the news. Only the main thread may set a handler:
    `main()` called from another keeps the default."""
    if not wanted or threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _recipe_and_config(args: argparse.Namespace) -> tuple[Recipe, RecipeConfig, Path | None]:
    """The recipe and config to train, and with --resume the run directory to continue (else None: a new run)."""
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import (
        build_config,
        check_out,
        check_run_files,
        check_unchanged_since_checkpoint,
        read_run_config,
    )

    if not args.resume:
        if not args.recipe:
            raise UserError("name a recipe (see `dlzoo list`) or pass --resume RUN_DIR")
        recipe = get_recipe(args.recipe)
        config = build_config(recipe, args.config, args.overrides)
        if args.out:
            check_out(args.out, recipe.task.run_files)
        if config.data.path:  # the run remembers where its data is, wherever `dlzoo eval` runs from later
            config.data.path = str(Path(config.data.path).expanduser().absolute())
        return recipe, config, None
    if args.recipe and "=" not in args.recipe:
        raise UserError(f"--resume continues the run's own recipe; drop '{args.recipe}'")
    if args.recipe or args.overrides or args.config or args.out:
        raise UserError("--resume continues a run exactly as configured; it takes no overrides, --config or --out")
    run_dir = Path(args.resume)
    recipe, config = read_run_config(run_dir)
    check_run_files(run_dir)
    check_unchanged_since_checkpoint(run_dir, config)
    return recipe, config, run_dir


def _interrupted(run_dir: Path | None, processes: int = 1, how: str = "interrupted") -> str:
    """What a Ctrl-C (or SIGTERM: `how` it was stopped) leaves, and how to go on (as many processes as before):
    `run_dir` is None when nothing was kept."""
    from dlzoo.engine import checkpoint

    if run_dir is None:
        return f"{how} before the first checkpoint: nothing was kept"
    launcher = "dlzoo" if processes == 1 else f"torchrun --nproc_per_node {processes} -m dlzoo"
    if checkpoint.list_checkpoints(run_dir):
        return f"{how}: the last complete checkpoint is intact; continue with {launcher} train --resume {run_dir}"
    return f"{how} before the first checkpoint; start it again with {launcher} train --resume {run_dir}"
