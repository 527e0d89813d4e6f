"""`data.source=picture-csv`: pictures labelled by a CSV as Kaggle unpacks them (classify-leaves' train.csv, CIFAR-10's
trainLabels.csv), made from real mnist5k digits saved as the JPEG and PNG files those sets hold."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_user_error
from dlzoo.data.images import load_image_arrays
from dlzoo.data.picture_csv import list_picture_csv
from dlzoo.errors import UserError
from dlzoo.tasks.image_classification import AugmentConfig, ImageDataConfig, load_arrays

CPU = ["trainer.device=cpu", "trainer.threads=1"]
# Given in an order that is not the sorted one, so that the class order is seen to come from the names.
NAMES = {0: "zero", 1: "one", 7: "seven"}
PER_CLASS = 15  # 45 pictures: a test split of 0.2 holds 3 of each class


@pytest.fixture(scope="module")
def digits():
    """(digit picture, class name) for 45 real MNIST digits, the classes interleaved as in Kaggle's CSVs."""
    arrays = load_image_arrays("mnist5k")
    by_class = {digit: arrays.train_images[arrays.train_labels == digit][:PER_CLASS] for digit in NAMES}
    return [(by_class[digit][i], NAMES[digit]) for i in range(PER_CLASS) for digit in NAMES]


def _csv(path, header, rows):
    path.write_text("\n".join([header, *(",".join(map(str, row)) for row in rows)]) + "\n", encoding="utf-8")


def _leaves(root, digits):
    """classify-leaves: images/<n>.jpg (RGB JPEG), train.csv naming the labelled ones, test.csv 3 unlabelled more."""
    (root / "images").mkdir(parents=True)
    for index, (digit, _) in enumerate(digits + digits[:3]):
        Image.fromarray(digit).convert("RGB").save(root / "images" / f"{index}.jpg", quality=95)
    _csv(root / "train.csv", "image,label", [(f"images/{i}.jpg", name) for i, (_, name) in enumerate(digits)])
    _csv(root / "test.csv", "image", [(f"images/{len(digits) + i}.jpg",) for i in range(3)])
    return root


def _cifar(root, digits):
    """CIFAR-10 on Kaggle: train/<id>.png from id 1, trainLabels.csv, and an unlabelled test/ folder."""
    for folder in ("train", "test"):
        (root / folder).mkdir(parents=True)
    for index, (digit, _) in enumerate(digits, start=1):
        Image.fromarray(digit).save(root / "train" / f"{index}.png")
    Image.fromarray(digits[0][0]).save(root / "test" / "1.png")
    _csv(root / "trainLabels.csv", "id,label", [(i, name) for i, (_, name) in enumerate(digits, start=1)])
    return root


@pytest.fixture(scope="module")
def leaves(tmp_path_factory, digits):
    return _leaves(tmp_path_factory.mktemp("classify-leaves"), digits)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory, digits):
    return _cifar(tmp_path_factory.mktemp("cifar-10"), digits)


@pytest.mark.parametrize("layout", ["leaves", "cifar"])
def test_the_test_split_is_held_out_of_the_labelled_rows_per_class(request, layout):
    root = request.getfixturevalue(layout)
    listing = list_picture_csv(str(root), 0.2, 0)
    assert listing.classes == ["one", "seven", "zero"]  # sorted names, not the order of the rows
    assert len(listing.train) == 36 and len(listing.test) == 9
    assert np.bincount([label for _, label in listing.test]).tolist() == [3, 3, 3]  # stratified
    train, test = {path for path, _ in listing.train}, {path for path, _ in listing.test}
    assert not train & test and len(train | test) == 45
    assert list_picture_csv(str(root), 0.2, 0).test == listing.test  # drawn from data.split_seed alone
    assert {path for path, _ in list_picture_csv(str(root), 0.2, 1).test} != test
    larger = list_picture_csv(str(root), 0.4, 0)
    assert np.bincount([label for _, label in larger.test]).tolist() == [6, 6, 6]


