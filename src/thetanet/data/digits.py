r"""Handwritten digits, the lecture's multi-class example: loaders, splits and augmentation.

Each image x is a vector of pixel intensities in [0, 1] (8×8 = 64 for scikit-learn's digits,
28×28 = 784 for MNIST); the target is one of K = 10 classes, written as the one-hot vector
y ∈ {e_1, …, e_10}. The network ends in a softmax layer of 10 units, so h_Θ(x) ∈ ℝ^10 holds the
class probabilities, and is trained with the cross-entropy J = −(1/m) Σ_i Σ_k y_k log h_Θ(x)_k
(fused output error δ^(L) = h_Θ(x) − y).

Data sets (``name`` in :data:`DATASETS`):

- ``sklearn-digits``: the 1,797 8×8 digits bundled with scikit-learn (offline), split 80/20,
  stratified by class, with a fixed seed (:func:`stratified_split`).
- ``mnist-t10k``: the MNIST test set t10k (10,000 28×28 images): train on its first 8,000
  images, test on the last 2,000.
- ``mnist-full``: MNIST's 60,000 training images, tested on t10k (needs the training files:
  :func:`thetanet.data.idx.download_mnist`).
- ``mnist``: ``mnist-full`` when the training files are in the data root, else ``mnist-t10k``.

The network and its training recipe are the example :mod:`thetanet.examples.digits`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from thetanet.data import idx as _idx

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "DigitsData",
    "flat",
    "load_dataset",
    "load_mnist",
    "load_sklearn_digits",
    "random_shift",
    "stratified_split",
]

DATASETS = ("sklearn-digits", "mnist", "mnist-t10k", "mnist-full")
CLASS_NAMES = tuple(str(d) for d in range(10))


@dataclass
class DigitsData:
    """A train/test split of digit images. ``x_*``: (m, h·w) float32 in [0, 1]; ``y_*``: int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]
    split: str
    class_names: tuple[str, ...] = CLASS_NAMES

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# --------------------------------------------------------------------------------------------
# Loaders and splits
# --------------------------------------------------------------------------------------------


def load_sklearn_digits(dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: images (1797, 8, 8) scaled from 0..16 to [0, 1], labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the sklearn-digits data set needs scikit-learn: "
                          "pip install 'thetanet[metrics]'") from exc
    d = load_digits()
    return (d.images / 16.0).astype(dtype), d.target.astype(np.int64)


def load_mnist(split: str = "t10k", data_dir: str | os.PathLike[str] | None = None,
               download: bool = False, dtype: Any = np.float32
               ) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (m, 28, 28) scaled from 0..255 to [0, 1] and int64 labels; see
    :func:`thetanet.data.idx.read_mnist` for where the files are looked for."""
    images, labels = _idx.read_mnist(split, data_dir, download=download)
    return (images.astype(dtype) / np.asarray(255.0, dtype)), labels.astype(np.int64)


def stratified_split(y: np.ndarray, test_size: float = 0.2, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test), each sorted: every class contributes round(test_size·n_c) of its
    n_c examples to the test part, chosen by a ``numpy`` Generator seeded with ``seed``."""
    y = np.asarray(y)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        k = int(round(test_size * members.size))
        test.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def flat(images: np.ndarray) -> np.ndarray:
    """Images (m, h, w) as rows (m, h·w), C-contiguous: the network's input x."""
    return np.ascontiguousarray(images.reshape(images.shape[0], -1))


def load_dataset(name: str = "sklearn-digits", data_dir: str | os.PathLike[str] | None = None,
                 download: bool = False, seed: int = 0, test_size: float = 0.2) -> DigitsData:
    """One of :data:`DATASETS` as a :class:`DigitsData` (``seed``/``test_size``: the
    sklearn-digits split; MNIST splits are fixed)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name == "sklearn-digits":
        images, labels = load_sklearn_digits()
        tr, te = stratified_split(labels, test_size, seed)
        return DigitsData(name, flat(images[tr]), labels[tr], flat(images[te]), labels[te],
                          (8, 8), f"stratified {1 - test_size:.0%}/{test_size:.0%}, seed {seed}")
    if name == "mnist":
        full = _idx.mnist_available("train", data_dir) or download
        name = "mnist-full" if full else "mnist-t10k"
    if name == "mnist-full":
        xtr, ytr = load_mnist("train", data_dir, download)
        xte, yte = load_mnist("t10k", data_dir, download)
        return DigitsData(name, flat(xtr), ytr, flat(xte), yte, (28, 28),
                          "train (60,000) / t10k (10,000)")
    x, y = load_mnist("t10k", data_dir, download)
    return DigitsData(name, flat(x[:8000]), y[:8000], flat(x[8000:]), y[8000:], (28, 28),
                      "t10k[:8000] / t10k[8000:]")


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator,
                 fraction: float = 1.0) -> np.ndarray:
    """A copy of ``images`` (m, h, w) with a ``fraction`` of them translated by a random
    (dy, dx) ∈ {−max_shift … max_shift}², zeros shifted in: the data augmentation."""
    if max_shift <= 0 or fraction <= 0:
        return images.copy()
    m, h, w = images.shape
    s = int(max_shift)
    padded = np.pad(images, ((0, 0), (s, s), (s, s)))
    dy = np.asarray(rng.integers(-s, s + 1, m))
    dx = np.asarray(rng.integers(-s, s + 1, m))
    keep = rng.random(m) >= fraction
    dy[keep] = 0
    dx[keep] = 0
    out = np.empty_like(images)
    for a in range(-s, s + 1):
        for b in range(-s, s + 1):
            sel = np.flatnonzero((dy == a) & (dx == b))
            if sel.size:
                out[sel] = padded[sel, s + a:s + a + h, s + b:s + b + w]
    return out
