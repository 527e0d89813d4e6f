"""The IDX format of MNIST and Fashion-MNIST (optionally gzipped), read into numpy with its header checked."""

from __future__ import annotations

import gzip
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
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise UserError(f"{path} is truncated or corrupt: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


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
