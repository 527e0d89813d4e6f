"""Object detection: boxes around the objects of a picture, each with a class and a score, scored by mean average
precision (COCO's: over IoU thresholds 0.5-0.95, and at 0.5) with torchmetrics.

Trained as the curriculum trains its TinySSD: every anchor gets a class (background, or the object it overlaps
best; `dlzoo.vision.boxes.anchor_targets`) and, when it has an object, the offsets from itself to that object's box;
the loss is cross-entropy over the classes plus L1 over the offsets of the anchors that have objects, weighed as the
SSD paper weighs them (`loss=ssd`, hard negatives) or as the curriculum does (`loss=curriculum`). The data are
`digit-scenes` canvases (`dlzoo.data.scenes`) with each digit's ink box: fresh ones every batch from the training
digits, a fixed test set from the held-out digits and photo parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlzoo.config import ModelConfig, Pixels, RecipeConfig
from dlzoo.data.scenes import SCENES, SceneBatches, SceneDataConfig, Scenes, check_scene_config, scene_splits
from dlzoo.engine.best import Goal
from dlzoo.errors import UserError
from dlzoo.models import create
from dlzoo.tasks.base import Task, input_name, output_file_name, predict_inputs
from dlzoo.vision.io import IN_MEMORY_PICTURES, Picture, as_rgb_tensor, load_picture

if TYPE_CHECKING:
    from dlzoo.engine.runtime import Runtime
    from dlzoo.tasks.base import StepContext

DIGIT_CLASSES = [str(digit) for digit in range(10)]
# Detections scored by mAP: all but the least likely, so that the precision-recall curve runs its whole length.
EVAL_SCORE_THRESHOLD = 0.05
PREDICTIONS = "predictions.png"
SHOWN_SCALE = 2  # the canvases drawn in predictions.png are this many times their size, so labels can be read


@dataclass
class DetectionModelConfig(ModelConfig):
    name: str = "tiny-ssd"


@dataclass
class DetectionConfig(RecipeConfig):
    data: SceneDataConfig = field(default_factory=SceneDataConfig)  # pictures to predict are resized to data.size
    model: DetectionModelConfig = field(default_factory=DetectionModelConfig)
    iou_threshold: float = 0.5  # an anchor overlapping an object this much (IoU) is trained to find it
    nms_iou: float = 0.5  # of two detections of a class overlapping more, the less likely is dropped
    score_threshold: float = 0.5  # predictions report detections at least this likely
    # ssd: hard negative mining and losses per object anchor (the SSD paper); curriculum: means over all anchors.
    loss: Literal["ssd", "curriculum"] = "ssd"
    negatives_per_object: int = 3


class Detection(Task):
    main_metric = "map"
    run_files = (PREDICTIONS,)  # the first test canvases with their true and found boxes, after every epoch
    model_kinds = {"model": "detector"}
    checkpoint_meta = {"classes": list[str], "size": Pixels}
    config: DetectionConfig

    @classmethod
    def metric_goals(cls, config: DetectionConfig) -> dict[str, Goal]:
        return {"map": "max", "map_50": "max", "loss": "min"}

    @classmethod
    def check_config(cls, config: DetectionConfig) -> None:
        super().check_config(config)
        data = config.data
        if data.source != SCENES:
            raise UserError(f"data.source={data.source!r}: detection reads {SCENES}")
        if data.size % 32:
            raise UserError(f"data.size must be a multiple of 32 (the detector halves it 5 times), got {data.size}")
        check_scene_config(data)
        if config.negatives_per_object < 1:
            raise UserError(f"negatives_per_object must be at least 1 (background anchors trained per object "
                            f"anchor), got {config.negatives_per_object}")
        for key in ("iou_threshold", "nms_iou", "score_threshold"):
            if not 0 < getattr(config, key) <= 1:
                raise UserError(f"{key} must lie in (0, 1], got {getattr(config, key)}")

    def setup(self, runtime: Runtime) -> None:
        self.runtime, data = runtime, self.config.data
        scenes = scene_splits(data, runtime.device)
        self.composer, self.test_scenes, self.notes = scenes.composer, scenes.test, [scenes.note]
        self.meta = {"classes": DIGIT_CLASSES, "size": data.size, "source": data.source}
        self.models = self.build_models()
        self.models["net"].to(runtime.device)

    def build_models(self) -> dict[str, nn.Module]:
        return {"net": create(self.config.model.name, num_classes=len(self.meta["classes"]), in_channels=3,
                              **self.config.model.args)}

    def anchors(self) -> torch.Tensor:
        size = self.meta["size"]
        return self.models["net"].anchors(size, size).to(self.runtime.device)

    def train_loader(self) -> SceneBatches:
        return SceneBatches(self.config.data, self.runtime.world_size)

    def samples_in(self, batch: Any) -> int:
        return batch

    def loss(self, logits: torch.Tensor, offsets: torch.Tensor, scenes: Scenes) -> torch.Tensor:
        """Cross-entropy of the anchors' classes plus L1 of the offsets of the anchors that have an object.

        `loss=curriculum`: both averaged over all anchors, as the curriculum's TinySSD does; nearly every anchor is
        background, so the objects' few anchors weigh little. `loss=ssd` (the SSD paper's): only the hardest
        background anchors count, `negatives_per_object` of them for each anchor with an object (those the network
        most takes for an object), and both sums are divided by the number of anchors with objects."""
        total, count = self.loss_sums(logits, offsets, scenes)
        return total / count.clamp(min=1)

    def loss_sums(self, logits: torch.Tensor, offsets: torch.Tensor,
                  scenes: Scenes) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss as (sum, what it is divided by): sums over pictures, so that a held-out split's loss adds up
        over batches and processes to the same value however it is cut."""
        from dlzoo.vision.boxes import anchor_targets

        target_offsets, mask, classes = anchor_targets(self.anchors(), scenes.boxes, scenes.labels, scenes.present,
                                                       self.config.iou_threshold)
        class_loss = F.cross_entropy(logits.float().transpose(1, 2), classes, reduction="none")  # (N, A)
        box_loss = (F.l1_loss(offsets.float(), target_offsets, reduction="none") * mask[..., None]).sum(-1)
        if self.config.loss == "curriculum":  # each picture's mean over its anchors, averaged over the pictures
            return (class_loss.mean(1) + box_loss.mean(1)).sum(), class_loss.new_tensor(float(len(class_loss)))
        objects = mask.sum(1, keepdim=True)  # (N, 1) anchors with an object, per picture
        background = class_loss.detach().masked_fill(mask.bool(), -1.0)  # objects' anchors never chosen below
        hardness = background.argsort(1, descending=True).argsort(1)  # 0 for the hardest background anchor
        hard = hardness < self.config.negatives_per_object * objects
        return (class_loss * (mask.bool() | hard)).sum() + box_loss.sum(), objects.sum()

    def train_step(self, batch: int, ctx: StepContext) -> dict[str, torch.Tensor]:
        scenes = self.composer.compose(batch)
        return {"loss": self.loss(*ctx.models["net"](scenes.images), scenes)}

    def evaluate(self, split: str) -> dict[str, float]:
        from torchmetrics.detection import MeanAveragePrecision

        from dlzoo.vision.boxes import detect

        runtime, anchors = self.runtime, self.anchors()
        average_precision = MeanAveragePrecision(box_format="xyxy", iou_type="bbox").to(runtime.device)
        loss = torch.zeros(2, dtype=torch.float64, device=runtime.device)  # summed loss, what it is divided by
        indices = torch.arange(len(self.test_scenes.images), device=runtime.device)
        for (chunk,) in self.held_out_batches(indices):
            scenes = Scenes(*(part[chunk] for part in self.test_scenes))
            logits, offsets = self.models["net"](scenes.images)
            loss += torch.stack(self.loss_sums(logits, offsets, scenes)).to(loss)
            found = detect(logits.float(), offsets.float(), anchors, self.config.nms_iou, EVAL_SCORE_THRESHOLD)
            truths = [{"boxes": boxes[present], "labels": labels[present]}
                      for boxes, labels, present in zip(scenes.boxes, scenes.labels, scenes.present, strict=True)]
            average_precision.update(found, truths)
        scores = average_precision.compute()  # gathered over the processes under torchrun
        loss = runtime.all_reduce_sum(loss)
        return {"loss": float(loss[0] / loss[1].clamp(min=1)), "map": float(scores["map"]),
                "map_50": float(scores["map_50"])}

    def on_epoch_end(self, epoch: int, run_dir: Path | None) -> None:
        if run_dir is None:
            return
        from dlzoo.engine.evaluation import evaluation_mode
        from dlzoo.vision.gallery import Gallery, save_gallery

        shown = Scenes(*(part[:8].cpu() for part in self.test_scenes))
        canvases = [(image.permute(1, 2, 0) * 255).round().byte().numpy() for image in shown.images]
        with evaluation_mode(self):
            found = [self.find(canvas) for canvas in canvases]
        pixels = self.meta["size"]
        truths = [[{"label": self.meta["classes"][int(label)], "score": 1.0, "box": (box * pixels).tolist()}
                   for box, label in zip(boxes[present], labels[present], strict=True)]
                  for boxes, labels, present in zip(shown.boxes, shown.labels, shown.present, strict=True)]
        rows = []
        for objects in (truths, found):  # drawn at SHOWN_SCALE times the size, so that the labels can be read
            for canvas, drawn in zip(canvases, objects, strict=True):
                large = np.kron(canvas, np.ones((SHOWN_SCALE, SHOWN_SCALE, 1), np.uint8))
                scaled = [{**o, "box": [v * SHOWN_SCALE for v in o["box"]]} for o in drawn]
                rows.append(boxes_drawn(large, scaled, width=3))  # lines the figure's downscaling keeps
        gallery = Gallery(torch.stack(rows).float() / 255, ["true boxes", "found"], len(canvases),
                          self.config.recipe, False, self.config.data.source, None, title="digit-scenes: test canvases")
        save_gallery(gallery, Path(run_dir) / PREDICTIONS)

    # --- prediction -----------------------------------------------------------------------------------------
    predicts_pictures = True
    writes_predictions = True
    predictions_out_is_folder = True

    def predict(self, inputs: list[Picture], out: str | None = None) -> list[dict[str, Any]]:
        """Per picture: the digits found, most likely first, each with its box in the picture's pixels; with
        `out` (a folder), the picture with the boxes drawn on it, as `<name>.png`."""
        records, written = [], set()
        for number, item in enumerate(predict_inputs(inputs, IN_MEMORY_PICTURES)):
            picture = load_picture(item)
            found = self.find(picture)
            record = {"path": input_name(item), "size": list(picture.shape[:2]), "objects": found, "drawn": None}
            if out is not None:
                record["drawn"] = str(write_boxes(picture, found, Path(out) / output_file_name(item, number, written)))
            records.append(record)
        return records

    @torch.no_grad()
    def find(self, picture: np.ndarray) -> list[dict[str, Any]]:
        """The objects in a picture (uint8 RGB or grey): label, score and box (x1, y1, x2, y2) in its pixels."""
        from dlzoo.vision.boxes import detect

        height, width = picture.shape[:2]
        size = self.meta["size"]
        image = F.interpolate(as_rgb_tensor(picture)[None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        logits, offsets = self.models["net"](image.to(self.runtime.device))
        (found,) = detect(logits.float(), offsets.float(), self.anchors(), self.config.nms_iou,
                          self.config.score_threshold)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        classes = self.meta["classes"]
        return [{"label": classes[int(label)], "score": round(float(score), 6),
                 "box": [round(float(v), 1) for v in box.cpu() * scale]}
                for box, score, label in zip(found["boxes"], found["scores"], found["labels"], strict=True)]

    def describe(self, record: dict[str, Any]) -> str:
        objects = ", ".join(f"{o['label']} ({o['score']:.2f}) at {o['box']}" for o in record["objects"])
        drawn = f" -> {record['drawn']}" if record["drawn"] else ""
        return f"{record['path'] or 'picture'}: {objects or 'nothing found'}{drawn}"

    def export_program(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        size = self.meta["size"]
        return BoxesOut(self.models["net"], self.anchors().cpu()), (torch.zeros(2, 3, size, size),)

    def export_dynamic_shapes(self, example: tuple[torch.Tensor, ...]) -> tuple[dict[int, Any], ...]:
        return super().export_dynamic_shapes(example)  # the anchors hold for one picture size only

    def export_contract(self) -> dict[str, Any]:
        size, classes = self.meta["size"], self.meta["classes"]
        return {"preparation": f"pictures (batch, 3, {size}, {size}): RGB in [0, 1], resized to {size}x{size}",
                "outputs": f"probabilities (batch, anchors, {len(classes) + 1}) over background then "
                           f"{', '.join(classes)}, and each anchor's box (batch, anchors, 4) as (x1, y1, x2, y2) in "
                           f"[0, 1] of the picture; keep the likely ones and drop overlapping boxes of a class "
                           f"(non-maximum suppression at IoU {self.config.nms_iou})"}


class BoxesOut(nn.Module):
    """The detector with its anchors applied, for export: class probabilities and boxes, before NMS."""

    def __init__(self, net: nn.Module, anchors: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("anchors", anchors)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from dlzoo.vision.boxes import decode_offsets

        logits, offsets = self.net(images)
        return logits.softmax(-1), decode_offsets(self.anchors, offsets).clamp(0, 1)


def boxes_drawn(picture: np.ndarray, found: list[dict[str, Any]], width: int = 1) -> torch.Tensor:
    """The picture (uint8 RGB or grey) as uint8 (3, H, W) with each object's box (lines `width` px) and label."""
    from torchvision.utils import draw_bounding_boxes

    image = (as_rgb_tensor(picture) * 255).round().byte()
    if not found:
        return image
    labels = [f"{o['label']} {o['score']:.2f}" if o["score"] < 1 else o["label"] for o in found]
    return draw_bounding_boxes(image, torch.tensor([o["box"] for o in found]), labels, colors="yellow", width=width)


def write_boxes(picture: np.ndarray, found: list[dict[str, Any]], path: Path) -> Path:
    """The picture with each object's box and label drawn on it, as a PNG written whole."""
    from PIL import Image

    from dlzoo.files import written_whole

    with written_whole(path) as temporary:
        Image.fromarray(boxes_drawn(picture, found).permute(1, 2, 0).numpy()).save(temporary, format="PNG")
    return path
