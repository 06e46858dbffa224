r"""The digits example: an MLP or a small convolutional net with a softmax output, trained on
handwritten digits.

The MLP (:func:`build_mlp`) has ReLU hidden layers with He-uniform Θ and dropout; the CNN
(:func:`build_cnn`, LeNet-like) sees the images as (h, w, 1) feature maps: blocks of a 3×3
``Conv2D`` (ReLU, "same" padding) and a 2×2 max-pool, then flattened into ReLU ``Dense``
layers with dropout. Both end in a softmax output of K = 10 units, so h_Θ(x) ∈ ℝ^10 holds the
class probabilities. They are trained
with one-hot targets y ∈ {e_1, …, e_10} and the cross-entropy J = −(1/m) Σ_i Σ_k y_k log h_Θ(x)_k
(fused output error δ^(L) = h_Θ(x) − y) by Adam with a cosine-decayed learning rate, on images
randomly shifted by a pixel or two (:func:`thetanet.data.digits.random_shift`). The data sets
and their splits are :mod:`thetanet.data.digits`; ``thetanet digits`` runs this example.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.builders import mlp
from thetanet.callbacks import Callback
from thetanet.data.digits import DigitsData, flat, random_shift
from thetanet.layers import Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D
from thetanet.metrics import confusion_matrix
from thetanet.model import Sequential
from thetanet.utils import blas_threads, one_hot

__all__ = [
    "CNN_RECIPES",
    "MODELS",
    "RECIPES",
    "Recipe",
    "TrainResult",
    "build_cnn",
    "build_mlp",
    "build_model",
    "default_recipe",
    "misclassified",
    "parse_hidden",
    "result_json",
    "save_result",
    "train_digits",
    "with_overrides",
]

#: The networks ``thetanet digits --model`` trains.
MODELS = ("mlp", "cnn")


@dataclass(frozen=True)
class Recipe:
    """How to train: hidden widths s_2, s_3, …, dropout after each hidden layer, Adam with a
    cosine-decayed learning rate η_t = η/2 (1 + cos(π t / epochs)), mini-batches, and random
    shifts of up to ``shift`` pixels applied to ``shift_fraction`` of the images each epoch.

    ``model="cnn"`` puts convolution blocks before the hidden layers: per entry of ``filters``
    a ``Conv2D(filters, kernel_size, "same", relu)`` and a 2×2 max-pool (then ``conv_dropout``),
    then Flatten; ``hidden`` are the Dense widths after it. ``ensemble`` > 1 trains that many
    networks (other seeds) and averages their probabilities."""

    hidden: tuple[int, ...] = (300, 100)
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    shift: int = 2
    shift_fraction: float = 0.5
    l2: float = 0.0
    model: str = "mlp"
    filters: tuple[int, ...] = ()
    kernel_size: int = 3
    conv_dropout: float = 0.0
    ensemble: int = 1

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["filters"] = list(self.filters)
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


#: The CNN's defaults per data set, chosen in benchmarks/results/digits.md.
CNN_RECIPES: dict[str, Recipe] = {
    "sklearn-digits": Recipe(model="cnn", filters=(32, 64), kernel_size=3, hidden=(128,),
                             dropout=0.4, conv_dropout=0.1, epochs=60, batch_size=32,
                             learning_rate=2e-3, shift=1, shift_fraction=0.5, ensemble=3),
    "mnist-t10k": Recipe(model="cnn", filters=(16, 32), kernel_size=3, hidden=(128,),
                         dropout=0.4, conv_dropout=0.1, epochs=20, batch_size=64,
                         learning_rate=2e-3, shift=2, shift_fraction=0.5),
    # not run here: the 60k training images are not in the offline data
    "mnist-full": Recipe(model="cnn", filters=(32, 64), kernel_size=3, hidden=(128,),
                         dropout=0.4, conv_dropout=0.1, epochs=15, batch_size=128,
                         learning_rate=1e-3, shift=2, shift_fraction=0.5),
}


def default_recipe(dataset: str, model: str = "mlp") -> Recipe:
    """The ``model``'s recipe for a resolved data set name (``mnist`` counts as
    ``mnist-t10k``)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    recipes = CNN_RECIPES if model == "cnn" else RECIPES
    return recipes.get(dataset, recipes["mnist-t10k"])


