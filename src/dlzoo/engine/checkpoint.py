"""Checkpoints that survive a kill at any moment.

A checkpoint is a folder `checkpoints/epoch-NNNN/` holding
  model.safetensors  the weights of every model of the task (keys `<model>.<param>`), with the run's config and the
                     task's inference metadata (class names, preprocessing, ...) in the safetensors header, so that
                     prediction needs this one file and nothing else;
  state.pt           the training state (optimizers, schedulers, grad scaler, RNG states, epoch, step), plain
                     tensors and containers only, loadable with `torch.load(..., weights_only=True)`.
The folder is written as `epoch-NNNN.tmp`, its files fsynced, then renamed: a folder without `.tmp` is complete.
Older checkpoints are removed only after the new one is in place.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_weights
from safetensors.torch import save as save_weights
from torch import nn

from dlzoo.errors import UserError

CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
STATE = "state.pt"
# The layout of state.pt. A resume refuses another one in a line, rather than restoring it half (a KeyError, or
# state that silently differs): raise it whenever what the trainer saves there changes.
STATE_FORMAT = 2
_NAME = re.compile(r"^epoch-(\d{4,})$")


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP (`module.`) and torch.compile (`_orig_mod.`) wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def flat_weights(models: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    # A copy of each: safetensors refuses tensors that share memory (tied weights), and it is cheap next to training.
    return {f"{name}.{key}": value.detach().to("cpu", copy=True).contiguous()
            for name, model in models.items() for key, value in unwrap(model).state_dict().items()}


def load_weights_into(models: dict[str, nn.Module], weights: dict[str, torch.Tensor]) -> None:
    for name, model in models.items():
        prefix = f"{name}."
        state = {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}
        try:
            unwrap(model).load_state_dict(state)
        except RuntimeError as error:  # torch lists every missing, unexpected and mis-shaped key: the first says it
            details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
            first = details[0] if details else str(error).strip()
            raise UserError(f"checkpoint weights do not fit model '{name}': {first[:300]}") from None


def rng_state() -> dict[str, Any]:
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": int(position),
        "numpy_gauss": (int(has_gauss), float(cached_gauss)),  # randn's second value of a pair, if one is waiting
        "python": random.getstate(),
    }
    # This process's GPU only: asking for every GPU's would start a CUDA context on each, and a resume on a
    # machine with fewer GPUs could not restore them.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    has_gauss, cached_gauss = state["numpy_gauss"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], has_gauss,
                         cached_gauss))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")  # saved where this process had started CUDA
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes | memoryview, named: Path) -> None:
    """Write `data` to `path` and fsync it, through Python's own file: a full disk is then an OSError, named by
    the checkpoint `named` (safetensors and torch raise types of their own, which read as a bug, with a
    traceback)."""
    try:
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(named)) from None


def name_of(epoch: int) -> str:
    """The folder name of the checkpoint after `epoch` epochs."""
    return f"epoch-{epoch:04d}"


def save(run_dir: Path, epoch: int, models: dict[str, nn.Module], metadata: dict[str, Any],
         training_state: dict[str, Any], keep: int = 2, also_keep: int | None = None) -> Path:
    """Write the checkpoint of `epoch`, then remove all but the newest `keep` and the one of epoch `also_keep`
    (the best epoch so far, `trainer.keep_best`)."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / name_of(epoch)
    tmp = root / f"{name_of(epoch)}.tmp"
    # Serialized in memory (a copy of the weights and optimizer state for a moment), then written by `_write_synced`;
    # a write that fails (a full disk, a Ctrl-C) takes its half-written folder away with it.
    weights = save_weights(flat_weights(models), metadata={"dlzoo": json.dumps(metadata)})
    state = io.BytesIO()
    torch.save({**training_state, "format": STATE_FORMAT}, state)
    for leftover in [*root.glob("epoch-*.tmp"), *root.glob("epoch-*.old")]:  # of a process killed mid-save
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_synced(tmp / WEIGHTS, weights, final)
        _write_synced(tmp / STATE, state.getbuffer(), final)
        _fsync_dir(tmp)
    except BaseException:  # a Ctrl-C or SIGTERM too
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # An `epoch-NNNN` already there is one without its weights (damaged by hand: a resume never saves an epoch it
    # has): set aside, so that the rename below cannot fail on it, and deleted once the new one is in place.
    replaced = _set_aside(final) if final.exists() else None
    tmp.rename(final)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    _fsync_dir(root)
    for stale in list_checkpoints(run_dir)[:-keep]:
        if epoch_of(stale) != also_keep:
            shutil.rmtree(_set_aside(stale), ignore_errors=True)
    return final


