r"""The digits example: an MLP with a softmax output, trained on handwritten digits.

The network (:func:`build_mlp`) has ReLU hidden layers with He-uniform Θ and dropout, and a
softmax output of K = 10 units, so h_Θ(x) ∈ ℝ^10 holds the class probabilities. It is trained
with one-hot targets y ∈ {e_1, …, e_10} and the cross-entropy J = −(1/m) Σ_i Σ_k y_k log h_Θ(x)_k
(fused output error δ^(L) = h_Θ(x) − y) by Adam with a cosine-decayed learning rate, on images
randomly shifted by a pixel or two (:func:`thetanet.data.digits.random_shift`). The data sets
and their splits are :mod:`thetanet.data.digits`; ``thetanet digits`` runs this example.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from thetanet.builders import mlp
from thetanet.data.digits import DigitsData, flat, random_shift
from thetanet.metrics import confusion_matrix
from thetanet.model import Sequential
from thetanet.utils import blas_threads, one_hot

__all__ = [
    "RECIPES",
    "Recipe",
    "TrainResult",
    "build_mlp",
    "default_recipe",
    "misclassified",
    "parse_hidden",
    "result_json",
    "train_digits",
    "with_overrides",
]


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
    return mlp([input_dim, *recipe.hidden, num_classes], activation="relu",
               output_activation="softmax", dropout=recipe.dropout, l2=recipe.l2, output_l2=0.0,
               kernel_initializer="he_uniform", seed=seed, dtype=dtype, name="digits_mlp")


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
                x = flat(random_shift(images, recipe.shift, rng, recipe.shift_fraction))
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