def build_mlp(input_dim: int, num_classes: int, recipe: Recipe, seed: int = 0,
              dtype: Any = "float32") -> Sequential:
    """ReLU hidden layers (He-uniform Θ) with dropout, and a softmax output of K units."""
    return mlp([input_dim, *recipe.hidden, num_classes], activation="relu",
               output_activation="softmax", dropout=recipe.dropout, l2=recipe.l2, output_l2=0.0,
               kernel_initializer="he_uniform", seed=seed, dtype=dtype, name="digits_mlp")


def build_cnn(image_shape: tuple[int, int], num_classes: int, recipe: Recipe, seed: int = 0,
              dtype: Any = "float32") -> Sequential:
    """LeNet-like: per entry f of ``recipe.filters`` a ``Conv2D(f, k, "same", relu)`` and a 2×2
    max-pool ("same": odd sizes round up), then Flatten, ReLU Dense layers with dropout and a
    softmax output of K units. He-uniform Θ; ``recipe.l2`` on every hidden Θ."""
    layers: list[Layer] = []
    for f in recipe.filters:
        layers += [Conv2D(f, recipe.kernel_size, padding="same", activation="relu",
                          kernel_initializer="he_uniform", l2=recipe.l2),
                   MaxPool2D(2, padding="same")]
        if recipe.conv_dropout:
            layers.append(Dropout(recipe.conv_dropout))
    layers.append(Flatten())
    for width in recipe.hidden:
        layers.append(Dense(width, "relu", kernel_initializer="he_uniform", l2=recipe.l2))
        if recipe.dropout:
            layers.append(Dropout(recipe.dropout))
    layers.append(Dense(num_classes, "softmax"))
    model = Sequential(layers, dtype=dtype, seed=seed, name="digits_cnn")
    return model.build((*image_shape, 1))


def build_model(data: DigitsData, recipe: Recipe, seed: int = 0) -> Sequential:
    """The recipe's network for ``data``: :func:`build_cnn` or :func:`build_mlp`."""
    if recipe.model == "cnn":
        return build_cnn(data.image_shape, data.num_classes, recipe, seed=seed)
    return build_mlp(data.x_train.shape[1], data.num_classes, recipe, seed=seed)


