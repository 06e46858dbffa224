r"""What the layers with weights share: a kernel, an optional bias, L2 λ on the kernel.

Dense, Maxout and Conv2D all hold Θ as ``kernel`` (plus ``bias``, the bias unit's column) and
may add (λ/2)‖kernel‖² to J; Dense and Conv2D also apply an activation g, whose learnable
parameters (PReLU's slopes, APL's hinges, …) come after kernel and bias in ``params``. This
base gives them one constructor check, one way to create the arrays and one set of declared
capabilities (``linear_backward``, ``penalty``), so the three layers only say what differs:
their shapes and their propagation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import initializers as _initializers
from thetanet.layers.base import Layer, l2_penalty

#: Most parameters one layer's kernel may hold (10⁸: 0.4 GB of float32, 1.6 GB with its
#: gradient and Adam's two moments). A wider layer is refused when it is built, before
#: anything is allocated.
MAX_LAYER_PARAMS = 10**8


class ParameterBudgetError(ValueError):
    """A network or layer above the documented parameter budget (nothing was allocated)."""


def check_budget(count: int, what: str, limit: int = MAX_LAYER_PARAMS) -> None:
    """Refuse ``count`` parameters above ``limit`` (a :class:`ParameterBudgetError`)."""
    if count > limit:
        raise ParameterBudgetError(f"{what} would hold {count:,} parameters, above the budget "
                                   f"of {limit:,}; choose a smaller network")


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int ≥ 1, or a ValueError naming ``what`` (e.g. "Dense units")."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class WeightedLayer(Layer):
    """Base of the layers with a kernel: ``kernel``, ``bias`` (if ``use_bias``), ``l2``.

    Subclasses call :meth:`_init_weights` in ``__init__`` and :meth:`_create_weights` in
    ``build``; ``activation`` (None: the layer has none) adds g's parameters.
    """

    activation: Any = None

    def _init_weights(self, kernel_initializer: Any, bias_initializer: Any, use_bias: bool,
                      l2: float, kernel_ndim: int) -> None:
        if not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"{type(self).__name__} l2 must be a non-negative number, "
                             f"got {l2!r}")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.use_bias = bool(use_bias)
        self.l2 = float(l2)
        self.kernel = np.empty((0,) * kernel_ndim, np.float32)
        self.bias = np.empty(0, np.float32)

    def _create_weights(self, kernel_shape: tuple[int, ...], bias_size: int,
                        rng: np.random.Generator) -> None:
        """Draw kernel and bias from the initialisers (contiguous, the layer's dtype) and
        make their zeroed gradient arrays; build the activation for ``bias_size`` units.
        Refused first when the kernel would exceed :data:`MAX_LAYER_PARAMS`."""
        check_budget(int(np.prod(kernel_shape, dtype=object)) + bias_size,
                     f"{type(self).__name__} {self.name!r} {kernel_shape}")
        self.kernel = np.ascontiguousarray(
            self.kernel_initializer(kernel_shape, rng, self.dtype), self.dtype)
        self.bias = np.ascontiguousarray(
            self.bias_initializer((bias_size,), rng, self.dtype), self.dtype)
        self.d_kernel = np.zeros_like(self.kernel)
        self.d_bias = np.zeros_like(self.bias)
        if self.activation is not None:
            self.activation.build(self.kernel.shape[-1], self.dtype, rng)

    def _weights_config(self) -> dict[str, Any]:
        """The constructor arguments this base owns, for ``get_config``."""
        return {"kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "use_bias": self.use_bias, "l2": self.l2}

    # -- parameters --------------------------------------------------------------------------
    @property
    def _g_params(self) -> dict[str, np.ndarray]:
        return {} if self.activation is None else self.activation.params

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        own = ("kernel", "bias") if self.use_bias else ("kernel",)
        return own + tuple(f"activation.{k}" for k in self._g_params)

    @property
    def params(self) -> list[np.ndarray]:
        own = [self.kernel, self.bias] if self.use_bias else [self.kernel]
        return own + list(self._g_params.values())

    @property
    def grads(self) -> list[np.ndarray]:
        own = [self.d_kernel, self.d_bias] if self.use_bias else [self.d_kernel]
        return own + ([] if self.activation is None else list(self.activation.grads.values()))

    # -- declared capabilities (see Layer) ---------------------------------------------------
    @property
    def linear_backward(self) -> bool:  # type: ignore[override]
        return not self.l2  # λ·kernel is added to ∂J/∂kernel, unscaled

    @property
    def has_penalty(self) -> bool:
        return bool(self.l2)

    def penalty(self) -> float:
        """The L2 term (λ/2)‖kernel‖² added to the loss."""
        return l2_penalty(self.kernel, self.l2)

    @property
    def output_activation(self) -> str | None:
        return None if self.activation is None else self.activation.name
