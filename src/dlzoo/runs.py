"""Run directories: making configs for a new run, creating the folder, and loading a finished or killed run."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlzoo.config import (
    RecipeConfig,
    check_seed,
    from_dict,
    has_key,
    load_yaml,
    parse_overrides,
    set_key,
    to_yaml,
    type_mismatch,
    validate,
)
from dlzoo.engine import checkpoint
from dlzoo.engine.reporting import CURVES, METRICS, TENSORBOARD, nan_for_null
from dlzoo.engine.runtime import Runtime, pick_device
from dlzoo.engine.trainer import SUMMARY
from dlzoo.errors import UserError
from dlzoo.files import (
    check_name_encodes,
    nearest_existing_parent,
    stale_temporaries,
    stale_temporaries_in,
    write_text_whole,
)
from dlzoo.recipes import Recipe, get_recipe
from dlzoo.tasks.base import Task

CONFIG = "config.yaml"


def build_config(recipe: Recipe, config_file: str | None = None, overrides: Sequence[str] = ()) -> RecipeConfig:
    """Defaults, then a YAML file (merged into them key by key), then KEY=VALUE overrides; each step type-checked."""
    config = recipe.config()
    if config_file:
        data = load_yaml(config_file)
        if data.get("recipe", recipe.name) != recipe.name:
            raise UserError(f"{config_file} is a config for recipe '{data['recipe']}', not '{recipe.name}'")
        try:  # beside KEY=VALUE overrides, a mistake must say whether it is in the file
            config = from_dict(type(config), data, base=config, merge_mappings=True)
        except UserError as error:
            raise UserError(f"{config_file}: {error}") from None
    pairs = parse_overrides(overrides)
    if any(key == "recipe" for key, _ in pairs):
        raise UserError("the recipe is chosen by name (dlzoo train RECIPE), not by a key")
    # Another model named on the command line starts from no `args`, as in a file: the ones there fit the old
    # model. Named first, so that `model.args.K=V` given before or after it still applies.
    renames = {f"{section}.name": section for section in recipe.task.model_kinds}  # a GAN has two models
    for key, value in pairs:
        if key in renames:
            model = getattr(config, renames[key])
            if value != model.name:
                model.args = {}
            set_key(config, key, value)
    for key, value in pairs:
        if key not in renames:
            set_key(config, key, value)
    validate(config)
    recipe.task.check_config(config)
    check_seed(config.trainer.seed, "trainer.seed")  # here, not in validate: runs made before the range still load
    trainer = config.trainer
    if trainer.compile_mode != "default" and not trainer.compile:  # here too: such runs were made, and still load
        raise UserError(f"trainer.compile_mode={trainer.compile_mode} changes nothing without trainer.compile=true")
    return config


def check_out(out: str, task_files: Iterable[str] = ()) -> Path:
    """`--out DIR` for a new run: a folder that holds no run yet, nor anything named as what a run writes (its
    `task_files` too: a run that stops before its first checkpoint removes those), or a new name. Checked by every
    torchrun rank before any work, so that one rank's refusal cannot leave the others waiting for it."""
    path = check_not_a_run_file(check_name_encodes(out))  # not nested in another run's checkpoints or log
    nearest = nearest_existing_parent(path)
    if nearest is not None and not nearest.is_dir():
        raise UserError(f"cannot use --out {path}: {nearest} is a file, not a folder")
    if (path / CONFIG).exists():
        raise UserError(f"{path} already holds a run; continue it with --resume {path} or choose another --out")
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} exists and is not a folder")
    names = (METRICS, CURVES, SUMMARY, TENSORBOARD, checkpoint.CHECKPOINTS, *task_files)
    taken = [name for name in names if (path / name).exists() or (path / name).is_symlink()]
    if taken:
        raise UserError(f"--out {path} already holds {', '.join(taken)}, which a run writes there: move "
                        f"{'it' if len(taken) == 1 else 'them'} or choose another --out")
    return path


