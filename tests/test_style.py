"""Neural style transfer (`dlzoo stylize`, `dlzoo.vision.style`) on real photos from scikit-image, at sizes a test
can afford. ImageNet's VGG-19 weights cannot be downloaded here: torchvision's download is served a known state."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision.models._api
from PIL import Image
from safetensors.torch import save_file
from skimage import data

from conftest import assert_user_error
from dlzoo.errors import UserError
from dlzoo.vision import style as style_transfer
from dlzoo.vision.style import StyleFeatures, StyleSettings, gram, stylize, to_network_units, vgg19_features

FAST = ["--features", "random", "--height", "40", "--device", "cpu"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A cat (content) and a cup of coffee (style), as PNG files."""
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.chelsea()).save(folder / "cat.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    return folder / "cat.png", folder / "coffee.png"


def _picture(array: np.ndarray, height: int) -> torch.Tensor:
    picture = torch.from_numpy(array.copy()).permute(2, 0, 1).float()[None] / 255
    return torch.nn.functional.interpolate(picture, size=(height, height * 3 // 2), mode="area")[0]


def test_gram_and_total_variation_are_the_curriculums():
    maps = torch.arange(12.0).reshape(1, 2, 2, 3)
    flat = maps.reshape(2, 6)
    assert torch.allclose(gram(maps), flat @ flat.T / 12)
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical neighbours differ by 3 and 4, horizontal ones by 1 and 2
    assert style_transfer.total_variation(image).item() == pytest.approx(0.5 * (3.5 + 1.5))


def test_the_losses_read_the_relu_outputs_they_are_named_after():
    features = vgg19_features("random")
    maps = features(to_network_units(_picture(data.chelsea(), 32)[None]))
    assert set(maps) == set(style_transfer.LAYER_NAMES)
    for index, name in style_transfer.LAYER_NAMES.items():
        assert isinstance(features.layers[index], torch.nn.ReLU) and name.startswith("relu")
        assert isinstance(features.layers[index - 1], torch.nn.Conv2d)
        assert maps[index].min() >= 0  # not a convolution's output that a later in-place ReLU rewrote


def test_without_style_and_smoothing_the_content_is_left_as_it_is():
    content = _picture(data.chelsea(), 32)
    painted = stylize(content, _picture(data.coffee(), 32), vgg19_features("random"),
                      StyleSettings(steps=3, style_weight=0.0, tv_weight=0.0))
    assert torch.allclose(painted, content, atol=1e-5)  # the content loss starts at its minimum: no gradient


def test_style_pulls_the_pictures_colours_towards_the_styles_and_the_loss_falls():
    content, style = _picture(data.chelsea(), 48), _picture(data.coffee(), 48)
    features = vgg19_features("random", seed=1)
    features.calibrate(to_network_units(content[None]))
    reports = []
    painted = stylize(content, style, features, StyleSettings(steps=60, style_weight=1e6),
                      lambda step, losses, seconds: reports.append((step, losses)), report_every=20)
    assert [step for step, _ in reports] == [20, 40, 60]
    assert reports[-1][1].style < 0.5 * reports[0][1].style
    assert reports[-1][1].total < reports[0][1].total

    def colour_gap(picture):
        return (picture.mean(dim=(1, 2)) - style.mean(dim=(1, 2))).abs().sum()

    assert colour_gap(painted) < 0.6 * colour_gap(content)
    assert painted.shape == content.shape and painted.min() >= 0 and painted.max() <= 1


def test_random_features_are_drawn_from_their_seed_and_leave_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, again = vgg19_features("random", seed=5), vgg19_features("random", seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    other = vgg19_features("random", seed=6)
    assert torch.equal(first.layers[0].weight, again.layers[0].weight)
    assert not torch.equal(first.layers[0].weight, other.layers[0].weight)


def test_calibration_gives_every_layer_unit_variance_on_the_picture():
    features = vgg19_features("random")
    images = to_network_units(_picture(data.chelsea(), 64)[None])
    features.calibrate(images)
    convolutions = [layer for layer in features.layers if isinstance(layer, torch.nn.Conv2d)]
    spreads = []
    for layer in convolutions:
        layer.register_forward_hook(lambda module, inputs, output: spreads.append(output.std().item()))
    features(images)
    assert spreads == pytest.approx([1.0] * len(convolutions), rel=1e-3)


def test_imagenet_weights_come_from_torchvisions_download_without_its_classifier(monkeypatch):
    served = {f"features.{key}": value for key, value in StyleFeatures().layers.state_dict().items()}
    served["features.19.weight"] = torch.full_like(served["features.19.weight"], 0.0625)  # a mark
    served["features.34.weight"] = torch.zeros(512, 512, 3, 3)  # conv5_4 and the classifier are not needed
    served["classifier.0.weight"] = torch.zeros(4096, 25088)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", lambda *args, **kwargs: served)
    features = vgg19_features("imagenet")
    assert torch.all(features.layers[19].weight == 0.0625)
    assert not any(parameter.requires_grad for parameter in features.parameters())


def test_weights_from_a_file_are_read_and_checked(tmp_path):
    trunk = {f"features.{key}": value.clone() for key, value in StyleFeatures().layers.state_dict().items()}
    trunk["features.28.bias"].fill_(0.25)
    save_file(trunk, tmp_path / "vgg19.safetensors")
    assert torch.all(vgg19_features(str(tmp_path / "vgg19.safetensors")).layers[28].bias == 0.25)
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "small.pth")
    with pytest.raises(UserError, match=r"does not hold VGG-19's weights: features.0.weight is \(8, 3, 3, 3\)"):
        vgg19_features(str(tmp_path / "small.pth"))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pth")
    with pytest.raises(UserError, match="features.0.weight is missing"):
        vgg19_features(str(tmp_path / "resnet.pth"))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read VGG-19 weights from"):
        vgg19_features(str(tmp_path / "broken.pth"))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(UserError, match="holds a list, not a state dict"):
        vgg19_features(str(tmp_path / "list.pth"))


def test_stylize_writes_the_painted_picture_at_the_height_asked(cli, photos, tmp_path):
    content, style = photos
    result = cli("stylize", content, style, "--out", tmp_path / "painted.png", *FAST, "--steps", "4", "--every", "2",
                 "--style-weight", "1e6")
    assert result.code == 0, result.err
    assert [line.split(":")[0] for line in result.out.splitlines()[:2]] == ["step 2/4", "step 4/4"]
    with Image.open(tmp_path / "painted.png") as painted:
        assert painted.mode == "RGB" and painted.size == (round(451 * 40 / 300), 40)  # chelsea is 451x300
    again = cli("stylize", content, style, "--out", tmp_path / "again.png", *FAST, "--steps", "4",
                "--style-weight", "1e6")
    assert again.code == 0 and (tmp_path / "again.png").read_bytes() == (tmp_path / "painted.png").read_bytes()


def test_imagenet_weights_out_of_reach_are_one_line(monkeypatch, cli, photos, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("name or service not known")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    content, style = photos
    assert_user_error(cli("stylize", content, style, "--out", tmp_path / "p.png", "--height", "40"),
                      "cannot get torchvision's ImageNet weights for VGG-19", "put vgg19-dcbb9e9d.pth in",
                      "--features random")
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("arguments, fragment", [
    (["missing.png", "{style}", "--out", "{tmp}/p.png"], "image not found: missing.png"),
    (["{content}", "{style}", "--out", "{content}"], "would write over the input picture"),
    (["{content}", "{style}", "--out", "{tmp}/p.txt"], "give it an extension such as .png"),
    (["{content}", "{style}", "--out", "{tmp}/p.png", "--height", "0"], "--height: must be a finite number > 0"),
    (["{content}", "{style}", "--out", "{tmp}/p.png", "--height", "12"], "VGG-19 needs at least 32 px"),
    (["{content}", "{style}", "--out", "{tmp}/p.png", "--height", "9000"], "--height 9000 is more than 2048 px"),
    (["{content}", "{tmp}/wide.png", "--out", "{tmp}/p.png", "--height", "2000"], "more than 6,291,456 pixels"),
    (["{content}", "{style}", "--out", "{tmp}/p.png", "--steps", "2.5"], "expected a whole number, got '2.5'"),
    (["{content}", "{style}", "--out", "{tmp}/p.png", "--style-weight", "-1"], "must be a finite number >= 0"),
    (["{content}", "{style}", "--out", "{tmp}/p.png", "--features", "{tmp}/none.pth"], "no such file"),
])
def test_mistakes_are_one_line(cli, photos, tmp_path, arguments, fragment):
    content, style = photos
    Image.new("RGB", (400, 100)).save(tmp_path / "wide.png")  # 8,000 px wide at 2,000 px high
    fill = {"content": content, "style": style, "tmp": tmp_path}
    result = cli("stylize", *(argument.format(**fill) for argument in arguments), "--device", "cpu")
    assert_user_error(result, fragment.format(**fill))
    assert not (tmp_path / "p.png").exists()
