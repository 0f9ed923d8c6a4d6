r"""An offline, MNIST-like digits data set, generated on the fly: nothing is downloaded.

How an image is made
--------------------
1. **Glyphs, rendered once.** Each digit 0-9 is drawn with matplotlib (Agg) in 13 of the fonts
   matplotlib ships (DejaVu Sans / Serif / Mono, STIX, Computer Modern; upright, bold, italic),
   each with 3 stroke widths (an outline of 0, 1.5 or 3 px around the glyph): 390 white-on-black
   glyphs on a 96x96 canvas, rendered in one figure and slightly blurred (so that resampling
   them at a coarser grid does not alias). The fonts come from matplotlib's own data folder,
   never from the system, so every machine draws the same glyphs.
2. **A random affine map per image**, applied with vectorized bilinear resampling. MNIST scales
   each digit into a 20x20 box and centres it on its centre of mass; here each glyph's height h
   and centre of mass c are measured once, and an output pixel p (in a size x size image with
   centre o) samples the glyph at

       src = c + A^{-1} (p - o - t),     A = (20/28 · size / h) · s · R(θ) · S(k) · diag(a, 1)

   with rotation θ ~ U(±15°), shear k ~ U(±0.25), scale s ~ U(0.8, 1.1), aspect a ~ U(0.8, 1.15)
   and shift t ~ U(±2.5 px) per axis (at 28 px; shifts scale with ``size``).
3. **Contrast and noise:** x = clip(γ · x + N(0, σ²), 0, 1) with γ ~ U(0.7, 1) and
   σ ~ U(0, 0.12) per image.

The classes stay learnable (a small CNN reaches well over 90 % test accuracy) yet every image
differs: fonts, weight, slant, size, rotation, position and noise all vary.

Splits and determinism
----------------------
``digits(n_train, n_val, n_test, seed)`` returns ``Splits``: images (N, 1, size, size) float32 in
[0, 1] and labels (N,) int64, classes balanced (each split holds N // 10 or N // 10 + 1 of each
digit, shuffled). Each split draws from its own stream (``SeedSequence(seed).spawn(3)``), so the
test set does not change when you ask for more training images. Results are cached in memory
(``functools.lru_cache`` on the arguments); the cached arrays are read-only -- copy to edit.

    data = digits(6000, 1000, 1000, seed=0)
    data.x_train.shape, data.y_train[:5]        # (6000, 1, 28, 28), e.g. [3 7 0 9 1]
    x, y = data.test                            # (images, labels) pairs: .train, .val, .test
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CANVAS = 96        # px: the high-resolution square each glyph is rendered into
FONT_SIZE = 64     # pt at 72 dpi (1 pt = 1 px): a digit ~46 px tall, inside the canvas
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
         "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
         "STIXGeneral.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf")
STROKES = (0.0, 1.5, 3.0)  # px of outline drawn around each glyph: thin, medium, thick strokes
BLUR_TAPS = (0.25, 0.5, 0.25)  # separable [1 2 1] / 4 smoothing before resampling
MNIST_BOX = 20.0 / 28.0    # MNIST's digits fill a 20 px box in a 28 px image

# ranges of the random affine map and the noise (see the module docstring)
ROTATION_DEG = 15.0
SHEAR = 0.25
SCALE = (0.8, 1.1)
ASPECT = (0.8, 1.15)
SHIFT_PX = 2.5     # at size 28
CONTRAST = (0.7, 1.0)
NOISE_SIGMA = (0.0, 0.12)
CHUNK = 4096       # images resampled at once (bounds the memory of the coordinate arrays)


@dataclass(frozen=True)
class Splits:
    """Images (N, 1, H, W) float32 in [0, 1] and labels (N,) int64 for train, val and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_train, self.y_train

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val, self.y_val

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_test, self.y_test


# --- 1. glyphs, rendered once ----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def glyphs() -> tuple[np.ndarray, np.ndarray]:
    """Every glyph: images (V, 10, CANVAS, CANVAS) float32 in [0, 1], white digit on black,
    ``images[v, d]`` being digit d in variant v = font index * len(STROKES) + stroke index;
    and the V variant names ("DejaVuSans+1.5px", ...)."""
    import matplotlib
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    variants = [(font, stroke) for font in FONTS for stroke in STROKES]
    # a Figure with its own Agg canvas, not pyplot: the user's backend stays as it is
    rows, cols = len(variants), 10
    # one figure, one cell per (variant, digit), 72 dpi so that sizes in points are pixels
    fig = Figure(figsize=(cols * CANVAS / 72, rows * CANVAS / 72), dpi=72, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    for row, (font, stroke) in enumerate(variants):
        props = FontProperties(fname=font_dir / font, size=FONT_SIZE)
        effects = ([patheffects.withStroke(linewidth=stroke, foreground="white")]
                   if stroke > 0 else [])
        for digit in range(cols):
            fig.text((digit + 0.5) / cols, 1.0 - (row + 0.5) / rows, str(digit),
                     fontproperties=props, color="white", ha="center", va="center",
                     path_effects=effects)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., 0].astype(np.float32) / 255.0
    # (rows * CANVAS, cols * CANVAS) -> (V, 10, CANVAS, CANVAS): each cell is one glyph
    images = pixels.reshape(rows, CANVAS, cols, CANVAS).transpose(0, 2, 1, 3)
    images = _blur(np.ascontiguousarray(images))
    images[..., [0, -1], :] = 0.0  # a black border: samples that fall outside read 0
    images[..., :, [0, -1]] = 0.0
    names = np.array([f"{font.removesuffix('.ttf')}+{stroke:g}px" for font, stroke in variants])
    images.setflags(write=False)
    return images, names


