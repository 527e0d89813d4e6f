"""The contract between a recipe and the engine.

A task builds its data and models and says what one training step and one evaluation are; the engine (see
`dlzoo.engine.trainer`) owns everything else: the loop, devices, precision, DDP, schedules, checkpoints and logs.
The same object, rebuilt from a checkpoint with `from_checkpoint`, serves prediction.
"""

from __future__ import annotations

import abc
import csv
from collections.abc import Iterable, Sized
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from dlzoo.config import RecipeConfig
from dlzoo.data.tensors import TensorLoader, drop_short_last
from dlzoo.engine import best
from dlzoo.engine.checkpoint import load_weights_into
from dlzoo.engine.optim import build_optimizer
from dlzoo.engine.runtime import Runtime
from dlzoo.errors import UserError
from dlzoo.files import written_whole
from dlzoo.models import check_arguments, check_kind


def predict_inputs(inputs: Iterable[Any], in_memory: tuple[type, ...] = ()) -> list[Any]:
    """`Task.predict`'s inputs as a list: files as path strings (its records name them, and must stay JSON-able),
    and the in-memory kinds the task also takes (`in_memory`: pictures as arrays, tables as DataFrames) as given.
    One input given alone is refused: iterating a path would read each of its characters as a file name, an array
    its rows as pictures."""
    if isinstance(inputs, (str, Path, *in_memory)):
        shown = repr(str(inputs)) if isinstance(inputs, (str, Path)) else type(inputs).__name__
        raise TypeError(f"predict takes a list of inputs: predict([{shown}]), not one alone")
    items = []
    for item in inputs:
        if isinstance(item, (str, Path)):
            items.append(str(item))
        elif isinstance(item, in_memory):
            items.append(item)
        else:
            kinds = ", ".join(["file paths", *(f"{k.__module__.split('.')[0]}.{k.__name__}" for k in in_memory)])
            raise TypeError(f"predict takes {kinds}, not {type(item).__name__}")
    return items


def input_name(item: Any) -> str | None:
    """What a prediction record calls its input: the file's path, None for one given in memory (records come in the
    order of the inputs)."""
    return item if isinstance(item, str) else None


def output_file_name(item: Any, number: int, taken: set[str]) -> str:
    """The PNG a prediction writes for input number `number` of a call into its output folder (a mask, a picture
    with boxes drawn): the input's own file stem, or `picture-N` for one given in memory; a stem already used in the
    call (photos/a.jpg and scans/a.png) gets the input's number added. `taken` collects the names given."""
    stem = Path(item).stem if isinstance(item, str) else f"picture-{number}"
    name = f"{stem}.png" if f"{stem}.png" not in taken else f"{stem}-{number}.png"
    taken.add(name)
    return name


def write_table(out: Path, header: list[str], rows: list[list[Any]]) -> None:
    """A CSV file of predictions, written whole (dlzoo.files) in UTF-8; a file name of another encoding in a row is
    written back as the bytes it has."""
    try:
        with written_whole(out) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as error:
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None


def check_top(top: Any) -> None:
    """`top`, how many of the most likely classes a prediction record lists: at least 1 (topk(0) leaves no label)."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise UserError(f"top= is how many of the most likely classes to list, at least 1, not {top!r}")


def ranked_classes(probabilities: torch.Tensor, classes: list[str], top: int) -> dict[str, Any]:
    """A classifier's prediction record for one sample's class probabilities: the most likely class (`label`, its
    `index` in `classes`, its `probability`) and the `top` most likely, best first."""
    values, indices = probabilities.topk(min(top, len(classes)))
    return {"label": classes[int(indices[0])], "index": int(indices[0]), "probability": round(float(values[0]), 6),
            "top": [{"label": classes[int(i)], "probability": round(float(v), 6)}
                    for v, i in zip(values, indices, strict=True)]}


class Loader(Iterable, Sized, Protocol):
    """What the engine iterates over: a DataLoader or a `TensorLoader`; `set_epoch` reseeds the order."""

    def set_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class StepContext(Protocol):
    """What a training step sees of the engine (the `Trainer` is one): nothing else of it is a task's business."""

    models: dict[str, nn.Module]  # the task's models as trained: compiled, DDP-wrapped

    @property
    def step(self) -> int:
        """Training steps completed over the whole run, a resumed one included: in `train_step` those before this
        one, in `after_step` this one too."""

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1]."""

    def optimize(self, loss: torch.Tensor, name: str = "net") -> None:
        """Backward, clipping and the named optimizer's step (for tasks that set `optimizes_itself`)."""


