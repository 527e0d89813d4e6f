"""Semantic-segmentation data from files (dlzoo.data.masks): tiny Pascal VOC 2012 layouts and mask folders built
here, pictures of 30x20 pixels with masks drawn as VOC draws them (palette PNGs, a 255 border around objects)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlzoo.data import masks
from dlzoo.data.masks import IGNORE, VOC_CLASSES, VOC_COLORMAP, read_mask_folder, read_voc
from dlzoo.errors import UserError

HEIGHT, WIDTH = 20, 30


def drawn_mask(seed: int, classes: int) -> np.ndarray:
    """A background with one rectangle of a class, and a border of IGNORE around it, as VOC's masks have."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    top, left = rng.integers(2, 8), rng.integers(2, 14)
    mask[top - 1: top + 9, left - 1: left + 11] = IGNORE
    mask[top: top + 8, left: left + 10] = rng.integers(1, classes)
    return mask


def picture(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_palette_png(path: Path, mask: np.ndarray) -> None:
    image = Image.fromarray(mask)
    image.putpalette(VOC_COLORMAP.flatten().tolist())  # an "L" image given a palette is a "P" one
    image.save(path)


def make_voc(folder: Path, train: int = 3, val: int = 2) -> dict[str, np.ndarray]:
    """folder/VOCdevkit/VOC2012 with `train` and `val` pictures (JPEG) and their masks; the masks by id."""
    root = folder / "VOCdevkit" / "VOC2012"
    for part in masks.VOC_PARTS:
        (root / part).mkdir(parents=True)
    written = {}
    ids = {"train": [f"2007_{i:06d}" for i in range(train)], "val": [f"2008_{i:06d}" for i in range(val)]}
    for split, names in ids.items():
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
        for index, name in enumerate(names):
            Image.fromarray(picture(index)).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
            written[name] = drawn_mask(index + 10 * (split == "val"), len(VOC_CLASSES))
            save_palette_png(root / "SegmentationClass" / f"{name}.png", written[name])
    return written


def make_mask_folder(root: Path, classes: tuple[str, ...] = ("background", "cat", "dog"), test: str = "test",
                     counts: tuple[int, int] = (3, 2)) -> dict[str, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    written = {}
    for split, count in zip(("train", test), counts, strict=True):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for index in range(count):
            name = f"{split}-{index}"
            image = picture(index)
            if index == 0:  # a grey picture, turned RGB by the reader
                image = image[..., 0]
            Image.fromarray(image).save(root / split / "images" / f"{name}{'.jpg' if index % 2 else '.png'}")
            written[name] = drawn_mask(index, len(classes))
            Image.fromarray(written[name]).save(root / split / "masks" / f"{name}.png")  # grey, class indices
    return written


def refused(call, *fragments: str) -> str:
    with pytest.raises(UserError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_voc_palette_and_classes():
    assert VOC_COLORMAP.shape == (256, 3) and VOC_COLORMAP.dtype == np.uint8
    assert VOC_COLORMAP[:8].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                                         [128, 0, 128], [0, 128, 128], [128, 128, 128]]
    assert VOC_COLORMAP[15].tolist() == [192, 128, 128]  # person
    assert VOC_COLORMAP[IGNORE].tolist() == [224, 224, 192]  # the border
    assert len({tuple(c) for c in VOC_COLORMAP.tolist()}) == 256
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[:2] == ["background", "aeroplane"]
    assert VOC_CLASSES[15] == "person" and VOC_CLASSES[-1] == "tvmonitor"


@pytest.mark.parametrize("given", [".", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_splits_are_read_from_any_of_its_folders(tmp_path, given):
    written = make_voc(tmp_path)
    splits = read_voc(str(tmp_path / given))
    assert splits.classes == VOC_CLASSES
    assert splits.train.names == ["2007_000000", "2007_000001", "2007_000002"]
    assert splits.test.names == ["2008_000000", "2008_000001"]
    for split in (splits.train, splits.test):
        for image, mask, name in zip(split.images, split.masks, split.names, strict=True):
            assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
            assert mask.dtype == np.uint8 and np.array_equal(mask, written[name])
            assert IGNORE in mask  # the border is kept, not scored
    root = tmp_path / "VOCdevkit" / "VOC2012"
    assert splits.source == f"voc2012 at {root} (3 train / 2 val)"
    limited = read_voc(str(tmp_path), limit=1)
    assert limited.train.names == ["2007_000000"] and limited.test.names == ["2008_000000"]
    assert limited.source.endswith("(1 of 3 train / 1 of 2 val)")


def test_an_rgb_voc_mask_is_mapped_through_the_palette(tmp_path):
    written = make_voc(tmp_path, train=1, val=1)
    path = tmp_path / "VOCdevkit/VOC2012/SegmentationClass/2007_000000.png"
    Image.fromarray(VOC_COLORMAP[written["2007_000000"]]).save(path)
    assert Image.open(path).mode == "RGB"
    assert np.array_equal(read_voc(str(tmp_path)).train.masks[0], written["2007_000000"])
    painted = VOC_COLORMAP[written["2007_000000"]]
    painted[0, 0] = (1, 2, 3)
    Image.fromarray(painted).save(path)
    refused(lambda: read_voc(str(tmp_path)), str(path), "(1, 2, 3)")


def damage_voc(root: Path, damage: str) -> str:
    """Damage a VOC layout made by make_voc; what the refusal must name."""
    voc = root / "VOCdevkit/VOC2012"
    mask = voc / "SegmentationClass/2007_000001.png"
    if damage == "no val list":
        (voc / "ImageSets/Segmentation/val.txt").unlink()
        return str(voc / "ImageSets/Segmentation/val.txt")
    if damage == "empty train list":
        (voc / "ImageSets/Segmentation/train.txt").write_text("\n\n")
        return f"no pictures in {voc / 'ImageSets/Segmentation/train.txt'}"
    if damage == "no masks folder":
        for path in (voc / "SegmentationClass").iterdir():
            path.unlink()
        (voc / "SegmentationClass").rmdir()
        return f"{voc} lacks SegmentationClass/"
    if damage == "missing mask":
        mask.unlink()
        return str(mask)
    if damage == "missing picture":
        (voc / "JPEGImages/2007_000001.jpg").unlink()
        return str(voc / "JPEGImages/2007_000001.jpg")
    if damage == "corrupt mask":
        mask.write_bytes(mask.read_bytes()[:60])
        return str(mask)
    if damage == "wrong size":
        save_palette_png(mask, np.zeros((HEIGHT, WIDTH + 1), np.uint8))
        return f"{mask} is 31x20 but its picture {voc / 'JPEGImages/2007_000001.jpg'} is 30x20"
    if damage == "value beyond the classes":
        save_palette_png(mask, np.full((HEIGHT, WIDTH), 30, np.uint8))
        return f"{mask} holds value 30"
    raise AssertionError(damage)


@pytest.mark.parametrize("damage", ["no val list", "empty train list", "no masks folder", "missing mask",
                                    "missing picture", "corrupt mask", "wrong size", "value beyond the classes"])
def test_a_damaged_voc_is_refused_naming_the_file(tmp_path, damage):
    make_voc(tmp_path)
    named = damage_voc(tmp_path, damage)
    refused(lambda: read_voc(str(tmp_path)), named)


def test_a_folder_without_voc_is_refused(tmp_path):
    refused(lambda: read_voc(str(tmp_path / "nowhere")), "nowhere is not a folder")
    refused(lambda: read_voc(str(tmp_path)), f"no VOC 2012 in {tmp_path}", "VOCdevkit/VOC2012/")
    make_voc(tmp_path)
    refused(lambda: read_voc(str(tmp_path), limit=0), "at least 1")


def test_voc_is_found_in_dlzoo_data_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLZOO_DATA", raising=False)
    assert masks.VOC.where() is None
    make_voc(tmp_path / "cache" / "voc2012")
    assert masks.VOC.where() == str(tmp_path / "cache/voc2012/VOCdevkit/VOC2012")
    make_voc(tmp_path / "data" / "voc2012" / "VOCdevkit" / "..")  # any nesting: VOCdevkit/ given directly here
    monkeypatch.setenv("DLZOO_DATA", str(tmp_path / "data"))
    assert masks.VOC.where() == str(tmp_path / "data/voc2012/VOCdevkit/VOC2012")
    assert read_voc(None).source.startswith(f"voc2012 at {tmp_path / 'data'}")


def voc_archive(folder: Path, extra: tarfile.TarInfo | None = None) -> bytes:
    """The official tar's layout (VOCdevkit/VOC2012/...) of a tiny VOC, as bytes; `extra`: one more member."""
    make_voc(folder)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder / "VOCdevkit", arcname="VOCdevkit")
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size))
    return buffer.getvalue()


def serve(monkeypatch, data: bytes) -> list[str]:
    """urllib's urlopen answering every URL with `data`, and the VOC checksum made `data`'s; the URLs asked for."""
    asked = []

    def urlopen(request, timeout=None):
        asked.append(request.full_url)
        return io.BytesIO(data)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(masks, "VOC_TAR_MD5", hashlib.md5(data).hexdigest())
    return asked


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLZOO_DATA", raising=False)
    return tmp_path / "cache"


def test_voc_is_downloaded_checked_and_unpacked_whole_into_the_cache(tmp_path, monkeypatch, empty_cache):
    asked = serve(monkeypatch, voc_archive(tmp_path / "made"))
    seen_while_unpacking = []
    extract = tarfile.TarFile.extractall

    def watched(self, *args, **kwargs):
        extract(self, *args, **kwargs)
        seen_while_unpacking.append((masks.VOC.where(), sorted(p.name for p in empty_cache.iterdir())))

    monkeypatch.setattr(tarfile.TarFile, "extractall", watched)
    splits = read_voc(None)
    assert asked == [masks.VOC_URL]
    # Everything unpacked, but in a hidden folder: nothing looked like a VOC 2012 until the rename.
    assert seen_while_unpacking[0][0] is None
    assert seen_while_unpacking[0][1][0].startswith(".voc2012.") and "voc2012" not in seen_while_unpacking[0][1]
    assert [p.name for p in empty_cache.iterdir()] == ["voc2012"]  # the archive removed, no hidden folder left
    assert splits.source == f"voc2012 at {empty_cache / 'voc2012/VOCdevkit/VOC2012'} (3 train / 2 val)"
    assert masks.VOC.where() == str(empty_cache / "voc2012/VOCdevkit/VOC2012")
    read_voc(None)
    assert asked == [masks.VOC_URL]  # found in the cache, not downloaded again


def test_a_failed_voc_download_leaves_nothing(monkeypatch, empty_cache):
    def unreachable(request, timeout=None):
        raise urllib.error.URLError("Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    refused(lambda: read_voc(None), "could not download", "Network is unreachable", "$DLZOO_DATA/voc2012")
    assert not empty_cache.exists()
    serve(monkeypatch, b"not the archive")
    monkeypatch.setattr(masks, "VOC_TAR_MD5", "0" * 32)
    refused(lambda: read_voc(None), "checksum mismatch")
    assert not empty_cache.exists()


@pytest.mark.parametrize("old_python", [False, True])
def test_an_archive_reaching_out_of_its_folder_is_refused(tmp_path, monkeypatch, empty_cache, old_python):
    if old_python:  # Pythons without tarfile's "data" filter
        monkeypatch.delattr(tarfile, "data_filter")
    evil = tarfile.TarInfo("VOCdevkit/../../evil.txt")
    evil.size = 3
    serve(monkeypatch, voc_archive(tmp_path / "made", evil))
    refused(lambda: read_voc(None), "cannot unpack", "VOCtrainval_11-May-2012.tar")
    assert not (tmp_path / "evil.txt").exists() and not (empty_cache / "evil.txt").exists()
    assert [p.name for p in empty_cache.iterdir()] == ["VOCtrainval_11-May-2012.tar"]  # kept, checked, for a retry


def test_an_archive_without_voc_is_refused(tmp_path, monkeypatch, empty_cache):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        (tmp_path / "readme.txt").write_text("hello")
        tar.add(tmp_path / "readme.txt", arcname="readme.txt")
    serve(monkeypatch, buffer.getvalue())
    refused(lambda: read_voc(None), "holds no VOCdevkit/VOC2012/")
    assert masks.VOC.where() is None and not (empty_cache / "voc2012").exists()


def test_a_mask_folder_is_read(tmp_path):
    written = make_mask_folder(tmp_path / "set", classes=("background", "cat", "dog", "bird"), test="val")
    splits = read_mask_folder(str(tmp_path / "set"))
    assert splits.classes == ["background", "cat", "dog", "bird"]
    assert splits.train.names == ["train-0", "train-1", "train-2"] and splits.test.names == ["val-0", "val-1"]
    for split in (splits.train, splits.test):
        for image, mask, name in zip(split.images, split.masks, split.names, strict=True):
            assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
            assert mask.dtype == np.uint8 and np.array_equal(mask, written[name]) and IGNORE in mask
    grey = splits.train.images[0]  # train-0 was saved grey
    assert np.array_equal(grey[..., 0], grey[..., 2]) and np.array_equal(grey[..., 0], picture(0)[..., 0])
    assert splits.source == f"mask-folder at {tmp_path / 'set'} (3 train / 2 val, 4 classes)"
    limited = read_mask_folder(str(tmp_path / "set"), limit=2)
    assert limited.train.names == ["train-0", "train-1"] and limited.test.names == ["val-0", "val-1"]
    assert "(2 of 3 train / 2 val, 4 classes)" in limited.source


def test_palette_masks_are_read_as_their_indices(tmp_path):
    written = make_mask_folder(tmp_path)
    save_palette_png(tmp_path / "train/masks/train-1.png", written["train-1"])
    assert np.array_equal(read_mask_folder(str(tmp_path)).train.masks[1], written["train-1"])


def damage_folder(root: Path, damage: str) -> str:
    """Damage a folder made by make_mask_folder; what the refusal must name."""
    mask = root / "train/masks/train-1.png"
    if damage == "no classes.txt":
        (root / "classes.txt").unlink()
        return str(root / "classes.txt")
    if damage == "classes not UTF-8":
        (root / "classes.txt").write_bytes("fond\nchat\nchien ménager\n".encode("latin-1"))
        return f"{root / 'classes.txt'} is not UTF-8"
    if damage == "empty class line":
        (root / "classes.txt").write_text("background\n\ncat\n")
        return "line 2 is empty"
    if damage == "one class":
        (root / "classes.txt").write_text("background\n")
        return "names 1 class(es): a segmentation set has 2 to 255"
    if damage == "value beyond the classes":
        Image.fromarray(np.full((HEIGHT, WIDTH), 3, np.uint8)).save(mask)
        return f"{mask} holds value 3"
    if damage == "picture without mask":
        mask.unlink()
        return f"picture {root / 'train/images/train-1.jpg'} has no mask {mask}"
    if damage == "mask without picture":
        (root / "train/images/train-1.jpg").unlink()
        return f"mask {mask} has no picture"
    if damage == "wrong size":
        Image.fromarray(np.zeros((HEIGHT + 2, WIDTH), np.uint8)).save(mask)
        return "is 30x22 but its picture"
    if damage == "rgb mask":
        Image.fromarray(VOC_COLORMAP[np.zeros((HEIGHT, WIDTH), np.uint8)]).save(mask)
        return f"mask {mask} is a PNG of mode RGB"
    if damage == "jpeg mask":
        mask.unlink()
        Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(mask.with_suffix(".jpg"))
        return f"{mask.with_suffix('.jpg')} is not a .png"
    if damage == "jpeg named png":
        Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(mask, format="JPEG")
        return f"{mask} is a JPEG file"
    if damage == "corrupt mask":
        mask.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        return str(mask)
    if damage == "two pictures of one name":
        Image.fromarray(picture(9)).save(root / "train/images/train-1.png")
        return f"{root / 'train/images/train-1.jpg'} and train-1.png have the same name"
    if damage == "class named twice":
        (root / "classes.txt").write_text("background\ncat\ncat\n")
        return "names class 'cat' twice"
    if damage == "no test split":
        for path in sorted((root / "test").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (root / "test").rmdir()
        return "needs a train/ and a test/ (or val/) folder"
    if damage == "no masks folder":
        for path in (root / "test/masks").iterdir():
            path.unlink()
        (root / "test/masks").rmdir()
        return f"{root / 'test/masks'} is missing"
    if damage == "empty split":
        for path in [*(root / "test/masks").iterdir(), *(root / "test/images").iterdir()]:
            path.unlink()
        return f"no pictures in {root / 'test'}"
    raise AssertionError(damage)


@pytest.mark.parametrize("damage", ["no classes.txt", "classes not UTF-8", "empty class line", "one class",
                                    "value beyond the classes", "picture without mask", "mask without picture",
                                    "wrong size", "rgb mask", "jpeg mask", "jpeg named png", "corrupt mask",
                                    "two pictures of one name", "class named twice",
                                    "no test split", "no masks folder", "empty split"])
def test_a_damaged_mask_folder_is_refused_naming_the_file(tmp_path, damage):
    make_mask_folder(tmp_path)
    named = damage_folder(tmp_path, damage)
    refused(lambda: read_mask_folder(str(tmp_path)), named)


def test_a_mask_folder_needs_a_path():
    refused(lambda: read_mask_folder(None), "needs data.path", "classes.txt")
    refused(lambda: read_mask_folder("/nonexistent/masks"), "/nonexistent/masks is not a folder")


def test_dlzoo_data_lists_the_segmentation_sources(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLZOO_DATA", raising=False)
    listed = cli("data")
    assert listed.code == 0
    assert "voc2012\n  Pascal VOC 2012 segmentation" in listed.out and "mask-folder\n  your own" in listed.out
    assert f"missing: put VOCdevkit/ (from VOCtrainval_11-May-2012.tar) in $DLZOO_DATA/voc2012/ or " \
           f"{tmp_path / 'cache/voc2012'}/" in listed.out
    make_voc(tmp_path / "cache" / "voc2012")
    assert f"found: {tmp_path / 'cache/voc2012/VOCdevkit/VOC2012'}" in cli("data").out
    shown = cli("data", "show", "voc2012", "--out", str(tmp_path / "v.png"))  # found in the cache, drawn
    assert shown.code == 0 and (tmp_path / "v.png").is_file(), shown.err