def _blur(images: np.ndarray) -> np.ndarray:
    """Separable [1 2 1]/4 smoothing over the last two axes (a loop over the 3 taps only)."""
    for axis in (-1, -2):
        padded = np.pad(images, [(0, 0)] * (images.ndim + axis) + [(1, 1)]
                        + [(0, 0)] * (-axis - 1))
        n = images.shape[axis]
        images = sum(w * np.take(padded, np.arange(k, k + n), axis=axis)
                     for k, w in enumerate(BLUR_TAPS))
    return images.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _glyph_geometry() -> tuple[np.ndarray, np.ndarray]:
    """Per glyph: centre of mass (V, 10, 2) as (row, col), and ink height (V, 10) in pixels."""
    images, _ = glyphs()
    coords = np.arange(CANVAS, dtype=np.float64)
    mass = images.sum(axis=(-2, -1))                                   # (V, 10)
    com_row = (images.sum(axis=-1) @ coords) / mass                    # (V, 10)
    com_col = (images.sum(axis=-2) @ coords) / mass
    inked = images.max(axis=-1) > 0.5                                  # (V, 10, CANVAS) rows
    top = inked.argmax(axis=-1)
    bottom = CANVAS - 1 - inked[..., ::-1].argmax(axis=-1)
    return np.stack([com_row, com_col], axis=-1), (bottom - top + 1).astype(np.float64)


