"""`data.val_fraction`: a validation split held out of the training images of the real Fashion-MNIST, evaluated
beside the test split, so that settings can be chosen without looking at the test accuracy."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import assert_user_error
from dlzoo.bench.classic import fashion_subset
from dlzoo.data.images import validation_split
from dlzoo.errors import UserError
from dlzoo.tasks.image_classification import ImageDataConfig, load_arrays

CPU = ["trainer.device=cpu", "trainer.threads=1"]


@pytest.fixture(scope="module")
def fashion_small(tmp_path_factory):
    """The first 2,000 training and 500 test images of the real Fashion-MNIST, as IDX files."""
    folder = tmp_path_factory.mktemp("fashion-small")
    return folder, fashion_subset(folder, train=2000, test=500)


def test_the_split_holds_out_the_same_share_of_every_class():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    kept, held = validation_split(labels, 0.1, seed=0)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    assert np.bincount(labels[held]).tolist() == [10, 5, 3, 2]  # stratified: the rare classes validated too
    assert list(held) == sorted(held) and list(kept) == sorted(kept)  # in the data's order
    again, other = validation_split(labels, 0.1, seed=0)[1], validation_split(labels, 0.1, seed=1)[1]
    assert np.array_equal(held, again) and not np.array_equal(held, other)


def test_a_split_too_small_for_every_class_is_a_user_error():
    labels = np.repeat(np.arange(10), 10)
    with pytest.raises(UserError, match=r"cannot hold out data.val_fraction=0.05 of 100 training samples"):
        validation_split(labels, 0.05, seed=0)  # 5 held out, 10 classes
    # A class of one picture (a folder's): named, not sklearn's "classes in y ... are: [2]"
    lonely = np.array([0, 0, 1, 2, 2, 0, 2])
    with pytest.raises(UserError, match=r"class 'ankle boot' has only 1 training sample, .* at least 2 of every class"):
        validation_split(lonely, 0.3, seed=0, classes=["bag", "ankle boot", "coat"])
    with pytest.raises(UserError, match=r"class 1 has only 1 training sample"):
        validation_split(lonely, 0.3, seed=0)


def test_validation_images_come_out_of_training_and_the_test_set_stays_whole(fashion_small):
    folder, whole = fashion_small
    arrays, _ = load_arrays(ImageDataConfig(source="fashion-mnist", path=str(folder), val_fraction=0.2))
    assert len(arrays.train_images) == 1600 and len(arrays.val_images) == 400
    assert np.array_equal(arrays.test_images, whole.test_images)
    # every training image lands in exactly one of the two: the pairs of the split are those of the original
    kept, held = validation_split(whole.train_labels, 0.2, seed=0)
    assert np.array_equal(arrays.val_images, whole.train_images[held])
    assert np.array_equal(arrays.train_images, whole.train_images[kept])
    assert np.array_equal(arrays.val_labels, whole.train_labels[held])
    # data.limit takes the first of the images left to train on: the validation set stays the same
    limited, _ = load_arrays(ImageDataConfig(source="fashion-mnist", path=str(folder), val_fraction=0.2, limit=300))
    assert np.array_equal(limited.train_images, arrays.train_images[:300])
    assert np.array_equal(limited.val_images, arrays.val_images)
    assert limited.val_fingerprint == arrays.val_fingerprint


def test_a_run_with_a_validation_split_evaluates_and_compares_both(cli, fashion_small, tmp_path):
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", f"data.path={fashion_small[0]}", "data.val_fraction=0.1", "trainer.epochs=1",
                 "data.batch_size=64", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    assert "1,800 training, 200 validation and 500 test images" in result.out + result.err
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert set(metrics) == {"val", "test", "train"} and metrics["val"]["accuracy"] > 0.3  # above chance (0.1)
    evaluated = cli("eval", run_dir, "--split", "val", "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["metrics"] == {"val": pytest.approx(metrics["val"])}
    table = cli("compare", run_dir, "--sort", "val").out.splitlines()
    assert "| val accuracy | test accuracy |" in table[0]
    assert f"(10% held out) | {metrics['val']['accuracy']:.4f} | {metrics['test']['accuracy']:.4f} |" in table[2]


def test_validation_settings_are_checked(cli, fashion_small, digits_run):
    for value in ("1", "-0.1"):
        assert_user_error(cli("show", "fashion", f"data.val_fraction={value}"), "data.val_fraction must be in [0, 1)")
    assert_user_error(cli("train", "fashion", f"data.path={fashion_small[0]}", "data.val_fraction=0.004", *CPU),
                      "cannot hold out data.val_fraction=0.004 of 2,000 training samples in every class")
    assert_user_error(cli("show", "fashion", "data.val_fraction=0.1", "data.val_seed=-1"), "data.val_seed must be")
    assert_user_error(cli("eval", digits_run, "--split", "val"), "has no split 'val'; it has: test")


def picture_folder(root, arrays, count, held_out="test"):
    """`count` of the arrays' training pictures as PNG files in root/train/<class>/, 50 test ones in root/held_out/."""
    for split, images, labels in (("train", arrays.train_images[:count], arrays.train_labels[:count]),
                                  (held_out, arrays.test_images[:50], arrays.test_labels[:50])):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index}.png")
    return root


