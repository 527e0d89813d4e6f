"""Transfer learning (`finetune`): torchvision's ResNet-18 with ImageNet weights and a new head trained faster, on
pictures of one's own. The weights cannot be downloaded here: torchvision's download is served a known state."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision.models._api
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from conftest import assert_user_error
from dlzoo.config import OptimConfig
from dlzoo.engine.optim import build_optimizer
from dlzoo.models import create

# The recipe at a size a test can train: 32 px pictures, 2 steps, read in the test's process.
TINY_FINETUNE = ["data.resolution=32", "data.batch_size=4", "data.workers=0", "trainer.epochs=1",
                 "trainer.device=cpu"]


def _colour_folder(root, per_class=4):
    """train/ and test/ of two classes, red and blue pictures of 40x50 px."""
    for split in ("train", "test"):
        for name, colour in (("hotdog", (200, 40, 30)), ("not-hotdog", (30, 40, 200))):
            (root / split / name).mkdir(parents=True)
            for index in range(per_class):
                pixels = np.clip(np.array(colour) + np.random.default_rng(index).integers(-20, 20, (40, 50, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{index}.png")
    return root


def _serve_imagenet(monkeypatch, answer):
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", answer)


def test_the_new_head_learns_head_lr_scale_times_faster_and_keeps_no_decay_on_biases():
    net = create("resnet18-imagenet", num_classes=2, in_channels=3)
    optimizer = build_optimizer(OptimConfig(name="sgd", lr=1e-3, weight_decay=1e-3), [net],
                                net.head_parameters(), 10.0)
    head = {id(p) for p in net.head_parameters()}
    for group in optimizer.param_groups:
        fast = {id(p) in head for p in group["params"]}
        assert len(fast) == 1  # a group is all head or all backbone
        assert group["lr"] == pytest.approx(1e-2 if fast == {True} else 1e-3)
        assert group["weight_decay"] == (0.0 if all(p.ndim <= 1 for p in group["params"]) else 1e-3)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(net.parameters()))


def test_without_a_faster_head_the_groups_are_those_earlier_checkpoints_hold():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    groups = build_optimizer(OptimConfig(lr=0.2, weight_decay=0.1), [net]).param_groups
    assert [(len(g["params"]), g["weight_decay"], g["lr"]) for g in groups] == [(1, 0.1, 0.2), (3, 0.0, 0.2)]


def test_finetune_starts_from_imagenet_weights_and_trains_a_new_head(monkeypatch, cli, tmp_path):
    imagenet = torchvision.models.resnet18().state_dict()
    imagenet["layer2.0.conv1.weight"].fill_(0.0625)  # a mark no initialisation makes
    imagenet["fc.weight"].fill_(7.0)  # ImageNet's 1,000-class head, which must stay out
    _serve_imagenet(monkeypatch, lambda *args, **kwargs: imagenet)
    folder = _colour_folder(tmp_path / "food")
    result = cli("train", "finetune", *TINY_FINETUNE, "optim.lr=1e-9", f"data.path={folder}", "--out",
                 tmp_path / "run")
    assert result.code == 0, result.err
    weights = load_file(tmp_path / "run" / "checkpoints" / "epoch-0001" / "model.safetensors")
    assert torch.allclose(weights["net.network.layer2.0.conv1.weight"], torch.tensor(0.0625), atol=1e-6)
    assert weights["net.network.fc.weight"].shape == (2, 512) and (weights["net.network.fc.weight"] != 7).all()
    predicted = cli("predict", tmp_path / "run", folder / "test" / "hotdog" / "0.png")
    assert predicted.code == 0 and predicted.out.split(":")[1].split()[0] in ("hotdog", "not-hotdog")


def test_imagenet_weights_out_of_reach_are_one_line(monkeypatch, cli, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("name or service not known")

    _serve_imagenet(monkeypatch, offline)
    folder = _colour_folder(tmp_path / "food")
    assert_user_error(cli("train", "finetune", *TINY_FINETUNE, f"data.path={folder}", "--out", tmp_path / "run"),
                      "cannot get torchvision's ImageNet weights", "model.pretrained=false")


def test_transfer_settings_are_refused_for_networks_without_imagenet_weights(cli, tmp_path):
    assert_user_error(cli("train", "fashion", "model.pretrained=true", "--out", tmp_path / "a"),
                      "model.pretrained and model.head_lr_scale are for networks with ImageNet weights", "fashion-net")
    assert_user_error(cli("train", "finetune", "data.colour=false", "--out", tmp_path / "b"), "needs RGB pictures")
    assert_user_error(cli("train", "finetune", "model.head_lr_scale=0", "--out", tmp_path / "c"),
                      "model.head_lr_scale must be > 0")
