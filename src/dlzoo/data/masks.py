"""Semantic-segmentation data read from files: pictures and, for each, a mask holding one class index per pixel.

    voc2012:      Pascal VOC 2012, VOCdevkit/VOC2012/: JPEGImages/<id>.jpg, SegmentationClass/<id>.png and the split
                  lists ImageSets/Segmentation/train.txt and val.txt (val is scored as the test split)
    mask-folder:  your own, data.path=DIR: classes.txt (line i names class i), train/images/* with
                  train/masks/<same name>.png, and test/ (or val/) alike

A mask value of 255 (IGNORE) marks pixels that are not scored: VOC draws it along objects' borders. VOC's masks are
palette PNGs whose indices are the classes themselves; one saved as RGB is mapped back through VOC's palette.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dlzoo.data.folder import IMAGE_SUFFIXES, TEST_SPLITS, _hidden
from dlzoo.data.sources import Archive, UserDataSource, cache_dir, download_archive, register_source
from dlzoo.errors import UserError
from dlzoo.vision.io import read_image

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
IGNORE = 255  # a mask value that is not scored


def _voc_colormap() -> np.ndarray:
    """VOC's palette: index i's bits spread over the channels, lowest first into each channel's highest bit (bits 0,
    3, 6 to red, 1, 4, 7 to green, 2, 5 to blue), so that neighbouring classes get far-apart colours."""
    index = np.arange(256)
    colours = np.zeros((256, 3), np.uint8)
    for step in range(3):  # an index has 8 bits: three steps of three channels cover them
        for channel in range(3):
            colours[:, channel] |= (((index >> (3 * step + channel)) & 1) << (7 - step)).astype(np.uint8)
    return colours


VOC_COLORMAP = _voc_colormap()
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC_TAR_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
VOC_PARTS = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")  # what the reader needs of a VOC2012 folder
VOC_NESTINGS = (".", "VOC2012", "VOCdevkit/VOC2012")  # where that folder may lie in the one given (d2l: the last)


@dataclass
class MaskedPictures:
    """Pictures and their per-pixel class masks, read from files."""

    images: list[np.ndarray]  # (H, W, 3) uint8 RGB
    masks: list[np.ndarray]  # (H, W) uint8 class index per pixel, IGNORE where not scored
    names: list[str]  # file stems, for messages and prediction records


@dataclass
class MaskedSplits:
    classes: list[str]
    train: MaskedPictures
    test: MaskedPictures
    source: str  # one human line: what was read, from where, e.g. "voc2012 at /path (1,464 train / 1,449 val)"


@dataclass(frozen=True)
class VocSource:
    name: str = "voc2012"
    description: str = "Pascal VOC 2012 segmentation: 21 classes, 1,464 training and 1,449 val pictures with masks"

    def candidates(self) -> list[Path]:
        found = [Path(os.environ["DLZOO_DATA"]) / self.name] if "DLZOO_DATA" in os.environ else []
        return [*found, cache_dir() / self.name]

    def where(self) -> str | None:
        roots = (_voc_root(folder) for folder in self.candidates())
        return next((str(root) for root in roots if root is not None and not _voc_missing(root)), None)

    def how_to_get(self) -> str:
        return (f"put VOCdevkit/ (from {VOC_URL.rsplit('/', 1)[1]}) in $DLZOO_DATA/{self.name}/ or "
                f"{cache_dir() / self.name}/, or pass data.path=FOLDER; when online it is downloaded (2 GB)")


VOC = register_source(VocSource())
MASK_FOLDER = register_source(UserDataSource(
    "mask-folder", "your own segmentation set: data.path=DIR holding classes.txt, train/ and test/ (or val/)",
    "a folder with classes.txt (one class name a line, line i naming class i), train/images/* with "
    "train/masks/<same name>.png, and test/ (or val/) alike"))


def read_voc(path: str | None, limit: int | None = None) -> MaskedSplits:
    """VOC 2012's segmentation pictures, train.txt's for training and val.txt's as the test split; `limit`: only the
    first that many of each. Without `path`, found as `VOC.where()` says, else downloaded into the cache."""
    _check_limit(limit)
    root = _locate_voc(path)
    splits, counts = [], []
    for split in ("train", "val"):
        listing = root / "ImageSets/Segmentation" / f"{split}.txt"
        ids = [line for line in _lines(listing) if line]
        items = [(i, root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png") for i in ids]
        pictures, count = _read_split(items, limit, len(VOC_CLASSES), split, listing, voc_colours=True)
        splits.append(pictures)
        counts.append(count)
    return MaskedSplits(list(VOC_CLASSES), *splits, f"{VOC.name} at {root} ({' / '.join(counts)})")


def read_mask_folder(path: str | None, limit: int | None = None) -> MaskedSplits:
    """A folder of one's own (`MASK_FOLDER.how_to_get()`); `limit`: only the first that many of each split, in
    name order."""
    _check_limit(limit)
    if not path:
        raise UserError(f"data.source={MASK_FOLDER.name} needs data.path: {MASK_FOLDER.how_to_get()}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"data.path {root} is not a folder")
    classes = _read_classes(root / "classes.txt")
    test_dir = next((root / split for split in TEST_SPLITS if (root / split).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise UserError(f"{root} needs a train/ and a test/ (or val/) folder, each holding images/ and masks/")
    splits, counts = [], []
    for split_dir in (root / "train", test_dir):
        pictures, count = _read_split(_pairs(split_dir), limit, len(classes), split_dir.name, split_dir)
        splits.append(pictures)
        counts.append(count)
    return MaskedSplits(classes, *splits, f"{MASK_FOLDER.name} at {root} ({' / '.join(counts)}, {len(classes)} "
                                          f"classes)")


def download_voc() -> Path:
    """The official archive fetched into the cache (checked by MD5, written whole), unpacked there and removed:
    the VOC2012 folder it held."""
    target = download_archive(VOC.name, Archive(VOC_URL, VOC_TAR_MD5), cache_dir() / VOC.name, _voc_lacks,
                              VOC.how_to_get())
    return _voc_root(target) or target


def _voc_lacks(folder: Path) -> str | None:
    """What an unpacked archive in `folder` lacks of a VOC 2012, for `download_archive`; None when it is whole."""
    root = _voc_root(folder)
    return f"VOCdevkit/VOC2012/ with {', '.join(VOC_PARTS)}" if root is None or _voc_missing(root) else None


def _locate_voc(path: str | None) -> Path:
    if not path:
        found = VOC.where()
        return Path(found) if found else download_voc()
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"{VOC.name}: data.path {folder} is not a folder")
    root = _voc_root(folder)
    if root is None:
        raise UserError(f"{VOC.name}: no VOC 2012 in {folder}: expected {', '.join(p + '/' for p in VOC_PARTS)} in "
                        f"it, in its VOC2012/ or in its VOCdevkit/VOC2012/")
    if missing := _voc_missing(root):
        raise UserError(f"{VOC.name}: {root} lacks {', '.join(p + '/' for p in missing)}")
    return root


def _voc_root(folder: Path) -> Path | None:
    """The VOC2012 folder in `folder`: the first of `VOC_NESTINGS` that holds any of `VOC_PARTS`."""
    nested = (folder / nesting for nesting in VOC_NESTINGS)
    return next((root for root in nested if len(_voc_missing(root)) < len(VOC_PARTS)), None)


def _voc_missing(root: Path) -> list[str]:
    return [part for part in VOC_PARTS if not (root / part).is_dir()]


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise UserError(f"limit is a number of pictures, at least 1, not {limit}")


def _lines(path: Path) -> list[str]:
    """A UTF-8 text file's lines, stripped (a byte-order mark too), blank ones at the end dropped."""
    if not path.is_file():
        raise UserError(f"{path} is missing")
    try:
        lines = [line.strip() for line in path.read_bytes().decode("utf-8-sig").splitlines()]
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte {error.start:,} is not): save it as UTF-8") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _read_classes(path: Path) -> list[str]:
    classes = _lines(path)
    if "" in classes:  # every later class would be one index off
        raise UserError(f"{path}: line {classes.index('') + 1:,} is empty (line i names class i, one each line)")
    if twice := sorted({name for name in classes if classes.count(name) > 1}):
        raise UserError(f"{path} names class '{twice[0]}' twice")
    if not 2 <= len(classes) <= IGNORE:
        raise UserError(f"{path} names {len(classes):,} class(es): a segmentation set has 2 to {IGNORE} ({IGNORE} "
                        f"marks pixels not scored)")
    return classes


