"""Your own pictures as a small image-classification set: one folder per class, split into train and test.

    PATH/train/<class>/*.png|jpg|...     PATH/test/<class>/*     (or PATH/val/<class>/*)

A class folder's pictures may lie in subfolders of it too (as torchvision's ImageFolder reads them). Names starting
with a dot (.ipynb_checkpoints, macOS's ._photo.jpg) and __MACOSX folders are not pictures and are passed over;
other files that are not pictures are counted, and training says how many it left out.

Every picture is prepared exactly as `dlzoo predict` prepares one (`ResizePreprocessing`: grey and light on dark,
or RGB with `data.colour=true`; resized to the training size), so a trained run classifies new pictures the way it
saw its training set. The set is then held in memory like Fashion-MNIST and trained with the same on-device
batching and augmentation, or, with `data.stream=true`, its training pictures are left on disk and read every epoch
(`dlzoo.data.picture_files`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from dlzoo.data.images import ImageArrays, split_fingerprint, validation_split
from dlzoo.data.sources import UserDataSource, register_source
from dlzoo.errors import UserError
from dlzoo.vision.io import read_image
from dlzoo.vision.preprocess import ResizePreprocessing

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}
TEST_SPLITS = ("test", "val")


FOLDER = register_source(UserDataSource(
    "folder", "your own pictures: data.path=DIR holding train/<class>/* and test/<class>/* (or val/)",
    "a folder with train/<class>/ and test/<class>/ subfolders of pictures"))


def _hidden(name: str) -> bool:
    """Not the user's data: dot files and folders (.DS_Store, .ipynb_checkpoints, macOS's ._photo.jpg resource
    forks) and the __MACOSX folder of zip files made on a Mac."""
    return name.startswith(".") or name == "__MACOSX"


def pictures_of_folders(inputs: list[str], purpose: str) -> list[str]:
    """The inputs with each folder replaced by the pictures in it and its subfolders, in name order: `dlzoo predict
    RUN photos/`, `dlzoo read RUN scans/`; `purpose` says what they are for, in the error for a folder of none."""
    files = []
    for given in inputs:
        if not Path(given).is_dir():
            files.append(given)
            continue
        pictures = pictures_in(Path(given))
        if not pictures:
            raise UserError(f"{given} holds no pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) to {purpose}")
        files += [str(picture) for picture in pictures]
    return files


def pictures_in(folder: Path, skipped: Counter[str] | None = None) -> list[Path]:
    """The pictures in `folder` and its subfolders, sorted; other files (not hidden) are counted in `skipped` by
    their suffix."""
    skipped = Counter() if skipped is None else skipped
    found = []
    # (device, inode) of the folders walked and of the class folder's own parents: a link back up (to the class
    # folder, or to train/ and its other classes) is not followed, nor one to a folder walked already.
    seen = {_identity(above) for above in folder.resolve().parents}
    for parent, folders, files in os.walk(folder, followlinks=True):
        identity = _identity(Path(parent))
        if identity in seen:
            folders[:] = []
            continue
        seen.add(identity)
        folders[:] = [name for name in folders if not _hidden(name)]
        for name in files:
            path = Path(parent) / name
            if _hidden(name) or not path.is_file():  # a broken link is no picture either
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found.append(path)
            else:
                skipped[path.suffix.lower() or "(no suffix)"] += 1
    return sorted(found)


def _identity(folder: Path) -> tuple[int, int]:
    status = folder.stat()
    return status.st_dev, status.st_ino


def mixed(items: list[tuple[Path, int]]) -> list[tuple[Path, int]]:
    """The training pictures shuffled once, with a fixed seed, so that `data.limit=N` takes a mix of classes rather
    than the first ones."""
    return [items[i] for i in np.random.default_rng(0).permutation(len(items))]


@dataclass(frozen=True)
class PictureListing:
    """Checked pictures of one's own (`FOLDER`, `PICTURE_CSV`), not read yet: class names and (path, label) pairs
    per split, the paths under `root`."""

    source: ClassVar[str]  # the data source that lists them
    root: Path
    classes: list[str]
    train: list[tuple[Path, int]]
    test: list[tuple[Path, int]]

    def hold_out(self, fraction: float, seed: int) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
        """The training pictures as (kept, validation), drawn as `validation_split` draws them; all kept when
        `fraction` is 0."""
        if not fraction:
            return self.train, []
        kept, held = validation_split(np.array([label for _, label in self.train]), fraction, seed, self.classes)
        return [self.train[i] for i in kept], [self.train[i] for i in held]

    def fingerprint(self, items: list[tuple[Path, int]]) -> str:
        """`split_fingerprint` of pictures by their names under the root (wherever the root is)."""
        return split_fingerprint(path.relative_to(self.root).as_posix() for path, _ in items)

    def test_fingerprint(self) -> str:
        """The test split's `fingerprint` where it is drawn from the labelled pictures, and so changes with them;
        "" where it is a folder of its own (test/), whose pictures were never trained on."""
        return ""

    def notes(self) -> list[str]:
        """What a user should know about the listing, such as the files it left out."""
        return []


@dataclass(frozen=True)
class FolderListing(PictureListing):
    """A checked picture folder: class names (train/'s subfolders, sorted) and (path, label) pairs per split."""

    source: ClassVar[str] = FOLDER.name
    test_name: str  # the folder scored as the test split: test/, or val/ where there is no test/
    skipped: Counter[str]  # files that are not pictures, by suffix
    loose: list[Path]  # files in train/ or test/ themselves, outside any class folder

    def hold_out(self, fraction: float, seed: int) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
        if fraction and self.test_name == "val":  # two different sets of pictures would both be called validation
            raise UserError(f"{self.root / 'val'} is scored as the test split (there is no test/), and "
                            f"data.val_fraction draws a validation split from train/: rename val/ to test/, or "
                            f"leave data.val_fraction at 0")
        return super().hold_out(fraction, seed)

    def notes(self) -> list[str]:
        notes = []
        if self.test_name == "test" and (self.root / "val").is_dir():
            notes.append(f"{self.root}: left out val/: test/ is the held-out split (data.val_fraction draws a "
                         f"validation split from train/)")
        if self.loose:
            notes.append(f"{self.root}: left out {len(self.loose)} file(s) outside the class folders of train/ and "
                         f"test/, e.g. {self.loose[0].name} (a picture belongs in its class's folder)")
        if not self.skipped:
            return notes
        kinds = ", ".join(f"{count} {suffix}" for suffix, count in sorted(self.skipped.items(),
                                                                         key=lambda kind: (-kind[1], kind[0])))
        files = "1 file that is" if self.skipped.total() == 1 else f"{self.skipped.total()} files that are"
        return [*notes, f"{self.root}: left out {files} not a picture ({kinds}; pictures are "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))})"]


