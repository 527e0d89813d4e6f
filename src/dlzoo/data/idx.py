"""The IDX format of MNIST and Fashion-MNIST (optionally gzipped), read into numpy with its header checked."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from dlzoo.errors import UserError
from dlzoo.files import written_whole

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    dims = _dimensions(path, raw)
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize  # Python's integers: a corrupt shape's np.prod overflows
    if len(raw) != expected:
        # Named with its header: a wrong count of dimensions in the magic number reads as a nonsensical shape.
        shown = ", ".join(map(str, shape[:6])) + (f", ... ({dims} dimensions)" if dims > 6 else "")
        size = f"{expected:,} bytes" if expected < 1 << 60 else "more bytes than any disk holds"
        raise UserError(f"{path} is truncated or its header is corrupt: magic number {_magic(raw)} and shape "
                        f"({shown}) make {size}, but the file has {len(raw):,}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _dimensions(path: Path, raw: bytes) -> int:
    """The number of dimensions the magic number declares (its bytes: 0, 0, a type code, the dimensions), refused
    when the magic number is not one, rather than read as a shape the file cannot have ("truncated", "shape ()")."""
    if len(raw) < 4:
        raise UserError(f"{path} is not an IDX file: {len(raw)} bytes, too few for its 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file: bad magic number {_magic(raw)} (an IDX file starts with 0x0000, "
                        "then a type code and the number of dimensions)")
    dims = raw[3]
    if dims == 0:
        raise UserError(f"{path} has a bad magic number {_magic(raw)}: it declares 0 dimensions")
    if 4 + 4 * dims > len(raw):
        raise UserError(f"{path} has a bad magic number {_magic(raw)} or is truncated: {dims} dimensions need a "
                        f"{4 + 4 * dims}-byte header, and the file has {len(raw)} bytes")
    return dims


def _magic(raw: bytes) -> str:
    """The magic number as the IDX format writes it: 0x00000803 for three dimensions of unsigned bytes."""
    return "0x" + raw[:4].hex()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write `array` as an IDX file (gzipped when the name ends in .gz), atomically; `read_idx` reads it back."""
    path = Path(path)
    big_endian = array.astype(array.dtype.newbyteorder(">"), copy=False)  # a no-op for one-byte types
    code = {np.dtype(dtype): code for code, dtype in _DTYPES.items()}.get(big_endian.dtype)
    if code is None:
        raise ValueError(f"IDX files cannot hold {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + np.ascontiguousarray(big_endian).tobytes()
    with written_whole(path) as tmp:
        tmp.write_bytes(gzip.compress(raw, compresslevel=1) if path.suffix == ".gz" else raw)
    return path
