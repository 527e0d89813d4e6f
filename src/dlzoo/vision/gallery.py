"""`dlzoo data show SOURCE [--augment] [KEY=VALUE ...]`: a picture of a data set's training images and, with
`--augment`, of what a recipe's augmentation makes of them, so a learner sees what the network sees.

The images come from the recipe's own task (`ImageClassification.setup`), so they are prepared exactly as in
training (e.g. the digit preprocessing of `digits`), and the augmented copies are drawn by the task as training
draws them (batched on the device, or by transforms.v2 for a streamed folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torchvision.utils import make_grid

from dlzoo.data.sources import get_source
from dlzoo.errors import UserError
from dlzoo.files import check_destination, new_figure, save_figure

if TYPE_CHECKING:
    from dlzoo.tasks.image_classification import ImageClassification

# The recipe whose augmentation `dlzoo data show SOURCE --augment` shows when none is named.
DEFAULT_RECIPES = {"fashion-mnist": "fashion", "mnist5k": "digits", "mnist": "digits", "folder": "fashion",
                   "picture-csv": "fashion"}


@dataclass(frozen=True)
class Gallery:
    """What `gallery` drew: the images, one row per class, and where they came from."""

    images: torch.Tensor  # (rows * columns, C, H, W) in [0, 1], row by row
    row_names: list[str]
    columns: int
    recipe: str
    augmented: bool
    source: str
    location: str | None  # where the images were read from
    title: str | None = None  # instead of "SOURCE: training samples" (or its augmentation)


def check_output(path: Path) -> Path:
    """`path` if matplotlib can write a picture there (its extension names a format), else a UserError."""
    from matplotlib.figure import Figure

    check_destination(path, "gallery.png")  # a folder there, or a file in the way among its folders
    if path.suffix.lower().lstrip(".") not in Figure().canvas.get_supported_filetypes():
        raise UserError(f"cannot write a picture to '{path}': use an extension such as .png, .jpg, .pdf or .svg")
    return path


def _task_for(source: str, recipe_name: str | None, overrides: list[str],
              augment: bool) -> tuple[str, ImageClassification]:
    """The recipe's task, set up on the CPU with `source` as its data (and the config `overrides`, such as a folder's
    data.path): its training pictures are the ones shown; with `augment`, a recipe that augments them."""
    from dlzoo.engine.runtime import Runtime
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config
    from dlzoo.tasks.image_classification import ImageClassification

    recipe_name = recipe_name or DEFAULT_RECIPES.get(source)
    if recipe_name is None:
        raise UserError(f"no image recipe for data source '{source}'; image sources: {', '.join(DEFAULT_RECIPES)}")
    recipe = get_recipe(recipe_name)
    if not issubclass(recipe.task, ImageClassification):
        raise UserError(f"recipe '{recipe_name}' does not classify images, so it has no image augmentation to show")
    config = build_config(recipe, overrides=[f"data.source={source}", *overrides])
    if augment and not config.data.augment.changes_pictures:
        if recipe.config().data.augment.changes_pictures:  # the recipe augments: the user's settings turned it off
            raise UserError(f"recipe '{recipe.name}' augments its pictures, but not with these settings "
                            f"(data.augment draws nothing): leave data.augment as the recipe has it")
        flip = "data.augment.flip=true"
        if not config.data.augment.enabled:
            flip = f"data.augment.enabled=true {flip}"
        raise UserError(f"recipe '{recipe.name}' trains on its pictures as they are (data.augment draws nothing): "
                        f"turn a transformation on, e.g. {flip}, or name a recipe that augments (--recipe fashion)")
    task = recipe.task(config)
    task.setup(Runtime(device=torch.device("cpu"), autocast_dtype=None))
    return recipe.name, task


def gallery(source: str, augment: bool = False, recipe: str | None = None, columns: int = 8,
            seed: int = 0, overrides: list[str] = ()) -> Gallery:
    """One row per class: the class's first training image, then `columns - 1` augmentations of it (`augment`),
    or its first `columns` training images."""
    recipe_name, task = _task_for(source, recipe, list(overrides), augment)
    names, rows = [], []
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)  # the augmentations are drawn from torch's global RNG, as in training
    try:
        for index, name in enumerate(task.meta["classes"]):
            picked = task.training_pictures(index, 1 if augment else columns)
            if len(picked) == 0:  # data.limit may leave a class out
                continue
            if augment:
                row = torch.cat([picked, task.augmented_copies(picked, columns - 1)])
            else:
                row = torch.cat([picked, torch.zeros(columns - len(picked), *picked.shape[1:])])
            names.append(name)
            rows.append(row)
    finally:
        torch.set_rng_state(generator_state)
    location = task.config.data.path or get_source(source).where()
    return Gallery(torch.cat(rows), names, columns, recipe_name, augment, source, location)


def save_gallery(shown: Gallery, out: str | Path) -> Path:
    """The gallery as one labelled picture, written to a temporary name, then renamed."""
    out = check_output(Path(out))
    padding, columns, rows = 2, shown.columns, len(shown.row_names)
    # make_grid gives 3 channels either way (grey images repeated), so grey and colour sets are drawn alike.
    grid = make_grid(shown.images.float().clamp(0, 1), nrow=columns, padding=padding, pad_value=1.0)
    cell_height, cell_width = shown.images.shape[-2] + padding, shown.images.shape[-1] + padding  # VOC's: 96x128
    figure = new_figure(figsize=(1.0 + 0.9 * columns, 0.5 + 0.85 * rows))
    axis = figure.subplots()
    axis.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    axis.set_yticks([padding + cell_height * i + cell_height / 2 for i in range(rows)], shown.row_names)
    labels = ["original", *[f"aug {i}" for i in range(1, columns)]] if shown.augmented else [""] * columns
    axis.set_xticks([padding + cell_width * i + cell_width / 2 for i in range(columns)], labels, fontsize=8)
    axis.tick_params(length=0)
    what = f"augmentation of the '{shown.recipe}' recipe" if shown.augmented else "training samples"
    axis.set_title(shown.title or f"{shown.source}: {what}", fontsize=10)
    for spine in axis.spines.values():
        spine.set_visible(False)
    figure.tight_layout()
    try:
        return save_figure(figure, out, dpi=110)
    except OSError as error:
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None
