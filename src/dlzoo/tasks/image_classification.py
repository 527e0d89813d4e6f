"""Image classification on small tensor-resident data sets (MNIST digits, Fashion-MNIST, a folder of pictures, or
pictures labelled by a CSV as Kaggle hands them out).

The whole data set sits on the training device as one float tensor; batches are index gathers and augmentation is
batched on the device (see `dlzoo.data.augment`). Models that need a larger input (AlexNet at 224 px) get each
batch resized on the device rather than a resized copy of the data set. A folder of pictures too large for memory
is streamed instead (`data.stream=true`): read every epoch by DataLoader workers and augmented there, picture by
picture, with torchvision transforms.v2 (see `dlzoo.data.picture_files`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import MAX_PIXELS, DataConfig, ModelConfig, Pixels, PositiveInt, RecipeConfig
from dlzoo.data.augment import random_affine, random_flip, random_translate, translate
from dlzoo.data.folder import FOLDER, PictureListing, list_folder, read_listing
from dlzoo.data.images import ImageArrays, load_image_arrays
from dlzoo.data.picture_csv import PICTURE_CSV, list_picture_csv
from dlzoo.data.picture_files import FileLoader, PictureFiles
from dlzoo.data.tensors import TensorLoader, drop_short_last
from dlzoo.engine.best import Goal
from dlzoo.engine.evaluation import eval_mode
from dlzoo.engine.optim import build_optimizer
from dlzoo.errors import UserError
from dlzoo.files import check_not_an_input
from dlzoo.metrics.classification import loss_and_accuracy
from dlzoo.models import create, model_entry
from dlzoo.tasks.base import (
    Task,
    check_top,
    input_name,
    predict_inputs,
    ranked_classes,
    write_table,
)
from dlzoo.tasks.ema import started, weight_average
from dlzoo.vision.digits import DigitPreprocessing, prepare_many
from dlzoo.vision.io import DECODING, IN_MEMORY_PICTURES, Picture, load_picture
from dlzoo.vision.preprocess import ResizePreprocessing, make_preprocessing, preprocessing_from_dict

if TYPE_CHECKING:
    from torchvision.transforms import v2

    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext


@dataclass
class AugmentConfig:
    enabled: bool = True
    degrees: float = 0.0
    translate: float = 0.0  # fraction of the image size, for the affine warp
    scale: float = 0.0  # +- relative scale change
    shear: float = 0.0
    pad: int = 0  # pad-and-random-crop shift in pixels
    flip: bool = False

    @property
    def warps(self) -> bool:
        """Whether the affine warp is on: any of rotation, translation, scale or shear."""
        return bool(self.degrees or self.translate or self.scale or self.shear)

    @property
    def changes_pictures(self) -> bool:
        """Whether training draws anything: enabled, with at least one transformation on."""
        return self.enabled and (self.warps or bool(self.pad) or self.flip)


@dataclass
class ImageDataConfig(DataConfig):
    source: str = "mnist5k"
    # mnist-digit: every image (training and user pictures) prepared as MNIST was; resize: grey and resized.
    preprocess: Literal["mnist-digit", "resize"] = "resize"
    # Input size the model sees; batches are resized on the device when it differs from the data's.
    resolution: int = 28
    # Keep pictures' colour: RGB in, a 3-channel model (data.source=folder or picture-csv; the named data sets are
    # grey).
    colour: bool = False
    # data.source=folder or picture-csv: read the training pictures from disk every epoch in `workers` DataLoader
    # processes, each augmented by torchvision transforms.v2, instead of holding them in memory (the test pictures
    # are held).
    stream: bool = False
    workers: int = 2
    # data.source=picture-csv (Kaggle's pictures, whose test set has no labels): the test split is this fraction of
    # each class of the labelled rows, drawn from `split_seed` alone, so runs at every trainer.seed are tested on
    # the same pictures.
    test_fraction: float = 0.2
    split_seed: int = 0
    # Hold out this fraction of each class's training pictures as a validation split, evaluated beside the test
    # split: choose settings by it and the test accuracy stays an unbiased estimate. Drawn from `val_seed` alone,
    # so runs at every trainer.seed are validated on the same pictures.
    val_fraction: float = 0.0
    val_seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ImageModelConfig(ModelConfig):
    name: str = "digits-net"
    channels_last: bool = False
    # Transfer learning: start from torchvision's ImageNet weights (models that have them: resnet18-imagenet;
    # downloaded once), and train the new head `head_lr_scale` times faster than the pretrained rest.
    pretrained: bool = False
    head_lr_scale: float = 1.0


@dataclass
class ImageClassificationConfig(RecipeConfig):
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    label_smoothing: float = 0.0
    # Mixup (Zhang et al., 2018): each training batch mixed with a shuffled copy of itself, pictures and labels in
    # the same proportion, drawn from Beta(mixup, mixup) per batch (0.2 is the paper's ImageNet setting); 0: off.
    mixup: float = 0.0
    # Weight of auxiliary classifier losses when a model returns (main, aux...) in training (GoogLeNet: 0.3).
    aux_weight: float = 0.3
    # Test-time augmentation: average the logits of each test image and its mirror image (`tta_flip`), and of
    # copies shifted `tta_shift` pixels diagonally up-left and down-right (zero fill), each mirrored too with
    # `tta_flip`: 6 views with both. For networks trained on shifted images (`data.augment.pad`).
    tta_flip: bool = False
    tta_shift: int = 0
    # Exponential moving average of the weights, kept as model "ema" and used for evaluation and prediction once
    # it has started: decay per update (0: off), first update after `ema_start` of training, then every
    # `ema_every` steps (each update reads a counter on the device: on a GPU, fewer updates mean fewer syncs).
    ema_decay: float = 0.0
    ema_start: float = 0.0
    ema_every: int = 1


def classification_loss(output: torch.Tensor | tuple, labels: torch.Tensor, label_smoothing: float,
                        aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the main logits plus weighted auxiliary heads; returns (loss, main logits)."""
    if isinstance(output, (tuple, list)):
        main, *aux = output
    else:
        main, aux = output, []
    loss = F.cross_entropy(main, labels, label_smoothing=label_smoothing)
    for logits in aux:
        loss = loss + aux_weight * F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return loss, main