def check_run_files(run_dir: Path) -> None:
    """A folder where a run writes one of its files is found before any work, not when the file is written (after
    hours of training, or while cleaning up a run that stopped)."""
    for name in (CONFIG, METRICS, CURVES, SUMMARY):
        if (run_dir / name).is_dir():
            raise UserError(f"{run_dir / name} is a folder, where the run writes its {name}; move it")
    saved = run_dir / checkpoint.CHECKPOINTS
    if saved.exists() and not saved.is_dir():
        raise UserError(f"{saved} is a file, where the run keeps its checkpoints; move it")
    if (run_dir / SUMMARY).is_file() and not checkpoint.list_checkpoints(run_dir):
        # Training again from the start would replace the finished run's log and summary.
        raise UserError(f"{run_dir} finished training (it has a {SUMMARY}) but has no checkpoint left to resume "
                        f"from: train a new run instead")
    damaged = checkpoint.without_weights(run_dir)
    if damaged and not checkpoint.list_checkpoints(run_dir):
        # Not a run stopped in its first epoch, which a resume trains again from the start over its log: a run
        # whose checkpoints were damaged since. It says so, and deletes nothing.
        raise UserError(f"{damaged[-1]} has no {checkpoint.WEIGHTS} and {run_dir} no other checkpoint: it cannot be "
                        f"resumed; remove {run_dir / checkpoint.CHECKPOINTS} to train it again from the start")


def check_not_a_run_file(path: str | Path) -> Path:
    """`path`, for a command's output, refused when it would replace a file of a run (its weights, config,
    log, summary, curves, or a task's own files such as a GAN's samples): an export's own folder inside a run is
    fine, its checkpoints are not."""
    from dlzoo.recipes import list_recipes

    path = Path(path)
    own = {CONFIG, METRICS, CURVES, SUMMARY, TENSORBOARD, checkpoint.CHECKPOINTS,
           *(name for recipe in list_recipes() for name in recipe.task.run_files)}
    absolute = path.resolve()  # through `..` and symlinks, to the file that would be replaced
    for run_dir in absolute.parents:
        if (run_dir / CONFIG).is_file() and (run_dir / checkpoint.CHECKPOINTS).is_dir():
            inside = absolute.relative_to(run_dir).parts[0]
            if inside in own:
                raise UserError(f"{path} is the run {run_dir}'s own {inside}; write it elsewhere")
    return path


def new_run_dir(recipe: str, out: str | None, task_files: Iterable[str] = ()) -> Path:
    """`--out DIR` is the run directory itself; without it, runs/<recipe>-<time>, made here so that runs started in
    the same second (a sweep launched at once) each get their own."""
    if out:
        path = check_out(out, task_files)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        Path("runs").mkdir(exist_ok=True)
        for suffix in itertools.count(1):
            path = Path("runs") / (f"{recipe}-{stamp}" if suffix == 1 else f"{recipe}-{stamp}-{suffix}")
            try:
                path.mkdir()  # fails if another run took the name first, even between two checks
                break
            except FileExistsError:
                continue
    return path


def hold_run(run_dir: Path) -> int | None:
    """Take `run_dir` for this training alone, until the returned descriptor is closed: a second training of it
    (`--resume` twice, or one `--out` given to two new runs at once) is refused, rather than log every epoch twice
    and sweep away the checkpoint the other is writing. An advisory lock on the folder itself (flock): nothing is
    written, and it goes with the process (and the loader workers it forked), however that ends. None where there
    is no flock (Windows)."""
    try:
        import fcntl
    except ImportError:
        return None
    handle = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise UserError(f"{run_dir} is being trained by another process: wait for it to end, or stop it") from None
    except OSError:  # a file system that locks nothing (some network ones): train unguarded, as before
        pass
    return handle


def release(held: int | None) -> None:
    """Let go of a run directory that `hold_run` held."""
    if held is not None:
        os.close(held)


