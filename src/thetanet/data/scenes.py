r"""Digit scenes: 1–3 MNIST digits on a canvas, and the sentence that describes them.

The captioner's data (the lecture's Figure 3: an image in, a sentence out). A scene is a square
canvas (``canvas`` × ``canvas`` pixels, 48 by default) cut into four quadrants; each digit sits
in its own quadrant, at a random offset inside it, in one of two sizes:

- ``large``: the 28×28 MNIST image resized to ≈ 0.46 · canvas (22 px on a 48-px canvas);
- ``small``: resized to ≈ 0.29 · canvas (14 px: an exact 2×2 average of MNIST's 28×28).

Resizing averages areas (:func:`area_resize`: every output pixel is the mean of the input it
covers), so nothing aliases.

The grammar (every scene has exactly one sentence; words separated by single spaces)::

    scene    := phrase " at the " ROW " " COL               (one digit)
              | phrase REL phrase                           (two digits)
              | phrase REL phrase REL phrase                (three digits)
    phrase   := "a " SIZE " " DIGIT
    SIZE     := "small" | "large"
    DIGIT    := "zero" | "one" | … | "nine"
    ROW      := "top" | "bottom"          COL := "left" | "right"
    REL      := " to the left of "                  (same row)
              | " above "                           (same column)
              | " above and to the left of "        (the next digit is down and right)
              | " above and to the right of "       (the next digit is down and left)

The digits are named in reading order (top row left to right, then the bottom row), and each
REL says where a digit is relative to the *next* one, e.g. "a large seven to the left of a small
two". The vocabulary :data:`WORDS` holds the 23 words; token ids reserve 0 for padding (the
mask of an ``Embedding(mask_zero=True)``), 1 for ``<start>`` and 2 for ``<end>``.

Digit images come from the MNIST t10k split exactly as ``thetanet digits --dataset mnist-t10k``
splits it (:func:`thetanet.data.digits.load_dataset`): training scenes from its first 8,000
images, test scenes from its last 2,000 only (:func:`load_scene_digits`), so no digit image
appears in both.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thetanet.data import digits as _digits

__all__ = [
    "DIGIT_NAMES",
    "END",
    "MAX_DIGITS",
    "MAX_WORDS",
    "PAD",
    "SIZES",
    "START",
    "VOCAB",
    "WORDS",
    "Placement",
    "SceneDigits",
    "Scenes",
    "area_resize",
    "decode_tokens",
    "describe",
    "encode_captions",
    "load_scene_digits",
    "make_scenes",
    "size_pixels",
    "tokenize",
]

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SIZES = ("small", "large")
RELATIONS = {  # (Δrow, Δcol) from a digit to the next one in reading order → the words between
    (0, 1): "to the left of",
    (1, 0): "above",
    (1, 1): "above and to the left of",
    (1, -1): "above and to the right of",
}
WORDS: tuple[str, ...] = ("a", *SIZES, *DIGIT_NAMES, "to", "the", "left", "right", "of",
                          "above", "and", "at", "top", "bottom")
PAD, START, END = 0, 1, 2
#: token id → word; ids 0–2 are the special tokens
VOCAB: tuple[str, ...] = ("<pad>", "<start>", "<end>", *WORDS)
_IDS = {w: i for i, w in enumerate(VOCAB)}
MAX_DIGITS = 3
#: the longest sentence: three phrases (9 words) and two relations of at most 6 words
MAX_WORDS = 3 * MAX_DIGITS + 4 + 6
_SIZE_FRACTION = {"small": 0.29, "large": 0.46}


@dataclass(frozen=True)
class Placement:
    """One digit of a scene: its class, size word, quadrant (row, col ∈ {0, 1}), the pixel box
    (top, left, extent × extent) on the canvas, and its row in the source ``images``."""

    label: int
    size: str
    row: int
    col: int
    top: int
    left: int
    extent: int
    source: int

    def box(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom/right exclusive."""
        return self.top, self.left, self.top + self.extent, self.left + self.extent


@dataclass
class Scenes:
    """``images`` (n, canvas, canvas) float32 in [0, 1]; one caption and one tuple of
    placements (reading order) per image."""

    images: np.ndarray
    captions: list[str]
    placements: list[tuple[Placement, ...]]

    def __len__(self) -> int:
        return len(self.captions)


def size_pixels(size: str, canvas: int) -> int:
    """The side in pixels of a digit of size word ``size`` on a ``canvas``-pixel canvas."""
    if size not in _SIZE_FRACTION:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    return max(4, int(round(_SIZE_FRACTION[size] * canvas)))


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (h, w) resized to (size, size) by area averaging: output pixel i covers the
    input interval [i·h/size, (i+1)·h/size), and its value is the input's mean over it."""
    image = np.asarray(image)
    if image.ndim != 2 or size < 1:
        raise ValueError(f"area_resize needs a 2-D image and size >= 1, got {image.shape} "
                         f"and {size}")
    return _area_matrix(image.shape[0], size) @ image @ _area_matrix(image.shape[1], size).T


@functools.lru_cache(maxsize=32)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """A (n_out, n_in): A[i, j] = |[i·s, (i+1)·s) ∩ [j, j+1)| / s with s = n_in / n_out."""
    s = n_in / n_out
    lo = np.arange(n_out)[:, None] * s
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(lo + s, j + 1) - np.maximum(lo, j), 0.0, None)
    matrix = (overlap / s).astype(np.float32)
    matrix.flags.writeable = False  # shared by the cache
    return matrix