# --- 2. and 3. one random affine map per image, contrast and noise ---------------------------
def generate(n: int, rng: np.random.Generator, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 1, size, size) float32 in [0, 1] and labels (n,) int64, balanced."""
    if n < 0 or size < 8:
        raise ValueError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    images, _ = glyphs()
    centres, heights = _glyph_geometry()
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)      # (n,) balanced
    variant = rng.integers(0, images.shape[0], size=n)                 # (n,)
    theta = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG, n))
    shear = rng.uniform(-SHEAR, SHEAR, n)
    scale = rng.uniform(*SCALE, n) * (MNIST_BOX * size / heights[variant, labels])
    aspect = rng.uniform(*ASPECT, n)
    shift = rng.uniform(-SHIFT_PX, SHIFT_PX, (n, 2)) * (size / 28.0)   # (n, 2) rows, cols
    contrast = rng.uniform(*CONTRAST, n)
    sigma = rng.uniform(*NOISE_SIGMA, n)
    noise = rng.standard_normal((n, size, size), dtype=np.float32)

    # A maps glyph offsets (row, col) from the centre of mass to output offsets:
    # A = scale · R(θ) · S(k) · diag(1, aspect), built for all n at once, then inverted
    cos, sin, zero, one = np.cos(theta), np.sin(theta), np.zeros(n), np.ones(n)
    rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)   # (n, 2, 2)
    shear_m = np.stack([np.stack([one, zero], -1), np.stack([shear, one], -1)], -2)
    stretch = np.stack([np.stack([one, zero], -1), np.stack([zero, aspect], -1)], -2)
    forward = scale[:, None, None] * (rotate @ shear_m @ stretch)     # (n, 2, 2)
    inverse = np.linalg.inv(forward)                                    # (n, 2, 2)

    rows, cols = np.meshgrid(np.arange(size) - (size - 1) / 2.0,
                             np.arange(size) - (size - 1) / 2.0, indexing="ij")  # (size, size)
    flat = images.reshape(-1)                      # glyph (v, d) starts at (v*10 + d) * CANVAS²
    x = np.empty((n, 1, size, size), dtype=np.float32)
    for start in range(0, n, CHUNK):  # chunks of images, each resampled in one vectorized step
        part = slice(start, min(start + CHUNK, n))
        m = inverse[part, :, :, None, None]                             # (m, 2, 2, 1, 1)
        dr = rows[None] - shift[part, 0, None, None]                    # (m, size, size)
        dc = cols[None] - shift[part, 1, None, None]
        centre = centres[variant[part], labels[part]]                   # (m, 2)
        src_r = centre[:, 0, None, None] + m[:, 0, 0] * dr + m[:, 0, 1] * dc  # src = c + A⁻¹ rel
        src_c = centre[:, 1, None, None] + m[:, 1, 0] * dr + m[:, 1, 1] * dc
        glyph = (variant[part] * 10 + labels[part]) * CANVAS * CANVAS   # (m,) offsets in flat
        sampled = _bilinear(flat, glyph, src_r, src_c)                  # (m, size, size)
        sampled = contrast[part, None, None] * sampled \
            + sigma[part, None, None] * noise[part]
        x[part, 0] = np.clip(sampled, 0.0, 1.0)
    return x, labels


def _bilinear(flat: np.ndarray, glyph: np.ndarray, src_r: np.ndarray,
              src_c: np.ndarray) -> np.ndarray:
    """Sample glyph i (starting at ``flat[glyph[i]]``) at fractional positions (src_r, src_c):
    the weighted mean of the four surrounding pixels. Outside the canvas reads its black
    border (positions are clipped onto it)."""
    src_r = np.clip(src_r, 0.0, CANVAS - 1.001)                         # (m, H, W)
    src_c = np.clip(src_c, 0.0, CANVAS - 1.001)
    r0, c0 = np.floor(src_r), np.floor(src_c)
    fr, fc = (src_r - r0).astype(np.float32), (src_c - c0).astype(np.float32)
    at = glyph[:, None, None] + r0.astype(np.intp) * CANVAS + c0.astype(np.intp)  # top-left
    top = (1.0 - fc) * flat[at] + fc * flat[at + 1]
    bottom = (1.0 - fc) * flat[at + CANVAS] + fc * flat[at + CANVAS + 1]
    return (1.0 - fr) * top + fr * bottom


@functools.lru_cache(maxsize=8)
def digits(n_train: int = 6000, n_val: int = 1000, n_test: int = 1000, seed: int = 0,
           size: int = 28) -> Splits:
    """Train, validation and test splits of generated digits (cached; arrays read-only)."""
    streams = np.random.SeedSequence(seed).spawn(3)
    arrays = []
    for n, stream in zip((n_train, n_val, n_test), streams, strict=True):
        x, y = generate(n, np.random.default_rng(stream), size)
        x.setflags(write=False)
        y.setflags(write=False)
        arrays += [x, y]
    return Splits(*arrays)


def class_grid(splits: Splits, per_class: int = 10) -> np.ndarray:
    """A (10 * H, per_class * W) mosaic of training images, one row per digit (for a figure)."""
    x, y = splits.train
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y, minlength=10)
    if counts.min() < per_class:
        raise ValueError(f"need {per_class} training images of every digit, the fewest is "
                         f"{counts.min()}")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picks = order[starts[:, None] + np.arange(per_class)]             # (10, per_class)
    tiles = x[picks, 0]                                                 # (10, k, H, W)
    h, w = tiles.shape[-2:]
    return tiles.transpose(0, 2, 1, 3).reshape(10 * h, per_class * w)


def cnn_accuracy(splits: Splits, epochs: int = 3, seed: int = 0) -> list[float]:
    """Test accuracy after each epoch of the issue's small CNN (torch, Adam, batch 32):
    the evidence that the classes are learnable. Slow-ish: a script, not a test."""
    import torch
    from torch import nn
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.from_numpy(np.array(splits.x_train)), torch.from_numpy(np.array(splits.y_train))
    x_test = torch.from_numpy(np.array(splits.x_test))
    accuracies = []
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), 32):
            batch = order[start:start + 32]
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            accuracies.append(float((net(x_test).argmax(1).numpy() == splits.y_test).mean()))
    return accuracies


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description="generate the digits; optionally save a "
                                     "mosaic and train the issue's small CNN on them")
    parser.add_argument("--grid", metavar="PNG", help="save 10 training images per digit")
    parser.add_argument("--cnn", action="store_true", help="train the small CNN (torch)")
    args = parser.parse_args()
    started = time.perf_counter()
    data = digits(6000, 1000, 2000, seed=0)
    print(f"generated 9000 images in {time.perf_counter() - started:.2f} s; "
          f"train {data.x_train.shape}, mean pixel {data.x_train.mean():.3f}")
    if args.grid:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.imsave(args.grid, class_grid(data), cmap="gray", vmin=0.0, vmax=1.0)
        print(f"wrote {args.grid}")
    if args.cnn:
        import torch
        torch.set_num_threads(1)
        started = time.perf_counter()
        for epoch, accuracy in enumerate(cnn_accuracy(data), 1):
            print(f"CNN epoch {epoch}: test accuracy {accuracy:.3f}")
        print(f"trained in {time.perf_counter() - started:.1f} s")
