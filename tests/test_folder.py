"""`data.source=folder`: a user's own pictures, one folder per class, made from real Fashion-MNIST images saved as
the PNG and JPEG files a user would have (some dark-on-light, as photographs are)."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import assert_user_error
from dlzoo.bench.classic import fashion_subset
from dlzoo.data.folder import load_image_folder
from dlzoo.errors import UserError

CPU = ["trainer.device=cpu", "trainer.threads=1"]


@pytest.fixture(scope="module")
def picture_folder(tmp_path_factory):
    """train/<class>/ with 1,000 pictures and test/<class>/ with 300; every third one inverted and saved as RGB JPEG."""
    arrays = fashion_subset(tmp_path_factory.mktemp("fashion"), train=1000, test=300)
    root = tmp_path_factory.mktemp("pictures")
    for split, images, labels in (("train", arrays.train_images, arrays.train_labels),
                                  ("test", arrays.test_images, arrays.test_labels)):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / arrays.classes[label].replace("/", " or ")
            folder.mkdir(parents=True, exist_ok=True)
            if index % 3 == 0:  # a dark object on light paper, in colour, lossy: the reader must undo all three
                Image.fromarray(255 - image).convert("RGB").save(folder / f"{index}.jpg", quality=95)
            else:
                Image.fromarray(image).save(folder / f"{index}.png")
    return root, arrays


def test_folder_pictures_load_as_the_data_set_they_came_from(picture_folder):
    root, original = picture_folder
    arrays = load_image_folder(str(root), 28)
    assert arrays.classes == sorted(c.replace("/", " or ") for c in original.classes)
    assert arrays.train_images.shape == (1000, 28, 28) and arrays.test_images.shape == (300, 28, 28)
    assert np.bincount(arrays.train_labels).sum() == 1000 and len(set(arrays.train_labels[:20].tolist())) > 3
    # Test pictures are read class by class, so a PNG is found by its class and compared with its source image.
    png = sorted((root / "test").glob("*/*.png"), key=lambda p: (p.parent.name, int(p.stem)))
    first = png[0]
    label = arrays.classes.index(first.parent.name)
    expected = original.test_images[int(first.stem)]
    assert any(np.array_equal(image, expected) for image in arrays.test_images[arrays.test_labels == label])
    # An inverted JPEG comes back light on dark, within JPEG's error.
    jpg = next((root / "test").glob("*/0.jpg"))
    read = arrays.test_images[arrays.test_labels == arrays.classes.index(jpg.parent.name)]
    error = np.abs(read.astype(int) - original.test_images[0].astype(int)).mean(axis=(1, 2)).min()
    assert error < 4, error


def test_a_recipe_trains_and_predicts_on_a_picture_folder(cli, picture_folder, tmp_path):
    root, original = picture_folder
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", "data.source=folder", f"data.path={root}", "data.batch_size=50",
                 "trainer.epochs=3", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    summary = json.loads((run_dir / "summary.json").read_text())
    # 1,000 pictures, 3 epochs: far above chance (0.10); the full recipe reaches 0.92 on 60,000.
    assert summary["metrics"]["test"]["accuracy"] > 0.6, summary["metrics"]
    jpg = next((root / "test").glob("*/0.jpg"))
    result = cli("predict", run_dir, jpg, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["label"] in {c.replace("/", " or ") for c in original.classes}


def test_folder_user_errors(cli, picture_folder, tmp_path):
    root, _ = picture_folder
    assert_user_error(cli("train", "fashion", "data.source=folder", *CPU), "needs data.path")
    assert_user_error(cli("train", "fashion", "data.source=folder", f"data.path={tmp_path / 'none'}", *CPU),
                      "is not a folder")
    (tmp_path / "only-train" / "train" / "a").mkdir(parents=True)
    assert_user_error(cli("train", "fashion", "data.source=folder", f"data.path={tmp_path / 'only-train'}", *CPU),
                      "test/ (or val/)")
    broken = tmp_path / "broken"
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (broken / split / name).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(broken / split / name / "ok.png")
    (broken / "train" / "cat" / "bad.png").write_bytes(b"not a picture")
    assert_user_error(cli("train", "fashion", "data.source=folder", f"data.path={broken}", *CPU), "bad.png")
    (broken / "train" / "cat" / "bad.png").unlink()
    (broken / "val" / "bird").mkdir()
    with pytest.raises(UserError, match="train/ lacks: bird"):
        load_image_folder(str(broken), 28)
    assert_user_error(cli("train", "digits", "data.source=folder", f"data.path={root}", *CPU),
                      "data.preprocess=resize")
