"""The safetensors file format, read and written by hand.

A file is an 8-byte little-endian header length N, N bytes of JSON (for each
tensor its dtype, shape and [begin, end) byte range in the data buffer, and
an optional "__metadata__" map of strings to strings), then the data buffer.
Debian ships no Python safetensors package, and the format is small enough
that numpy reads and writes it directly.
"""

import json
import os
import struct
import tempfile

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}

# As the reference implementation: bounds what a hostile file can make us allocate.
MAX_HEADER = 100_000_000


class FormatError(ValueError):
    """A file that is not valid safetensors; the message names the file and the tensor."""


def read(path):
    """Returns (tensors, metadata) of the safetensors file at path.

    tensors maps each name to a numpy array (BF16 is widened to float32);
    metadata is the "__metadata__" map ({} when absent).
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise FormatError(f"{path}: {len(raw)} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER or n > len(raw) - 8:
        raise FormatError(f"{path}: header length {n} exceeds the file ({len(raw)} bytes) or the limit")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{path}: __metadata__ must map strings to strings")
    buf = memoryview(raw)[8 + n:]
    tensors = {}
    for name, e in header.items():
        try:
            dtype, shape, (begin, end) = e["dtype"], [int(d) for d in e["shape"]], e["data_offsets"]
        except (KeyError, TypeError, ValueError) as err:
            raise FormatError(f"{path}: tensor {name!r}: bad entry {e!r} ({err})") from None
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if dtype == "BF16":
            width = 2
        elif dtype in _DTYPES:
            width = _DTYPES[dtype].itemsize
        else:
            raise FormatError(f"{path}: tensor {name!r}: dtype {dtype!r} unknown")
        if not (0 <= begin <= end <= len(buf)) or end - begin != count * width:
            raise FormatError(f"{path}: tensor {name!r}: data_offsets [{begin}, {end}) do not hold "
                              f"{count} {dtype} values in a buffer of {len(buf)} bytes")
        data = bytes(buf[begin:end])
        if dtype == "BF16":
            arr = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data, dtype=_DTYPES[dtype]).copy()
        tensors[name] = arr.reshape(shape)
    return tensors, {str(k): v for k, v in meta.items()}


def write(path, tensors, metadata=None):
    """Writes tensors (name -> numpy array or torch tensor) and metadata
    (str -> str) to path atomically (a temporary file renamed over it).

    Tensors are ordered by decreasing element size, then name, so every
    tensor's data is aligned to its element size; the header is padded
    with spaces to a multiple of 8 bytes.
    """
    arrays = {}
    for name, t in tensors.items():
        if name == "__metadata__":
            raise FormatError("a tensor may not be named __metadata__")
        if hasattr(t, "detach"):
            t = t.detach().cpu().numpy()
        a = np.ascontiguousarray(t)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        key = _NAMES.get(dt)
        if key is None:
            raise FormatError(f"tensor {name!r}: dtype {a.dtype} has no safetensors name")
        arrays[name] = (key, a.astype(_DTYPES[key], copy=False))
    order = sorted(arrays, key=lambda k: (-arrays[k][1].dtype.itemsize, k))
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise FormatError(f"metadata {k!r}: keys and values must be strings")
        header["__metadata__"] = dict(sorted(metadata.items()))
    off = 0
    for name in order:
        dtype, a = arrays[name]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for name in order:
                f.write(arrays[name][1].tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