def _set_aside(checkpoint_dir: Path) -> Path:
    """`checkpoint_dir` renamed to `epoch-NNNN.old`, in one step, to be deleted: a process killed while deleting
    leaves that folder, swept by the next save, and never an `epoch-NNNN` without its weights (no checkpoint, so
    never rotated away, yet holding its optimizer state's space)."""
    old = checkpoint_dir.with_name(f"{checkpoint_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    checkpoint_dir.rename(old)
    return old


def _epoch_folders(run_dir: Path, with_weights: bool) -> list[Path]:
    """A run's `epoch-NNNN` folders that hold their weights (`with_weights`) or lack them, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and _NAME.match(p.name) and (p / WEIGHTS).is_file() == with_weights]
    return sorted(found, key=epoch_of)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """A run's complete checkpoints, oldest first."""
    return _epoch_folders(run_dir, with_weights=True)


def without_weights(run_dir: Path) -> list[Path]:
    """A run's checkpoint folders (`epoch-NNNN`) that lack their weights, oldest first: never what a kill leaves
    (a checkpoint is renamed into place whole), but a hand or a damaged disk can."""
    return _epoch_folders(run_dir, with_weights=False)


def newer_without_weights(run_dir: Path, newest: Path) -> list[Path]:
    """The checkpoint folders of `run_dir` newer than its newest complete one that lack their weights: passed over
    by every command, which says so (else a resume or a prediction would silently be an epoch behind)."""
    return [found for found in without_weights(run_dir) if epoch_of(found) > epoch_of(newest)]


def is_checkpoint(path: Path) -> bool:
    """Whether `path` is one complete checkpoint of a run (`RUN/checkpoints/epoch-NNNN` holding its weights)."""
    path = Path(path).absolute()  # `epoch-0002` given from inside checkpoints/ has a parent too
    return path.parent.name == CHECKPOINTS and bool(_NAME.match(path.name)) and (path / WEIGHTS).is_file()


def epoch_of(checkpoint_dir: Path) -> int:
    """The epochs a checkpoint folder (`epoch-NNNN`) has trained."""
    return int(_NAME.match(Path(checkpoint_dir).name).group(1))


def latest(run_dir: Path) -> Path:
    """The run's newest complete checkpoint, refused in a line when it has none."""
    found = list_checkpoints(run_dir)
    if not found:
        raise UserError(f"{run_dir} holds no checkpoint (expected {CHECKPOINTS}/epoch-NNNN/{WEIGHTS})")
    return found[-1]


def read_metadata(weights_file: Path) -> dict[str, Any]:
    """The `dlzoo` header of a weights file (`trainer.checkpoint_metadata`), refused in a line when the file cannot
    be read, is not dlzoo's, or its header is damaged."""
    try:
        header = _safetensors_header(weights_file).get("__metadata__") or {}
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read checkpoint {weights_file}: {error}") from None
    if "dlzoo" not in header:
        raise UserError(f"{weights_file} is not a dlzoo checkpoint (no 'dlzoo' metadata)")
    try:
        metadata = json.loads(header["dlzoo"])
    except json.JSONDecodeError:
        metadata = None
    if not isinstance(metadata, dict):
        raise UserError(f"{weights_file}: its 'dlzoo' metadata is damaged (not the JSON object dlzoo writes)")
    return metadata


def _safetensors_header(path: Path) -> dict[str, Any]:
    """A safetensors file's JSON header (its first 8 bytes give the header's length), read with Python's own file
    functions: safetensors' take the path as UTF-8 text, and refuse a folder whose name is other bytes (which
    Linux allows, and Python holds as lone surrogates)."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if not 2 <= size <= 100_000_000:  # the header is JSON of the tensors' names, shapes and dlzoo's metadata
            raise ValueError(f"a header of {size:,} bytes: not a safetensors file")
        header = json.loads(handle.read(size))
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object: not a safetensors file")
    return header


def read_weights(weights_file: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, refused in a line when a value is not finite (NaN, inf): a run whose training
    diverged (too high a learning rate) saved them as it went, and every prediction from them is NaN. (A model
    that needs -inf, an attention mask, keeps it in a buffer that is not saved, or as booleans.)"""
    try:
        weights = load_weights(Path(weights_file).read_bytes())  # bytes, not a path: see _safetensors_header
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"cannot read checkpoint {weights_file}: {error}") from None
    diverged = next((name for name, tensor in weights.items()
                     if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())), None)
    if diverged is not None:
        raise UserError(f"{weights_file} holds weights that are not finite ({diverged}): the run's training had "
                        f"diverged by then; use an earlier checkpoint, or train again with a lower optim.lr or a "
                        f"trainer.grad_clip")
    return weights


