"""A small, torch-free reader for the metadata of GGUF files (versions 2 and 3).

Only the key/value header is read (tensor data is never touched), through a memory map, so a 250 MB model file
costs the same as a 1 MB vocabulary file. Arrays of numbers come back as numpy arrays, arrays of strings as
lists. A truncated or corrupt file raises :class:`GGUFError` with the offset where reading failed.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

MAGIC = b"GGUF"

# GGUF value types -> numpy dtypes (little-endian); 8 = string, 9 = array.
_NUMPY_TYPES = {
    0: np.dtype("<u1"), 1: np.dtype("<i1"), 2: np.dtype("<u2"), 3: np.dtype("<i2"), 4: np.dtype("<u4"),
    5: np.dtype("<i4"), 6: np.dtype("<f4"), 7: np.dtype("?"), 10: np.dtype("<u8"), 11: np.dtype("<i8"),
    12: np.dtype("<f8"),
}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The file is not a readable GGUF (wrong magic, unsupported version, truncated, corrupt)."""


class _Cursor:
    """Sequential reads over a buffer, with bounds checks that turn truncation into GGUFError."""

    def __init__(self, buf, path: Path):
        self.buf = buf
        self.pos = 0
        self.path = path

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError(f"{self.path.name}: truncated or corrupt GGUF (needed {n} bytes at offset {self.pos}, "
                            f"file has {len(self.buf)})")

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        self.need(size)
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def string(self) -> str:
        (n,) = self.unpack("<Q")
        self.need(n)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        # llama.cpp writes vocabularies as UTF-8, but a few byte-level vocabularies hold tokens that are not
        # valid UTF-8 on their own; keep them readable rather than failing the whole file.
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int):
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("<IQ")
            if item_type in _NUMPY_TYPES:
                dtype = _NUMPY_TYPES[item_type]
                self.need(count * dtype.itemsize)
                array = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
                self.pos += count * dtype.itemsize
                return array
            if item_type == _STRING:
                return [self.string() for _ in range(count)]
            return [self.value(item_type) for _ in range(count)]
        if vtype not in _NUMPY_TYPES:
            raise GGUFError(f"{self.path.name}: unknown GGUF value type {vtype} at offset {self.pos}")
        dtype = _NUMPY_TYPES[vtype]
        self.need(dtype.itemsize)
        value = np.frombuffer(self.buf, dtype=dtype, count=1, offset=self.pos)[0].item()
        self.pos += dtype.itemsize
        return value


def read_gguf_metadata(path: str | Path) -> dict:
    """``{key: value}`` of a GGUF file's metadata header.

    Raises:
        GGUFError: not a GGUF file, an unsupported version, or a truncated/corrupt header.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        size = path.stat().st_size
        if size < 24:
            raise GGUFError(f"{path.name}: {size} bytes is too short to be a GGUF file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            cursor = _Cursor(memoryview(mapped), path)
            try:
                magic = bytes(cursor.buf[:4])
                if magic != MAGIC:
                    raise GGUFError(f"{path.name}: not a GGUF file (magic {magic!r})")
                cursor.pos = 4
                (version,) = cursor.unpack("<I")
                if version not in (2, 3):
                    raise GGUFError(f"{path.name}: GGUF version {version} is not supported (2 and 3 are)")
                _n_tensors, n_kv = cursor.unpack("<QQ")
                metadata = {}
                for _ in range(n_kv):
                    key = cursor.string()
                    (vtype,) = cursor.unpack("<I")
                    metadata[key] = cursor.value(vtype)
            finally:
                cursor.buf.release()
    return metadata


def read_gguf_tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of a GGUF file's tensor directory, read after the metadata header.

    Shapes are in GGUF order (the fastest-varying dimension first), so an embedding matrix ``token_embd.weight``
    is ``(hidden size, vocabulary rows)``. No tensor data is read. A vocabulary-only GGUF has no tensors (``{}``).

    Raises:
        GGUFError: not a GGUF file, an unsupported version, or a truncated/corrupt header.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        size = path.stat().st_size
        if size < 24:
            raise GGUFError(f"{path.name}: {size} bytes is too short to be a GGUF file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            cursor = _Cursor(memoryview(mapped), path)
            try:
                if bytes(cursor.buf[:4]) != MAGIC:
                    raise GGUFError(f"{path.name}: not a GGUF file (magic {bytes(cursor.buf[:4])!r})")
                cursor.pos = 4
                (version,) = cursor.unpack("<I")
                if version not in (2, 3):
                    raise GGUFError(f"{path.name}: GGUF version {version} is not supported (2 and 3 are)")
                n_tensors, n_kv = cursor.unpack("<QQ")
                for _ in range(n_kv):  # skip the metadata (values are parsed and dropped)
                    cursor.string()
                    (vtype,) = cursor.unpack("<I")
                    cursor.value(vtype)
                shapes = {}
                for _ in range(n_tensors):
                    name = cursor.string()
                    (n_dims,) = cursor.unpack("<I")
                    if n_dims > 8:
                        raise GGUFError(f"{path.name}: tensor {name!r} claims {n_dims} dimensions (corrupt header)")
                    dims = cursor.unpack(f"<{n_dims}Q") if n_dims else ()
                    cursor.unpack("<IQ")  # type and data offset
                    shapes[name] = tuple(int(d) for d in dims)
            finally:
                cursor.buf.release()
    return shapes