def test_a_validation_split_the_folder_no_longer_gives_is_refused(cli, fashion_small, tmp_path):
    """Pictures added to train/ after training change the split drawn again: some of its pictures were trained on.
    `dlzoo eval` refuses to score it, and `--resume` to go on training beside it."""
    root = picture_folder(tmp_path / "pictures", fashion_small[1], 300)
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", "data.source=folder", f"data.path={root}", "data.val_fraction=0.2",
                 "trainer.epochs=2", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    assert cli("eval", run_dir, "--split", "val").code == 0
    picture_folder(root, fashion_small[1], 400)  # 100 more training pictures
    assert_user_error(cli("eval", run_dir), "the data now gives another validation split (80 images drawn "
                      "again; 60 held out in training): some of its images may have been trained on")
    assert cli("eval", run_dir, "--split", "test").code == 0
    shutil.rmtree(run_dir / "checkpoints" / "epoch-0002")  # as if stopped after its first epoch
    (run_dir / "summary.json").unlink()
    assert_user_error(cli("train", "--resume", run_dir), "would resume on other data than it trained on: another "
                      "validation split (80 images drawn again; 60 held out in training); resume it")


def test_a_folder_whose_val_folder_is_its_test_split_is_refused_a_second_validation_split(cli, fashion_small,
                                                                                          tmp_path):
    root = picture_folder(tmp_path / "pictures", fashion_small[1], 100, held_out="val")
    assert_user_error(cli("train", "fashion", "data.source=folder", f"data.path={root}", "data.val_fraction=0.2",
                          *CPU, "--out", tmp_path / "run"), "val is scored as the test split (there is no test/)",
                      "rename val/ to test/")
    picture_folder(root, fashion_small[1], 100, held_out="test")  # now both: val/ is passed over, and said to be
    result = cli("train", "fashion", "data.source=folder", f"data.path={root}", "trainer.epochs=1", *CPU,
                 "--out", tmp_path / "run")
    assert result.code == 0 and "left out val/: test/ is the held-out split" in result.out + result.err


def test_an_earlier_checkpoint_chosen_by_its_validation_accuracy_can_be_used(cli, fashion_small, tmp_path,
                                                                            monkeypatch):
    """`RUN/checkpoints/epoch-NNNN` stands for the run at that epoch in eval, predict and export: the epoch a
    validation split chose need not be the last."""
    run_dir = tmp_path / "run"
    result = cli("train", "fashion", f"data.path={fashion_small[0]}", "data.val_fraction=0.1", "trainer.epochs=2",
                 "data.batch_size=64", *CPU, "--out", run_dir)
    assert result.code == 0, result.err
    first = run_dir / "checkpoints" / "epoch-0001"
    logged = {entry["split"]: entry["metrics"] for entry in map(json.loads, (run_dir / "metrics.jsonl").open())
              if entry["epoch"] == 1 and entry["split"] != "train"}
    evaluated = cli("eval", first, "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["checkpoint"] == "epoch-0001"
    assert json.loads(evaluated.out)["metrics"] == {split: pytest.approx(logged[split]) for split in ("val", "test")}
    picture = tmp_path / "coat.png"
    Image.fromarray(fashion_small[1].test_images[0]).save(picture)
    assert cli("predict", first, picture).code == 0
    exported = cli("export", first)
    assert exported.code == 0, exported.err
    assert (run_dir / "export" / "model-epoch-0001.pt2").is_file() and not (run_dir / "export" / "model.pt2").exists()
    sidecar = json.loads((run_dir / "export" / "model-epoch-0001.pt2.json").read_text())
    assert sidecar["checkpoint"] == str(first)
    assert_user_error(cli("eval", run_dir / "checkpoints" / "epoch-0005"),
                      "checkpoint not found", "(kept: epoch-0001, epoch-0002; trainer.keep_checkpoints says how many)")
    monkeypatch.chdir(run_dir / "checkpoints")  # named from inside checkpoints/, it is still a checkpoint
    assert json.loads(cli("eval", "epoch-0001", "--json").out)["checkpoint"] == "epoch-0001"
    assert_user_error(cli("eval", "."), ". holds a run's checkpoints: name the run (..), or one of them (epoch-0001, "
                      "epoch-0002) as epoch-NNNN")
    monkeypatch.chdir(tmp_path)  # a relative checkpoint's run is named relative too, in what commands print
    assert cli("export", "run/checkpoints/epoch-0002").out.startswith("wrote run/export/model.pt2 ")  # the latest