def _pairs(split_dir: Path) -> list[tuple[str, Path, Path]]:
    """(name, picture, mask) of a split of a mask folder, by name: each picture must have its mask and each mask
    its picture."""
    images_dir, masks_dir = split_dir / "images", split_dir / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise UserError(f"{folder} is missing: a split holds images/ and masks/ (<same name>.png)")
    images, masks = _by_name(images_dir, IMAGE_SUFFIXES), _by_name(masks_dir)
    if not_png := [p for p in masks.values() if p.suffix.lower() != ".png"]:
        raise UserError(f"mask {not_png[0]} is not a .png: masks are PNG files (lossless) of class indices")
    if alone := sorted(images.keys() - masks.keys()):
        raise UserError(f"picture {images[alone[0]]} has no mask {masks_dir / alone[0]}.png")
    if alone := sorted(masks.keys() - images.keys()):
        raise UserError(f"mask {masks[alone[0]]} has no picture in {images_dir}")
    return [(name, images[name], masks[name]) for name in sorted(images)]


def _by_name(folder: Path, suffixes: set[str] | None = None) -> dict[str, Path]:
    """The files in `folder` (with one of `suffixes`) by their name without suffix, which pairs masks and pictures."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not _hidden(p.name)):
        if suffixes is not None and path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            raise UserError(f"{found[path.stem]} and {path.name} have the same name: a mask is matched to its picture "
                            f"by name")
        found[path.stem] = path
    return found


def _read_split(items: list[tuple[str, Path, Path]], limit: int | None, classes: int, split: str, where: Path,
                voc_colours: bool = False) -> tuple[MaskedPictures, str]:
    """The first `limit` of the (name, picture, mask) `items` read, and how many that is, for `MaskedSplits.source`."""
    if not items:
        raise UserError(f"no pictures in {where}")
    read = MaskedPictures([], [], [])
    for name, image_path, mask_path in items[:limit]:
        image = read_image(image_path)
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image
        mask = _read_mask(mask_path, classes, voc_colours)
        if image.shape[:2] != mask.shape:
            raise UserError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its picture {image_path} is "
                            f"{image.shape[1]}x{image.shape[0]}")
        read.images.append(image)
        read.masks.append(mask)
        read.names.append(name)
    count = f"{len(read.names):,}" if len(read.names) == len(items) else f"{len(read.names):,} of {len(items):,}"
    return read, f"{count} {split}"


def _read_mask(path: Path, classes: int, voc_colours: bool) -> np.ndarray:
    """A PNG's class indices: a palette ("P") or grey ("L") mask's values; with `voc_colours`, an RGB one's colours
    mapped back through VOC's palette. Values beyond the classes other than IGNORE are refused."""
    if not path.is_file():
        raise UserError(f"mask not found: {path}")
    try:
        with Image.open(path) as picture:
            if picture.format != "PNG":
                raise UserError(f"mask {path} is a {picture.format} file; masks are PNG files (lossless)")
            picture.load()
            if picture.mode in ("P", "L"):
                mask = np.array(picture)  # a palette's indices are the classes, its colours only how they look
            elif voc_colours and picture.mode in ("RGB", "RGBA"):
                mask = _voc_indices(np.asarray(picture.convert("RGB")), path)
            else:
                raise UserError(f"mask {path} is a PNG of mode {picture.mode}; masks are single-channel PNGs (grey or "
                                f"palette) of class indices")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UserError(f"not a readable mask (corrupt or not a PNG): {path}") from None
    beyond = mask[(mask >= classes) & (mask != IGNORE)]
    if beyond.size:
        raise UserError(f"mask {path} holds value {int(beyond.max())}, but the classes are 0-{classes - 1} (and "
                        f"{IGNORE}, not scored)")
    return mask


def _voc_indices(rgb: np.ndarray, path: Path) -> np.ndarray:
    """An RGB mask's class indices: each colour must be a VOC class's, or IGNORE's (the border's (224, 224, 192))."""
    indices = np.array([*range(len(VOC_CLASSES)), IGNORE], np.uint8)
    matches = (rgb[:, :, None, :] == VOC_COLORMAP[indices]).all(axis=-1)  # (H, W, 22): which colour each pixel has
    if not (known := matches.any(axis=-1)).all():
        colour = tuple(int(c) for c in rgb[~known][0])
        raise UserError(f"mask {path} has colour {colour}, which is no VOC class's nor the border's (224, 224, 192)")
    return indices[matches.argmax(axis=-1)]