def describe(placements: Sequence[Placement]) -> str:
    """The grammar's sentence for placements given in reading order (see the module doc)."""
    if not 1 <= len(placements) <= MAX_DIGITS:
        raise ValueError(f"a scene has 1 to {MAX_DIGITS} digits, got {len(placements)}")
    phrases = [f"a {p.size} {DIGIT_NAMES[p.label]}" for p in placements]
    if len(placements) == 1:
        p = placements[0]
        return f"{phrases[0]} at the {('top', 'bottom')[p.row]} {('left', 'right')[p.col]}"
    words = [phrases[0]]
    for a, b, phrase in zip(placements, placements[1:], phrases[1:]):
        step = (b.row - a.row, b.col - a.col)
        if step not in RELATIONS:
            raise ValueError(f"placements are not in reading order: {a} then {b}")
        words += [RELATIONS[step], phrase]
    return " ".join(words)


def make_scenes(images: np.ndarray, labels: np.ndarray, n: int, seed: int, *,
                canvas: int = 48, max_digits: int = MAX_DIGITS) -> Scenes:
    """``n`` scenes drawn with ``numpy.random.default_rng(seed)`` from the digit ``images``
    (m, 28, 28) (or (m, 784)) with classes ``labels``: per scene 1…``max_digits`` digits
    (uniform), distinct quadrants, each digit's image, size and offset uniform."""
    images = _as_square_images(images)
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],) or images.shape[0] == 0:
        raise ValueError(f"need one label per image and at least one image, got "
                         f"{images.shape[0]} images and labels of shape {labels.shape}")
    if n < 0 or canvas < 16 or canvas % 2 or not 1 <= max_digits <= MAX_DIGITS:
        raise ValueError(f"need n >= 0, an even canvas >= 16 and 1 <= max_digits <= "
                         f"{MAX_DIGITS}; got n={n}, canvas={canvas}, max_digits={max_digits}")
    rng = np.random.default_rng(seed)
    half = canvas // 2
    out = np.zeros((n, canvas, canvas), np.float32)
    captions: list[str] = []
    placements: list[tuple[Placement, ...]] = []
    for i in range(n):
        k = int(rng.integers(1, max_digits + 1))
        quadrants = np.sort(rng.choice(4, size=k, replace=False))
        scene = []
        for q in quadrants:
            src = int(rng.integers(images.shape[0]))
            size = SIZES[int(rng.integers(2))]
            extent = size_pixels(size, canvas)
            dy, dx = (int(v) for v in rng.integers(0, half - extent + 1, size=2))
            row, col = divmod(int(q), 2)
            p = Placement(int(labels[src]), size, row, col, row * half + dy, col * half + dx,
                          extent, src)
            t, lft, b, r = p.box()
            out[i, t:b, lft:r] = area_resize(images[src], extent)
            scene.append(p)
        placements.append(tuple(scene))
        captions.append(describe(scene))
    np.clip(out, 0.0, 1.0, out=out)
    return Scenes(out, captions, placements)


def _as_square_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2:
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ValueError(f"flat images must be square, got width {images.shape[1]}")
        images = images.reshape(images.shape[0], side, side)
    if images.ndim != 3:
        raise ValueError(f"images must be (m, h, w) or (m, h·w), got shape {images.shape}")
    return images


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def tokenize(caption: str) -> list[int]:
    """The caption's word ids (no special tokens); unknown words are a ValueError."""
    try:
        return [_IDS[w] for w in caption.split()]
    except KeyError as exc:
        raise ValueError(f"word {exc.args[0]!r} is not in the scene vocabulary") from None


def decode_tokens(ids: Sequence[int]) -> str:
    """Token ids → caption: stops at ``<end>``, skips ``<pad>`` and ``<start>``."""
    words = []
    for t in ids:
        t = int(t)
        if t == END:
            break
        if t in (PAD, START):
            continue
        if not 0 <= t < len(VOCAB):
            raise ValueError(f"token id {t} is outside the vocabulary (0..{len(VOCAB) - 1})")
        words.append(VOCAB[t])
    return " ".join(words)


def encode_captions(captions: Sequence[str], length: int = MAX_WORDS + 1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Teacher forcing's arrays, each (n, ``length``) int64, zero-padded:
    inputs ``<start> w_1 … w_k`` and targets ``w_1 … w_k <end>`` (target t is input t+1)."""
    inputs = np.zeros((len(captions), length), np.int64)
    targets = np.zeros((len(captions), length), np.int64)
    for i, caption in enumerate(captions):
        ids = tokenize(caption)
        if len(ids) + 1 > length:
            raise ValueError(f"caption of {len(ids)} words does not fit length {length}: "
                             f"{caption!r}")
        inputs[i, :len(ids) + 1] = [START, *ids]
        targets[i, :len(ids) + 1] = [*ids, END]
    return inputs, targets


# --------------------------------------------------------------------------------------------
# The digit images: the t10k split of ``thetanet digits``
# --------------------------------------------------------------------------------------------


@dataclass
class SceneDigits:
    """Digit images (m, 28, 28) and labels for training scenes and for test scenes."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_scene_digits(data_dir: str | os.PathLike[str] | None = None) -> SceneDigits:
    """The MNIST t10k split of ``thetanet digits --dataset mnist-t10k``: its 8,000 training
    images for training scenes, its 2,000 held-out images for test scenes."""
    data = _digits.load_dataset("mnist-t10k", data_dir)
    h, w = data.image_shape
    return SceneDigits(data.x_train.reshape(-1, h, w), data.y_train,
                       data.x_test.reshape(-1, h, w), data.y_test)