def test_cifar_pictures_are_read_with_their_labels(cifar, digits):
    arrays, _ = load_arrays(ImageDataConfig(source="picture-csv", path=str(cifar)))
    listing = list_picture_csv(str(cifar), 0.2, 0)
    assert arrays.test_images.shape == (9, 28, 28) and arrays.train_images.shape == (36, 28, 28)
    for (path, label), image, read_label in zip(listing.test, arrays.test_images, arrays.test_labels, strict=True):
        digit, name = digits[int(path.stem) - 1]  # train/<id>.png, the ids counted from 1
        assert read_label == label == arrays.classes.index(name)
        np.testing.assert_array_equal(image, digit)  # a lossless PNG at its own size: the very pixels
    assert arrays.notes == [f"{cifar / 'trainLabels.csv'}: the test split is held out of its rows: "
                            f"data.test_fraction=0.2 of each class, drawn from data.split_seed=0",
                            f"{cifar}: left out test: Kaggle's unlabelled test set, not a test split (it has no labels "
                            f"to score)"]


def test_leaves_say_what_they_left_out(leaves):
    arrays, _ = load_arrays(ImageDataConfig(source="picture-csv", path=str(leaves), colour=True, resolution=32))
    assert arrays.train_images.shape == (36, 3, 32, 32) and arrays.test_images.shape == (9, 3, 32, 32)
    assert "left out test.csv: Kaggle's unlabelled test set, not a test split" in arrays.notes[1]
    assert arrays.notes[2] == f"{leaves}: left out 3 picture(s) that train.csv does not label, e.g. images/45.jpg"


@pytest.mark.parametrize("val_fraction", [0.0, 0.25])
def test_streamed_pictures_are_the_ones_held_in_memory(leaves, val_fraction):
    config = {"source": "picture-csv", "path": str(leaves), "colour": True, "val_fraction": val_fraction}
    held, none = load_arrays(ImageDataConfig(**config))
    empty, files = load_arrays(ImageDataConfig(**config, stream=True, augment=AugmentConfig(enabled=False)))
    assert none is None and len(files) == len(held.train_images) == (36 if not val_fraction else 27)
    assert len(empty.train_images) == 0 and np.array_equal(empty.test_images, held.test_images)
    if val_fraction:  # held out of the training rows, the test split untouched
        assert len(held.val_images) == 9 and np.bincount(held.val_labels).tolist() == [3, 3, 3]
        assert empty.val_fingerprint == held.val_fingerprint != ""
    for index in range(len(files)):
        picture, label = files[index]
        assert picture.shape == (3, 28, 28) and label == held.train_labels[index]
        assert torch.equal(picture, torch.from_numpy(held.train_images[index]).float() / 255)


