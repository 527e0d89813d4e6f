"""Your own pictures as a small image-classification set: one folder per class, split into train and test.

    PATH/train/<class>/*.png|jpg|...     PATH/test/<class>/*     (or PATH/val/<class>/*)

Every picture is prepared exactly as `dlzoo predict` prepares one (`ResizePreprocessing`: grey and light on dark,
or RGB with `data.colour=true`; resized to the training size), so a trained run classifies new pictures the way it
saw its training set. The set is then held in memory like Fashion-MNIST and trained with the same on-device
batching and augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlzoo.data.images import ImageArrays
from dlzoo.data.sources import register_source
from dlzoo.errors import UserError
from dlzoo.vision.io import read_image
from dlzoo.vision.preprocess import ResizePreprocessing

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
TEST_SPLITS = ("test", "val")


@dataclass(frozen=True)
class FolderSource:
    name: str = "folder"
    description: str = "your own pictures: data.path=DIR holding train/<class>/* and test/<class>/* (or val/)"

    def where(self) -> str | None:
        return None  # there is no default location: the config's data.path names it

    def how_to_get(self) -> str:
        return "set data.path to a folder with train/<class>/ and test/<class>/ subfolders of pictures"


FOLDER = register_source(FolderSource())


def _pictures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_split(split_dir: Path, classes: list[str], size: int, colour: bool) -> tuple[np.ndarray, np.ndarray]:
    prepare = ResizePreprocessing(size=size, colour=colour)
    images, labels = [], []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if not class_dir.is_dir():
            continue  # a test split may lack a class
        for path in _pictures(class_dir):
            images.append(np.rint(prepare(read_image(path)) * 255).astype(np.uint8))
            labels.append(label)
    if not images:
        raise UserError(f"no pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders of {split_dir}")
    return np.stack(images), np.array(labels, dtype=np.int64)


def load_image_folder(path: str | None, size: int, colour: bool = False) -> ImageArrays:
    """The pictures under `path`, each size x size, grey (N, H, W) or RGB (N, 3, H, W); classes are train/'s
    subfolders in sorted order."""
    if not path:
        raise UserError(f"data.source=folder needs data.path: {FOLDER.how_to_get()}")
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"data.path {root} is not a folder")
    train_dir = root / "train"
    test_dir = next((root / split for split in TEST_SPLITS if (root / split).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise UserError(f"{root} needs a train/ and a test/ (or val/) folder, each with one subfolder per class")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise UserError(f"{train_dir} needs at least two class subfolders, found {len(classes)}")
    unknown = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise UserError(f"{test_dir} has classes that train/ lacks: {', '.join(unknown)}")
    train_x, train_y = _read_split(train_dir, classes, size, colour)
    test_x, test_y = _read_split(test_dir, classes, size, colour)
    # Shuffled once, with a fixed seed, so `data.limit=N` takes a mix of classes rather than the first ones.
    order = np.random.default_rng(0).permutation(len(train_x))
    return ImageArrays(train_x[order], train_y[order], test_x, test_y, classes, FOLDER.name, str(root))
