"""`data.source=folder`: a user's own pictures, one folder per class, made from real Fashion-MNIST images saved as
the PNG and JPEG files a user would have (some dark-on-light, as photographs are)."""

import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import assert_user_error
from dlzoo.bench.classic import fashion_subset
from dlzoo.cli import main
from dlzoo.data.folder import load_image_folder
from dlzoo.errors import UserError
from dlzoo.tasks.image_classification import AugmentConfig, ImageDataConfig, file_augmentation, load_arrays

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
    (tmp_path / "only-train" / "test").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "only-train" / "train" / "loose.png")
    with pytest.raises(UserError, match=r"found 1 \(its 1 pictures must lie in them, a subfolder named after each"):
        load_image_folder(str(tmp_path / "only-train"), 28)
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
    (broken / "val" / "bird").rmdir()
    # A class's name is the label that predict prints, JSON and `dlzoo serve` send: a name in another encoding
    # (a zip from Windows) made each of those fail with UnicodeEncodeError, and serve answer nothing at all.
    for split in ("train", "val"):
        (broken / split / "dog").rename(broken / split / os.fsdecode(b"h\xfcnd"))
    with pytest.raises(UserError, match=r"class folder h\\xfcnd in .*train is not named in UTF-8: rename it"):
        load_image_folder(str(broken), 28)
    for split in ("train", "val"):
        (broken / split / os.fsdecode(b"h\xfcnd")).rename(broken / split / "dog")
    # A class folder linked from elsewhere (a drive not mounted now) silently vanished from the classes
    (broken / "train" / "bird").symlink_to(tmp_path / "unmounted" / "bird")
    with pytest.raises(UserError, match=r"train/bird links to .*unmounted/bird, which does not exist"):
        load_image_folder(str(broken), 28)
    (broken / "train" / "bird").unlink()
    assert_user_error(cli("train", "digits", "data.source=folder", f"data.path={root}", *CPU),
                      "data.preprocess=resize")


# Two tints of equal luminance (cv2's grey is 0.299 R + 0.587 G + 0.114 B): made grey, a red and a green copy of one
# picture are the same picture, so only a model that sees colour can tell the classes apart.
TINTS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 0.299 / 0.587, 0.0)}


@pytest.fixture(scope="module")
def tinted_folder(tmp_path_factory):
    """train/{red,green}/ with 300 real Fashion-MNIST pictures in each tint, test/ with 60; RGB PNG."""
    arrays = fashion_subset(tmp_path_factory.mktemp("fashion-tinted"), train=300, test=60)
    root = tmp_path_factory.mktemp("tinted")
    for split, images in (("train", arrays.train_images), ("test", arrays.test_images)):
        for name, tint in TINTS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for index, image in enumerate(images):
                rgb = np.rint(image[:, :, None] * np.array(tint)).astype(np.uint8)
                Image.fromarray(rgb).save(folder / f"{index}.png")
    return root, arrays


def test_colour_pictures_keep_their_colour(tinted_folder):
    root, original = tinted_folder
    colour = load_image_folder(str(root), 28, colour=True)
    assert colour.classes == ["green", "red"]
    assert colour.train_images.shape == (600, 3, 28, 28) and colour.test_images.shape == (120, 3, 28, 28)
    red = colour.test_images[colour.test_labels == 1]
    assert red[:, 1:].max() == 0 and any(np.array_equal(image[0], original.test_images[0]) for image in red)
    green = colour.test_images[colour.test_labels == 0]
    assert green[:, 0].max() == 0 and green[:, 1].max() > 100
    # Made grey, the two classes hold the same pictures (within rounding): without colour there is nothing to learn.
    grey = load_image_folder(str(root), 28)
    assert grey.test_images.shape == (120, 28, 28)
    red_grey, green_grey = (grey.test_images[grey.test_labels == label].astype(int) for label in (1, 0))
    assert np.abs(np.sort(red_grey.reshape(60, -1), 0) - np.sort(green_grey.reshape(60, -1), 0)).max() <= 1


