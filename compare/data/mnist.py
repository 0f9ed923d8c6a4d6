r"""Read the real MNIST from IDX files you already have; nothing is ever downloaded.

Give a directory holding the four classic files (each may also be gzipped, ``.gz``):

    train-images-idx3-ubyte   train-labels-idx1-ubyte   (60000 images, 60000 labels)
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte    (10000 images, 10000 labels)

(the dotted spelling ``train-images.idx3-ubyte`` of some mirrors is accepted too).

The IDX format (big-endian throughout):

    bytes 0-1   0x00 0x00
    byte  2     the element type: 0x08 unsigned byte (the only one MNIST uses), 0x09 signed
                byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     the number of dimensions d (3 for images, 1 for labels)
    4 d bytes   each dimension's size, an unsigned 32-bit integer
    the rest    the elements, row-major

So an images file starts with the magic number 0x00000803 (2051) followed by N, 28, 28, and a
labels file with 0x00000801 (2049) followed by N.

    data = load_mnist("~/data/mnist", n_val=5000)   # Splits, as compare.data.digits returns
    data.x_train.shape                              # (55000, 1, 28, 28) float32 in [0, 1]

Every problem is one clear ``MNISTError`` (a ``ValueError``) naming the file: a missing file
(with the names looked for), a bad magic number, a header whose sizes do not match the file's
length, labels outside 0-9, or image and label counts that differ.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from compare.data.digits import Splits

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
# IDX element type code -> big-endian NumPy dtype
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class MNISTError(ValueError):
    """A missing or malformed MNIST file; the message names the file and what was expected."""


# --- the IDX format ----------------------------------------------------------------------------
def read_idx(path: str | Path, expect_magic: int | None = None) -> np.ndarray:
    """An IDX file (plain or gzipped) as an array of its shape and native-endian dtype."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise MNISTError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise MNISTError(f"{path}: cannot read it ({error})") from None
    if len(raw) < 4:
        raise MNISTError(f"{path}: {len(raw)} bytes, too short for an IDX header (4 bytes)")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or type_code not in IDX_TYPES \
            or (expect_magic is not None and magic != expect_magic):
        wanted = f"0x{expect_magic:08X}" if expect_magic is not None else \
            "0x0000TTDD (TT an IDX type code, DD the number of dimensions)"
        raise MNISTError(f"{path}: bad magic number 0x{magic:08X}, expected {wanted} -- not an "
                         "IDX file of this kind (images 0x00000803, labels 0x00000801)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MNISTError(f"{path}: header announces {ndim} dimensions ({header} bytes), but the "
                         f"file has only {len(raw)} bytes")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise MNISTError(f"{path}: size mismatch: the header says shape {shape} of "
                         f"{dtype.name} ({expected} bytes with the header), the file has "
                         f"{len(raw)} bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in .gz): for tests and for
    making small subsets."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    key = array.dtype.newbyteorder("=")
    if key not in codes:
        raise MNISTError(f"{path}: IDX has no element type for {array.dtype}; use one of "
                         + ", ".join(d.name for d in codes))
    header = bytes([0, 0, codes[key], array.ndim]) \
        + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(IDX_TYPES[codes[key]]).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


# --- the MNIST files -------------------------------------------------------------------------
def find_file(directory: str | Path, name: str) -> Path:
    """``name``, ``name.gz``, or the dotted spelling (``train-images.idx3-ubyte``) in directory."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise MNISTError(f"{directory}: no such directory (expected a folder holding the MNIST "
                         "IDX files, e.g. train-images-idx3-ubyte[.gz])")
    dotted = name.replace("-idx", ".idx")              # train-images.idx3-ubyte
    candidates = [name, f"{name}.gz", dotted, f"{dotted}.gz"]
    for candidate in candidates:
        if (directory / candidate).is_file():
            return directory / candidate
    raise MNISTError(f"{directory}: missing MNIST file {name} (looked for "
                     + ", ".join(candidates) + ")")


def read_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``train`` or ``test`` split: images (N, 1, 28, 28) float32 in [0, 1], labels (N,)
    int64."""
    if split not in FILES:
        raise MNISTError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
    images_path, labels_path = (find_file(directory, name) for name in FILES[split])
    images = read_idx(images_path, IMAGES_MAGIC)                        # (N, H, W) uint8
    labels = read_idx(labels_path, LABELS_MAGIC)                        # (N,) uint8
    if len(images) != len(labels):
        raise MNISTError(f"{images_path.name} holds {len(images)} images but "
                         f"{labels_path.name} {len(labels)} labels: the counts must match")
    if labels.size and labels.max() > 9:
        raise MNISTError(f"{labels_path}: label {int(labels.max())} outside 0-9")
    x = (images.astype(np.float32) / 255.0)[:, None]                    # (N, 1, H, W)
    return x, labels.astype(np.int64)


def load_mnist(directory: str | Path, n_val: int = 5000) -> Splits:
    """MNIST as ``Splits``: the last ``n_val`` training images become the validation split
    (as is customary), the t10k files the test split."""
    x_train, y_train = read_split(directory, "train")
    x_test, y_test = read_split(directory, "test")
    if not 0 <= n_val < len(y_train):
        raise MNISTError(f"n_val must be in [0, {len(y_train)}) for {len(y_train)} training "
                         f"images, got {n_val}")
    cut = len(y_train) - n_val
    return Splits(x_train[:cut], y_train[:cut], x_train[cut:], y_train[cut:], x_test, y_test)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m compare.data.mnist DIR  (a folder with the IDX files)")
    try:
        data = load_mnist(sys.argv[1])
    except MNISTError as error:
        raise SystemExit(f"error: {error}") from None
    for name in ("train", "val", "test"):
        x, y = getattr(data, name)
        print(f"{name:5s} {x.shape} {x.dtype}, labels {np.bincount(y, minlength=10).tolist()}")
