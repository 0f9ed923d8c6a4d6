"""The MNIST IDX loader, on small IDX files written here byte by byte: the format, gzip, the
alternative file names, the splits, and one clear error for each way a file can be wrong."""
import gzip
import struct

import numpy as np
import pytest

from compare.data.mnist import MNISTError, load_mnist, read_idx, read_split, write_idx


def _images_bytes(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes()


def _labels_bytes(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def _write_mnist(directory, n_train=12, n_test=5, gz=False, dotted=False):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        data[split] = images, labels
        for kind, raw in (("images-idx3-ubyte", _images_bytes(images)),
                          ("labels-idx1-ubyte", _labels_bytes(labels))):
            name = f"{split}-{kind}".replace("-idx", ".idx") if dotted else f"{split}-{kind}"
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (directory / name).write_bytes(raw)
    return data


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True)])
def test_loads_the_four_files_into_splits(tmp_path, gz, dotted):
    written = _write_mnist(tmp_path, gz=gz, dotted=dotted)
    data = load_mnist(tmp_path, n_val=3)
    images, labels = written["train"]
    assert data.x_train.shape == (9, 1, 28, 28) and data.x_train.dtype == np.float32
    assert data.x_val.shape == (3, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    assert data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.x_train[:, 0], images[:9] / np.float32(255.0))
    np.testing.assert_array_equal(data.x_val[:, 0], images[9:] / np.float32(255.0))
    np.testing.assert_array_equal(data.y_val, labels[9:])
    np.testing.assert_array_equal(data.y_test, written["t10k"][1])
    assert data.x_train.max() <= 1.0 and data.x_train.min() >= 0.0


def test_read_idx_reads_the_header_by_hand(tmp_path):
    """Known bytes: type 0x0B (int16), 2 dimensions (2, 3), big-endian values."""
    values = np.array([[1, -2, 3], [300, 0, -32768]], dtype=">i2")
    raw = bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 3) + values.tobytes()
    (tmp_path / "x.idx").write_bytes(raw)
    array = read_idx(tmp_path / "x.idx")
    assert array.shape == (2, 3) and array.dtype == np.int16 and array.dtype.isnative
    np.testing.assert_array_equal(array, [[1, -2, 3], [300, 0, -32768]])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_write_idx_round_trips(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        back = read_idx(write_idx(tmp_path / name, array))
        assert back.dtype == array.dtype and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
    assert (tmp_path / "a.idx").read_bytes()[:4] == bytes([0, 0, {
        np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
        np.float64: 0x0E}[dtype], 3])
    with pytest.raises(MNISTError, match="IDX has no element type for int64"):
        write_idx(tmp_path / "b.idx", np.zeros(3, dtype=np.int64))


def test_missing_file_names_it_and_the_names_looked_for(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MNISTError) as error:
        load_mnist(tmp_path)
    message = str(error.value)
    assert "missing MNIST file t10k-labels-idx1-ubyte" in message
    assert "t10k-labels-idx1-ubyte.gz" in message and "t10k-labels.idx1-ubyte" in message
    assert "\n" not in message


def test_missing_directory(tmp_path):
    with pytest.raises(MNISTError, match="no such directory"):
        load_mnist(tmp_path / "nowhere")


def test_bad_magic_number(tmp_path):
    _write_mnist(tmp_path)
    # a labels file where the images file should be: magic 0x801, not 0x803
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_labels_bytes(np.zeros(12, np.uint8)))
    with pytest.raises(MNISTError, match=r"bad magic number 0x00000801, expected 0x00000803"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x1f\x8b\x08\x00 not idx at all")
    with pytest.raises(MNISTError, match="bad magic number 0x1F8B0800"):  # a gzip not named .gz
        read_split(tmp_path, "train")


def test_size_mismatch_truncated_and_too_long(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(MNISTError, match=r"size mismatch: the header says shape \(12, 28, 28\)"):
        load_mnist(tmp_path)
    path.write_bytes(raw + b"\x00")
    with pytest.raises(MNISTError, match="size mismatch"):
        load_mnist(tmp_path)
    path.write_bytes(raw[:2])
    with pytest.raises(MNISTError, match="2 bytes, too short for an IDX header"):
        load_mnist(tmp_path)
    path.write_bytes(raw[:10])
    with pytest.raises(MNISTError, match="announces 3 dimensions"):
        load_mnist(tmp_path)


def test_count_mismatch_and_bad_labels(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_labels_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(MNISTError, match="holds 12 images but train-labels-idx1-ubyte 11"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_labels_bytes(np.full(12, 10, np.uint8)))
    with pytest.raises(MNISTError, match="label 10 outside 0-9"):
        load_mnist(tmp_path)


def test_corrupt_gzip_and_bad_arguments(tmp_path):
    _write_mnist(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte.gz: cannot read it"):
        read_split(tmp_path, "test")
    with pytest.raises(MNISTError, match="unknown MNIST split 'val'"):
        read_split(tmp_path, "val")
    _write_mnist(tmp_path)  # plain files take precedence over the corrupt .gz
    with pytest.raises(MNISTError, match=r"n_val must be in \[0, 12\)"):
        load_mnist(tmp_path, n_val=12)
    assert isinstance(MNISTError("x"), ValueError)