def read_training_state(checkpoint_dir: Path, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The training state of a checkpoint, refused in a line when it is damaged, of another layout, or lacks one of
    the `keys` its reader restores."""
    path = Path(checkpoint_dir) / STATE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {checkpoint_dir} has no {STATE}; it cannot be resumed") from None
    except Exception as error:  # torch raises several types for truncated or foreign files, in long messages that
        # suggest weights_only=False: never right for a checkpoint that dlzoo wrote
        raise UserError(f"cannot read training state {path}: the file is damaged or not one dlzoo wrote "
                        f"({type(error).__name__}); resume from an earlier checkpoint by removing this one") from None
    found = state.get("format", 1) if isinstance(state, dict) else None
    if found != STATE_FORMAT:
        raise UserError(f"{path} was written by another version of dlzoo (training state format {found}, this one "
                        f"reads {STATE_FORMAT}): it cannot be resumed by this one")
    missing = [key for key in keys if key not in state]
    if missing:  # a resume would stop at the first with a KeyError, after the data was read
        raise UserError(f"{path} lacks {', '.join(missing)} of the training state dlzoo saves: the file is damaged; "
                        f"resume from an earlier checkpoint by removing this one")
    return state


# A picture folder changed since training may hold other classes (outputs scored against other labels; a resume
# learning from two training sets) or give another validation split (one holding pictures already trained on). What
# a task's meta keeps of its data tells: `trained` is a checkpoint's meta, `found` the meta of the data read now.
def class_change(trained: dict[str, Any], found: dict[str, Any]) -> str | None:
    """How the classes found differ from those trained on (None: the same, in the same order, or not classes)."""
    classes, now = trained.get("classes"), found.get("classes")
    if classes is None or now is None or now == classes:
        return None
    new, gone = sorted(set(now) - set(classes)), sorted(set(classes) - set(now))
    if not (new or gone):
        return "other classes (the same names in another order)"
    differ = [f"new: {', '.join(map(str, new))}" if new else "",
              f"missing: {', '.join(map(str, gone))}" if gone else ""]
    return f"other classes ({'; '.join(part for part in differ if part)})"


def _split_change(trained: dict[str, Any], found: dict[str, Any], key: str, name: str) -> str | None:
    """How the split kept under `key` (its size and fingerprint), drawn again, differs from the one training held
    out (None: the same, or none kept)."""
    split, now = trained.get(key), found.get(key)
    if split is None or now == split:
        return None
    kind = "texts" if "texts" in split else "images"  # a text classifier's split counts texts
    drawn = f"{now.get(kind, 0):,} {kind} drawn again" if now else "none drawn again"
    return f"another {name} split ({drawn}; {split[kind]:,} held out in training)"


def validation_change(trained: dict[str, Any], found: dict[str, Any]) -> str | None:
    """How the validation split drawn again differs from the one training held out (None: the same, or none)."""
    return _split_change(trained, found, "val_split", "validation")


def drawn_test_change(trained: dict[str, Any], found: dict[str, Any]) -> str | None:
    """How a test split drawn from the labelled data (picture-csv's) differs from the one training held out (None:
    the same, or a test set fixed apart from training)."""
    return _split_change(trained, found, "test_split", "test")


def vocabulary_change(trained: dict[str, Any], found: dict[str, Any]) -> str | None:
    """Whether a text run's tokens would now be numbered otherwise than in training: the texts, the tokenizer's
    version or the pretrained run its vocabulary came from changed (None: the same, or no vocabulary). A
    translation's two vocabularies are checked each."""
    for key, name in (("vocabulary", "vocabulary"), ("source_vocabulary", "source vocabulary"),
                      ("target_vocabulary", "target vocabulary")):
        vocabulary, now = trained.get(key), found.get(key)
        if vocabulary is not None and now is not None and now != vocabulary:
            return f"another {name} ({len(now):,} tokens, {len(vocabulary):,} in training)"
    return None


def data_change(trained: dict[str, Any], found: dict[str, Any]) -> str | None:
    """The first way the data read again differs from what the run trained on, for a resume (which refuses all)."""
    return (class_change(trained, found) or validation_change(trained, found) or drawn_test_change(trained, found)
            or vocabulary_change(trained, found))
