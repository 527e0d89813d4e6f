"""The one preprocessing function shared by training and prediction, on real digits made into user pictures."""

import cv2
import numpy as np
import pytest

from conftest import assert_user_error
from dlzoo.errors import UserError
from dlzoo.vision.digits import DigitPreprocessing, prepare_digit
from dlzoo.vision.io import read_image
from pictures import held_out_digits, on_paper, write


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def digits():
    return held_out_digits(per_class=2)


@pytest.mark.parametrize("variant", ["paper-colour", "inverted-grey", "big", "gradient-noise", "dark-board"])
def test_user_pictures_prepare_like_the_training_digit(digits, variant):
    images, _ = digits
    scores = []
    for i, digit in enumerate(images):
        reference = prepare_digit(digit)
        picture = {
            "paper-colour": lambda d: on_paper(d),
            "inverted-grey": lambda d: 255 - d,
            "big": lambda d: cv2.resize(d, (300, 300), interpolation=cv2.INTER_CUBIC),
            "gradient-noise": lambda d, i=i: on_paper(d, gradient=0.5, noise=0.03, seed=i),
            "dark-board": lambda d: on_paper(d, (150, 260), ink=(240, 240, 240), paper=(30, 50, 40)),
        }[variant](digit)
        prepared = prepare_digit(picture)
        assert prepared.shape == (28, 28) and prepared.dtype == np.float32
        assert prepared.min() >= 0.0 and prepared.max() <= 1.0
        scores.append(similarity(prepared, reference))
    assert np.median(scores) > 0.8, scores


def test_a_phone_sized_photo_in_uneven_light_prepares_like_a_small_picture(digits):
    """A 12-megapixel photo is shrunk first and its uneven paper levelled on a small copy: the full-size grey
    opening took over ten minutes for one such picture (its cost grows with the kernel's area times the picture's)."""
    images, _ = digits
    for i, digit in enumerate(images[::5]):
        large = prepare_digit(on_paper(digit, size=(3000, 4000), gradient=0.5, seed=i))
        assert similarity(large, prepare_digit(digit)) > 0.8  # as the small pictures above, each of them


def test_digit_is_centred_by_mass_with_aspect_kept(digits):
    images, labels = digits
    one = images[list(labels).index(1)]
    prepared = prepare_digit(cv2.resize(255 - one, (90, 200)))  # a tall, thin picture of a one
    ys, xs = np.nonzero(prepared > 0.1)
    assert ys.max() - ys.min() + 1 <= 21 and ys.max() - ys.min() + 1 >= 18  # longer side fitted to 20 px
    assert xs.max() - xs.min() < ys.max() - ys.min()  # still tall and thin
    total = prepared.sum()
    cy = (np.arange(28)[:, None] * prepared).sum() / total
    cx = (np.arange(28)[None, :] * prepared).sum() / total
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0


def test_blank_picture_gives_empty_digit_not_a_crash():
    assert not prepare_digit(np.full((50, 50), 240, np.uint8)).any()


def test_too_small_picture_is_a_user_error():
    with pytest.raises(UserError, match="too small"):
        prepare_digit(np.zeros((1, 5), np.uint8))


def test_preprocessing_round_trips_through_checkpoint_metadata():
    p = DigitPreprocessing()
    assert DigitPreprocessing.from_dict(p.to_dict()) == p


def test_read_image_formats(tmp_path, digits):
    images, _ = digits
    rgb = on_paper(images[0])
    for name in ("a.png", "a.jpg", "a.bmp"):
        loaded = read_image(write(tmp_path / name, rgb))
        assert loaded.shape == rgb.shape
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    assert read_image(tmp_path / "alpha.png").shape == rgb.shape


def test_a_too_small_image_file_is_refused_by_name(tmp_path):
    tiny = write(tmp_path / "tiny.png", np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(UserError, match=r"too small \(1x1.*tiny\.png"):
        read_image(tiny)
    assert read_image(write(tmp_path / "two.png", np.zeros((2, 2, 3), np.uint8))).shape == (2, 2, 3)


def test_predict_names_a_too_small_picture(cli, digits_run, digit_pictures, tmp_path):
    good = next(iter(digit_pictures.values()))
    tiny = write(tmp_path / "tiny.png", np.full((1, 1, 3), 255, np.uint8))
    assert_user_error(cli("predict", digits_run, good, tiny), "too small", str(tiny))
