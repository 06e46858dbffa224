r"""Dense: one layer of the lecture's network, z^(j+1) = Θ^(j) a^(j), a^(j+1) = g(z^(j+1)).

Notation → code (row-major, one example per row):

==================  =====================================  ==================================
lecture             meaning                                code
==================  =====================================  ==================================
a^(j), a_0 = 1      activations of layer j + bias unit     ``x`` (m, s_j); the bias unit is
                                                           implicit in ``bias``
Θ^(j)               s_{j+1} × (s_j + 1) weights            ``theta`` = [bias | kernelᵀ]
z^(j+1)             Θ^(j) a^(j)                            ``z`` = x @ kernel + bias
a^(j+1) = g(z)      activations of layer j + 1             ``a`` = activation.f(z)
δ^(j+1)             ∂J/∂z^(j+1)                            ``delta`` in ``backward``
Δ^(j)               Σ over examples of δ^(j+1) a^(j)ᵀ      ``grads`` = [xᵀ δ, Σ δ]
==================  =====================================  ==================================

Backward: δ^(j+1) = grad ⊙ g'(z^(j+1)); ∂J/∂kernel = xᵀ δ (+ λ·kernel with ``l2=λ``, bias not
regularised); ∂J/∂bias = Σ_rows δ; the layer below gets δ kernelᵀ = (Θ^(j))ᵀ δ without the bias
column. The loss divides by the batch size m, so these are batch averages.

On sequences, x of shape (m, T, s_j), the layer is applied at every step with the same Θ,
as Keras does: the m·T steps are the rows of one (m·T, s_j) matrix (a reshape, no copy), so
the forward, the fused softmax + cross-entropy and the backward are the flat layer's, and
∂J/∂kernel = Σ over the examples and steps of x_tᵀ δ_t. The output mask is the input's.

The first layer also accepts a SciPy CSR matrix ``x`` (sparse features) or a
:class:`~thetanet.blockmatrix.BlockMatrix` (dense and sparse column blocks side by side): same
result as the dense array, and no input gradient is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import activations as _activations
from thetanet.blockmatrix import BlockMatrix, is_sparse, used_columns
from thetanet.layers.base import Shape, as_shape, register_layer
from thetanet.layers.weighted import WeightedLayer, positive_int


@register_layer
class Dense(WeightedLayer):
    """Fully connected layer with an optional activation.

    Args:
        units: s_{j+1}, the number of units (outputs).
        activation: name, config or instance from :mod:`thetanet.activations` (None = identity).
        kernel_initializer, bias_initializer: see :mod:`thetanet.initializers`.
        use_bias: include the bias unit a_0 = 1 (column 0 of Θ).
        l2: L2 penalty λ: adds (λ/2)‖kernel‖² to the (batch-mean) loss.
        input_dim: optional input width, to build without data.
    """

    def __init__(self, units: int, activation: Any = None,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 use_bias: bool = True, l2: float = 0.0, input_dim: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.units = positive_int(units, "Dense units")
        self.activation = _activations.get(activation)
        self._init_weights(kernel_initializer, bias_initializer, use_bias, l2, kernel_ndim=2)
        self.declared_input_dim = input_dim
        self._cache: dict[str, Any] = {}
        # rows of d_kernel written by BlockMatrix.t_matmul (its other rows stay zero between calls)
        self._t_state: dict[str, Any] = {}
        self._kernel_rows: np.ndarray | None = None  # see grad_rows

    fused_output = True
    propagates_mask = True  # sequences: step t of the output is step t of the input

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) > 2:
            raise ValueError(f"Dense needs flat inputs (examples × features) or sequences "
                             f"(examples × steps × features), got examples of shape {shape}; "
                             "put a Flatten layer before it")
        width = shape[-1]
        if self.declared_input_dim is not None and width != self.declared_input_dim:
            raise ValueError(f"Dense declared input_dim={self.declared_input_dim} but receives "
                             f"inputs of width {width}")
        out = (*shape[:-1], self.units)
        self._set_shapes(shape, out, dtype)
        self.width = width  # s_j, features per row (per step for sequences)
        self._lead: tuple[int, ...] | None = None  # (m, T) of the last training sequence batch
        self._create_weights((width, self.units), self.units, rng)
        return out

    def grad_rows(self) -> list[np.ndarray | None]:
        """With a sparse or block input only the kernel rows of columns that hold a non-zero in
        the batch (and all rows of dense blocks) get a gradient; L2 touches every row."""
        return [self._kernel_rows] + [None] * (len(self.grads) - 1)

    # -- the lecture's Θ ---------------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        """Θ^(j), shape s_{j+1} × (s_j + 1), bias in column 0 (a copy)."""
        bias = self.bias if self.use_bias else np.zeros(self.units, self.kernel.dtype)
        return np.hstack([bias[:, None], self.kernel.T])

    @theta.setter
    def theta(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=self.dtype)
        want = (self.units, (self.width if self.built else 0) + 1)
        if not self.built or value.shape != want:
            raise ValueError(f"theta must have shape {want} (units × (inputs + 1)), "
                             f"got {value.shape}" + ("" if self.built else "; build first"))
        if not self.use_bias and np.any(value[:, 0] != 0):
            raise ValueError("this Dense layer has use_bias=False: theta's column 0 must be 0")
        self.kernel[...] = value[:, 1:].T
        if self.use_bias:
            self.bias[...] = value[:, 0]

    # -- propagation -------------------------------------------------------------------------
    def _buffers(self, m: int) -> tuple[Any, ...]:
        """Training buffers for a batch of ``m`` rows: (m, z, a, delta, dx, ones), reused
        across steps; a smaller batch (an epoch's last) gets views of the larger buffers."""
        cap = self._cache.get("cap")
        if cap is None or cap[0] < m or cap[1].dtype != self.dtype:
            units, d = self.units, self.width
            z = np.empty((m, units), self.dtype)
            a = z if self.activation.name == "identity" else np.empty((m, units), self.dtype)
            cap = (m, z, a, np.empty((m, units), self.dtype), np.empty((m, d), self.dtype),
                   np.ones(m, self.dtype))
            self._cache.clear()
            self._cache["cap"] = cap
        views = (m, *(b[:m] for b in cap[1:]))
        self._cache["views"] = views
        return views

    def preactivation(self, x: Any) -> np.ndarray:
        """z = x @ kernel + bias (a new array)."""
        z = np.asarray(x @ self.kernel, dtype=self.dtype)
        if self.use_bias:
            z += self.bias
        return z

    def forward_with_z(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        if type(x) is np.ndarray and x.ndim == 3:  # sequences: g per step (softmax per row)
            z, a = self.forward_with_z(x.reshape(-1, x.shape[2]))
            return z.reshape(*x.shape[:2], -1), a.reshape(*x.shape[:2], -1)
        z = self.preactivation(x)
        return z, self.activation.f(z.copy())

    def forward_linear(self, x: Any) -> np.ndarray:
        """Training forward without the activation: z = x @ kernel + bias into a reused buffer
        (``x`` and ``z`` are cached for :meth:`backward`; see :meth:`output_buffers`). A
        sequence batch (m, T, s_j) is taken as m·T rows: z is (m·T, units)."""
        self._lead = None
        if type(x) is np.ndarray and x.ndim == 3:
            self._lead = x.shape[:2]
            x = x.reshape(-1, x.shape[2])
        views = self._cache.get("views")
        if views is None or views[0] != x.shape[0]:
            views = self._buffers(x.shape[0])
        z = views[1]
        if type(x) is np.ndarray:
            if x.dtype is self.dtype:
                np.dot(x, self.kernel, out=z)  # the least overhead for a small batch
            else:
                np.matmul(x, self.kernel, out=z)
        elif is_sparse(x) or isinstance(x, BlockMatrix):
            z[...] = x @ self.kernel
        else:
            np.matmul(x, self.kernel, out=z)
        if self.use_bias:
            np.add(z, self.bias, out=z)
        self.x = x
        self.z = z
        return z

    def output_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The (a, δ) buffers of the current batch, for a fused output + loss step; ``a`` is
        cached as the layer's output."""
        views = self._cache["views"]
        self.a = views[2]
        return views[2], views[3]

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        if training:
            z = self.forward_linear(x)
            a = self._cache["views"][2]
            a = z if a is z else self.activation.f(z, out=a)
            self.a = a
            return a if self._lead is None else a.reshape(*self._lead, self.units)
        if type(x) is np.ndarray and x.ndim == 3:  # sequences: every step, one GEMM
            return self.forward(x.reshape(-1, x.shape[2])).reshape(*x.shape[:2], self.units)
        z = np.asarray(x @ self.kernel, dtype=self.dtype)
        if self.use_bias:
            z += self.bias
        return self.activation.f(z, out=z if self.activation.elementwise else None)

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        """grad = ∂J/∂a^(j+1) (or δ^(j+1) itself when ``grad_is_preactivation``); for
        sequences (m, T, units) or its (m·T, units) rows."""
        if self._lead is not None and grad.ndim == 3:
            grad = grad.reshape(-1, self.units)
        delta = grad if grad_is_preactivation else self.activation.backward(self.z, self.a, grad)
        x = self.x
        self._kernel_rows = None
        dk = self.d_kernel
        if type(x) is np.ndarray:
            if x.shape[0] == 1:  # online learning: ∂J/∂kernel is the outer product xᵀ δ
                self._outer(x, delta, dk)
            elif x.dtype is dk.dtype and delta.dtype is dk.dtype:
                np.dot(x.T, delta, out=dk)
            else:
                np.matmul(x.T, delta, out=dk)
        elif isinstance(x, BlockMatrix):
            if self.l2:  # dk += l2·kernel below fills every row: zero all of it next time
                self._t_state.clear()
                x.t_matmul(delta, dk)
            else:
                x.t_matmul(delta, dk, self._t_state)
                self._kernel_rows = self._t_state["touched"]
        elif is_sparse(x):
            dk[...] = x.T @ delta
            self._kernel_rows = used_columns(x.indices, x.shape[1])[0]
        else:
            np.matmul(x.T, delta, out=dk)
        if self.l2:
            dk += self.l2 * self.kernel
            self._kernel_rows = None
        if self.use_bias:
            if delta.shape[0] == 1:
                np.copyto(self.d_bias, delta[0])
            elif delta.dtype is self.d_bias.dtype:
                np.dot(self._cache["views"][5], delta, out=self.d_bias)  # 1ᵀδ: one BLAS GEMV
            else:
                np.add.reduce(delta, axis=0, out=self.d_bias)
        if not self.needs_input_grad:
            return None
        dx = self._cache["views"][4]
        if delta.dtype is dx.dtype:
            np.dot(delta, self.kernel.T, out=dx)
        else:
            np.matmul(delta, self.kernel.T, out=dx)
        return dx if self._lead is None else dx.reshape(*self._lead, self.width)

    def _outer(self, x: np.ndarray, delta: np.ndarray, out: np.ndarray) -> None:
        """out = xᵀ δ for one row. BLAS takes a slow path for a GEMM with k = 1, and
        broadcasting pays per row, so a large one is a k = 2 GEMM with a zero second row (the
        same products, plus 0·0)."""
        if out.size < 4096 or x.dtype is not out.dtype or delta.dtype is not out.dtype:
            np.multiply(x.T, delta, out=out)
            return
        pads = self._cache.get("pad")
        if pads is None or pads[0].shape[1] != x.shape[1] or pads[1].shape[1] != delta.shape[1]:
            pads = (np.zeros((2, x.shape[1]), out.dtype), np.zeros((2, delta.shape[1]), out.dtype))
            self._cache["pad"] = pads
        xp, dp = pads
        np.copyto(xp[:1], x)
        np.copyto(dp[:1], delta)
        np.dot(xp.T, dp, out=out)

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation.get_config(),
            **self._weights_config(),
            "input_dim": self.declared_input_dim,
            "name": self.name,
        }
