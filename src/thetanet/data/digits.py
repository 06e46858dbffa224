r"""Handwritten digits, the lecture's multi-class example: loaders, splits and the training recipe.

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
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from thetanet.data import idx as _idx
from thetanet.layers import Dense, Dropout
from thetanet.metrics import confusion_matrix
from thetanet.model import Sequential
from thetanet.utils import blas_threads, one_hot

__all__ = [
    "DATASETS",
    "DigitsData",
    "Recipe",
    "TrainResult",
    "blas_threads",
    "build_mlp",
    "default_recipe",
    "load_dataset",
    "load_mnist",
    "load_sklearn_digits",
    "random_shift",
    "stratified_split",
    "train_digits",
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


def _flat(images: np.ndarray) -> np.ndarray:
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
        return DigitsData(name, _flat(images[tr]), labels[tr], _flat(images[te]), labels[te],
                          (8, 8), f"stratified {1 - test_size:.0%}/{test_size:.0%}, seed {seed}")
    if name == "mnist":
        full = _idx.mnist_available("train", data_dir) or download
        name = "mnist-full" if full else "mnist-t10k"
    if name == "mnist-full":
        xtr, ytr = load_mnist("train", data_dir, download)
        xte, yte = load_mnist("t10k", data_dir, download)
        return DigitsData(name, _flat(xtr), ytr, _flat(xte), yte, (28, 28),
                          "train (60,000) / t10k (10,000)")
    x, y = load_mnist("t10k", data_dir, download)
    return DigitsData(name, _flat(x[:8000]), y[:8000], _flat(x[8000:]), y[8000:], (28, 28),
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
    dy = rng.integers(-s, s + 1, m)
    dx = rng.integers(-s, s + 1, m)
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


# --------------------------------------------------------------------------------------------
# The training recipe
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How to train: hidden widths s_2, s_3, …, dropout after each hidden layer, Adam with a
    cosine-decayed learning rate η_t = η/2 (1 + cos(π t / epochs)), mini-batches, and random
    shifts of up to ``shift`` pixels applied to ``shift_fraction`` of the images each epoch."""

    hidden: tuple[int, ...] = (300, 100)
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    shift: int = 2
    shift_fraction: float = 0.5
    l2: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


#: Defaults per data set (``mnist`` resolves to one of the MNIST entries).
RECIPES: dict[str, Recipe] = {
    "sklearn-digits": Recipe(hidden=(512, 256), dropout=0.3, epochs=100, batch_size=64,
                             learning_rate=2e-3, shift=1, shift_fraction=0.5),
    "mnist-t10k": Recipe(hidden=(300, 100), dropout=0.2, epochs=30, batch_size=64,
                         learning_rate=1e-3, shift=2, shift_fraction=0.5),
    # The full-MNIST recipe (docs/examples.md): expected ≥ 98.5% on t10k.
    "mnist-full": Recipe(hidden=(800, 800), dropout=0.3, epochs=40, batch_size=128,
                         learning_rate=1e-3, shift=2, shift_fraction=0.5),
}


def default_recipe(dataset: str) -> Recipe:
    """The recipe for a resolved data set name (``mnist`` counts as ``mnist-t10k``)."""
    return RECIPES.get(dataset, RECIPES["mnist-t10k"])


def build_mlp(input_dim: int, num_classes: int, recipe: Recipe, seed: int = 0,
              dtype: Any = "float32") -> Sequential:
    """ReLU hidden layers (He-uniform Θ) with dropout, and a softmax output of K units."""
    layers: list[Any] = []
    for width in recipe.hidden:
        layers.append(Dense(int(width), "relu", kernel_initializer="he_uniform", l2=recipe.l2))
        if recipe.dropout:
            layers.append(Dropout(recipe.dropout))
    layers.append(Dense(num_classes, "softmax"))
    model = Sequential(layers, dtype=dtype, seed=seed, name="digits_mlp")
    model.build(input_dim)
    return model


