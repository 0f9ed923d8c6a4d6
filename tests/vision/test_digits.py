"""The generated digits: shapes and ranges, balance, determinism and independence of the
splits, caching, the glyphs themselves, and that the classes are learnable yet varied."""
import numpy as np
import pytest

from compare.data import digits as D
from compare.data.digits import digits, generate


@pytest.fixture(scope="module")
def small():
    return digits(300, 50, 100, seed=0)


def test_shapes_dtypes_and_range(small):
    for x, y, n in ((small.x_train, small.y_train, 300), (small.x_val, small.y_val, 50),
                    (small.x_test, small.y_test, 100)):
        assert x.shape == (n, 1, 28, 28) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert x.min() >= 0.0 and x.max() <= 1.0
        # MNIST-like: a dark background, bright strokes (MNIST's mean pixel is 0.13)
        assert 0.08 < x.mean() < 0.25
        assert np.median(x) < 0.1
        assert (x.reshape(n, -1).max(axis=1) > 0.6).all()   # every image has ink
    assert small.train[0] is small.x_train and small.test[1] is small.y_test


def test_classes_are_balanced(small):
    np.testing.assert_array_equal(np.bincount(small.y_train, minlength=10), [30] * 10)
    counts = np.bincount(small.y_val, minlength=10)
    assert counts.sum() == 50 and counts.min() == counts.max() == 5


def test_deterministic_and_seeded():
    a = generate(40, np.random.default_rng(7))
    b = generate(40, np.random.default_rng(7))
    c = generate(40, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert np.abs(a[0] - c[0]).max() > 0.5


def test_splits_are_independent_streams_and_cached():
    one = digits(100, 20, 30, seed=3)
    more = digits(200, 20, 30, seed=3)
    np.testing.assert_array_equal(one.x_test, more.x_test)   # more training data: same test
    np.testing.assert_array_equal(one.y_val, more.y_val)
    assert not np.array_equal(one.x_train[:20], one.x_val)   # train and val differ
    assert digits(100, 20, 30, seed=3) is one                # lru_cache
    with pytest.raises(ValueError):
        one.x_train[0, 0, 0, 0] = 1.0                        # cached arrays are read-only


def test_every_image_is_different_and_digits_vary_within_a_class(small):
    flat = small.x_train.reshape(300, -1)
    assert len(np.unique(flat, axis=0)) == 300
    for digit in (1, 7):
        images = flat[small.y_train == digit]
        # pixelwise spread across one class: fonts, shifts and rotations move the strokes
        assert images.std(axis=0).max() > 0.3


def test_learnable_but_not_trivial():
    """Nearest class mean (a linear rule) gets most digits right but far from all: the classes
    carry the label, and the variety leaves work for a CNN (which reaches ~97 %, see
    ``python -m compare.data.digits --cnn``)."""
    data = digits(2000, 0, 500, seed=0)
    x = data.x_train.reshape(2000, -1).astype(np.float64)
    x_test = data.x_test.reshape(500, -1).astype(np.float64)
    means = np.stack([x[data.y_train == k].mean(axis=0) for k in range(10)])   # (10, 784)
    distance = (x_test ** 2).sum(1)[:, None] - 2 * x_test @ means.T + (means ** 2).sum(1)
    accuracy = (distance.argmin(axis=1) == data.y_test).mean()
    assert 0.45 < accuracy < 0.85


def test_glyphs_are_rendered_once_with_every_variant_inked_and_centred():
    images, names = D.glyphs()
    assert images.shape == (len(D.FONTS) * len(D.STROKES), 10, D.CANVAS, D.CANVAS)
    assert len(names) == images.shape[0] and names[0] == "DejaVuSans+0px"
    assert D.glyphs()[0] is images
    assert (images.max(axis=(-2, -1)) > 0.9).all()           # every glyph has full ink
    assert images[..., 0, :].max() == 0 and images[..., :, -1].max() == 0  # black border
    centres, heights = D._glyph_geometry()
    assert (np.abs(centres - D.CANVAS / 2) < D.CANVAS / 5).all()
    # no glyph is clipped by its cell: the 4 px next to every edge hold no ink
    for edge in (images[..., :4, :], images[..., -4:, :], images[..., :4], images[..., -4:]):
        assert edge.max() < 0.02
    assert 30 <= heights.min() and heights.max() <= 60
    # thicker strokes, more ink: outline 3 px vs none, same font and digit
    ink = images.sum(axis=(-2, -1)).reshape(len(D.FONTS), len(D.STROKES), 10)
    assert (ink[:, 2] > 1.2 * ink[:, 0]).all()


def test_size_parameter_and_class_grid():
    data = digits(20, 0, 0, seed=1, size=16)
    assert data.x_train.shape == (20, 1, 16, 16)
    grid = D.class_grid(data, per_class=2)
    assert grid.shape == (10 * 16, 2 * 16)
    first_one = data.x_train[np.flatnonzero(data.y_train == 1)[0], 0]
    np.testing.assert_array_equal(grid[16:32, :16], first_one)   # row 1 is the digit 1
    with pytest.raises(ValueError, match="need 3 training images of every digit"):
        D.class_grid(data, per_class=3)
    with pytest.raises(ValueError):
        generate(-1, np.random.default_rng(0))