def test_a_recipe_trains_on_the_leaves_layout_and_predicts(cli, leaves, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", "data.source=picture-csv", f"data.path={leaves}", "data.colour=true",
                 "data.batch_size=8", "trainer.epochs=1", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    said = result.out + result.err
    assert f"data: picture-csv ({leaves}): 36 training and 9 test images, 3 classes" in said
    assert "left out test.csv: Kaggle's unlabelled test set" in said
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 <= summary["metrics"]["test"]["accuracy"] <= 1
    result = cli("predict", run_dir, leaves / "images" / "45.jpg", "--json")  # one of Kaggle's unlabelled pictures
    assert result.code == 0, result.err
    assert json.loads(result.out)["label"] in NAMES.values()
    assert cli("eval", run_dir).code == 0  # the same test split drawn again


def test_a_test_split_the_csv_no_longer_gives_is_refused(cli, digits, tmp_path):
    """Rows added to the CSV after training draw another test split, which may hold pictures the run trained on:
    `dlzoo eval` refuses to score it (with or without --split test), and `--resume` to go on training beside it."""
    root = _leaves(tmp_path / "leaves", digits)
    run_dir = tmp_path / "run"
    assert cli("train", "fashion", "data.source=picture-csv", f"data.path={root}", "data.colour=true",
               "data.batch_size=8", "trainer.epochs=2", *CPU, "--out", run_dir).code == 0
    assert json.loads((run_dir / "summary.json").read_text())["metrics"]["test"]
    assert cli("eval", run_dir).code == 0
    labelled = (root / "train.csv").read_text()
    # Kaggle's 3 unlabelled pictures (copies of the first three digits), labelled since: 48 rows, a test split of 10
    (root / "train.csv").write_text(labelled + "".join(f"images/{45 + i}.jpg,{name}\n"
                                                       for i, (_, name) in enumerate(digits[:3])))
    refusal = "the data now gives another test split (10 images drawn again; 9 held out in training): some of it"
    assert_user_error(cli("eval", run_dir), refusal)
    assert_user_error(cli("eval", run_dir, "--split", "test"), refusal)
    shutil.rmtree(run_dir / "checkpoints" / "epoch-0002")  # as if stopped after its first epoch
    (run_dir / "summary.json").unlink()
    assert_user_error(cli("train", "--resume", run_dir), "would resume on other data than it trained on: another "
                      "test split (10 images drawn again; 9 held out in training)")
    (root / "train.csv").write_text(labelled)  # the rows it trained on: scored and resumed again
    assert cli("eval", run_dir).code == 0
    assert cli("train", "--resume", run_dir).code == 0


def test_a_recipe_trains_on_the_cifar_layout_streamed(cli, cifar, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", "data.source=picture-csv", f"data.path={cifar}", "data.stream=true",
                 "data.workers=0", "data.batch_size=9", "data.test_fraction=0.4", "trainer.epochs=1", *CPU,
                 "--out", run_dir)
    assert result.code == 0, result.err
    assert f"data: picture-csv ({cifar}): 27 training and 18 test images, 3 classes" in result.out + result.err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3  # 27 training pictures, 9 at a time


def test_dlzoo_data_lists_and_shows_the_source(cli, cifar, tmp_path):
    result = cli("data")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    listed = lines.index("picture-csv")
    assert "train.csv (image,label: classify-leaves) or trainLabels.csv" in lines[listed + 1]
    assert lines[listed + 2].startswith("  missing: set data.path to a folder holding train.csv (columns image,label")
    gallery = tmp_path / "cifar.png"
    result = cli("data", "show", "picture-csv", f"data.path={cifar}", "--out", gallery)
    assert result.code == 0, result.err
    assert f"found: {cifar}" in result.out
    assert Image.open(gallery).size[0] > 100


def _copy(source, target):
    """A copy of a layout, to break."""
    import shutil

    return shutil.copytree(source, target)


def test_the_layout_is_told_by_the_files(cli, leaves, tmp_path):
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", *CPU), "needs data.path")
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", f"data.path={leaves / 'train.csv'}", *CPU),
                      "is not a folder")
    (tmp_path / "empty").mkdir()
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", f"data.path={tmp_path / 'empty'}", *CPU),
                      "train.csv (columns image,label, as Kaggle's classify-leaves) or trainLabels.csv (columns "
                      "id,label with the pictures train/<id>.png, as Kaggle's CIFAR-10); it holds neither")
    both = _copy(leaves, tmp_path / "both")
    _csv(both / "trainLabels.csv", "id,label", [(1, "zero")])
    with pytest.raises(UserError, match="it holds both, and which to read is unclear: remove one"):
        list_picture_csv(str(both), 0.2, 0)
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", f"data.path={leaves}",
                          "data.preprocess=mnist-digit", *CPU), "data.preprocess=resize")
    assert_user_error(cli("show", "fashion", "data.test_fraction=0"), "data.test_fraction must be in (0, 1)")
    assert_user_error(cli("show", "fashion", "data.split_seed=-1"), "data.split_seed must be in [0, 2**32)")


def _broken_leaves(root, digits, rows, header="image,label"):
    """The leaves layout with train.csv's rows replaced."""
    _leaves(root, digits)
    _csv(root / "train.csv", header, rows)
    return root