@dataclass
class TrainResult:
    """A trained model and its test-set evaluation."""

    model: Sequential
    recipe: Recipe
    test_accuracy: float
    per_class: list[float]
    confusion: np.ndarray
    predictions: np.ndarray
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def train_digits(data: DigitsData, recipe: Recipe | None = None, seed: int = 0,
                 verbose: bool = False, monitor_test: bool = True,
                 threads: int | None = None) -> TrainResult:
    """Train :func:`build_mlp` on ``data`` with ``recipe`` and evaluate it on the test part.

    Targets are one-hot (y ∈ {e_1 … e_K}) with categorical cross-entropy. Every random choice
    (Θ initialisation, shuffling, dropout masks, shifts) derives from ``seed``. With
    ``monitor_test`` the test loss/accuracy are logged per epoch for the learning curves only
    (never used to choose anything).
    """
    recipe = recipe or default_recipe(data.name)
    h, w = data.image_shape
    k = data.num_classes
    t0 = time.perf_counter()
    with blas_threads(threads):
        model = build_mlp(data.x_train.shape[1], k, recipe, seed=seed)
        model.compile({"name": "adam", "learning_rate": recipe.learning_rate},
                      "categorical_crossentropy", metrics=["accuracy"])
        y_train = one_hot(data.y_train, k)
        y_test = one_hot(data.y_test, k)
        images = data.x_train.reshape(-1, h, w)
        rng = np.random.default_rng([seed, 1])
        history: dict[str, list[float]] = {}
        for epoch in range(recipe.epochs):
            model.optimizer.learning_rate = (  # type: ignore[union-attr]
                recipe.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / recipe.epochs)))
            x = data.x_train
            if recipe.shift:
                x = _flat(random_shift(images, recipe.shift, rng, recipe.shift_fraction))
            hist = model.fit(x, y_train, epochs=1, batch_size=recipe.batch_size,
                             seed=seed * 100_003 + epoch, verbose=0,
                             validation_data=(data.x_test, y_test) if monitor_test else None)
            for key, values in hist.history.items():
                name = key.replace("val_", "test_")
                history.setdefault(name, []).extend(values)
            if verbose:
                items = " - ".join(f"{n}: {v[-1]:.4f}" for n, v in history.items())
                print(f"epoch {epoch + 1}/{recipe.epochs} - {items}", file=sys.stderr)
        pred = model.predict_classes(data.x_test)
    seconds = time.perf_counter() - t0
    cm = confusion_matrix(data.y_test, pred, k)
    support = cm.sum(axis=1)
    per_class = [float(cm[i, i] / support[i]) if support[i] else 0.0 for i in range(k)]
    acc = float(np.mean(pred == data.y_test))
    return TrainResult(model, recipe, acc, per_class, cm, pred, history, seconds)


def misclassified(data: DigitsData, predictions: np.ndarray, limit: int = 64
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (n, h, w), true and predicted labels of up to ``limit`` misclassified test digits."""
    wrong = np.flatnonzero(predictions != data.y_test)[:limit]
    images = data.x_test[wrong].reshape(-1, *data.image_shape)
    return images, data.y_test[wrong], predictions[wrong]


def with_overrides(recipe: Recipe, **overrides: Any) -> Recipe:
    """``recipe`` with the non-None ``overrides`` applied."""
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})


def parse_hidden(text: str) -> tuple[int, ...]:
    """"300,100" → (300, 100); "" or "none" → () (softmax regression)."""
    text = text.strip()
    if text.lower() in ("", "none", "0"):
        return ()
    try:
        widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"hidden widths must be comma-separated integers, got {text!r}") from None
    if any(wd < 1 for wd in widths):
        raise ValueError(f"hidden widths must be positive, got {text!r}")
    return widths


def result_json(data: DigitsData, result: TrainResult, seed: int) -> dict[str, Any]:
    """The ``--json`` document of ``thetanet digits``."""
    return {
        "dataset": data.name,
        "split": data.split,
        "n_train": int(data.x_train.shape[0]),
        "n_test": int(data.x_test.shape[0]),
        "test_accuracy": result.test_accuracy,
        "per_class": result.per_class,
        "confusion_matrix": result.confusion.tolist(),
        "recipe": result.recipe.as_dict(),
        "seed": seed,
        "seconds": round(result.seconds, 3),
    }