def hold_new_run(recipe: str, out: str | None, task_files: Iterable[str] = ()) -> tuple[Path, int | None]:
    """`new_run_dir`, made and held (`hold_run`): the folder and what to `release` when its training ends."""
    path = new_run_dir(recipe, out, task_files)
    path.mkdir(parents=True, exist_ok=True)
    held = hold_run(path)
    if out:
        try:  # again, now held: another run given the same --out may have begun there since the first check
            check_out(out, task_files)
        except BaseException:
            release(held)
            raise
    return path, held


def write_config(run_dir: Path, config: RecipeConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_whole(run_dir / CONFIG, to_yaml(config))


def outermost_missing(path: Path) -> Path | None:
    """The outermost of `path` and its parents that does not exist yet: the first folder that making `path` creates
    (None when `path` exists)."""
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


def discard_unstarted_run(run_dir: Path, made: Path | None, task_files: Iterable[str] = ()) -> bool:
    """Remove what a new run wrote if it stopped before its first complete checkpoint, when there is nothing to
    resume (and `--out` could not be used again), and the folders this run made: `run_dir` up to `made` (itself or
    one of its parents; None when `run_dir` was there before). Returns False, removing nothing, when a checkpoint
    exists."""
    if checkpoint.list_checkpoints(run_dir):
        return False
    forget_unfinished_epoch(run_dir, task_files)
    for path in (run_dir / CONFIG, *stale_temporaries(run_dir / CONFIG)):
        path.unlink(missing_ok=True)
    folder = run_dir
    with contextlib.suppress(OSError):  # not empty: the user's own files were there too (and so stay its parents)
        while made is not None:
            folder.rmdir()
            if folder == made:
                break
            folder = folder.parent
    return True


def forget_unfinished_epoch(run_dir: Path, task_files: Iterable[str] = ()) -> None:
    """Remove what a run logged and saved (half-saved) in the epoch it was stopped in, when it has no checkpoint,
    and the task's own `task_files` (its `Task.run_files`)."""
    (run_dir / METRICS).unlink(missing_ok=True)
    for name in (TENSORBOARD, checkpoint.CHECKPOINTS, *task_files):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def sweep_temporaries(run_dir: Path, task_files: Iterable[str] = ()) -> None:
    """Remove the temporary files that a process killed mid-write left in a run (of its summary, curves, the task's
    sample grids), which nothing else would: a resumed run writes those files anew."""
    for folder in (run_dir, *(run_dir / name for name in task_files)):
        if folder.is_dir() and not folder.is_symlink():
            for leftover in stale_temporaries_in(folder):
                leftover.unlink(missing_ok=True)


def _check_is_folder(run_dir: Path) -> None:
    """A run directory named by the user is a folder: a file there is named as a file, not as missing."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run directory")
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")


def read_run_config(run_dir: Path) -> tuple[Recipe, RecipeConfig]:
    """The recipe and resolved config of an existing run directory."""
    run_dir = Path(run_dir)
    _check_is_folder(run_dir)
    path = run_dir / CONFIG
    if path.is_dir():
        raise UserError(f"{path} is a folder; a run keeps its config there, as a YAML file")
    if not path.is_file():
        raise UserError(f"{run_dir} is not a dlzoo run directory (no {CONFIG})")
    data = load_yaml(path)
    if "recipe" not in data:  # else "unknown recipe ''", as if the user had named one
        raise UserError(f"{path} names no recipe (its 'recipe' key): it is damaged")
    try:
        recipe = get_recipe(str(data["recipe"]))
    except UserError as error:
        raise UserError(f"{path}: {error}") from None
    # A config.yaml edited by hand gets the checks a new run's config gets, saying which file was wrong.
    return recipe, _checked_config(recipe, data, f"{path}: ")


# Keys a resumed run may change in its config.yaml: where and how fast it runs, not what it trains.
RESUME_MAY_CHANGE = ("trainer.device", "trainer.threads", "trainer.log_every_s", "trainer.keep_checkpoints",
                     "data.workers")


def check_unchanged_since_checkpoint(run_dir: Path, config: RecipeConfig) -> None:
    """A resumed run continues what its latest checkpoint trained: a config.yaml edited since (more epochs, another
    rate, a model argument) would not fit its saved schedule, optimizer or weights, so it is refused, naming the
    first changed key. Sections' keys that only one side knows (a config written by another dlzoo version) are not
    compared; a free-form mapping (a model's `args`) is compared whole."""
    found = checkpoint.list_checkpoints(run_dir)
    if not found:
        return
    weights = found[-1] / checkpoint.WEIGHTS
    recipe, metadata = read_checkpoint_metadata(weights)
    _checkpoint_config(recipe, metadata, weights)  # damaged, it is named so, not as a change made to config.yaml
    trained = metadata["config"]
    changed = _first_difference(trained, config)
    if changed is not None:
        key, before, after = changed
        raise UserError(f"{run_dir / CONFIG} was changed since {found[-1].name} ({key}: {before} -> {after}); a "
                        f"run resumes as it trained: undo the change, or start a new run with --config")


def _first_difference(trained: dict[str, Any], section: Any, prefix: str = "") -> tuple[str, str, str] | None:
    """The first key whose value differs between a checkpoint's config (as saved, JSON) and `section` of the
    config now, with both values as JSON text (so that NaN equals NaN, and a tuple the list it was saved as)."""
    if not isinstance(trained, dict):  # a section the checkpoint saved as something else: not comparable
        return None
    for entry in dataclasses.fields(section):
        key, value = f"{prefix}{entry.name}", getattr(section, entry.name)
        if entry.name not in trained or key in RESUME_MAY_CHANGE:
            continue
        if dataclasses.is_dataclass(value):
            found = _first_difference(trained[entry.name], value, f"{key}.")
            if found is not None:
                return found
            continue
        before, after = json.dumps(trained[entry.name], sort_keys=True), json.dumps(value, sort_keys=True)
        if before != after:
            return key, before, after
    return None


def read_summary(path: Path) -> dict[str, Any]:
    """A run's summary.json as a dict, its metrics that were not finite NaN, or a UserError naming the file: a
    folder or a pipe there (which would be read until its writer stops), a file that is not JSON, or JSON that is
    not an object."""
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise UserError(f"{path} is {what}; a finished run writes its summary there, as a JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object")
    if isinstance(data.get("metrics"), dict):  # a metric that was NaN or inf is written as null: NaN again
        data["metrics"] = {split: nan_for_null(values) if isinstance(values, dict) else values
                           for split, values in data["metrics"].items()}
    return data


@dataclass
class LoadedRun:
    run_dir: Path
    recipe: Recipe
    config: RecipeConfig
    checkpoint: Path
    metadata: dict[str, Any]


def open_run(run_dir: str | Path) -> LoadedRun:
    """A run directory with its latest complete checkpoint, or one checkpoint of a run (`RUN/checkpoints/epoch-NNNN`:
    an earlier epoch, such as the one its validation accuracy chose), for eval, predict and friends."""
    run_dir = Path(run_dir)
    # The run, if `run_dir` names one of its checkpoints (or is their folder): as relative as the path given
    # (`epoch-0002` from inside checkpoints/ has no parents of its own), for the paths commands print.
    its_run = _as_given(run_dir.absolute().parent.parent, run_dir)
    if not run_dir.is_dir() and run_dir.absolute().parent.name == checkpoint.CHECKPOINTS:  # removed as newer came
        kept = _kept(its_run) or "none"
        raise UserError(f"checkpoint not found: {run_dir} (kept: {kept}; trainer.keep_checkpoints says how many)")
    _check_is_folder(run_dir)
    whole_run = _as_given(run_dir.absolute().parent, run_dir)
    if run_dir.absolute().name == checkpoint.CHECKPOINTS and _kept(whole_run):
        raise UserError(f"{run_dir} holds a run's checkpoints: name the run ({whole_run}), or one of them "
                        f"({_kept(whole_run)}) as {run_dir / 'epoch-NNNN'}")
    if checkpoint.is_checkpoint(run_dir):
        run_dir, found = its_run, run_dir
    elif run_dir.absolute().parent.name == checkpoint.CHECKPOINTS:  # one without its weights: damaged, or half-saved
        raise UserError(f"{run_dir} is not a complete checkpoint (it has no {checkpoint.WEIGHTS}); complete ones: "
                        f"{_kept(its_run) or 'none'}")
    else:
        found = checkpoint.latest(run_dir)
        for damaged in checkpoint.newer_without_weights(run_dir, found):
            print(f"note: {damaged} has no {checkpoint.WEIGHTS}: using {found.name}", file=sys.stderr)
    recipe, metadata = read_checkpoint_metadata(found / checkpoint.WEIGHTS)
    return LoadedRun(run_dir, recipe, _checkpoint_config(recipe, metadata, found / checkpoint.WEIGHTS), found,
                     metadata)


def _checkpoint_config(recipe: Recipe, metadata: dict[str, Any], weights_file: Path) -> RecipeConfig:
    """The config a checkpoint trained with, checked as a config.yaml is (`read_run_config`): a damaged one is
    named, rather than read as a mistake on the command line (`trainer.epochs must be an integer`)."""
    return _checked_config(recipe, metadata["config"], f"{weights_file}: in the config its metadata holds, ")


def _checked_config(recipe: Recipe, data: dict[str, Any], where: str) -> RecipeConfig:
    """`recipe`'s config from a run's stored `data`, with the checks a new run's config gets; a mistake is said
    after `where` (the file it was read from)."""
    try:
        config = from_dict(type(recipe.config()), data, base=recipe.config())
        validate(config)
        recipe.task.check_config(config)
    except UserError as error:
        raise UserError(f"{where}{error}") from None
    return config


def read_checkpoint_metadata(weights_file: Path) -> tuple[Recipe, dict[str, Any]]:
    """A run checkpoint's recipe and metadata, checked once for what the commands that use it read (eval, predict
    and friends through `open_run`, and a resume): its recipe, its config and meta as mappings, and the keys of meta
    its task rebuilds and predicts from, each of its type (`Task.checkpoint_meta`). A damaged one is named in a
    line, not met as a KeyError or TypeError wherever a key is first read, nor resumed without the checks its meta
    serves."""
    metadata = checkpoint.read_metadata(weights_file)
    if "recipe" not in metadata:  # else "unknown recipe ''", as if the user had named one
        raise UserError(f"{weights_file}: its metadata names no recipe; the file is damaged or was not written by "
                        f"dlzoo")
    try:
        recipe = get_recipe(str(metadata["recipe"]))
    except UserError as error:  # of a newer dlzoo, or a plugin's recipe not imported: said of the file
        raise UserError(f"{weights_file}: {error}") from None
    if not isinstance(metadata.get("config"), dict) or not isinstance(metadata.get("meta"), dict):
        raise UserError(f"{weights_file}: its metadata lacks the config and meta dlzoo writes")
    meta, needed = metadata["meta"], recipe.task.checkpoint_meta
    missing = [f"meta.{key}" for key in needed if key not in meta]
    if missing:
        raise UserError(f"{weights_file}: its metadata lacks {', '.join(missing)}, which a {recipe.name} run needs; "
                        f"the file is damaged or was not written by dlzoo")
    for key, hint in needed.items():  # a value of another type: a TypeError where it is read, or a wrong result
        wrong = type_mismatch(meta[key], hint, f"meta.{key}")
        if wrong:
            raise UserError(f"{weights_file}: in its metadata, {wrong}; the file is damaged or was not written by "
                            f"dlzoo")
    return recipe, metadata


def _as_given(path: Path, given: Path) -> Path:
    """`path` (absolute) relative to the working folder when the user gave `given` relative."""
    return path if given.is_absolute() else Path(os.path.relpath(path))


def _kept(run_dir: Path) -> str:
    """The names of a run's complete checkpoints, oldest first ("" when none)."""
    return ", ".join(found.name for found in checkpoint.list_checkpoints(run_dir))


def set_evaluation_keys(run: LoadedRun, overrides: list[str]) -> None:
    """Apply KEY=VALUE settings that change only how the trained model is evaluated (its task's
    `evaluation_keys`, e.g. test-time augmentation, and the CPU threads) to the run's config; any other key is a
    user error."""
    allowed = ("trainer.threads", *run.recipe.task.evaluation_keys)
    for key, text in parse_overrides(overrides):
        if key not in allowed:
            can = ", ".join(allowed)
            if not has_key(run.config, key):  # a typo (tta_flp), not a setting training fixed: say which was meant
                close = difflib.get_close_matches(key, allowed, n=1)
                meant = f"did you mean '{close[0]}'? " if close else ""
                raise UserError(f"unknown config key '{key}'; {meant}what `dlzoo eval` can change for "
                                f"{run.recipe.name}: {can}")
            raise UserError(f"'{key}' was fixed by training; what `dlzoo eval` can change for {run.recipe.name}: {can}")
        set_key(run.config, key, text)
    validate(run.config)  # the same range checks as training's (data.eval_batch_size >= 1, tta_shift >= 0)
    run.recipe.task.check_config(run.config)


def load_for_inference(run: LoadedRun, device: str = "auto") -> Task:
    """The run's task rebuilt from its checkpoint alone: no data is read."""
    runtime = Runtime.for_inference(device)
    weights = checkpoint.read_weights(run.checkpoint / checkpoint.WEIGHTS)
    return run.recipe.task.from_checkpoint(run.config, run.metadata["meta"], weights, runtime)


def load_for_evaluation(run: LoadedRun, splits: Iterable[str] | None = None,
                        device: str = "auto") -> tuple[Task, Runtime]:
    """The run's task with its data loaded (as in training) and the checkpoint's weights, refused where the data
    read again is not what the run trained on (for `splits` to be evaluated; None: all the task's, as `dlzoo eval`
    evaluates without --split, and as docs/classic.md calls it). Loading sets torch's threads and determinism
    as the run trained (its noisy metrics are measured as training measured them); the runtime's `shutdown()`
    puts them back."""
    config = run.config
    if splits is None:
        splits = run.recipe.task.eval_splits(config)
    config.trainer.device = device
    if config.trainer.precision == "fp16" and pick_device(device).type == "cpu":
        config.trainer.precision = "fp32"  # a GPU run's fp16 autocast has no CPU kernels; its weights are fp32
    runtime = Runtime.create(config.trainer, init_process_group=False)
    task = run.recipe.task(config)
    task.setup(runtime)
    trained = run.metadata["meta"]
    changed = checkpoint.class_change(trained, task.meta)
    if changed:
        raise UserError(f"the data now holds {changed}, not those {run.run_dir} was trained on; evaluate it on data "
                        f"with its classes: {', '.join(map(str, trained['classes']))}")
    changed = checkpoint.validation_change(trained, task.meta) if "val" in splits else None
    if changed:
        raise UserError(f"the data now gives {changed}: some of its images may have been trained on by "
                        f"{run.run_dir}; evaluate --split test")
    changed = checkpoint.vocabulary_change(trained, task.meta)
    if changed:
        raise UserError(f"the texts now give {changed}: {run.run_dir}'s network would read other tokens than it "
                        f"learned (the texts, the tokenizer or its model.pretrained run changed since)")
    changed = checkpoint.drawn_test_change(trained, task.meta) if "test" in splits else None
    if changed:  # the labelled rows, texts or pairs changed since training (the test split is drawn from them)
        raise UserError(f"the data now gives {changed}: some of it may have been trained on by {run.run_dir}; "
                        f"evaluate it on the data it was trained with")
    checkpoint.load_weights_into(task.models, checkpoint.read_weights(run.checkpoint / checkpoint.WEIGHTS))
    return task, runtime
