"""What the generative image tasks (VAE, conditional GAN) share: real images as tensors on the device, sampling
with a seeded generator, fixed-noise sample grids after every epoch, and an optional judge classifier that turns
each evaluation into conditional accuracy and a Fréchet distance (see `dlzoo.metrics.judge`).

Randomness: training draws from torch's global RNG (saved in checkpoints, so resume is exact); grids, evaluations
and `dlzoo generate` draw from their own seeded `torch.Generator`, so they are repeatable and never disturb training.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypedDict

import numpy as np
import torch
from torch import nn

from dlzoo.config import MAX_IMAGES, DataConfig, ModelConfig, PositiveInt, RecipeConfig
from dlzoo.data.images import ImageArrays, load_image_arrays
from dlzoo.data.tensors import TensorLoader
from dlzoo.engine.best import Goal
from dlzoo.engine.evaluation import eval_mode
from dlzoo.engine.runtime import Runtime
from dlzoo.errors import UserError
from dlzoo.metrics.judge import FEATURES, Judge
from dlzoo.models import create
from dlzoo.tasks.base import Task
from dlzoo.vision.grid import save_image_grid

SAMPLES = "samples"
# Each evaluation draws from seeds of its own, so that no two of them share a random stream (on the CPU, generators
# seeded alike draw the same numbers): the per-epoch grids' fixed noise, the images a judge scores (`dlzoo judge
# --seed` picks others), held-out batch i's noise (HELD_OUT_SEED + i) and the VAE's binarisation of the held-out set.
GRID_SEED = 1234
JUDGE_SEED = 0
HELD_OUT_SEED = 1_000_000
BINARY_SEED = 2_000_000
EXAMPLES_PER_CLASS = 2  # held-out images stored in the checkpoint for reconstructions in `dlzoo generate`


@dataclass
class GenerativeDataConfig(DataConfig):
    source: str = "mnist5k"
    batch_size: int = 64


@dataclass
class GenerativeConfig(RecipeConfig):
    data: GenerativeDataConfig = field(default_factory=GenerativeDataConfig)
    # A classifier run directory (e.g. a `digits` run): each evaluation then also reports conditional accuracy and
    # a Fréchet distance in its feature space. Empty: no judge.
    judge: str = ""
    # Images per epoch-end sample grid (per class for conditional models).
    grid_samples: int = 8


def real_images(arrays: ImageArrays, device: torch.device) -> dict[str, torch.Tensor]:
    """Images (N, 1, H, W) as floats in [0, 1] and labels, for both splits, on `device`."""
    def pixels(images: np.ndarray) -> torch.Tensor:
        # torch.tensor copies: IDX arrays are read-only views of the file's bytes, which torch.from_numpy warns about.
        return torch.tensor(images, dtype=torch.float32).div_(255).unsqueeze(1).to(device)

    return {"train_x": pixels(arrays.train_images), "train_y": torch.from_numpy(arrays.train_labels).to(device),
            "test_x": pixels(arrays.test_images), "test_y": torch.from_numpy(arrays.test_labels).to(device)}


def load_real_images(data: DataConfig, device: torch.device) -> tuple[ImageArrays, dict[str, torch.Tensor]]:
    arrays = load_image_arrays(data.source, data.path).limit(data.limit)
    if arrays.train_images.shape[1:] != (28, 28):
        raise UserError(f"the generative models are built for 28x28 images; {data.source} has "
                        f"{arrays.train_images.shape[1]}x{arrays.train_images.shape[2]}")
    return arrays, real_images(arrays, device)


def judge_reference(data: DataConfig, device: torch.device) -> tuple[ImageArrays, dict[str, torch.Tensor]]:
    """The real images a judge compares generated ones with: all of the source's, `data.limit` left aside."""
    return load_real_images(dataclasses.replace(data, limit=None), device)


class HeldOutExamples(TypedDict):
    """A few held-out images, as a checkpoint's meta keeps them (`encode_examples`)."""

    shape: list[int]
    labels: list[int]
    uint8_base64: str


def encode_examples(images: np.ndarray, labels: np.ndarray, classes: int) -> HeldOutExamples:
    """A few held-out images per class, JSON-able (base64 uint8), for the checkpoint's meta."""
    chosen = np.concatenate([np.flatnonzero(labels == c)[:EXAMPLES_PER_CLASS] for c in range(classes)])
    picked = np.ascontiguousarray(images[chosen], dtype=np.uint8)
    return {"shape": list(picked.shape), "labels": labels[chosen].tolist(),
            "uint8_base64": base64.b64encode(picked.tobytes()).decode("ascii")}