def with_channels(pixels: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) from grey (N, H, W) or colour (N, 3, H, W) pictures."""
    return pixels.unsqueeze(1) if pixels.ndim == 3 else pixels


PICTURE_SOURCES = (FOLDER.name, PICTURE_CSV.name)  # pictures of one's own, read by `read_listing`


def list_pictures(data: ImageDataConfig) -> PictureListing:
    """The pictures of `data.source=folder` or `picture-csv`, checked but not read yet."""
    if data.source == FOLDER.name:
        return list_folder(data.path)
    return list_picture_csv(data.path, data.test_fraction, data.split_seed)


def load_arrays(data: ImageDataConfig) -> tuple[ImageArrays, PictureFiles | None]:
    """A named data set, or pictures of one's own read at the model's resolution (`data.source=folder` or
    `picture-csv`), with `data.val_fraction` of the training pictures held out; with `data.stream`, the other
    training pictures are left on disk (returned as `PictureFiles`, the arrays' training images and labels empty)."""
    if data.source != PICTURE_CSV.name:  # the other sources come with their test split: the keys would do nothing
        defaults = ImageDataConfig()
        for key in ("test_fraction", "split_seed"):
            if getattr(data, key) != getattr(defaults, key):
                raise UserError(f"data.{key} draws the test split of data.source=picture-csv; '{data.source}' has "
                                f"its own test split")
    if data.source not in PICTURE_SOURCES:
        for key in ("colour", "stream"):
            if getattr(data, key):
                raise UserError(f"data.{key}=true is for data.source=folder or picture-csv pictures, not "
                                f"'{data.source}'")
        arrays = load_image_arrays(data.source, data.path)
        if data.val_fraction:
            arrays = arrays.hold_out(data.val_fraction, data.val_seed)
        return arrays.limit(data.limit), None
    if data.preprocess != "resize":
        raise UserError(f"data.source={data.source} prepares pictures as dlzoo predict does: use "
                        f"data.preprocess=resize")
    arrays, train = read_listing(list_pictures(data), data.resolution, data.colour, data.limit, data.val_fraction,
                                 data.val_seed, read_train=not data.stream)
    if not data.stream:
        return arrays, None
    prepare = ResizePreprocessing(size=data.resolution, colour=data.colour)
    return arrays, PictureFiles(train, prepare, file_augmentation(data.augment, data.resolution))


def file_augmentation(aug: AugmentConfig, size: int) -> v2.Compose | None:
    """The `data.augment` keys as torchvision transforms.v2 on one (C, H, W) picture, for streamed files; the
    in-memory path draws the same from `dlzoo.data.augment`, a batch at a time (`ImageClassification.augment`)."""
    if not aug.changes_pictures:
        return None
    from torchvision.transforms import v2  # imported when used: every command loads this module

    steps: list[v2.Transform] = []
    if aug.warps:
        steps.append(v2.RandomAffine(degrees=aug.degrees, translate=(aug.translate, aug.translate),
                                     scale=(1 - aug.scale, 1 + aug.scale), shear=(-aug.shear, aug.shear),
                                     interpolation=v2.InterpolationMode.BILINEAR))
    if aug.pad:
        steps.append(v2.RandomCrop(size, padding=aug.pad))
    if aug.flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class ImageClassification(Task):
    main_metric = "accuracy"
    evaluation_keys = ("tta_flip", "tta_shift", "data.eval_batch_size")
    model_kinds = {"model": "classifier"}
    checkpoint_meta = {"classes": list[str], "in_channels": PositiveInt, "data_size": Pixels,
                       "resolution": Pixels, "preprocess": DigitPreprocessing | ResizePreprocessing}
    config: ImageClassificationConfig
    train_files: PictureFiles | None = None  # the training pictures left on disk (`data.stream`)

    @classmethod
    def eval_splits(cls, config: ImageClassificationConfig) -> tuple[str, ...]:
        return ("val", "test") if config.data.val_fraction else ("test",)

    @classmethod
    def metric_goals(cls, config: ImageClassificationConfig) -> dict[str, Goal]:
        return {"accuracy": "max", "loss": "min"}

    @classmethod
    def check_config(cls, config: ImageClassificationConfig) -> None:
        super().check_config(config)
        if not 0 <= config.label_smoothing < 1:
            raise UserError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
        if not 0 <= config.mixup < float("inf"):
            raise UserError(f"mixup must be >= 0 (Beta's parameter; 0 turns it off), got {config.mixup}")
        if config.aux_weight < 0:  # a negative weight would train the side heads to be wrong, the loss unbounded below
            raise UserError(f"aux_weight must be >= 0 (0: side heads untrained), got {config.aux_weight}")
        if not (0 <= config.ema_decay < 1 and 0 <= config.ema_start < 1):
            raise UserError(f"ema_decay and ema_start must be in [0, 1), got {config.ema_decay}, {config.ema_start}")
        model = config.model
        if model.head_lr_scale <= 0:
            raise UserError(f"model.head_lr_scale must be > 0, got {model.head_lr_scale}")
        # Only networks made for transfer (their factory says `transfers = True`: load_imagenet_weights and
        # head_parameters) have weights to start from and a new head.
        if (model.pretrained or model.head_lr_scale != 1) and not getattr(model_entry(model.name).factory,
                                                                            "transfers", False):
            raise UserError(f"model.pretrained and model.head_lr_scale are for networks with ImageNet weights "
                            f"(resnet18-imagenet), not {model.name}")
        if model.pretrained and not config.data.colour:
            raise UserError("model.pretrained needs RGB pictures (data.colour=true): the ImageNet weights read 3 "
                            "channels")
        if config.ema_every < 1:
            raise UserError(f"ema_every must be >= 1 step, got {config.ema_every}")
        if config.tta_shift < 0:
            raise UserError(f"tta_shift must be >= 0 pixels, got {config.tta_shift}")
        if not 1 <= config.data.resolution <= MAX_PIXELS:
            raise UserError(f"data.resolution must be between 1 and {MAX_PIXELS} pixels, got {config.data.resolution}")
        if not 0 <= config.data.val_fraction < 1:
            raise UserError(f"data.val_fraction must be in [0, 1) (0: no validation split), got "
                            f"{config.data.val_fraction}")
        if not 0 < config.data.test_fraction < 1:
            raise UserError(f"data.test_fraction must be in (0, 1), got {config.data.test_fraction}")
        for key in ("val_seed", "split_seed"):  # what the splits' random generator takes
            if not 0 <= getattr(config.data, key) < 2**32:
                raise UserError(f"data.{key} must be in [0, 2**32), got {getattr(config.data, key)}")
        if config.data.workers < 0:
            raise UserError(f"data.workers must be >= 0 (0 reads in the training process), got {config.data.workers}")
        augment = config.data.augment
        for name in ("degrees", "translate", "scale", "shear", "pad"):  # each a +- range or a shift: not negative
            if not getattr(augment, name) >= 0:
                raise UserError(f"data.augment.{name} must be >= 0, got {getattr(augment, name)}")

    def setup(self, runtime: Runtime) -> None:
        config = self.config
        self.runtime = runtime
        arrays, self.train_files = load_arrays(config.data)
        size = arrays.test_images.shape[-1]
        if config.tta_shift >= size:  # the shifted copies would be empty
            raise UserError(f"tta_shift must be less than the pictures' {size} pixels, got {config.tta_shift}")
        preprocessing = make_preprocessing(config.data.preprocess, size, config.data.colour)
        self.meta = {"classes": arrays.classes, "in_channels": 3 if config.data.colour else 1, "data_size": size,
                     "resolution": config.data.resolution, "preprocess": preprocessing.to_dict(),
                     "source": arrays.source}
        device = runtime.device
        self.train_x, self.train_y = self._tensors(arrays.train_images, arrays.train_labels, device)
        self.test_x, self.test_y = self._tensors(arrays.test_images, arrays.test_labels, device)
        if arrays.val_images is not None:
            self.val_x, self.val_y = self._tensors(arrays.val_images, arrays.val_labels, device)
            self.meta["val_split"] = {"images": len(self.val_x), "fingerprint": arrays.val_fingerprint}
        if arrays.test_fingerprint:
            self.meta["test_split"] = {"images": len(self.test_x), "fingerprint": arrays.test_fingerprint}
        where = f" ({arrays.location})" if arrays.source in PICTURE_SOURCES else ""
        validation = f", {len(self.val_x):,} validation" if arrays.val_images is not None else ""
        self.notes = [f"data: {arrays.source}{where}: {self.training_size():,} training{validation} and "
                      f"{len(self.test_x):,} test images, {len(arrays.classes)} classes", *arrays.notes]
        self.models = self.build_models()
        self._check_resolution()
        for model in self.models.values():
            model.to(device)

    def _check_resolution(self) -> None:
        """One blank picture through the network (on the CPU, before it moves), so that a resolution it cannot take
        (too small for its pooling) is a one-line mistake now, not a shape error inside the first training step."""
        resolution = self.config.data.resolution
        try:
            with eval_mode([self.models["net"]]):  # no autograd: at 100,000 px the picture's alone would not fit
                self.models["net"](torch.zeros(1, self.meta["in_channels"], resolution, resolution))
        except RuntimeError as error:
            name = self.config.model.name
            usual = model_entry(name).input_size[-1]
            raise UserError(f"model {name} cannot take {resolution} px pictures (data.resolution; it is built for "
                            f"{usual} px): {str(error).splitlines()[0]}") from None

    def _tensors(self, images: np.ndarray, labels: np.ndarray,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's pictures as float (N, C, H, W), prepared as `data.preprocess` says (still at the data's size:
        batches are resized to the model's resolution in `_model_input`), and its labels, on `device`."""
        if self.config.data.preprocess == "mnist-digit":
            pixels = torch.from_numpy(prepare_many(images, preprocessing_from_dict(self.meta["preprocess"])))
        else:  # data-set images are already the size and polarity the model expects
            pixels = torch.tensor(images, dtype=torch.float32).div_(255)  # a copy: IDX arrays are read-only
        return with_channels(pixels).to(device), torch.from_numpy(labels).to(device)

    def build_models(self) -> dict[str, nn.Module]:
        model = create(self.config.model.name, num_classes=len(self.meta["classes"]),
                       in_channels=self.meta["in_channels"], **self.config.model.args)
        if self.config.model.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.config.ema_decay:
            return {"net": model, "ema": weight_average(model, self.config.ema_decay)}
        return {"net": model}

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # Only training reaches here (evaluation and prediction load the run's own weights): the place to start
        # from ImageNet's weights. A resumed run loads them too, then its checkpoint over them.
        net, model = self.models["net"], self.config.model
        if model.pretrained:
            net.load_imagenet_weights()
        head = net.head_parameters() if model.head_lr_scale != 1 else []
        return {"net": build_optimizer(self.config.optim, self.models.values(), head, model.head_lr_scale)}

    def train_loader(self) -> TensorLoader | FileLoader:
        if self.train_files is None:
            return self.training_batches(self.train_x, self.train_y)
        runtime, data = self.runtime, self.config.data
        return FileLoader(self.train_files, data.batch_size, data.workers, runtime.device, seed=runtime.seed,
                          rank=runtime.rank, world_size=runtime.world_size,
                          drop_last=drop_short_last(len(self.train_files), data.batch_size, runtime.world_size))

    def training_size(self) -> int:
        """How many training pictures there are, in memory or left on disk (`data.stream`)."""
        return len(self.train_files) if self.train_files is not None else len(self.train_x)

    def training_pictures(self, label: int, count: int) -> torch.Tensor:
        """Up to `count` training pictures of class `label` (first ones first), as the model gets them before
        augmentation: (N, C, H, W) on the CPU."""
        if self.train_files is None:
            return self.train_x[torch.nonzero(self.train_y == label).flatten()[:count]].cpu()
        found = [index for index, (_, item_label) in enumerate(self.train_files.items) if item_label == label]
        if not found:
            return self.test_x[:0].cpu()  # no picture, in the (0, C, H, W) shape of the others
        return torch.stack([self.train_files.picture(index) for index in found[:count]])

    def augmented_copies(self, picture: torch.Tensor, count: int) -> torch.Tensor:
        """`count` augmentations of one (1, C, H, W) picture, drawn as training draws them."""
        transform = self.train_files.transform if self.train_files is not None else None
        if transform is not None:
            return torch.stack([transform(picture[0]) for _ in range(count)])
        return self.augment(picture.expand(count, -1, -1, -1).clone())

    def _model_input(self, images: torch.Tensor) -> torch.Tensor:
        resolution = self.meta["resolution"]
        if images.shape[-1] != resolution:
            images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)
        if self.config.model.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of in-memory training pictures augmented as `data.augment` says, on their device (streamed
        pictures get the same from `file_augmentation`, one at a time as they are read)."""
        aug = self.config.data.augment
        if not aug.changes_pictures:
            return images
        if aug.warps:
            images = random_affine(images, aug.degrees, aug.translate, (1 - aug.scale, 1 + aug.scale), aug.shear)
        if aug.pad:
            images = random_translate(images, aug.pad)
        if aug.flip:
            images = random_flip(images)
        return images

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        if self.train_files is None:  # streamed pictures were augmented as they were read
            images = self.augment(images)
        if self.config.mixup > 0:
            return self._mixup_step(images, labels, ctx)
        output = ctx.models["net"](self._model_input(images))
        loss, logits = classification_loss(output, labels, self.config.label_smoothing, self.config.aux_weight)
        return {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean()}

    def _mixup_step(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Train on `share` of each picture and 1 - `share` of another's, against both labels so weighted; the
        accuracy counts the label of the larger share."""
        share = float(torch.distributions.Beta(self.config.mixup, self.config.mixup).sample())
        partner = torch.randperm(len(images), device=images.device)
        output = ctx.models["net"](self._model_input(share * images + (1 - share) * images[partner]))
        own, logits = classification_loss(output, labels, self.config.label_smoothing, self.config.aux_weight)
        other, _ = classification_loss(output, labels[partner], self.config.label_smoothing, self.config.aux_weight)
        larger = labels if share >= 0.5 else labels[partner]
        return {"loss": share * own + (1 - share) * other, "accuracy": (logits.argmax(1) == larger).float().mean()}

    def after_step(self, ctx: StepContext) -> None:
        if "ema" in self.models and ctx.progress >= self.config.ema_start and ctx.step % self.config.ema_every == 0:
            self.models["ema"].update_parameters(self.models["net"])

    def scoring_net(self) -> nn.Module:
        """The network that scores images: the weight average once it has started (`ema_decay`), else `net`.
        Either way the same architecture (an `AveragedModel` keeps its copy as `.module`)."""
        ema = self.models.get("ema")
        return ema.module if ema is not None and started(ema) else self.models["net"]

    def test_views(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The copies of a batch that are scored and averaged (`tta_flip`, `tta_shift`), ready for the model."""
        shift = self.config.tta_shift
        shifted = [images, translate(images, -shift, -shift), translate(images, shift, shift)] if shift else [images]
        views = [self._model_input(view) for view in shifted]
        if self.config.tta_flip:
            views += [view.flip(-1) for view in views]
        return views

    def logits(self, images: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """Scores averaged over the test-time views, by `net` (default: `scoring_net()`)."""
        net = self.scoring_net() if net is None else net
        views = self.test_views(images)
        return sum(net(view).float() for view in views) / len(views)

    def held_out(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of a held-out split (`eval_splits`)."""
        if split not in self.eval_splits(self.config):
            raise ValueError(f"{type(self).__name__} holds out {self.eval_splits(self.config)}, not {split!r}")
        return (self.val_x, self.val_y) if split == "val" else (self.test_x, self.test_y)

    def evaluate(self, split: str) -> dict[str, float]:
        loader = self.held_out_batches(*self.held_out(split))
        return loss_and_accuracy(((self.logits(images), labels) for images, labels in loader), self.runtime)

    def predicted_classes(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.held_out(split)
        loader = TensorLoader(images, batch_size=self.config.data.eval_batch_size)
        predicted = torch.cat([self.logits(batch).argmax(1) for (batch,) in loader])
        return labels.cpu(), predicted.cpu()

    # --- prediction -----------------------------------------------------------------------------------------
    predicts_pictures = True
    writes_predictions = True  # `dlzoo predict RUN PICTURES --out predictions.csv`: image,label, a row per picture

    def predict(self, inputs: list[Picture], out: str | None = None, top: int = 3) -> list[dict[str, Any]]:
        """Files, uint8 RGB/grey arrays or PIL images (`load_picture`), in one list; `top`: how many of the most
        likely classes each record lists; `out`: a CSV file to write `image,label` to, a row per input in order
        (the file's path as given, empty for a picture in memory)."""
        inputs = predict_inputs(inputs, IN_MEMORY_PICTURES)
        check_top(top)
        if out is not None:
            check_not_an_input(Path(out), inputs)
        preprocessing = preprocessing_from_dict(self.meta["preprocess"])
        records, batch_size = [], self.config.data.eval_batch_size
        # A batch at a time, decoded when its turn comes: a folder of thousands of photos, all decoded and prepared
        # at 224 px before the first was scored, held gigabytes.
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            pictures = np.stack([preprocessing(load_picture(item)) for item in batch])
            with torch.no_grad():
                images = with_channels(torch.from_numpy(pictures)).to(self.runtime.device)
                probabilities = self.logits(images).softmax(1).cpu()
            records += [{"path": input_name(item), **ranked_classes(probs, self.meta["classes"], top)}
                        for item, probs in zip(batch, probabilities, strict=True)]
        if out is not None:
            write_table(Path(out), ["image", "label"], [[record["path"] or "", record["label"]] for record in records])
        return records

    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        """What `predict` computes: pictures as the sidecar's `meta.preprocess` prepares them (values in [0, 1],
        `data_size` px) in, logits out; the resize to the network's resolution and the test-time views inside."""
        size = self.meta["data_size"]
        return Scoring(self), (torch.zeros(2, self.meta["in_channels"], size, size),)

    def export_contract(self) -> dict[str, Any]:
        preprocessing, size = preprocessing_from_dict(self.meta["preprocess"]), self.meta["data_size"]
        return {"preparation": f"a batch of pictures (batch, {self.meta['in_channels']}, {size}, {size}), each "
                               f"file {DECODING}, then prepared as meta.preprocess says: {preprocessing.describe()}",
                "outputs": f"logits (batch, {len(self.meta['classes'])}) over meta.classes, in that order; their "
                           f"softmax is the probabilities `dlzoo predict` reports"}

    def describe(self, record: dict[str, Any]) -> str:
        others = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in record["top"][1:])
        return f"{record['path'] or 'picture'}: {record['label']} ({record['probability']:.3f}; then {others})"


class Scoring(nn.Module):
    """A task's `logits` as a module of its own, for `torch.export`: the scoring network is chosen once, here (the
    choice reads a counter that export cannot trace), and registered, so that its weights become the program's."""

    def __init__(self, task: ImageClassification):
        super().__init__()
        self.net = task.scoring_net()
        self._logits = task.logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._logits(images, self.net)
