"""Object detection (`digit-boxes`): TinySSD's outputs line up with its anchors, the SSD loss's hard negatives, a
tiny run scored by mAP, prediction with boxes drawn, export, and refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from conftest import assert_user_error
from dlzoo.config import from_dict
from dlzoo.engine.runtime import Runtime
from dlzoo.models import create
from dlzoo.recipes import get_recipe
from dlzoo.recipes.detection import DIGIT_RATIOS, DIGIT_SIZES
from dlzoo.tasks.detection import Detection, DetectionConfig

TINY_BOXES = ["data.limit=400", "data.batch_size=16", "data.scenes_per_epoch=64", "data.eval_scenes=20",
              "trainer.epochs=1", "trainer.device=cpu", "model.args.width=4"]


def test_tiny_ssd_has_the_curriculums_5444_anchors_at_256_px():
    net = create("tiny-ssd", num_classes=1, in_channels=3).eval()  # the curriculum's banana detector
    logits, offsets = net(torch.rand(2, 3, 256, 256))
    assert net.anchors(256, 256).shape == (5444, 4)
    assert logits.shape == (2, 5444, 2) and offsets.shape == (2, 5444, 4)


def test_each_anchor_lines_up_with_the_head_output_of_its_cell():
    net = create("tiny-ssd", num_classes=3, in_channels=3, width=4).eval()
    anchors = net.anchors(64, 64)
    # The first scale reads an 8x8 map with 4 anchors a cell: anchor 4 * (row * 8 + column) + k sits on that cell.
    cell = anchors[4 * (2 * 8 + 5): 4 * (2 * 8 + 5) + 4]
    centres = (cell[:, :2] + cell[:, 2:]) / 2
    assert torch.allclose(centres, torch.tensor([(5.5 / 8, 2.5 / 8)] * 4))
    # ...and its logits are those the first class head computes at that cell for its anchor k.
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        logits, _ = net(images)
        head = net.class_heads[0](net.blocks[0](images))  # (1, 4 anchors * 4 classes, 8, 8)
    for k in range(4):
        assert torch.allclose(logits[0, 4 * (2 * 8 + 5) + k], head[0, 4 * k: 4 * k + 4, 2, 5])


def _task(**overrides) -> Detection:
    args = {"width": 4, "sizes": DIGIT_SIZES, "ratios": DIGIT_RATIOS}
    config = from_dict(DetectionConfig, {"recipe": "digit-boxes", "model": {"name": "tiny-ssd", "args": args},
                                         **overrides})
    task = Detection(config)
    task.runtime = Runtime(device=torch.device("cpu"), autocast_dtype=None)
    task.meta = {"classes": [str(d) for d in range(10)], "size": 64}
    task.models = task.build_models()
    return task


def test_the_ssd_loss_counts_three_hard_background_anchors_per_object_anchor():
    from dlzoo.data.scenes import Scenes

    task = _task()
    anchors = task.anchors()
    box = anchors[101].clone()  # one object exactly on anchor 101, which no other anchor overlaps by half
    assert (box_iou(anchors, box[None]) >= 0.5).sum() == 1
    scenes = Scenes(None, None, box.view(1, 1, 4), torch.tensor([[7]]), torch.tensor([[True]]))
    logits = torch.zeros(1, len(anchors), 11)
    offsets = torch.zeros(1, len(anchors), 4)
    logits[0, :, 3] = torch.linspace(0, 5, len(anchors))  # later background anchors look more like a "2"
    per_anchor = torch.nn.functional.cross_entropy(logits[0], torch.zeros(len(anchors), dtype=torch.long),
                                                   reduction="none")
    object_loss = torch.nn.functional.cross_entropy(logits[0, 101:102], torch.tensor([8]))
    hardest = per_anchor[-3:].sum()  # the last three anchors are the hardest background ones
    assert float(task.loss(logits, offsets, scenes)) == pytest.approx(float(object_loss + hardest), rel=1e-5)
    curriculum = _task(loss="curriculum")
    expected = (per_anchor.sum() - per_anchor[101] + object_loss) / len(anchors)
    assert float(curriculum.loss(logits, offsets, scenes)) == pytest.approx(float(expected), rel=1e-5)


@pytest.fixture(scope="module")
def boxes_run(tmp_path_factory) -> Path:
    from dlzoo.cli import main

    run_dir = tmp_path_factory.mktemp("boxes") / "digit-boxes"
    assert main(["train", "digit-boxes", *TINY_BOXES, "--out", str(run_dir)]) == 0
    return run_dir


def test_a_boxes_run_is_scored_by_map(boxes_run, cli):
    summary = json.loads((boxes_run / "summary.json").read_text())
    test = summary["metrics"]["test"]
    assert summary["main_metric"] == "map" and 0 <= test["map"] <= test["map_50"] <= 1
    assert Image.open(boxes_run / "predictions.png").size[1] > 200  # true and found boxes, after every epoch
    evaluated = cli("eval", boxes_run, "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["metrics"]["test"]["map"] == pytest.approx(test["map"], abs=1e-9)


def test_predict_gives_boxes_in_the_pictures_pixels_and_draws_them(boxes_run, cli, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(photo)
    result = cli("predict", boxes_run, photo, "--json", "--out", tmp_path / "drawn")
    assert result.code == 0, result.err
    (record,) = [json.loads(line) for line in result.out.splitlines()]
    assert record["size"] == [90, 120] and record["drawn"] == str(tmp_path / "drawn" / "photo.png")
    assert Image.open(record["drawn"]).size == (120, 90)
    for found in record["objects"]:
        x1, y1, x2, y2 = found["box"]
        assert 0 <= x1 <= x2 <= 120 and 0 <= y1 <= y2 <= 90 and found["label"] in [str(d) for d in range(10)]


def test_export_gives_probabilities_and_boxes_of_every_anchor(boxes_run, cli, tmp_path):
    assert cli("export", boxes_run, "--out", tmp_path / "ssd.pt2").code == 0
    program = torch.export.load(str(tmp_path / "ssd.pt2")).module()
    probabilities, boxes = program(torch.rand(3, 3, 64, 64))
    assert probabilities.shape == (3, 344, 11) and boxes.shape == (3, 344, 4)
    assert torch.allclose(probabilities.sum(-1), torch.ones(3, 344), atol=1e-5)
    assert boxes.min() >= 0 and boxes.max() <= 1


def test_detection_refuses_what_it_cannot_read(cli, tmp_path):
    assert_user_error(cli("train", "digit-boxes", "data.size=48", "--out", tmp_path / "a"), "multiple of 32")
    assert_user_error(cli("train", "digit-boxes", "score_threshold=0", "--out", tmp_path / "b"), "score_threshold")
    assert_user_error(cli("train", "digit-boxes", "model.name=fcn", "--out", tmp_path / "c"), "segmenter", "tiny-ssd")
    assert get_recipe("digit-boxes").config().loss == "ssd"