def decode_examples(stored: HeldOutExamples) -> tuple[torch.Tensor, torch.Tensor]:
    """What `encode_examples` stored (its types checked as a run is opened: `Task.checkpoint_meta`), refused in a
    line when its bytes are not the pictures its shape says (a damaged checkpoint)."""
    pixels = np.frombuffer(base64.b64decode(stored["uint8_base64"]), dtype=np.uint8)
    shape = stored["shape"]
    if len(shape) != 3 or pixels.size != math.prod(shape) or len(stored["labels"]) != shape[0]:
        raise UserError(f"the checkpoint's meta.held_out_examples is damaged: {pixels.size:,} pixel values and "
                        f"{len(stored['labels'])} labels, for pictures of shape {shape}")
    pixels = pixels.reshape(shape)
    return torch.from_numpy(pixels.copy()).float().div(255).unsqueeze(1), torch.tensor(stored["labels"])


class GenerativeImageTask(Task):
    config: GenerativeConfig
    run_files = (SAMPLES,)  # a grid of drawn samples at every epoch's end
    # held_out_examples: the examples a VAE's grid reconstructs
    checkpoint_meta = {"classes": list[str], "in_channels": PositiveInt, "held_out_examples": HeldOutExamples}
    internal_meta = ("held_out_examples",)  # 20 pictures as base64 text, of no use outside dlzoo
    conditional: ClassVar[bool] = False
    judge: Judge | None = None
    # How pixels are modelled, stated in every checkpoint and summary.
    data_model: ClassVar[str] = ""
    # It draws images rather than reads them: `dlzoo predict` points here instead (`dlzoo serve` draws its grids).
    predict_instead: ClassVar[str] = "dlzoo generate {run_dir} --out grid.png"

    # What an image's pixel values are, in words, for the sidecar of `dlzoo export` (`export_contract`).
    pixel_values: ClassVar[str] = ""

    # --- what a subclass supplies ---------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def latent_dim(self) -> int:
        """The size of the noise z that each image is drawn from."""

    @abc.abstractmethod
    def image_network(self) -> nn.Module:
        """What `sample` draws with, as one module (`dlzoo export` writes it): noise z (N, latent_dim) and, for
        conditional tasks, class indices (N,) in; images (N, 1, 28, 28) in [0, 1], float32, out."""

    def extra_grids(self, generator: torch.Generator) -> dict[str, tuple[torch.Tensor, int]]:
        """More pictures for `dlzoo generate`: {file-name suffix: (images, images per row)}."""
        return {}

    @classmethod
    def metric_goals(cls, config: GenerativeConfig) -> dict[str, Goal]:
        """The judge's figures (`judge_metrics`), when a judge is configured."""
        if not config.judge:
            return {}
        goals: dict[str, Goal] = {"frechet": "min", "frechet_ratio": "min"}
        return {**goals, "conditional_accuracy": "max"} if cls.conditional else goals

    @classmethod
    def check_config(cls, config: GenerativeConfig) -> None:
        super().check_config(config)
        if config.grid_samples < 1:
            raise UserError(f"grid_samples must be >= 1, got {config.grid_samples}")

    # --- shared ---------------------------------------------------------------------------------------------
    def setup(self, runtime: Runtime) -> None:
        """Real images on the device and `self.meta`; then the models, and the judge if one is configured."""
        config = self.config
        # The judge first: a wrong path fails at once, not after the data is loaded. Rebuilding its network draws
        # from the global RNG: forked, so a judged run trains exactly as an unjudged one.
        with torch.random.fork_rng(devices=[]):
            self.judge = Judge(config.judge, runtime.device.type) if config.judge else None
        if config.judge:
            # Stored absolute (setup runs before the run's config is written): `dlzoo train --resume` from another
            # folder must find the same judge, not `runs/digits` under wherever it was started.
            config.judge = str(Path(config.judge).resolve())
        self.runtime = runtime
        arrays, tensors = load_real_images(config.data, runtime.device)
        self.train_x, self.train_y = tensors["train_x"], tensors["train_y"]
        self.test_x, self.test_y = tensors["test_x"], tensors["test_y"]
        self.notes = [f"data: {arrays.source}: {len(self.train_x):,} training and {len(self.test_x):,} held-out "
                      f"images, {len(arrays.classes)} classes"]
        self.meta = {"classes": arrays.classes, "source": arrays.source, "in_channels": 1, "image_size": 28,
                     "conditional": self.conditional, "data_model": self.data_model,
                     "held_out_examples": encode_examples(arrays.test_images, arrays.test_labels,
                                                          len(arrays.classes))}
        self.models = self.build_models()
        for model in self.models.values():
            model.to(runtime.device)
        if self.judge is not None:
            # The judge's reference is the source's whole real data, whatever `data.limit` trains on: training then
            # reports what `dlzoo judge` gives the same checkpoint.
            real = tensors if config.data.limit is None else judge_reference(config.data, runtime.device)[1]
            self.judge.set_real(real["train_x"], real["test_x"], real["test_y"], arrays.classes)

    def create_model(self, model: ModelConfig, **fixed: Any) -> nn.Module:
        """A registered model; `fixed` are arguments the task sets from its own config (e.g. the latent size; the
        same in `args` is refused by `model_args_set_by`)."""
        return create(model.name, num_classes=len(self.meta["classes"]), in_channels=self.meta["in_channels"],
                      **model.args, **fixed)

    def train_loader(self) -> TensorLoader:
        return self.training_batches(self.train_x, self.train_y)

    def noise(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z (count, latent_dim) from a standard normal: from `generator`, or from the global RNG (training)."""
        return torch.randn(count, self.latent_dim, device=self.runtime.device, generator=generator)

    def sample(self, count: int, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        """`count` images (N, 1, 28, 28) in [0, 1] from fresh noise; conditional tasks draw image i for class
        labels[i] (others ignore `labels`)."""
        if self.conditional and labels is None:
            raise ValueError(f"{type(self).__name__} samples for given labels")
        network, z = self.image_network(), self.noise(count, generator)
        return network(z, labels) if self.conditional else network(z)

    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        """What `sample` computes once it has drawn the noise: z (and class indices, int64) in, images out."""
        z = torch.zeros(2, self.latent_dim)
        if not self.conditional:
            return self.image_network(), (z,)
        return self.image_network(), (z, torch.arange(2) % len(self.meta["classes"]))

    def export_contract(self) -> dict[str, Any]:
        z = (f"z (batch, {self.latent_dim}) float32, every number drawn independently from a standard normal "
             f"N(0, 1) (torch.randn(batch, {self.latent_dim}))")
        if self.conditional:
            classes = len(self.meta["classes"])
            preparation = (f"two inputs, in this order: {z}; and labels (batch,) int64, the "
                           f"class of each image as an index 0..{classes - 1} into meta.classes: image i is drawn "
                           f"for class labels[i]")
        else:
            preparation = f"one input: {z}"
        return {"preparation": preparation + "; what `dlzoo generate` draws, given the same noise",
                "outputs": f"images (batch, 1, 28, 28) float32 in [0, 1]: {self.pixel_values}; 0 is black (the "
                           f"background), 1 white, as in the training images (grey level / 255)"}

    def seeded(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.runtime.device).manual_seed(seed)

    def held_out_share(self, batch_size: int) -> Iterator[tuple[slice, torch.Generator]]:
        """This process's share of the held-out images, as (rows, noise): batches of `batch_size` dealt out to
        the processes in turn, each with a noise generator of its own, seeded by its place. An evaluation that
        draws noise then sums to the same numbers however many processes share it (torchrun or `dlzoo eval`)."""
        runtime = self.runtime
        for index, start in enumerate(range(0, len(self.test_x), batch_size)):
            if index % runtime.world_size == runtime.rank:
                yield slice(start, start + batch_size), self.seeded(HELD_OUT_SEED + index)

    def grid_labels(self, per_class: int) -> torch.Tensor | None:
        """One row per class (for conditional models): 0,0,..,0, 1,1,..,1, ..."""
        if not self.conditional:
            return None
        return torch.arange(len(self.meta["classes"]), device=self.runtime.device).repeat_interleave(per_class)

    def draw(self, count: int, labels: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        """`sample` in eval mode, without autograd, in chunks of the evaluation batch size."""
        size = self.config.data.eval_batch_size
        chunks = []
        with eval_mode(self.models.values()):
            for start in range(0, count, size):
                part = None if labels is None else labels[start: start + size]
                chunks.append(self.sample(min(size, count - start), part, generator))
        return torch.cat(chunks)

    def judge_metrics(self, seed: int = JUDGE_SEED) -> dict[str, float]:
        """The judge's verdict on as many generated images as it has held-out ones (balanced over classes)."""
        if self.judge is None:
            return {}
        classes = len(self.meta["classes"])
        labels = self.grid_labels(self.judge.sample_size // classes)
        count = len(labels) if labels is not None else self.judge.sample_size
        return self.judge.measure(self.draw(count, labels, self.seeded(seed)), labels)

    def on_epoch_end(self, epoch: int, run_dir: Path | None) -> None:
        if run_dir is None:
            return
        per_row = self.config.grid_samples
        labels = self.grid_labels(per_row)
        count = len(labels) if labels is not None else per_row * per_row
        images = self.draw(count, labels, self.seeded(GRID_SEED))
        save_image_grid(images, Path(run_dir) / SAMPLES / f"epoch-{epoch:04d}.png", nrow=per_row)


# --- using a finished run -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptionStyle:
    """How a user gave the options of a grid, so that a refusal names them in the user's words: `--n 3` on the
    command line, `n=3` in a URL's query."""

    prefix: str
    separator: str

    def __call__(self, name: str, value: object = "") -> str:
        return f"{self.prefix}{name}{self.separator}{value}".rstrip()


COMMAND_LINE = OptionStyle("--", " ")
QUERY = OptionStyle("", "=")


@dataclass(frozen=True)
class SampleGrid:
    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    per_row: int
    description: str  # what was drawn, for `dlzoo generate`'s report


def sample_grid(task: GenerativeImageTask, label: str | None, n: int | None, generator: torch.Generator,
                style: OptionStyle = COMMAND_LINE) -> SampleGrid:
    """The grid `dlzoo generate` and GET /generate draw: `n` images (default 64), of class `label` (index or name;
    conditional models only), or for a conditional model without one, `n` per class (default 8), a row per class.
    A UserError, in the options' `style`, for a mistake in them."""
    if n is not None and not 1 <= n <= MAX_IMAGES:
        raise UserError(f"{style('n')} must be between 1 and {MAX_IMAGES}, got {n}")
    classes = task.meta["classes"]
    if label is not None and not task.conditional:
        raise UserError(f"{task.config.recipe} is not class-conditional; {style('class')} needs a cgan-* run")
    if task.conditional and label is None:
        per_class = n or 8
        # The cap is on the images drawn, not on n: n per class is a row of n, and 10 rows of 3,000 made a grid
        # 90,002 pixels wide, which PIL's GIF, TGA, PCX and SGI writers cannot size (a traceback), nor JPEG.
        if per_class * len(classes) > MAX_IMAGES:
            raise UserError(f"{style('n', per_class)} per class is {per_class * len(classes):,} images ({len(classes)} "
                            f"classes), more than {MAX_IMAGES:,}: give {style('n', MAX_IMAGES // len(classes))} or "
                            f"less, or one class with {style('class')}")
        labels = task.grid_labels(per_class)
        count, per_row, what = len(labels), per_class, f"{per_class} per class, one row per class"
    else:
        count = n or 64
        per_row = math.ceil(math.sqrt(count))
        labels = None
        what = f"{count} sample{'s' if count != 1 else ''}"
        if label is not None:
            index = class_index(label, classes, style)
            labels = torch.full((count,), index, dtype=torch.long, device=task.runtime.device)
            what += f" of class {index}" + (f" ({classes[index]})" if classes[index] != str(index) else "")
    return SampleGrid(task.draw(count, labels, generator), per_row, what)


def class_index(text: str, classes: list[str], style: OptionStyle = COMMAND_LINE) -> int:
    """A class given by index or by name (case-insensitive)."""
    try:
        # int() itself decides what is an index: str.isdigit(), which decided before, also holds for digits int()
        # refuses (superscript ²), which then ended in a ValueError traceback.
        index = int(text)
    except ValueError:
        lowered = [name.lower() for name in classes]
        if text.lower() not in lowered:
            raise UserError(f"{style('class', repr(text))} is not one of: {', '.join(classes)}") from None
        return lowered.index(text.lower())
    if not 0 <= index < len(classes):
        raise UserError(f"{style('class', text)}: the model has classes 0..{len(classes) - 1}")
    return index


def load_generative(run_dir: str | Path, device: str = "auto") -> GenerativeImageTask:
    """A generative run's task rebuilt from its checkpoint alone (no data read)."""
    from dlzoo.runs import load_for_inference, open_run

    run = open_run(run_dir)
    if not issubclass(run.recipe.task, GenerativeImageTask):
        raise UserError(f"{run_dir} is a '{run.recipe.name}' run, not a generative one (vae-*, cgan-*)")
    return load_for_inference(run, device)


def judge_run(run_dir: str | Path, classifier_run: str | Path, device: str = "auto",
              seed: int = JUDGE_SEED) -> dict[str, Any]:
    """Judge a generative run's checkpoint with a classifier run, against the full real data of its source."""
    task = load_generative(run_dir, device)
    arrays, real = judge_reference(task.config.data, task.runtime.device)
    task.judge = Judge(classifier_run, task.runtime.device.type)
    task.judge.set_real(real["train_x"], real["test_x"], real["test_y"], arrays.classes)
    return {"run_dir": str(run_dir), "recipe": task.config.recipe, "judge": task.judge.run_dir,
            "judge_recipe": task.judge.recipe, "features": FEATURES, "images": task.judge.sample_size,
            "seed": seed, **task.judge_metrics(seed)}
