"""Semantic segmentation: the FCN's contract, digit-scenes canvases and masks, the mIoU arithmetic, training on
canvases and on pictures with masks from files, prediction to mask files, export, and refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import assert_user_error
from dlzoo.data.images import load_image_arrays
from dlzoo.data.masks import IGNORE, MaskedPictures
from dlzoo.data.scenes import EDGE, INK, SceneComposer, SceneStyle, photo_backgrounds
from dlzoo.errors import UserError
from dlzoo.models import create
from dlzoo.models.fcn import bilinear_kernel
from dlzoo.tasks.segmentation import CropBatches, confusion, scores

# digit-scenes small enough for a test: 400 training digits, 8 steps of a half-width canvas.
TINY_SCENES = ["data.limit=400", "data.batch_size=16", "data.scenes_per_epoch=128", "data.eval_scenes=40",
               "data.size=32", "trainer.epochs=1", "trainer.device=cpu"]


def test_bilinear_transposed_conv_upsamples_as_bilinear_interpolation():
    upsample = torch.nn.ConvTranspose2d(3, 3, kernel_size=16, stride=8, padding=4, bias=False)
    with torch.no_grad():
        upsample.weight.copy_(bilinear_kernel(3, 16))
    small = torch.rand(2, 3, 6, 5)
    interpolated = F.interpolate(small, scale_factor=8, mode="bilinear", align_corners=False)
    # Equal away from the border, where the transposed conv sees zeros beyond the map and interpolation clamps.
    assert torch.allclose(upsample(small)[..., 8:-8, 8:-8], interpolated[..., 8:-8, 8:-8], atol=1e-5)


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_fcn_gives_a_logit_per_class_for_every_pixel(stride):
    net = create("fcn", num_classes=5, in_channels=3, stride=stride).eval()
    assert net(torch.rand(2, 3, 2 * stride, 3 * stride)).shape == (2, 5, 2 * stride, 3 * stride)


def test_fcn_refuses_a_stride_it_has_no_stage_for():
    with pytest.raises(UserError, match="stride must be one of 8, 16, 32"):
        create("fcn", num_classes=5, stride=4)


def _composer(images: np.ndarray, labels: np.ndarray, style: SceneStyle) -> SceneComposer:
    return SceneComposer(torch.tensor(images), torch.tensor(labels), photo_backgrounds(test=False), 64, style)


def test_scene_masks_mark_the_ink_of_the_digits_drawn():
    arrays = load_image_arrays("mnist5k")
    sevens = arrays.train_labels == 7
    # Black backgrounds (dim 0): what is bright is ink, and only sevens are drawn.
    style = SceneStyle(dim=[0.0, 0.0])
    images, masks, *_ = _composer(arrays.train_images[sevens], arrays.train_labels[sevens], style).compose(
        8, torch.Generator().manual_seed(0))
    assert images.shape == (8, 3, 64, 64) and masks.shape == (8, 64, 64)
    assert set(masks.unique().tolist()) == {0, 8, IGNORE}  # background, the class of digit 7, soft edges
    brightest = images.amax(1)  # ink colours have their strongest channel at 1
    assert brightest[masks == 8].min() > INK - 1e-4
    assert brightest[masks == 0].max() < EDGE + 1e-4


def test_a_scene_digit_box_is_the_box_of_its_pixels():
    arrays = load_image_arrays("mnist5k").limit(200)
    scenes = _composer(arrays.train_images, arrays.train_labels, SceneStyle(digits=[1, 1])).compose(
        6, torch.Generator().manual_seed(1))
    assert scenes.present.sum(1).tolist() == [1] * 6  # one digit a canvas, in the first slot
    for mask, box, label in zip(scenes.masks, scenes.boxes[:, 0], scenes.labels[:, 0], strict=True):
        rows, columns = torch.nonzero(mask == label + 1, as_tuple=True)  # class 0 is the background
        expected = torch.stack([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]) / 64
        assert torch.allclose(box, expected.float())


def test_scenes_are_drawn_from_the_generator():
    arrays = load_image_arrays("mnist5k").limit(100)
    composer = _composer(arrays.train_images, arrays.train_labels, SceneStyle())
    first, again = (composer.compose(4, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = composer.compose(4, torch.Generator().manual_seed(4))
    assert not torch.equal(first[1], other[1])


def test_miou_counts_classes_present_and_leaves_unscored_pixels_out():
    truth = torch.tensor([0, 0, 1, 1, IGNORE, 2])
    predicted = torch.tensor([0, 1, 1, 1, 2, 1])
    counts = confusion(truth, predicted, classes=4)  # class 3: neither present nor predicted
    assert counts.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    result = scores(counts)
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)
    # IoU: background 1/2, class 1 2/4, class 2 0/1; class 3 left out of the mean.
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 4 + 0) / 3)


def test_crops_cover_each_picture_once_an_epoch_and_pad_small_ones_unscored():
    pictures = MaskedPictures(
        images=[np.full((h, 30, 3), i, np.uint8) for i, h in enumerate((20, 24, 12, 40))],
        masks=[np.full((h, 30), i, np.uint8) for i, h in enumerate((20, 24, 12, 40))],
        names=["a", "b", "c", "d"])
    torch.manual_seed(0)
    batches = CropBatches(pictures, (16, 16), flip=True, batch_size=2, seed=0, rank=0, world_size=1)
    seen = []
    for images, masks in batches:
        assert images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8 and masks.shape == (2, 16, 16)
        for image, mask in zip(images, masks, strict=True):
            scored = mask[mask != IGNORE]
            seen.append(int(scored[0]))
            assert (scored == scored[0]).all() and (image[:, mask != IGNORE] == scored[0]).all()
            assert (mask == IGNORE).any() == (scored[0] == 2)  # only the 12-px picture is padded
    assert sorted(seen) == [0, 1, 2, 3]
    shards = [[int(m[m != IGNORE][0]) for _, masks in CropBatches(pictures, (8, 8), False, 1, 0, rank, 2)
               for m in masks] for rank in (0, 1)]
    assert sorted(shards[0] + shards[1]) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def scenes_run(tmp_path_factory) -> Path:
    from dlzoo.cli import main

    run_dir = tmp_path_factory.mktemp("scenes") / "digit-scenes"
    assert main(["train", "digit-scenes", *TINY_SCENES, "--out", str(run_dir)]) == 0
    return run_dir


def test_a_scenes_run_reports_miou_and_pixel_accuracy(scenes_run):
    summary = json.loads((scenes_run / "summary.json").read_text())
    test = summary["metrics"]["test"]
    assert 0 <= test["miou"] <= test["pixel_accuracy"] <= 1
    assert summary["main_metric"] == "miou"
    # After every epoch: test pictures, true masks, predicted masks (three rows of 64 px cells at 110 dpi).
    assert Image.open(scenes_run / "predictions.png").size[1] > 200


def test_predict_writes_a_palette_mask_the_size_of_each_picture(scenes_run, cli, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 50, 3), dtype=np.uint8)).save(photo)
    grey = tmp_path / "grey" / "photo.png"  # the same stem again: its mask gets the input's number
    grey.parent.mkdir()
    Image.fromarray(np.zeros((20, 21), np.uint8)).save(grey)
    result = cli("predict", scenes_run, photo, grey, "--json", "--out", tmp_path / "masks")
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["mask"] for r in records] == [str(tmp_path / "masks" / "photo.png"),
                                            str(tmp_path / "masks" / "photo-1.png")]
    for record, size in zip(records, [(37, 50), (20, 21)], strict=True):
        assert record["size"] == list(size) and sum(record["classes"].values()) == pytest.approx(1, abs=1e-5)
        mask = Image.open(record["mask"])
        assert mask.mode == "P" and mask.size == size[::-1]
        assert set(np.unique(np.asarray(mask))) <= set(range(11))


def test_a_served_run_answers_each_picture_with_its_class_shares(scenes_run, tmp_path):
    import io
    import urllib.request

    from conftest import serving

    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 33, 3), dtype=np.uint8)).save(photo, "PNG")
    with serving(scenes_run) as (base, _):
        request = urllib.request.Request(f"{base}/predict?name=photo.png", data=photo.getvalue())
        with urllib.request.urlopen(request) as response:
            (record,) = json.loads(response.read())
    assert record["size"] == [40, 33] and record["mask"] is None
    assert sum(record["classes"].values()) == pytest.approx(1, abs=1e-5)


def test_mask_file_names_never_repeat_within_a_call():
    from dlzoo.tasks.base import output_file_name

    taken: set[str] = set()
    names = [output_file_name(item, number, taken) for number, item in
             enumerate(["photos/a.jpg", "scans/a.png", "a-1.jpg", None])]
    assert names == ["a.png", "a-1.png", "a-1-2.png", "picture-3.png"]


def test_predict_out_must_be_a_folder(scenes_run, cli, tmp_path, digit_pictures):
    taken = tmp_path / "masks.png"
    taken.write_bytes(b"x")
    assert_user_error(cli("predict", scenes_run, next(iter(digit_pictures.values())), "--out", taken),
                      "is a file; give a folder")
    assert taken.read_bytes() == b"x"  # left as it was


def test_export_takes_pictures_of_other_sizes(scenes_run, cli, tmp_path):
    assert cli("export", scenes_run, "--out", tmp_path / "fcn.pt2").code == 0
    program = torch.export.load(str(tmp_path / "fcn.pt2")).module()
    assert program(torch.rand(1, 3, 16, 40)).shape == (1, 11, 16, 40)
    sidecar = json.loads((tmp_path / "fcn.pt2.json").read_text())
    assert "multiples of 8" in sidecar["preparation"]


def test_eval_scores_the_run_again_as_training_did(scenes_run, cli):
    result = cli("eval", scenes_run, "--json")
    assert result.code == 0, result.err
    final = json.loads((scenes_run / "summary.json").read_text())["metrics"]["test"]
    assert json.loads(result.out)["metrics"]["test"]["miou"] == pytest.approx(final["miou"], abs=1e-9)


def test_a_segmentation_recipe_refuses_a_classifier_and_a_bad_range(cli, tmp_path):
    assert_user_error(cli("train", "digit-scenes", "model.name=resnet18", "--out", tmp_path / "a"),
                      "is a classifier model", "fcn")
    assert_user_error(cli("train", "digit-scenes", "data.style.digits=[1,5]", "--out", tmp_path / "b"),
                      "data.style.digits")
    assert_user_error(cli("train", "digit-scenes", "data.style.digit_height=[12,80]", "--out", tmp_path / "b"),
                      "within the 64 px canvas")
    assert_user_error(cli("train", "digit-boxes", "data.style.zoom=[0.5,0.2]", "--out", tmp_path / "b"),
                      "data.style.zoom is a range [low, high]")
    assert_user_error(cli("train", "digit-scenes", "data.style.dim=[0.5,2]", "--out", tmp_path / "b"),
                      "data.style.dim lie in [0, 1]")
    assert_user_error(cli("train", "digit-scenes", "data.source=fashion-mnist", "--out", tmp_path / "c"),
                      "segmentation reads digit-scenes")


# The curriculum's FCN on a VOC-layout folder of 4 + 2 small pictures, its backbone reading stride 8.
TINY_VOC = ["model.pretrained=false", "model.args.stride=8", "data.crop=[16,24]", "data.batch_size=2",
            "trainer.epochs=1", "trainer.device=cpu"]


def test_canvases_and_crops_that_are_no_multiple_of_the_stride_train(cli, tmp_path):
    from test_masks import make_voc

    result = cli("train", "digit-scenes", *TINY_SCENES, "data.size=30", "data.style.digit_height=[10,20]", "--out",
                 tmp_path / "scenes")
    assert result.code == 0, result.err
    make_voc(tmp_path / "voc", train=2, val=1)
    result = cli("train", "fcn-voc", *TINY_VOC, "data.crop=[15,21]", f"data.path={tmp_path / 'voc'}", "--out",
                 tmp_path / "voc-run")
    assert result.code == 0, result.err


def test_fcn_voc_trains_on_a_voc_folder_and_scores_its_val_pictures_whole(cli, tmp_path):
    from test_masks import make_voc

    make_voc(tmp_path / "voc", train=4, val=2)
    result = cli("train", "fcn-voc", *TINY_VOC, f"data.path={tmp_path / 'voc'}", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert "random 16x24 crops" in result.out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and 0 <= summary["metrics"]["test"]["miou"] <= 1
    assert (tmp_path / "run" / "predictions.png").is_file()


def test_a_mask_folder_of_ones_own_trains_with_its_classes(cli, tmp_path):
    from test_masks import make_mask_folder

    make_mask_folder(tmp_path / "mine", classes=("background", "cat", "dog"), counts=(4, 2))
    result = cli("train", "fcn-voc", *TINY_VOC, "data.source=mask-folder", f"data.path={tmp_path / 'mine'}",
                 "--out", tmp_path / "run")
    assert result.code == 0, result.err
    result = cli("predict", tmp_path / "run", tmp_path / "mine" / "test" / "images", "--json")
    assert result.code == 0, result.err
    assert all(set(json.loads(line)["classes"]) <= {"background", "cat", "dog"} for line in result.out.splitlines())


def _fake_imagenet_download(monkeypatch, answer) -> None:
    import torchvision.models._api

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", answer)


def test_pretrained_starts_the_backbone_from_imagenet_weights(monkeypatch, tmp_path, cli):
    from torchvision.models import resnet18

    from test_masks import make_voc

    imagenet = resnet18().state_dict()
    imagenet["layer1.0.conv1.weight"].fill_(0.125)  # a mark that no initialisation makes
    _fake_imagenet_download(monkeypatch, lambda *args, **kwargs: imagenet)
    make_voc(tmp_path / "voc", train=2, val=1)
    result = cli("train", "fcn-voc", *TINY_VOC, "model.pretrained=true", "optim.lr=1e-9",
                 f"data.path={tmp_path / 'voc'}", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "run" / "checkpoints" / "epoch-0001" / "model.safetensors")
    assert torch.allclose(weights["net.features.layer1.0.conv1.weight"], torch.tensor(0.125), atol=1e-6)


def test_pretrained_weights_out_of_reach_are_one_line(monkeypatch, tmp_path, cli):
    import urllib.error

    from test_masks import make_voc

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    _fake_imagenet_download(monkeypatch, offline)
    make_voc(tmp_path / "voc", train=2, val=1)
    assert_user_error(cli("train", "fcn-voc", *TINY_VOC, "model.pretrained=true", f"data.path={tmp_path / 'voc'}",
                          "--out", tmp_path / "run"), "cannot get torchvision's ImageNet weights", "no route to host")


def test_data_show_draws_pictures_above_their_masks(cli, tmp_path):
    from test_masks import make_voc

    result = cli("data", "show", "digit-scenes", "--out", tmp_path / "scenes.png")
    assert result.code == 0, result.err
    assert "above their masks" in result.out and Image.open(tmp_path / "scenes.png").size[0] > 400
    make_voc(tmp_path / "voc", train=3, val=1)  # fewer pictures than columns: the rest of the row left blank
    result = cli("data", "show", "voc2012", f"data.path={tmp_path / 'voc'}", "--out", tmp_path / "voc.png")
    assert result.code == 0, result.err
    assert f"found: {tmp_path / 'voc'}" in result.out
    assert_user_error(cli("data", "show", "digit-scenes", "--augment", "--out", tmp_path / "a.png"),
                      "--augment is for image classification")
    assert not (tmp_path / "a.png").exists()


def test_eval_per_class_gives_each_classs_iou_whose_mean_is_the_miou(scenes_run, cli):
    result = cli("eval", scenes_run, "--json", "--per-class")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    rows = record["per_class"]["test"]
    assert [row["class"] for row in rows] == ["background", *map(str, range(10))]
    ious = [row["iou"] for row in rows if row["iou"] is not None]
    assert sum(ious) / len(ious) == pytest.approx(record["metrics"]["test"]["miou"], abs=1e-3)  # rows are rounded
    assert sum(row["support"] for row in rows) == sum(row["predicted"] for row in rows)  # every scored pixel once
    text = cli("eval", scenes_run, "--per-class")
    assert "iou" in text.out.splitlines()[1] and "background" in text.out
