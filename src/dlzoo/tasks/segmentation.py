"""Semantic segmentation: a class for every pixel, scored by the mean intersection over union (mIoU) of the classes.

Two kinds of data. `digit-scenes` canvases (`dlzoo.data.scenes`) are composed on the training device in batches:
an epoch is `data.scenes_per_epoch` fresh canvases, and the test split is a fixed set composed from the held-out
digits and photo parts. Pictures with masks from files (Pascal VOC 2012, a folder of one's own:
`dlzoo.data.masks`) are held in memory as they are; each training batch takes a random `data.crop` of each picture
(padded, with unscored mask pixels, when a picture is smaller) and mirrors half of them. Test pictures are scored
whole, one at a time, padded to a multiple of the network's stride, so no pixel is cropped away from the score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import ModelConfig, RecipeConfig
from dlzoo.data.masks import IGNORE, VOC_COLORMAP, MaskedPictures, read_mask_folder, read_voc
from dlzoo.data.scenes import SCENE_CLASSES, SCENES, SceneBatches, SceneDataConfig, check_scene_config, scene_splits
from dlzoo.engine.best import Goal
from dlzoo.errors import UserError
from dlzoo.models import create, model_entry
from dlzoo.tasks.base import Task, input_name, output_file_name, predict_inputs
from dlzoo.vision.io import IN_MEMORY_PICTURES, Picture, as_rgb_tensor, load_picture

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext

FILE_SOURCES = {"voc2012": read_voc, "mask-folder": read_mask_folder}
PREDICTIONS = "predictions.png"


@dataclass
class SegmentationDataConfig(SceneDataConfig):
    # digit-scenes (the scene keys), voc2012 or mask-folder (data.path, and these:)
    crop: list[int] = field(default_factory=lambda: [320, 480])  # pictures from files: training crops (h, w)
    flip: bool = True  # pictures from files: mirror half of the training crops


@dataclass
class SegmentationModelConfig(ModelConfig):
    name: str = "fcn"
    # Start the backbone from torchvision's ImageNet weights (downloaded once; needs RGB pictures).
    pretrained: bool = False


@dataclass
class SegmentationConfig(RecipeConfig):
    data: SegmentationDataConfig = field(default_factory=SegmentationDataConfig)
    model: SegmentationModelConfig = field(default_factory=SegmentationModelConfig)


def confusion(truth: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """Counts (classes, classes) of scored pixels by (true, predicted) class; IGNORE pixels left out."""
    scored = truth != IGNORE
    return torch.bincount(truth[scored] * classes + predicted[scored], minlength=classes ** 2).view(classes, classes)


def scores(counts: torch.Tensor) -> dict[str, float]:
    """Pixel accuracy and mIoU from a confusion matrix; a class neither present nor predicted is left out of the
    mean (VOC's rule), so a test set without some class is not scored on it."""
    counts = counts.double()
    hits = counts.diagonal()
    union = counts.sum(0) + counts.sum(1) - hits
    present = union > 0
    return {"pixel_accuracy": float(hits.sum() / counts.sum().clamp(min=1)),
            "miou": float((hits[present] / union[present]).mean()) if present.any() else 0.0}


def pad_to_stride(images: torch.Tensor, stride: int) -> torch.Tensor:
    """Pictures padded with black on the right and bottom to multiples of `stride` (what the FCN reads)."""
    height, width = images.shape[-2:]
    return F.pad(images, (0, -width % stride, 0, -height % stride))


class CropBatches:
    """An epoch of random crops of pictures from files: (images uint8 (N, 3, h, w), masks (N, h, w)) on the CPU.
    The order is drawn from (seed, epoch) and split among processes; crops and flips from torch's global
    generator."""

    def __init__(self, pictures: MaskedPictures, crop: tuple[int, int], flip: bool, batch_size: int, seed: int,
                 rank: int, world_size: int):
        self.pictures, self.crop, self.flip, self.batch_size = pictures, crop, flip, batch_size
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pictures.images) // (self.batch_size * self.world_size)

    def __iter__(self):
        order = torch.randperm(len(self.pictures.images),
                               generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch))
        mine = order[self.rank::self.world_size]
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            crops = [self._random_crop(int(index)) for index in mine[start:start + self.batch_size]]
            yield torch.stack([image for image, _ in crops]), torch.stack([mask for _, mask in crops])

    def _random_crop(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(self.pictures.images[index]).permute(2, 0, 1)
        mask = torch.from_numpy(self.pictures.masks[index]).long()
        height, width = self.crop
        short_y, short_x = max(0, height - mask.shape[0]), max(0, width - mask.shape[1])
        if short_y or short_x:  # smaller than the crop: padded, the padding not scored
            image = F.pad(image, (0, short_x, 0, short_y))
            mask = F.pad(mask, (0, short_x, 0, short_y), value=IGNORE)
        top = int(torch.randint(mask.shape[0] - height + 1, ()))
        left = int(torch.randint(mask.shape[1] - width + 1, ()))
        image, mask = image[:, top:top + height, left:left + width], mask[top:top + height, left:left + width]
        if self.flip and bool(torch.rand(()) < 0.5):
            image, mask = image.flip(-1), mask.flip(-1)
        return image, mask


class Segmentation(Task):
    main_metric = "miou"
    run_files = (PREDICTIONS,)  # the first test pictures with their true and predicted masks, after every epoch
    model_kinds = {"model": "segmenter"}
    checkpoint_meta = {"classes": list[str]}
    config: SegmentationConfig

    @classmethod
    def metric_goals(cls, config: SegmentationConfig) -> dict[str, Goal]:
        return {"miou": "max", "pixel_accuracy": "max", "loss": "min"}

    @classmethod
    def check_config(cls, config: SegmentationConfig) -> None:
        super().check_config(config)
        data = config.data
        if data.source != SCENES and data.source not in FILE_SOURCES:
            raise UserError(f"data.source={data.source!r}: segmentation reads {SCENES}, "
                            f"{', '.join(FILE_SOURCES)}")
        check_scene_config(data)
        if config.model.pretrained and not getattr(model_entry(config.model.name).factory, "transfers", False):
            raise UserError(f"model.pretrained is for networks with ImageNet weights (fcn), not {config.model.name}")
        if len(data.crop) != 2 or min(data.crop) < 1:
            raise UserError(f"data.crop is [height, width] in pixels, got {data.crop}")

    def setup(self, runtime: Runtime) -> None:
        self.runtime, data = runtime, self.config.data
        if data.source == SCENES:
            scenes = scene_splits(data, runtime.device)
            self.composer, self.test_scenes, self.notes = scenes.composer, scenes.test, [scenes.note]
            self.meta = {"classes": SCENE_CLASSES, "source": SCENES}
        else:
            splits = FILE_SOURCES[data.source](data.path, data.limit)
            self.train_pictures, self.test_pictures = splits.train, splits.test
            self.meta = {"classes": splits.classes, "source": data.source}
            self.notes = [f"data: {splits.source}; training on random {data.crop[0]}x{data.crop[1]} crops"]
        self.models = self.build_models()
        for model in self.models.values():
            model.to(runtime.device)

    def build_models(self) -> dict[str, nn.Module]:
        classes = len(self.meta["classes"])
        return {"net": create(self.config.model.name, num_classes=classes, in_channels=3, **self.config.model.args)}

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # Only training reaches here (evaluation and prediction load the run's own weights): the place to start the
        # backbone from ImageNet's weights. A resumed run loads them too, then its checkpoint over them.
        if self.config.model.pretrained:
            self.models["net"].load_imagenet_weights()
        return super().configure_optimizers()

    def train_loader(self) -> SceneBatches | CropBatches:
        runtime, data = self.runtime, self.config.data
        if data.source == SCENES:
            return SceneBatches(data, runtime.world_size)
        return CropBatches(self.train_pictures, tuple(data.crop), data.flip, data.batch_size, runtime.seed,
                           runtime.rank, runtime.world_size)

    def samples_in(self, batch: Any) -> int:
        return batch if isinstance(batch, int) else len(batch[0])

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        if isinstance(batch, int):
            images, masks = self.composer.compose(batch)[:2]
        else:
            images, masks = self._on_device(*batch)
        logits = self.logits(images, ctx.models["net"])  # canvases and crops of any size
        return {"loss": F.cross_entropy(logits.float(), masks, ignore_index=IGNORE)}

    def _on_device(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.runtime.device
        return images.to(device, non_blocking=True).float() / 255, masks.to(device, non_blocking=True)

    def evaluate(self, split: str) -> dict[str, float]:
        counts, loss = (self.runtime.all_reduce_sum(total) for total in self._scored_pixels())
        return {"loss": float(loss[0] / loss[1].clamp(min=1)), **scores(counts.cpu())}

    per_class_iou = True

    def class_confusion(self, split: str) -> torch.Tensor:
        return self._scored_pixels()[0].cpu()  # `dlzoo eval --per-class` runs in one process

    def _scored_pixels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the test split scored: pixel counts by (true, predicted) class, and the summed
        loss and number of its scored pixels."""
        device, classes = self.runtime.device, len(self.meta["classes"])
        counts = torch.zeros(classes, classes, dtype=torch.float64, device=device)
        loss = torch.zeros(2, dtype=torch.float64, device=device)
        for images, masks in self._test_batches():
            logits = self.logits(images).float()
            loss[0] += F.cross_entropy(logits, masks, ignore_index=IGNORE, reduction="sum")
            loss[1] += (masks != IGNORE).sum()
            counts += confusion(masks, logits.argmax(1), classes)
        return counts, loss

    def _test_batches(self):
        """This process's share of the test split: digit-scene batches, or single test pictures."""
        runtime = self.runtime
        if self.config.data.source == SCENES:
            yield from self.held_out_batches(self.test_scenes.images, self.test_scenes.masks)
            return
        pictures = self.test_pictures
        for index in range(runtime.rank, len(pictures.images), runtime.world_size):
            image = torch.from_numpy(pictures.images[index]).permute(2, 0, 1)[None]
            yield self._on_device(image, torch.from_numpy(pictures.masks[index]).long()[None])

    def on_epoch_end(self, epoch: int, run_dir: Path | None) -> None:
        if run_dir is None:
            return
        from dlzoo.vision.gallery import save_gallery
        from dlzoo.vision.mask_gallery import prediction_gallery

        save_gallery(prediction_gallery(self), Path(run_dir) / PREDICTIONS)

    def logits(self, images: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """Per-pixel logits (N, classes, H, W) of pictures (N, 3, H, W) in [0, 1] of any size: padded to the
        network's stride, the padding's logits cut away. `net`: the network as trained (compiled, DDP-wrapped),
        else the task's own."""
        height, width = images.shape[-2:]
        stride = self.models["net"].stride
        return (net or self.models["net"])(pad_to_stride(images, stride))[..., :height, :width]

    # --- prediction -----------------------------------------------------------------------------------------
    predicts_pictures = True
    writes_predictions = True
    predictions_out_is_folder = True

    def predict(self, inputs: list[Picture], out: str | None = None) -> list[dict[str, Any]]:
        """Per picture: the share of its pixels in each class found; with `out` (a folder), its mask written there
        as a palette PNG (`<name>.png`, colours as Pascal VOC's: the class index is each pixel's value)."""
        records, written = [], set()
        classes = self.meta["classes"]
        for number, item in enumerate(predict_inputs(inputs, IN_MEMORY_PICTURES)):
            mask = self.segment(load_picture(item))
            shares = np.bincount(mask.ravel(), minlength=len(classes)) / mask.size
            found = {classes[i]: round(float(shares[i]), 6) for i in np.argsort(-shares) if shares[i] > 0}
            record = {"path": input_name(item), "size": list(mask.shape), "classes": found, "mask": None}
            if out is not None:
                record["mask"] = str(write_mask(mask, Path(out), output_file_name(item, number, written)))
            records.append(record)
        return records

    @torch.no_grad()
    def segment(self, picture: np.ndarray) -> np.ndarray:
        """A picture (uint8 RGB or grey, as `load_picture` gives) to its mask (H, W) of class indices."""
        images = as_rgb_tensor(picture)[None].to(self.runtime.device)
        return self.logits(images).argmax(1)[0].byte().cpu().numpy()

    def describe(self, record: dict[str, Any]) -> str:
        shares = ", ".join(f"{name} {share:.1%}" for name, share in record["classes"].items())
        written = f" -> {record['mask']}" if record["mask"] else ""
        return f"{record['path'] or 'picture'}: {shares}{written}"

    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        stride = self.models["net"].stride
        return self.models["net"], (torch.zeros(2, 3, 2 * stride, 3 * stride),)

    def export_dynamic_shapes(self, example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
        (shapes,) = super().export_dynamic_shapes(example)
        stride = self.models["net"].stride
        return ({**shapes, 2: stride * torch.export.Dim("rows", min=1, max=512),
                 3: stride * torch.export.Dim("columns", min=1, max=512)},)

    def export_contract(self) -> dict[str, Any]:
        stride, classes = self.models["net"].stride, self.meta["classes"]
        return {"preparation": f"pictures (batch, 3, height, width): RGB in [0, 1], padded with black on the right "
                               f"and bottom to multiples of {stride} px",
                "outputs": f"logits (batch, {len(classes)}, height, width): each pixel's class is the index of its "
                           f"largest logit, over {', '.join(classes)}; cut the padding away"}


def write_mask(mask: np.ndarray, folder: Path, name: str) -> Path:
    """A mask of class indices as a palette PNG (VOC's colours), written whole."""
    from PIL import Image

    from dlzoo.files import written_whole

    path = folder / name
    picture = Image.fromarray(mask, mode="P")
    picture.putpalette(VOC_COLORMAP.flatten().tolist())
    with written_whole(path) as temporary:
        picture.save(temporary, format="PNG")
    return path
