"""`dlzoo data show digit-scenes|voc2012|mask-folder`: training pictures above their masks, coloured as VOC colours
them (unscored pixels in VOC's cream), so a learner sees what each pixel is labelled; and a segmentation run's
`predictions.png`, rewritten after every epoch: test pictures, their true masks and the network's.

The pictures come from the segmentation recipe's own task, set up on the CPU: digit-scenes canvases drawn as
training draws them (from `seed`), or the first training pictures of a set read from files, each resized to one
cell for the picture (its masks with nearest neighbours, so no class is blended into another).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from dlzoo.data.masks import VOC_COLORMAP
from dlzoo.data.sources import get_source
from dlzoo.errors import UserError
from dlzoo.vision.gallery import Gallery

if TYPE_CHECKING:
    from dlzoo.tasks.segmentation import Segmentation

RECIPES = {"digit-scenes": "digit-scenes", "voc2012": "fcn-voc", "mask-folder": "fcn-voc"}
CELL = (96, 128)  # height, width of a picture from files in the gallery (VOC's photos are mostly 375x500)


def coloured(masks: torch.Tensor) -> torch.Tensor:
    """Masks (N, H, W) of class indices as RGB pictures (N, 3, H, W) in [0, 1], in VOC's colours."""
    return torch.from_numpy(VOC_COLORMAP)[masks.long()].permute(0, 3, 1, 2).float() / 255


def mask_gallery(source: str, recipe: str | None = None, columns: int = 8, seed: int = 0,
                 overrides: list[str] = ()) -> Gallery:
    """`columns` training pictures of a segmentation source and their masks: two rows."""
    from dlzoo.data.scenes import SCENES
    from dlzoo.engine.runtime import Runtime
    from dlzoo.recipes import get_recipe
    from dlzoo.runs import build_config
    from dlzoo.tasks.segmentation import Segmentation

    recipe_name = recipe or RECIPES[source]
    if not issubclass(get_recipe(recipe_name).task, Segmentation):
        raise UserError(f"recipe '{recipe_name}' does not segment pictures; segmentation recipes: "
                        f"{', '.join(sorted(set(RECIPES.values())))}")
    limit = [] if source == SCENES else [f"data.limit={columns}"]  # only the pictures shown are read
    config = build_config(get_recipe(recipe_name), overrides=[f"data.source={source}", *limit, *overrides])
    task = get_recipe(recipe_name).task(config)
    task.setup(Runtime(device=torch.device("cpu"), autocast_dtype=None))
    if source == SCENES:
        pictures, masks = task.composer.compose(columns, torch.Generator().manual_seed(seed))[:2]
    else:
        shown = task.train_pictures
        pictures = torch.stack([_resized(image, "bilinear") for image in shown.images[:columns]]) / 255
        masks = torch.stack([_resized(mask[..., None], "nearest")[0] for mask in shown.masks[:columns]])
    blank = columns - len(pictures)  # a set with fewer training pictures than columns
    rows = [F.pad(row, (0, 0, 0, 0, 0, 0, 0, blank)) for row in (pictures, coloured(masks))]
    return Gallery(torch.cat(rows), ["picture", "mask"], columns, recipe_name, False, source,
                   config.data.path or get_source(source).where())


def prediction_gallery(task: Segmentation, columns: int = 8) -> Gallery:
    """The first `columns` test pictures, their true masks and the task's predicted masks: three rows."""
    from dlzoo.data.scenes import SCENES
    from dlzoo.engine.evaluation import evaluation_mode

    with evaluation_mode(task):
        if task.config.data.source == SCENES:
            pictures, truths = task.test_scenes.images[:columns].cpu(), task.test_scenes.masks[:columns].cpu()
            predicted = task.logits(pictures.to(task.runtime.device)).argmax(1).cpu()
        else:  # each picture segmented whole, as evaluation scores it, then shrunk to a cell with its masks
            shown = task.test_pictures
            pictures = torch.stack([_resized(image, "bilinear") for image in shown.images[:columns]]) / 255
            truths = torch.stack([_resized(mask[..., None], "nearest")[0] for mask in shown.masks[:columns]])
            predicted = torch.stack([_resized(task.segment(image)[..., None], "nearest")[0]
                                     for image in shown.images[:columns]])
    rows = [pictures, coloured(truths), coloured(predicted)]
    return Gallery(torch.cat(rows), ["picture", "true mask", "predicted"], len(pictures), task.config.recipe, False,
                   task.config.data.source, None, title=f"{task.config.data.source}: test pictures")


def _resized(image: np.ndarray, mode: str) -> torch.Tensor:
    """A (H, W, C) uint8 array as a (C, *CELL) float tensor of the same values."""
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    return F.interpolate(tensor, size=CELL, mode=mode)[0]