def _split_items(split_dir: Path, classes: list[str], skipped: Counter[str],
                 every_class: bool = False) -> list[tuple[Path, int]]:
    """(path, label) of the split's pictures; with `every_class`, each class folder must hold at least one."""
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        if (split_dir / name).is_dir():  # a test split may lack a class
            pictures = pictures_in(split_dir / name, skipped)
            if every_class and not pictures:
                # train/'s subfolders are the classes: an empty one would be a class the model never sees
                raise UserError(f"class folder {split_dir / name} has no pictures "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))}): add some or remove it")
            items += [(path, label) for path in pictures]
    if not items:
        raise UserError(f"no pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders of {split_dir}")
    return items


def _check_class_name(name: str, split_dir: Path) -> None:
    """A class's name is the label predictions print and send as JSON (files, `dlzoo serve`), all UTF-8: a folder
    named in another encoding (a zip made on Windows, unpacked here) reaches Python as lone surrogates, which none of
    them can encode. Pictures' file names may be in any encoding: a picture is opened by its name, whatever it is."""
    try:
        name.encode()
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        raise UserError(f"class folder {shown} in {split_dir} is not named in UTF-8: rename it (its name is the "
                        f"label predictions print)") from None


def list_folder(path: str | None) -> FolderListing:
    """The pictures under `path` (not read yet), or a UserError that says what the layout lacks."""
    if not path:
        raise UserError(f"data.source=folder needs data.path: {FOLDER.how_to_get()}")
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"data.path {root} is not a folder")
    train_dir = root / "train"
    test_dir = next((root / split for split in TEST_SPLITS if (root / split).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise UserError(f"{root} needs a train/ and a test/ (or val/) folder, each with one subfolder per class")
    for link in sorted(train_dir.iterdir()):
        # A class folder kept elsewhere (a drive not mounted now) would otherwise just not be a class: refused as an
        # empty class folder is, since the model would never learn the class.
        if link.is_symlink() and not link.exists() and not _hidden(link.name):
            raise UserError(f"{link} links to {os.readlink(link)}, which does not exist (a class folder on a drive "
                            f"not mounted?): restore it, or remove the link")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir() and not _hidden(p.name))
    if len(classes) < 2:
        loose = sum(1 for p in train_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        hint = f" (its {loose} pictures must lie in them, a subfolder named after each class)" if loose else ""
        raise UserError(f"{train_dir} needs at least two class subfolders, found {len(classes)}{hint}")
    for name in classes:
        _check_class_name(name, train_dir)
    unknown = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and not _hidden(p.name) and p.name not in classes)
    if unknown:
        raise UserError(f"{test_dir} has classes that train/ lacks: {', '.join(unknown)}")
    skipped: Counter[str] = Counter()
    train = _split_items(train_dir, classes, skipped, every_class=True)
    train = mixed(train)
    loose = sorted(p for split in (train_dir, test_dir) for p in split.iterdir() if p.is_file() and not _hidden(p.name))
    return FolderListing(root, classes, train, _split_items(test_dir, classes, skipped), test_dir.name, skipped, loose)


def read_picture(path: Path, prepare: ResizePreprocessing) -> np.ndarray:
    """One picture as the model's uint8 input: (size, size) grey or (3, size, size) RGB."""
    return np.rint(prepare(read_image(path)) * 255).astype(np.uint8)


def read_items(items: list[tuple[Path, int]], prepare: ResizePreprocessing) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([read_picture(path, prepare) for path, _ in items])
    return images, np.array([label for _, label in items], dtype=np.int64)


def load_image_folder(path: str | None, size: int, colour: bool = False, limit: int | None = None,
                      val_fraction: float = 0.0, val_seed: int = 0) -> ImageArrays:
    """The pictures under `path` read into memory, each size x size, grey (N, H, W) or RGB (N, 3, H, W), with
    `val_fraction` of the training pictures held out (`FolderListing.hold_out`); with `limit`, only the first
    `limit` of the other training pictures (of the shuffled listing) are read."""
    return read_image_folder(path, size, colour, limit, val_fraction, val_seed)[0]


def read_image_folder(path: str | None, size: int, colour: bool = False, limit: int | None = None,
                      val_fraction: float = 0.0, val_seed: int = 0,
                      read_train: bool = True) -> tuple[ImageArrays, list[tuple[Path, int]]]:
    """`load_image_folder`'s arrays and the (path, label) training pictures they hold (see `read_listing`)."""
    return read_listing(list_folder(path), size, colour, limit, val_fraction, val_seed, read_train)


def read_listing(listing: PictureListing, size: int, colour: bool = False, limit: int | None = None,
                 val_fraction: float = 0.0, val_seed: int = 0,
                 read_train: bool = True) -> tuple[ImageArrays, list[tuple[Path, int]]]:
    """The listed pictures read as `load_image_folder` reads a folder's, and the (path, label) training pictures
    the arrays hold; with `read_train=False` those are left on disk, for a DataLoader to read every epoch (the
    arrays' training images empty; the test and validation pictures are read either way)."""
    prepare = ResizePreprocessing(size=size, colour=colour)
    train, val = listing.hold_out(val_fraction, val_seed)
    train = train[:limit]
    test_x, test_y = read_items(listing.test, prepare)
    train_x, train_y = read_items(train, prepare) if read_train else (test_x[:0], test_y[:0])
    arrays = ImageArrays(train_x, train_y, test_x, test_y, listing.classes, listing.source, str(listing.root),
                         notes=listing.notes(), test_fingerprint=listing.test_fingerprint())
    if val:
        arrays.with_validation(*read_items(val, prepare), listing.fingerprint(val))
    return arrays, train