class Task(abc.ABC):
    # The metric summary.json names as the run's result, which `dlzoo compare` tables (from the test split).
    main_metric: ClassVar[str] = "loss"
    # Config keys that change how a trained model is evaluated, not what was trained (test-time augmentation, the
    # evaluation batch): `dlzoo eval RUN_DIR KEY=VALUE` takes these and refuses every other key.
    evaluation_keys: ClassVar[tuple[str, ...]] = ()
    # The kind of registered model (`register_model(kind=...)`) each config section names, e.g. {"model":
    # "classifier"}: another kind is refused before any data is read.
    model_kinds: ClassVar[dict[str, str]] = {}
    # Model arguments the task sets from another key, per section, e.g. {"model": {"height": "data.height"}}: the
    # same argument in `args` is refused, naming that key (the classes and channels always come from the data).
    model_args_set_by: ClassVar[dict[str, dict[str, str]]] = {}
    # What `on_epoch_end` writes in the run directory (files or folders): removed with the rest of a new run that
    # stops before its first checkpoint.
    run_files: ClassVar[tuple[str, ...]] = ()
    # The keys of `meta` that `build_models` and prediction read back from a checkpoint, each with its type (as JSON
    # holds it: list[str], int, a dataclass or TypedDict for a mapping of known keys; `config.type_mismatch`):
    # `runs.open_run` refuses a checkpoint whose metadata lacks one or holds another type (damaged, or edited by
    # hand) in a line naming it, rather than every command failing with a KeyError or TypeError where it is read.
    checkpoint_meta: ClassVar[dict[str, Any]] = {}
    # Keys of `meta` kept for dlzoo's own use (data it draws with, not how to use the model): left out of what
    # `dlzoo export`'s sidecar and `dlzoo serve`'s GET /info show (`shown_meta`).
    internal_meta: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: RecipeConfig):
        self.check_config(config)
        self.config = config
        self.models: dict[str, nn.Module] = {}
        # JSON-able facts found while loading data (class names, input shape, preprocessing) that the models and
        # prediction need; stored in every checkpoint.
        self.meta: dict[str, Any] = {}
        # Lines printed under the training banner: what `setup` found (how much data, and anything read otherwise
        # than a user may expect, such as files left out), so that a surprise shows before the first epoch.
        self.notes: list[str] = []
        self.runtime: Runtime | None = None

    @classmethod
    def check_config(cls, config: RecipeConfig) -> None:
        """Raise a UserError for a value this task cannot work with that the config alone shows (the engine's
        own sections are checked by `config.validate`). Called as the task is made and by `runs.build_config`, so
        that `dlzoo show` refuses what `dlzoo train` would; checks that need the data stay in `setup`. Here: each
        model section names a model of its kind, with arguments its factory takes (converted to their types)."""
        for section, kind in cls.model_kinds.items():
            model = getattr(config, section)
            check_kind(model.name, kind, section, config.recipe)
            check_arguments(model.name, model.args, section, cls.model_args_set_by.get(section))
        if config.trainer.keep_best is not None:
            best.parse(config.trainer.keep_best, cls.eval_splits(config), cls.metric_goals(config), config.recipe)

    @classmethod
    def eval_splits(cls, config: RecipeConfig) -> tuple[str, ...]:
        """The held-out splits a run of `config` is evaluated on, in the order they are logged (by the engine after
        every evaluated epoch, by `dlzoo eval`)."""
        return ("test",)

    @classmethod
    def metric_goals(cls, config: RecipeConfig) -> dict[str, best.Goal]:
        """The metrics `evaluate` reports that an epoch can be chosen by (`trainer.keep_best`), each with whether
        higher ("max") or lower ("min") is better."""
        return {}

    # --- training -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def setup(self, runtime: Runtime) -> None:
        """Keep `runtime` as `self.runtime` (the batch helpers below read this process's share from it), load data
        (onto runtime.device where it is small), fill `self.meta`, then build `self.models`."""

    @abc.abstractmethod
    def build_models(self) -> dict[str, nn.Module]:
        """The task's models from `self.config` and `self.meta` alone (also used to rebuild from a checkpoint)."""

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimizer over every model by default; tasks with several (a GAN) return one per name."""
        return {"net": build_optimizer(self.config.optim, self.models.values())}

    # True when `train_step` calls `ctx.optimize(...)` itself (several optimizers, or steps that skip updates);
    # each optimizer at most once a step (the fp16 loss scale is updated once, after the step).
    optimizes_itself: ClassVar[bool] = False

    @abc.abstractmethod
    def train_loader(self) -> Loader:
        """Batches for one epoch; the engine calls `set_epoch` before iterating."""

    @abc.abstractmethod
    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Forward (and, if `optimizes_itself`, backward) on one batch; return scalars to log, with `loss`."""

    def after_step(self, ctx: StepContext) -> None:
        """Hook called after every training step's optimizer and schedule steps (`ctx.step` counts the step just
        done), on every rank: e.g. a weight average taking in the new weights."""
        return None

    @abc.abstractmethod
    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics on a held-out split; runs under no_grad, in autocast, with models in eval mode, on every
        rank."""

    def predicted_classes(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """True and predicted class indices (CPU) of every sample of a held-out split, for `dlzoo eval --per-class`;
        runs like `evaluate`, in one process. Only tasks that classify have them."""
        raise NotImplementedError(f"{type(self).__name__} does not sort samples into classes")

    def class_confusion(self, split: str) -> torch.Tensor:
        """Counts (classes, classes) of a held-out split's samples by true (rows) and predicted class, for `dlzoo
        eval --per-class`: from `predicted_classes`, or counted as it goes by a task with too many samples to list
        (a segmenter's pixels)."""
        truth, predicted = self.predicted_classes(split)
        count = len(self.meta["classes"])
        return torch.bincount(truth.long() * count + predicted.long(), minlength=count * count).view(count, count)

    # Whether `dlzoo eval --per-class` adds each class's intersection over union (segmenters).
    per_class_iou: ClassVar[bool] = False

    @classmethod
    def sorts_into_classes(cls) -> bool:
        """Whether the task has a per-class report (`dlzoo eval --per-class`)."""
        return cls.predicted_classes is not Task.predicted_classes or cls.class_confusion is not Task.class_confusion

    def samples_in(self, batch: Any) -> int:
        """How many samples a training batch holds (for samples/s)."""
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return len(first)

    # --- batches of data held in memory, this process's share under torchrun ---------------------------------
    def training_batches(self, *tensors: torch.Tensor) -> TensorLoader:
        """An epoch of shuffled `data.batch_size` batches of `tensors` (equal lengths), its order drawn from the
        run's seed and the epoch, its short last batch dropped as `drop_short_last` says."""
        runtime, batch_size = self._runtime_set("training_batches"), self.config.data.batch_size
        return TensorLoader(*tensors, batch_size=batch_size, shuffle=True,
                            drop_last=drop_short_last(len(tensors[0]), batch_size, runtime.world_size),
                            seed=runtime.seed, rank=runtime.rank, world_size=runtime.world_size)

    def held_out_batches(self, *tensors: torch.Tensor, batch_size: int | None = None) -> TensorLoader:
        """`tensors` in order, in batches of `batch_size` (default `data.eval_batch_size`): every sample once
        over all processes, whose sums an evaluation all-reduces."""
        runtime = self._runtime_set("held_out_batches")
        return TensorLoader(*tensors, batch_size=batch_size or self.config.data.eval_batch_size, rank=runtime.rank,
                            world_size=runtime.world_size)

    def _runtime_set(self, helper: str) -> Runtime:
        """The task's runtime, which `setup` keeps; a task of one's own that forgot it is told so, rather than meet
        an AttributeError of None."""
        if self.runtime is None:
            raise RuntimeError(f"{type(self).__name__}.{helper} needs the runtime: its setup(runtime) must set "
                               f"self.runtime = runtime")
        return self.runtime

    def on_epoch_end(self, epoch: int, run_dir: Path | None) -> None:
        """Hook for epoch artefacts such as sample grids; `run_dir` is None on ranks other than 0."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Extra training state to checkpoint (tensors and containers only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned, on resume."""
        return None

    def summary_extra(self) -> dict[str, Any]:
        """JSON-able entries the engine adds to summary.json after training (e.g. a baseline scored on the same
        data); they may not replace the engine's own keys."""
        return {}

    # --- inference ------------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, config: RecipeConfig, meta: dict[str, Any], weights: dict[str, torch.Tensor],
                        runtime: Runtime) -> Task:
        task = cls(config)
        task.meta = meta
        task.runtime = runtime
        task._without_data = True
        task.models = task.build_models()
        load_weights_into(task.models, weights)
        for model in task.models.values():
            model.to(runtime.device).eval()
        return task

    def __getattr__(self, name: str) -> Any:
        """Called only for an attribute not found. A task rebuilt by `from_checkpoint` (`dlzoo.load`) has no data:
        `.evaluate("test")` on it failed as "'ImageClassification' object has no attribute 'test_x'"."""
        if not name.startswith("__") and self.__dict__.get("_without_data"):
            raise AttributeError(f"{type(self).__name__} has no {name}: dlzoo.load rebuilds a run from its checkpoint "
                                 f"alone, to predict, without its data; to evaluate it use `dlzoo eval RUN` or "
                                 f"dlzoo.runs.load_for_evaluation(dlzoo.runs.open_run(RUN))")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def predict(self, inputs: list[Any], out: str | None = None) -> list[dict[str, Any]]:
        """One JSON-able record per input (or per row of a table input), in their order: files, and the in-memory
        kinds the task reads besides (`predict_inputs`)."""
        raise NotImplementedError(f"{type(self).__name__} does not predict from files")

    # Whether `predict` reads pictures: `dlzoo predict RUN FOLDER` then predicts every picture in the folder and its
    # subfolders (a folder is otherwise refused as an input), and `read_input` decodes one.
    predicts_pictures: ClassVar[bool] = False

    def read_input(self, path: str) -> Any:
        """One input file as `predict` takes it in memory (a picture decoded), or the path as it is; `dlzoo serve`
        reads an upload so before it waits its turn at the model, rather than decode while holding it."""
        if not self.predicts_pictures:
            return path
        from dlzoo.vision.io import read_image

        return read_image(path)

    # Whether `predict(inputs, out=...)` writes its predictions (`dlzoo predict --out`): a table to the file `out`,
    # or, with `predictions_out_is_folder`, a file per input into the folder `out` (a segmenter's masks); tasks
    # that do not only print.
    writes_predictions: ClassVar[bool] = False
    predictions_out_is_folder: ClassVar[bool] = False

    # For a task that does not predict from files: what its user runs instead ("{run_dir}" is filled in), for the
    # refusal of `dlzoo predict` and `dlzoo serve`.
    predict_instead: ClassVar[str] = ""

    @classmethod
    def check_predicts(cls, recipe: str, run_dir: str | Path) -> None:
        """A UserError unless the task predicts from files (overrides `predict`); checked before any weights are
        read, so `dlzoo predict` and `dlzoo serve` refuse such a run in one line rather than fail on every input."""
        if cls.predict is not Task.predict:
            return
        instead = f"; use `{cls.predict_instead.format(run_dir=run_dir)}`" if cls.predict_instead else ""
        raise UserError(f"recipe '{recipe}' does not predict from files{instead}")

    def shown_meta(self) -> dict[str, Any]:
        """`meta` as an export's sidecar and a server's GET /info show it: without `internal_meta`."""
        return {key: value for key, value in self.meta.items() if key not in self.internal_meta}

    def describe(self, record: dict[str, Any]) -> str:
        """A human line for one prediction record."""
        return str(record)

    def export_contract(self) -> dict[str, Any]:
        """For the exported program's sidecar, in words: how its inputs are prepared ("preparation") and what its
        outputs are ("outputs")."""
        return {}

    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        """The network that `dlzoo export` writes and an example input batch (batch size > 1: the batch dimension
        is exported as dynamic). Tasks whose prediction is not one network's forward pass do not export."""
        instead = f"; use `{self.predict_instead.format(run_dir='RUN')}`" if self.predict_instead else ""
        raise UserError(f"recipe '{self.config.recipe}' has no single network to export{instead}")

    def check_export_format(self, fmt: str) -> None:
        """A UserError when this run's network cannot be written as `fmt` (pt2, onnx) and still be what it is;
        every format suits most networks."""
        return None

    def export_dynamic_shapes(self, example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
        """The dimensions of each example input that the exported program leaves free (torch.export's
        `dynamic_shapes`): every input's batch dimension, one and the same."""
        batch = torch.export.Dim("batch", min=1, max=65536)
        return tuple({0: batch} for _ in example)
