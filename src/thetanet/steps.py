r"""One training step on a batch — backprop, then θ ← update(θ, ∂J/∂θ) — as named strategies.

The lecture's step is :class:`PlainStep`: forward and backward (filling every layer's ∂J/∂θ),
then the optimiser's update of every parameter. Two speed paths do the same arithmetic in
another order, each chosen once per ``fit`` by :func:`choose_step` from what the optimiser and
the layers declare:

- :class:`LazyRowsStep` (``optimizer.uses_rows``, lazy Adam): the layers also say which kernel
  rows got a non-zero gradient (sparse inputs), and only those rows are updated;
- :class:`FoldedStep` (``optimizer.folded_learning_rate()`` is η — SGD without momentum — and
  every layer's backward is linear in δ, no shared layer): backprop starts from η·δ^(L), so the
  gradients come out as η·∂J/∂θ, and each layer is updated θ ← θ − η∂J/∂θ right after its
  backward, while its gradient is still in cache ("update after backward"). Only after such a
  step do the layers' ``grads`` hold η·∂J/∂θ instead of ∂J/∂θ.

No strategy updates anything when J is not finite (the fit loop handles the divergence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from thetanet.layers import Layer
    from thetanet.optimizers import Optimizer

#: (x, y, training, scale, after_backward) → (J, a^(L)): the model's forward/backward pass.
ForwardBackward = Callable[..., tuple[float, Any]]


@dataclass(frozen=True)
class StepParts:
    """What a step needs from the model, looked up once per fit (valid while the model's
    arrays are not replaced)."""

    forward_backward: ForwardBackward
    optimizer: Optimizer
    layers: Sequence[Layer]
    params: list[np.ndarray]
    grads: list[np.ndarray]
    grad_rows: Callable[[], list[np.ndarray | None]]
    shared_layers: bool


class PlainStep:
    """Backprop, then ``optimizer.step(params, grads)``."""

    def __init__(self, parts: StepParts) -> None:
        self.parts = parts
        self.fb, self.update = parts.forward_backward, parts.optimizer.step
        self.params, self.grads = parts.params, parts.grads

    def __call__(self, x: Any, y: Any) -> tuple[float, Any]:
        loss, a = self.fb(x, y, True)
        if math.isfinite(loss):
            self.update(self.params, self.grads)
        return loss, a


class LazyRowsStep(PlainStep):
    """Backprop, then an update of the rows the layers say got a gradient (lazy Adam)."""

    def __call__(self, x: Any, y: Any) -> tuple[float, Any]:
        loss, a = self.fb(x, y, True)
        if math.isfinite(loss):
            self.update(self.params, self.grads, self.parts.grad_rows())
        return loss, a


class FoldedStep(PlainStep):
    """η folded into δ^(L); each layer updated right after its backward."""

    def __init__(self, parts: StepParts) -> None:
        super().__init__(parts)
        opt = parts.optimizer
        self.rate_now, self.end_step = opt.folded_learning_rate, opt.end_folded_step
        apply_folded = opt.apply_folded
        pairs = {id(layer): (layer.params, layer.grads) for layer in parts.layers}

        def after_backward(layer: Layer) -> None:  # θ ← θ − η∂J/∂θ
            apply_folded(*pairs[id(layer)])
        self.after_backward = after_backward

    def __call__(self, x: Any, y: Any) -> tuple[float, Any]:
        rate = self.rate_now()  # read every step: a callback may change η …
        if rate is None:  # … or the momentum
            return super().__call__(x, y)
        loss, a = self.fb(x, y, True, rate, self.after_backward)  # no update if J not finite
        if math.isfinite(loss):
            self.end_step()
        return loss, a


def choose_step(parts: StepParts) -> PlainStep:
    """The strategy for this optimiser and these layers (see the module docstring)."""
    opt = parts.optimizer
    if (opt.folded_learning_rate() is not None and not parts.shared_layers
            and all(layer.linear_backward for layer in parts.layers)):
        return FoldedStep(parts)
    if opt.uses_rows:
        return LazyRowsStep(parts)
    return PlainStep(parts)