def test_a_colour_run_learns_what_only_colour_tells(cli, tinted_folder, tmp_path):
    root, _ = tinted_folder
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", "data.source=folder", f"data.path={root}", "data.colour=true",
                 "data.batch_size=50", "trainer.epochs=4", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["test"]["accuracy"] > 0.95, summary["metrics"]
    for name in TINTS:  # prediction prepares a new picture in colour too, as the run was trained
        result = cli("predict", run_dir, root / "test" / name / "7.png", "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["label"] == name
    gallery = tmp_path / "tinted.png"
    result = cli("data", "show", "folder", f"data.path={root}", "data.colour=true", "--augment", "--out", gallery)
    assert result.code == 0, result.err
    assert str(root) in result.out
    pixels = np.asarray(Image.open(gallery).convert("RGB")).astype(int)
    assert ((pixels[..., 0] - pixels[..., 1]) > 100).sum() > 100  # red pictures drawn in red
    assert ((pixels[..., 1] - pixels[..., 0]) > 100).sum() > 100  # and green ones in green


def test_colour_user_errors(cli, tinted_folder):
    root, _ = tinted_folder
    assert_user_error(cli("train", "fashion", "data.colour=true", *CPU), "data.colour=true is for data.source=folder")
    assert_user_error(cli("data", "show", "folder"), "needs data.path")
    assert_user_error(cli("data", "list", f"data.path={root}"), "go with `dlzoo data show SOURCE`")


@pytest.mark.parametrize("val_fraction", [0.0, 0.1])
def test_streamed_pictures_are_the_ones_held_in_memory(picture_folder, val_fraction):
    root, _ = picture_folder
    held, none = load_arrays(ImageDataConfig(source="folder", path=str(root), limit=200, val_fraction=val_fraction))
    empty, files = load_arrays(ImageDataConfig(source="folder", path=str(root), limit=200, stream=True,
                                               val_fraction=val_fraction, augment=AugmentConfig(enabled=False)))
    assert none is None and len(files) == len(held.train_images) == 200 and len(empty.train_images) == 0
    assert np.array_equal(empty.test_images, held.test_images) and empty.classes == held.classes
    if val_fraction:  # the same validation pictures, read into memory either way, held out of all 1,000
        assert np.array_equal(empty.val_images, held.val_images) and len(held.val_images) == 100
        assert empty.val_fingerprint == held.val_fingerprint != ""
    for index in (0, 1, 57, 199):
        picture, label = files[index]
        assert picture.shape == (1, 28, 28) and label == held.train_labels[index]
        assert torch.equal(picture[0], torch.from_numpy(held.train_images[index]).float() / 255)


def test_file_augmentation_draws_the_configured_transforms():
    picture = torch.rand(3, 12, 12)
    flip = file_augmentation(AugmentConfig(flip=True), 12)
    drawn = [flip(picture) for _ in range(40)]
    assert all(torch.equal(d, picture) or torch.equal(d, picture.flip(-1)) for d in drawn)
    assert any(torch.equal(d, picture) for d in drawn) and any(torch.equal(d, picture.flip(-1)) for d in drawn)
    shift = file_augmentation(AugmentConfig(pad=2), 12)(picture)  # a crop of the zero-padded picture
    padded = torch.nn.functional.pad(picture, (2, 2, 2, 2))
    assert any(torch.equal(shift, padded[:, y:y + 12, x:x + 12]) for y in range(5) for x in range(5))
    turned = file_augmentation(AugmentConfig(degrees=30), 12)(picture)
    assert turned.shape == picture.shape and not torch.equal(turned, picture)
    assert file_augmentation(AugmentConfig(enabled=False, flip=True), 12) is None
    assert file_augmentation(AugmentConfig(), 12) is None  # nothing on: no transform to run per picture


def test_a_streamed_run_trains_from_files_in_workers(cli, picture_folder, tmp_path):
    root, _ = picture_folder
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", "data.source=folder", f"data.path={root}", "data.stream=true", "data.workers=2",
                 "data.batch_size=50", "trainer.epochs=3", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["test"]["accuracy"] > 0.6, summary["metrics"]  # as the in-memory run above
    assert summary["steps"] == 3 * 20


def test_a_streamed_run_resumed_in_workers_retraces_the_run(cli, picture_folder, tmp_path):
    """Persistent workers outlive an epoch but not a resume: each picture's augmentation must follow from (seed,
    epoch, index) alone, not from which worker drew it or what that worker drew before. Dropout draws from the
    training process's generator, which the loader must leave alone."""
    root, _ = picture_folder
    args = ["train", "fashion", "data.source=folder", f"data.path={root}", "data.stream=true", "data.limit=100",
            "data.batch_size=20", "data.augment.pad=2", "data.augment.degrees=15", "model.args.width=4",
            "model.args.dropout=0.2", "trainer.epochs=3", "trainer.eval_every=3", *CPU]

    def weights(run_dir):
        return load_file(str(run_dir / "checkpoints" / "epoch-0003" / "model.safetensors"))

    whole, resumed, in_process = tmp_path / "whole", tmp_path / "resumed", tmp_path / "in-process"
    assert (result := cli(*args, "data.workers=2", "--out", whole)).code == 0, result.err
    shutil.copytree(whole, resumed)  # as if stopped after its second epoch
    shutil.rmtree(resumed / "checkpoints" / "epoch-0003")
    (resumed / "summary.json").unlink()
    assert (result := cli("train", "--resume", resumed)).code == 0, result.err
    assert (result := cli(*args, "data.workers=0", "--out", in_process)).code == 0, result.err
    expected = weights(whole)
    for run_dir in (resumed, in_process):  # read in workers or in the training process: the same pictures
        got = weights(run_dir)
        assert got.keys() == expected.keys()
        for key in expected:
            assert torch.equal(got[key], expected[key]), (run_dir.name, key)


def test_stream_user_errors(cli, tmp_path):
    assert_user_error(cli("train", "fashion", "data.stream=true", *CPU), "data.stream=true is for data.source=folder")
    broken = tmp_path / "broken"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (broken / split / name).mkdir(parents=True)
            for index in range(4):
                Image.fromarray(np.full((8, 8), 40 * index, np.uint8)).save(broken / split / name / f"{index}.png")
    assert_user_error(cli("train", "fashion", "data.source=folder", f"data.path={broken}", "data.stream=true",
                          "data.workers=-1", *CPU), "data.workers must be >= 0")
    # A training picture is first read in a worker, mid-epoch: its error still reaches the user as one line.
    (broken / "train" / "dog" / "bad.png").write_bytes(b"not a picture")
    assert_user_error(cli("train", "fashion", "data.source=folder", f"data.path={broken}", "data.stream=true",
                          "data.workers=1", "data.batch_size=4", *CPU, "--out", tmp_path / "run"), "bad.png")


@pytest.mark.parametrize("stream", ["false", "true"])
def test_an_empty_class_folder_is_refused(cli, tmp_path, stream):
    """train/'s subfolders are the classes: an empty one (or one without pictures) is a mistake, not a class that
    no training picture shows, in memory and streamed alike."""
    root = tmp_path / "pictures"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            Image.fromarray(np.full((8, 8), 80, np.uint8)).save(root / split / name / "0.png")
    (root / "train" / "empty").mkdir()
    run_dir = tmp_path / "run"
    train = ("train", "fashion", "data.source=folder", f"data.path={root}", f"data.stream={stream}", "trainer.epochs=1",
             *CPU, "--out", run_dir)
    assert_user_error(cli(*train), str(root / "train" / "empty"), "no pictures")
    assert not run_dir.exists()
    (root / "train" / "empty" / "notes.txt").write_text("not a picture")
    assert_user_error(cli(*train), str(root / "train" / "empty"), "no pictures")
    # a test split may still lack a class, or hold it empty
    (root / "train" / "empty" / "notes.txt").unlink()
    Image.fromarray(np.full((8, 8), 160, np.uint8)).save(root / "train" / "empty" / "0.png")
    (root / "test" / "empty").mkdir()
    assert cli(*train).code == 0


def _small_folder(root, classes=("cat", "dog"), per_class=4):
    for split in ("train", "test"):
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                Image.fromarray(np.full((8, 8), 40 + 60 * label + index, np.uint8)).save(
                    root / split / name / f"{index}.png")
    return root


def test_hidden_and_nested_files_and_what_is_left_out(tmp_path):
    root = _small_folder(tmp_path / "mine")
    picture = Image.fromarray(np.full((8, 8), 200, np.uint8))
    (root / "train" / ".ipynb_checkpoints").mkdir()  # not a class
    picture.save(root / "train" / ".ipynb_checkpoints" / "0.png")
    (root / "train" / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "train" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 a macOS resource fork")
    (root / "train" / "cat" / "batch2").mkdir()  # a class's pictures may lie in subfolders
    picture.save(root / "train" / "cat" / "batch2" / "4.png")
    picture.save(root / "train" / "dog" / "4.gif")
    picture.convert("RGB").save(root / "train" / "dog" / "5.jfif", format="JPEG")
    (root / "train" / "dog" / "notes.txt").write_text("not a picture")
    (root / "train" / "dog" / "labels.csv").write_text("not a picture")
    (root / "train" / "dog" / "up").symlink_to(root / "train")  # links back up are not followed: no other
    (root / "train" / "dog" / "self").symlink_to(root / "train" / "dog")  # class's pictures, and no loop
    picture.save(root / "train" / "stray.png")  # a picture that belongs to no class
    arrays = load_image_folder(str(root), 8)
    assert arrays.classes == ["cat", "dog"]
    assert np.bincount(arrays.train_labels).tolist() == [5, 6]
    assert len(arrays.notes) == 2 and "left out 1 file(s) outside the class folders" in arrays.notes[0]
    assert "left out 2 files that are not a picture (1 .csv, 1 .txt" in arrays.notes[1]
    (root / "train" / "ankle boot").mkdir()  # a class of one picture has none to spare for a validation split
    picture.save(root / "train" / "ankle boot" / "only.png")
    with pytest.raises(UserError, match="class 'ankle boot' has only 1 training sample"):
        load_image_folder(str(root), 8, val_fraction=0.2)
    shutil.rmtree(root / "train" / "ankle boot")
    # A name in another encoding than UTF-8 (a zip from Windows): a picture like any other, held out or not
    picture.save(root / "train" / "cat" / os.fsdecode(b"caf\xe9.png"))
    for seed in range(4):  # held out at some of these seeds
        assert len(load_image_folder(str(root), 8, val_fraction=0.5, val_seed=seed).val_images) == 6


def test_training_says_what_data_it_read(cli, tmp_path):
    root = _small_folder(tmp_path / "mine")
    (root / "train" / "cat" / "readme.md").write_text("not a picture")
    result = cli("train", "fashion", "data.source=folder", f"data.path={root}", "trainer.epochs=1", *CPU,
                 "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert f"data: folder ({root}): 8 training and 8 test images, 2 classes" in result.out + result.err
    assert "left out 1 file that is not a picture (1 .md" in result.out + result.err
    # A picture named in another encoding than UTF-8, predicted where stdout is strict UTF-8 (a desktop's
    # en_US.UTF-8 locale, not this machine's C.UTF-8): its name is printed as the bytes it has, as `ls` prints it.
    named = root / "test" / "cat" / os.fsdecode(b"caf\xe9.png")
    shutil.copy(root / "test" / "cat" / "0.png", named)
    strict = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    with contextlib.redirect_stdout(strict):
        assert main(["predict", str(tmp_path / "run"), str(named)]) == 0
    assert strict.buffer.getvalue().startswith(os.fsencode(named) + b": ")


def test_a_limited_folder_reads_only_the_pictures_it_trains_on(tmp_path):
    from dlzoo.data.folder import list_folder

    root = _small_folder(tmp_path / "mine", per_class=10)
    last = list_folder(str(root)).train[-1][0]  # the listing is shuffled once: this one comes last
    last.write_bytes(b"broken")
    assert load_image_folder(str(root), 8, limit=19).train_images.shape == (19, 8, 8)
    with pytest.raises(UserError, match=last.name):
        load_image_folder(str(root), 8)


def test_eval_and_resume_refuse_a_folder_whose_classes_changed_since_training(cli, tmp_path, monkeypatch):
    root = _small_folder(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)  # a relative data.path: the run stores it absolute
    assert cli("train", "fashion", "data.source=folder", "data.path=mine", "trainer.epochs=2", *CPU,
               "--out", "run").code == 0
    monkeypatch.chdir(root)
    assert cli("eval", tmp_path / "run").code == 0  # from another folder, the run still finds its data
    for split in ("train", "test"):
        (root / split / "dog").rename(root / split / "a dog")
    assert_user_error(cli("eval", tmp_path / "run"), "now holds other classes (new: a dog; missing: dog), not those")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "epoch-0002")  # as if stopped after its first epoch
    (tmp_path / "run" / "summary.json").unlink()
    assert_user_error(cli("train", "--resume", tmp_path / "run"), "would resume on other data than it trained on: "
                      "other classes (new: a dog; missing: dog); resume it on the data it trained on")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_pictures_are_turned_upright_as_their_exif_orientation_says(tmp_path, orientation):
    from PIL import ImageOps

    from dlzoo.vision.io import load_picture, read_image

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation  # as a phone writes it for a picture taken held sideways
    for suffix in (".png", ".jpg", ".tif"):  # OpenCV turns TIFF itself: it must not be turned twice
        path = tmp_path / f"photo{suffix}"
        Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=100)
        with Image.open(path) as picture:
            viewed = np.asarray(ImageOps.exif_transpose(picture).convert("RGB"))
            given = load_picture(picture)  # the picture handed to predict in memory: turned as its file is
        read = read_image(path)
        assert read.shape == viewed.shape == given.shape, suffix
        if suffix != ".jpg":  # lossless: the very pixels a viewer shows
            np.testing.assert_array_equal(read, viewed)
            np.testing.assert_array_equal(given, viewed)


@pytest.mark.parametrize("shape_value", [0, 255])
def test_a_shape_on_a_transparent_background_stays_visible(tmp_path, shape_value):
    from dlzoo.vision.io import load_picture, read_image

    rgba = np.zeros((6, 6, 4), dtype=np.uint8)  # transparent; its hidden colour is black
    rgba[2:4, 2:4] = (shape_value, shape_value, shape_value, 255)  # an opaque square, black or white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "icon.png")
    read = read_image(tmp_path / "icon.png")
    assert read[2:4, 2:4].min() == read[2:4, 2:4].max() == shape_value
    assert abs(int(read[0, 0, 0]) - shape_value) == 255  # the background the opposite of the shape
    palette = Image.fromarray(rgba, "RGBA").quantize()  # a GIF-like palette picture with a transparent entry
    assert palette.mode == "P" and palette.has_transparency_data
    for given in (Image.fromarray(rgba, "RGBA"), palette, rgba):  # in memory, filled as the file is
        np.testing.assert_array_equal(load_picture(given), read)


@pytest.mark.parametrize(("width", "height"), [(14_000, 10_000), (20_000, 10_000), (100_000, 100_000)])
def test_a_picture_claiming_too_many_pixels_is_a_one_line_mistake(tmp_path, width, height):
    """Refused from its header before it is decoded: up to OpenCV's own limit (a billion pixels) a file of a few
    bytes decoded to gigabytes, which `dlzoo serve` took for one upload. 140 megapixels is past dlzoo's limit
    only, 200 past PIL's too, 10^10 past OpenCV's."""
    import struct
    import zlib

    from dlzoo.vision.io import read_image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # grey pixels, in a file of 70 bytes
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8))
                     + chunk(b"IEND", b""))
    with pytest.raises(UserError, match=r"image is too large \(more than 134 megapixels\): .*bomb.png"):
        read_image(bomb)


