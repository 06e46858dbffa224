r"""Networks in one line: :func:`mlp` builds the lecture's multi-layer perceptron.

``mlp([s_1, s_2, …, s_L])`` is a :class:`~thetanet.model.Sequential` with s_1 inputs, one
``Dense`` layer per later entry (hidden layers with ``activation``, the last one with
``output_activation``) and optional dropout, built and ready to ``compile``::

    from thetanet.builders import mlp

    net = mlp([64, 512, 256, 10], activation="relu", dropout=0.3, seed=0)   # 64-512-256-10
    net.compile("adam", "sparse_categorical_crossentropy")

The noun-compound classifier, the digits and logic examples and the scikit-learn estimators
all build their networks here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thetanet.layers import Dense, Dropout, Layer
from thetanet.layers.weighted import check_budget
from thetanet.model import Sequential

__all__ = ["MAX_NETWORK_PARAMS", "mlp"]

#: Most parameters an MLP built here may hold (each layer is also held to
#: :data:`thetanet.layers.MAX_LAYER_PARAMS`): refused before anything is allocated.
MAX_NETWORK_PARAMS = 10**8


def mlp(sizes: Sequence[int], *, activation: Any = "relu",
        output_activation: Any = "softmax", dropout: float = 0.0, input_dropout: float = 0.0,
        l2: float = 0.0, output_l2: float | None = None,
        kernel_initializer: Any = "glorot_uniform", output_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros", seed: int | None = None, dtype: Any = "float32",
        name: str | None = None) -> Sequential:
    """A built MLP with layer widths ``sizes`` = (s_1 inputs, s_2, …, s_L outputs).

    Layers, in order: ``Dropout(input_dropout)`` on the input (if > 0); per hidden width s_l
    a ``Dense(s_l, activation, l2=l2)`` followed by ``Dropout(dropout)`` (if > 0); the output
    ``Dense(s_L, output_activation, l2=output_l2)`` (``output_l2`` None: ``l2``).
    ``sizes`` of length 2 gives no hidden layer: a linear / logistic / softmax regression.
    ``activation`` may be a name or a config dict (each layer gets its own copy, so a
    learnable activation is not shared). ``kernel_initializer`` initialises the hidden Θ,
    ``output_initializer`` the output Θ; ``seed`` draws both and the dropout masks.
    """
    widths = [int(s) for s in sizes]
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least the input and the output size, got {sizes!r}")
    if any(w < 1 for w in widths):
        raise ValueError(f"layer sizes must be positive, got {list(sizes)!r}")
    check_budget(sum(a * b + b for a, b in zip(widths, widths[1:])),
                 f"an MLP {'-'.join(map(str, widths))}", MAX_NETWORK_PARAMS)
    layers: list[Layer] = []
    if input_dropout:
        layers.append(Dropout(input_dropout))
    for width in widths[1:-1]:
        layers.append(Dense(width, _fresh(activation), kernel_initializer=kernel_initializer,
                            bias_initializer=bias_initializer, l2=l2))
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(widths[-1], _fresh(output_activation),
                        kernel_initializer=output_initializer, bias_initializer=bias_initializer,
                        l2=l2 if output_l2 is None else output_l2))
    model = Sequential(layers, dtype=dtype, seed=seed, name=name)
    return model.build(widths[0])


def _fresh(activation: Any) -> Any:
    """A copy of a config dict (one activation object per layer); names pass through."""
    return dict(activation) if isinstance(activation, dict) else activation