def test_bad_rows_are_refused_naming_the_line(cli, digits, tmp_path):
    good = [(f"images/{i}.jpg", name) for i, (_, name) in enumerate(digits)]
    table = tmp_path / "missing" / "train.csv"
    root = _broken_leaves(tmp_path / "missing", digits, [*good[:3], ("images/404.jpg", "zero"), *good[3:]])
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", f"data.path={root}", *CPU),
                      f"{table}: line 5 names {root / 'images' / '404.jpg'}, which does not exist")
    root = _broken_leaves(tmp_path / "unlabelled", digits, [*good[:6], ("images/6.jpg", ""), *good[7:]])
    with pytest.raises(UserError, match=r"train.csv: line 8 \(images/6.jpg\) has an empty label"):
        list_picture_csv(str(root), 0.2, 0)
    root = _broken_leaves(tmp_path / "no-name", digits, [*good, ("", "zero")])
    with pytest.raises(UserError, match="line 47 names no picture"):
        list_picture_csv(str(root), 0.2, 0)
    root = _broken_leaves(tmp_path / "twice", digits, [*good, good[2]])
    with pytest.raises(UserError, match=r"line 47 names .*images/2.jpg again \(first on line 4\)"):
        list_picture_csv(str(root), 0.2, 0)
    root = _broken_leaves(tmp_path / "text", digits, [*good, ("train.csv", "zero")])
    with pytest.raises(UserError, match="line 47 names .*train.csv, which is not a picture"):
        list_picture_csv(str(root), 0.2, 0)
    root = _broken_leaves(tmp_path / "absolute", digits, [*good, (tmp_path / "missing" / "images" / "0.jpg", "zero")])
    with pytest.raises(UserError, match="line 47 names .*0.jpg, outside"):
        list_picture_csv(str(root), 0.2, 0)


def test_bad_tables_are_refused(cli, digits, tmp_path):
    good = [(f"images/{i}.jpg", name) for i, (_, name) in enumerate(digits)]
    root = _broken_leaves(tmp_path / "columns", digits, good, header="image,species")
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", f"data.path={root}", *CPU),
                      "train.csv lacks the column(s) label that train.csv (columns image,label", "its columns: image, "
                      "species")
    root = _broken_leaves(tmp_path / "gbk", digits, good[:6])
    (root / "train.csv").write_bytes("image,label\nimages/0.jpg,槭树\nimages/1.jpg,橡树\n".encode("gbk"))
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", f"data.path={root}", *CPU),
                      f"{root / 'train.csv'} is not UTF-8 text")
    root = _broken_leaves(tmp_path / "one-class", digits, [(path, "zero") for path, _ in good])
    with pytest.raises(UserError, match="labels 1 class"):
        list_picture_csv(str(root), 0.2, 0)
    # CIFAR's ids name train/<id>.png; its columns are id,label
    cifar = _cifar(tmp_path / "cifar", digits)
    _csv(cifar / "trainLabels.csv", "id,class", [(1, "zero")])
    with pytest.raises(UserError, match="trainLabels.csv lacks the column.s. label that trainLabels.csv .columns id,"):
        list_picture_csv(str(cifar), 0.2, 0)


def test_a_class_too_small_to_split_is_refused(cli, digits, tmp_path):
    good = [(f"images/{i}.jpg", name) for i, (_, name) in enumerate(digits)]
    root = _broken_leaves(tmp_path / "lonely", digits, [*good[:-1], (good[-1][0], "maple")])
    assert_user_error(cli("train", "fashion", "data.source=picture-csv", f"data.path={root}", *CPU),
                      "cannot hold out data.test_fraction=0.2: class 'maple' has only 1 training sample, and a test "
                      "split needs at least 2 of every class (add some)")
    # 3 classes, but 0.05 of 45 rows holds out 3 pictures... and 0.02 only 1
    with pytest.raises(UserError, match=r"cannot hold out data.test_fraction=0.02 of 45 training samples in every"):
        list_picture_csv(str(_leaves(tmp_path / "small", digits)), 0.02, 0)


def test_a_classic_cnn_trains_on_colour_pictures_at_32_px(cli, cifar, tmp_path):
    """fashion-net is built for 28 px; the classic CNNs end in a global pool and take CIFAR's 32 px."""
    result = cli("train", "resnet18", "data.source=picture-csv", f"data.path={cifar}", "data.colour=true",
                 "data.resolution=32", "data.batch_size=8", "trainer.epochs=1", *CPU, "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]["test"]


def test_the_test_split_keys_are_refused_for_sources_with_a_test_split_of_their_own(cli, tmp_path):
    assert_user_error(cli("train", "digits", "data.test_fraction=0.3", "--out", tmp_path / "run"),
                      "data.test_fraction draws the test split of data.source=picture-csv", "'mnist5k'")