def test_a_named_pipe_is_refused_rather_than_read_for_ever(tmp_path):
    from dlzoo.data.tables import read_csv
    from dlzoo.vision.io import read_image

    for name in ("picture.png", "table.csv"):
        os.mkfifo(tmp_path / name)  # nothing ever writes to it: reading it would wait for ever
    with pytest.raises(UserError, match="a pipe or a device"):
        read_image(tmp_path / "picture.png")
    with pytest.raises(UserError, match="a pipe or a device"):
        read_csv(tmp_path / "table.csv")


def test_sigterm_to_a_streamed_run_and_its_workers_stops_it_cleanly(tmp_path):
    """`timeout` and job schedulers signal the whole process group: the loader's workers too. The run stops as at
    Ctrl-C, with one line; workers that died first made the loader raise while it shut down (22 lines of it)."""
    import signal
    import time

    from conftest import train_until

    root = _small_folder(tmp_path / "pictures", per_class=40)
    run_dir = tmp_path / "run"
    process = train_until(run_dir / "checkpoints" / "epoch-0001", "fashion", "data.source=folder",
                          f"data.path={root}", "data.stream=true", "data.workers=2", "data.batch_size=8",
                          "trainer.epochs=500", *CPU, "--out", run_dir, new_session=True)
    time.sleep(0.2)  # into a later epoch, workers busy
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    last_line = f"terminated: the last complete checkpoint is intact; continue with dlzoo train --resume {run_dir}"
    assert err.strip().splitlines() == [last_line], err