def model_inputs(images: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Images (m, h, w) as the network's input: (m, h, w, 1) maps for the CNN, rows for the
    MLP."""
    return images[..., None] if recipe.model == "cnn" else flat(images)


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
    #: every member of an ensemble (``model`` is the first); [model] for a single network
    members: list[Sequential] = field(default_factory=list)


def train_digits(data: DigitsData, recipe: Recipe | None = None, seed: int = 0,
                 verbose: bool = False, monitor_test: bool = True,
                 threads: int | None = None,
                 progress: Callable[[str, int, int], Callback] | None = None) -> TrainResult:
    """Train :func:`build_model` on ``data`` with ``recipe`` and evaluate it on the test part.

    Targets are one-hot (y ∈ {e_1 … e_K}) with categorical cross-entropy. Every random choice
    (Θ initialisation, shuffling, dropout masks, shifts) derives from ``seed``; with
    ``recipe.ensemble`` = n > 1, member i trains with seed + 1000·i and the prediction is the
    argmax of the members' mean h_Θ(x). With ``monitor_test`` the test loss/accuracy are
    logged per epoch (of the first member) for the learning curves only (never used to choose
    anything). ``progress(label, epochs, n)``: a callback per member that sees its whole
    training (every batch and epoch), e.g. the CLI's progress bar.
    """
    recipe = recipe or default_recipe(data.name)
    h, w = data.image_shape
    k = data.num_classes
    t0 = time.perf_counter()
    with blas_threads(threads):
        x_test = model_inputs(data.x_test.reshape(-1, h, w), recipe)
        members: list[Sequential] = []
        history: dict[str, list[float]] = {}
        probs = np.zeros((data.y_test.size, k))
        for i in range(recipe.ensemble):
            tag = f"member {i + 1}/{recipe.ensemble}: " if recipe.ensemble > 1 else ""
            shown = progress(tag.rstrip(": ") or "training", recipe.epochs,
                             data.y_train.size) if progress is not None else None
            model = _train_one(data, recipe, seed + 1000 * i, x_test, history if i == 0 else {},
                               tag if verbose else None, monitor_test and i == 0,
                               [shown] if shown is not None else [])
            members.append(model)
            probs += model.predict(x_test)
        pred = probs.argmax(axis=1)
    seconds = time.perf_counter() - t0
    cm = confusion_matrix(data.y_test, pred, k)
    support = cm.sum(axis=1)
    per_class = [float(cm[i, i] / support[i]) if support[i] else 0.0 for i in range(k)]
    acc = float(np.mean(pred == data.y_test))
    return TrainResult(members[0], recipe, acc, per_class, cm, pred, history, seconds, members)


def _train_one(data: DigitsData, recipe: Recipe, seed: int, x_test: np.ndarray,
               history: dict[str, list[float]], verbose: str | None, monitor_test: bool,
               callbacks: Sequence[Callback] = ()) -> Sequential:
    """One network of the recipe, trained with ``seed``; per-epoch logs go into ``history``
    (and, unless ``verbose`` is None, to stderr after that prefix)."""
    h, w = data.image_shape
    k = data.num_classes
    model = build_model(data, recipe, seed=seed)
    model.compile({"name": "adam", "learning_rate": recipe.learning_rate},
                  "categorical_crossentropy", metrics=["accuracy"])
    y_train = one_hot(data.y_train, k)
    y_test = one_hot(data.y_test, k)
    images = data.x_train.reshape(-1, h, w)
    x_train = model_inputs(images, recipe)
    rng = np.random.default_rng([seed, 1])
    for epoch in range(recipe.epochs):
        model.optimizer.learning_rate = (  # type: ignore[union-attr]
            recipe.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / recipe.epochs)))
        x = x_train
        if recipe.shift:
            x = model_inputs(random_shift(images, recipe.shift, rng, recipe.shift_fraction),
                             recipe)
        hist = model.fit(x, y_train, epochs=1, batch_size=recipe.batch_size,
                         seed=seed * 100_003 + epoch, verbose=0,
                         validation_data=(x_test, y_test) if monitor_test else None,
                         callbacks=list(callbacks))
        logs = {key.replace("val_", "test_"): values for key, values in hist.history.items()}
        for key, values in logs.items():
            history.setdefault(key, []).extend(values)
        if verbose is not None:
            items = " - ".join(f"{n}: {v[-1]:.4f}" for n, v in logs.items())
            print(f"{verbose}epoch {epoch + 1}/{recipe.epochs} - {items}", file=sys.stderr)
    return model


def save_result(result: TrainResult, path: Any, metadata: dict[str, Any]) -> list[str]:
    """Save the trained network into ``path`` (JSON + npz); an ensemble's members into
    ``path``/member_i each. Returns the directories written."""
    if len(result.members) <= 1:
        result.model.save(path, metadata=metadata)
        return [str(path)]
    paths = []
    for i, member in enumerate(result.members):
        member.save(Path(path) / f"member_{i}", metadata={**metadata, "member": i})
        paths.append(str(Path(path) / f"member_{i}"))
    return paths


def describe_network(data: DigitsData, recipe: Recipe) -> str:
    """One line: the architecture, e.g. "network 64-300-100-10 (ReLU, dropout 0.2, softmax)"
    or "CNN 8×8×1 → conv3×3 32 → pool → conv3×3 64 → pool → 128 → 10 (ReLU, …)"."""
    h, w = data.image_shape
    if recipe.model == "cnn":
        k = recipe.kernel_size
        parts = [f"{h}×{w}×1", *(f"conv{k}×{k} {f} → pool" for f in recipe.filters),
                 *map(str, recipe.hidden), str(data.num_classes)]
        text = f"CNN {' → '.join(parts)} (ReLU, dropout {recipe.conv_dropout:g} after each " \
               f"pool and {recipe.dropout:g} after each hidden layer, softmax)"
    else:
        widths = "-".join(str(v) for v in (h * w, *recipe.hidden, data.num_classes))
        text = f"network {widths} (ReLU, dropout {recipe.dropout:g}, softmax)"
    if recipe.ensemble > 1:
        text += f", ensemble of {recipe.ensemble}"
    return text


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
