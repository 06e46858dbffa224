r"""What SimpleRNN, LSTM and GRU share: weights in Keras 3's layout, the time loop around the
cell, masking, and backpropagation through time (BPTT) up to the cell's own equations.

A recurrent layer applies one cell with one Θ at every step t = 1 … T of a sequence
x = (x_1, …, x_T), each x_t a row of d features, carrying a state h_t (and the LSTM's c_t):

    z_t = x_t W + h_{t−1} U + b          (the cell's pre-activations, G blocks of u columns)
    h_t = cell(z_t, h_{t−1}, …)           (the lecture's a = g(z), per block)

=================  =======================================  =================================
lecture            meaning                                  code
=================  =======================================  =================================
a^(j) = x_t        the input at step t                      ``x[:, t]`` (batch, T, d)
Θ^(j), input part  W: (d, G·u), bias unit b                 ``kernel``, ``bias``
Θ, recurrent part  U: (u, G·u), weights from h_{t−1}        ``recurrent_kernel``
z_t, a_t = h_t     pre-activation, output at step t         ``Z[t]``, ``H[t + 1]``
δ_t                ∂J/∂z_t                                  ``dZ[t]`` in backward
=================  =======================================  =================================

Backpropagation through time is the lecture's backprop on the network unrolled over the
steps, every copy sharing one Θ. From the last step down to the first:

    ∂J/∂h_t = ∂J/∂y_t (from above)  +  δ_{t+1} Uᵀ (the recurrent δ carried back)
    δ_t     = ∂J/∂h_t ⊙ cell′(z_t)   (per cell, see its docstring)

and since every step uses the same Θ, its gradient is the sum over the steps:

    ∂J/∂W = Σ_t x_tᵀ δ_t,   ∂J/∂U = Σ_t h_{t−1}ᵀ δ_t,   ∂J/∂b = Σ_t 1ᵀ δ_t,   ∂J/∂x_t = δ_t Wᵀ.

Speed: the input half of z_t for all steps is one GEMM (x laid out time-major, (T·B, d) ×
(d, G·u)) before the loop; each step adds one GEMM h_{t−1} U; after the backward loop ∂J/∂W,
∂J/∂U and ∂J/∂x are again one GEMM each over all T·B rows, not T small ones.

The step loop's GEMMs are small ((B, u) × (u, G·u)): they run on one BLAS thread (with
threadpoolctl installed), where a second thread costs more in synchronisation than it saves —
many times more when other processes compete for the cores.

Masking: a step whose mask is False leaves the state unchanged (h_t = h_{t−1}, c_t = c_{t−1})
and its output is the carried h (Keras's default); its δ is zero and ∂J/∂h_t passes straight
to h_{t−1}. So a padded batch gives each sequence's outputs and gradients as if alone.
``go_backwards`` runs the steps from T down to 1 and returns the outputs in that order.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np

from thetanet import activations as _activations
from thetanet import initializers as _initializers
from thetanet.layers.base import Layer, Shape, as_shape
from thetanet.layers.weighted import check_budget, positive_int

#: Activations whose g′ is cheaper from a = g(z) than from z.
_FROM_OUTPUT = {"logistic": lambda a: a * (1 - a), "tanh": lambda a: 1 - a * a,
                "identity": np.ones_like}


def cell_activation(identifier: Any, what: str) -> Any:
    """A fixed elementwise activation of the lecture's table for a cell or gate."""
    act = _activations.get(identifier)
    if act.learnable or act.params or not act.elementwise:
        raise ValueError(f"{what} must be a fixed elementwise activation (e.g. tanh, logistic, "
                         f"relu), got {act.name!r}")
    return act


def apply(act: Any, z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = g(z) (out may be a strided view); σ as ½·tanh(z/2) + ½: in place, no overflow."""
    if act.name == "logistic":
        np.multiply(z, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        return out
    if act.name == "tanh":
        return np.tanh(z, out=out)
    out[...] = act.f(z)
    return out


def derivative(act: Any, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """g′(z), from the output a = g(z) where that is cheaper (a new array)."""
    quick = _FROM_OUTPUT.get(act.name)
    return quick(a) if quick is not None else np.asarray(act.df(z), a.dtype)


#: Per-step GEMMs up to this many multiply-adds run on one BLAS thread.
SMALL_GEMM = 1 << 25
_CONTROLLER: list[Any] = []  # the threadpoolctl controller, made once (or None without it)


def step_threads(rows: int, inner: int, cols: int) -> Any:
    """A context running BLAS on one thread when a (rows, inner) × (inner, cols) product is
    small (see the module); a no-op without threadpoolctl or for large products."""
    if rows * inner * cols > SMALL_GEMM:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER.append(ThreadpoolController())
        except ImportError:  # optional: the engine needs only NumPy
            _CONTROLLER.append(None)
    ctl = _CONTROLLER[0]
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")


class Recurrent(Layer):
    """Base class: the subclasses set ``gates`` (G) and ``state_names`` and implement the
    cell's steps, ``_forward_steps`` and ``_backward_steps``, on time-major arrays.

    Args (Keras 3's names and defaults):
        units: u, the width of the state h.
        activation: g of the state / cell (tanh), any fixed activation of the lecture's table.
        use_bias: add the bias unit.
        kernel_initializer, recurrent_initializer, bias_initializer: Glorot-uniform for W,
            orthogonal for U, zeros for b (see :mod:`thetanet.initializers`).
        return_sequences: output every h_t, (batch, T, u), instead of the last h_T (batch, u).
        return_state: ``forward`` returns [output, *final states] (layer-level use).
        go_backwards: process the sequence from the end; outputs come in that order.
        zero_output_for_mask: with ``return_sequences``, padded steps output 0 instead of the
            carried h (Keras sets it inside Bidirectional).
    """

    accepts_mask = True
    linear_backward = True
    param_names: ClassVar[tuple[str, ...]] = ("kernel", "recurrent_kernel", "bias")
    #: G: how many blocks of u columns W and U have (1 SimpleRNN, 4 LSTM, 3 GRU)
    gates: ClassVar[int] = 1
    state_names: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, zero_output_for_mask: bool = False,
                 name: str | None = None) -> None:
        super().__init__(name)
        kind = type(self).__name__
        self.units = positive_int(units, f"{kind} units")
        self.activation = cell_activation(activation, f"{kind} activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.kernel = np.empty((0, 0), np.float32)
        self.recurrent_kernel = np.empty((0, 0), np.float32)
        self.bias = np.empty(0, np.float32)
        self._cache: dict[str, Any] = {}
        #: ∂J/∂(initial states), after a backward of a forward given ``initial_state``
        self.d_initial_state: list[np.ndarray] | None = None

    # -- shapes and weights ------------------------------------------------------------------
    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) != 2:
            raise ValueError(f"{type(self).__name__} needs sequences (steps × features) per "
                             f"example, got examples of shape {shape}; put an Embedding "
                             "before it or give x the shape (batch, T, d)")
        steps, d = shape
        u, gu = self.units, self.gates * self.units
        out = (steps, u) if self.return_sequences else (u,)
        check_budget((d + u + 2) * gu, f"{type(self).__name__} {self.name!r} ({d} + {u}, {gu})")
        self._set_shapes(shape, out, dtype)
        dt = self.dtype
        self.kernel = np.ascontiguousarray(self.kernel_initializer((d, gu), rng, dt), dt)
        self.recurrent_kernel = np.ascontiguousarray(
            self.recurrent_initializer((u, gu), rng, dt), dt)
        self.bias = np.ascontiguousarray(self.initial_bias(rng), dt)
        self.d_kernel = np.zeros_like(self.kernel)
        self.d_recurrent_kernel = np.zeros_like(self.recurrent_kernel)
        self.d_bias = np.zeros_like(self.bias)
        self._cache.clear()
        return out

    def initial_bias(self, rng: np.random.Generator) -> np.ndarray:
        return self.bias_initializer(self.bias_shape(), rng, self.dtype)

    @property
    def params(self) -> list[np.ndarray]:
        return [self.kernel, self.recurrent_kernel, self.bias] if self.use_bias else \
            [self.kernel, self.recurrent_kernel]

    @property
    def grads(self) -> list[np.ndarray]:
        return [self.d_kernel, self.d_recurrent_kernel, self.d_bias] if self.use_bias else \
            [self.d_kernel, self.d_recurrent_kernel]

    @property
    def weight_names(self) -> list[str]:
        return list(self.param_names[:3 if self.use_bias else 2])

    def compute_mask(self, x: Any, mask: np.ndarray | None) -> np.ndarray | None:
        """The input mask when every step is an output, else None (one output per sequence)."""
        if mask is None or not self.return_sequences:
            return None
        return mask[:, ::-1] if self.go_backwards else mask

    # -- forward -----------------------------------------------------------------------------
    def _time_major(self, x: Any, mask: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """x as (T, B, d) in processing order (contiguous), the mask as (T, B, 1) bool."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.kernel.shape[0]:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (batch, T, "
                             f"{self.kernel.shape[0]}), got {x.shape}")
        xt = x.transpose(1, 0, 2)
        mt = None
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != x.shape[:2]:
                raise ValueError(f"mask has shape {mask.shape}, expected (batch, T) = "
                                 f"{x.shape[:2]}")
            mt = mask.T[:, :, None]
        if self.go_backwards:
            xt = xt[::-1]
            mt = None if mt is None else mt[::-1]
        xt = np.ascontiguousarray(xt, dtype=self.dtype)
        return xt, None if mt is None else np.ascontiguousarray(mt)

    def _initial(self, batch: int, initial_state: Any) -> list[np.ndarray]:
        n = len(self.state_names)
        if initial_state is None:
            return [np.zeros((batch, self.units), self.dtype) for _ in range(n)]
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else \
            [initial_state]
        if len(states) != n:
            raise ValueError(f"{type(self).__name__} takes {n} initial state(s) "
                             f"({', '.join(self.state_names)}), got {len(states)}")
        out = [np.ascontiguousarray(s, dtype=self.dtype) for s in states]
        for s in out:
            if s.shape != (batch, self.units):
                raise ValueError(f"an initial state must have shape {(batch, self.units)}, "
                                 f"got {s.shape}")
        return out

    def forward(self, x: Any, training: bool = False, mask: np.ndarray | None = None,
                initial_state: Any = None) -> Any:
        """The outputs (see ``return_sequences``), with the final states after them when
        ``return_state``; ``mask``: bool (batch, T), True = real step."""
        xt, mt = self._time_major(x, mask)
        steps, batch, d = xt.shape
        xw = np.dot(xt.reshape(steps * batch, d), self.kernel).reshape(steps, batch, -1)
        if self.use_bias:
            xw += self.input_bias()
        states = self._initial(batch, initial_state)
        with step_threads(batch, self.units, xw.shape[2]):
            hs, finals, cache = self._forward_steps(xw, mt, states, training)
        if training:
            self._cache = {"xt": xt, "mt": mt, "hs": hs, "cell": cache, "batch": batch,
                           "given_state": initial_state is not None}
        if self.return_sequences:
            seq = hs[1:] * mt if (self.zero_output_for_mask and mt is not None) else hs[1:]
            out = np.ascontiguousarray(seq.transpose(1, 0, 2))
        else:
            out = hs[-1].copy()
        if self.return_state:
            return [out, *(s.copy() for s in finals)]
        return out

    def input_bias(self) -> np.ndarray:
        """The part of the bias added with x W (all of it but GRU's recurrent half)."""
        return self.bias

    # -- backward ----------------------------------------------------------------------------
    def backward(self, grad: Any, *, grad_is_preactivation: bool = False) -> np.ndarray | None:
        """``grad``: ∂J/∂output, or the list [∂J/∂output, ∂J/∂(final states)…] with
        ``return_state`` (None entries: zero). Fills ∂J/∂W, ∂J/∂U, ∂J/∂b; returns ∂J/∂x."""
        c = self._cache
        if not c:
            raise ValueError(f"{type(self).__name__}.backward needs a training forward first")
        xt, hs, mt = c["xt"], c["hs"], c["mt"]
        steps, batch, d = xt.shape
        grads = list(grad) if isinstance(grad, (list, tuple)) else [grad]
        d_out, d_finals = grads[0], grads[1:]
        d_hs = None
        if d_out is not None and self.return_sequences:
            d_hs = np.asarray(d_out, self.dtype).transpose(1, 0, 2)  # (T, B, u) in order
            if self.zero_output_for_mask and mt is not None:
                d_hs = d_hs * mt  # padded outputs were 0: no gradient flows from them
        d_last = [np.zeros((batch, self.units), self.dtype) for _ in self.state_names]
        if d_out is not None and not self.return_sequences:
            d_last[0] += d_out
        for i, g in enumerate(d_finals):
            if g is not None:
                d_last[i] += g
        with step_threads(batch, self.units, self.gates * self.units):
            d_xw, d_rec, d_init = self._backward_steps(c["cell"], hs, d_hs, d_last, mt)
        self._parameter_grads(xt, hs, d_xw, d_rec)
        self.d_initial_state = d_init if c["given_state"] else None
        if not self.needs_input_grad:
            return None
        dx = np.dot(d_xw.reshape(steps * batch, -1), self.kernel.T).reshape(steps, batch, d)
        if self.go_backwards:
            dx = dx[::-1]
        return np.ascontiguousarray(dx.transpose(1, 0, 2))

    def _parameter_grads(self, xt: np.ndarray, hs: np.ndarray, d_xw: np.ndarray,
                         d_rec: np.ndarray) -> None:
        """Σ over the steps as one GEMM each: ∂J/∂W = Xᵀ δ, ∂J/∂U = H_prevᵀ δ_rec, ∂J/∂b."""
        steps, batch, d = xt.shape
        rows = steps * batch
        dx2, dr2 = d_xw.reshape(rows, -1), d_rec.reshape(rows, -1)
        np.dot(xt.reshape(rows, d).T, dx2, out=self.d_kernel)
        np.dot(hs[:-1].reshape(rows, self.units).T, dr2, out=self.d_recurrent_kernel)
        if self.use_bias:
            self.bias_grads(dx2, dr2)

    def bias_grads(self, d_xw: np.ndarray, d_rec: np.ndarray) -> None:
        np.add.reduce(d_xw, axis=0, out=self.d_bias)

    # -- the cell (subclasses) ---------------------------------------------------------------
    def _forward_steps(self, xw: np.ndarray, mt: np.ndarray | None, states: list[np.ndarray],
                       keep: bool) -> tuple[np.ndarray, list[np.ndarray], Any]:
        """Run the steps on xw = x_t W + b (T, B, G·u), in place. Returns H (T + 1, B, u) with
        H[0] = h_0, the final states, and what the backward needs (when ``keep``)."""
        raise NotImplementedError

    def _backward_steps(self, cache: Any, hs: np.ndarray, d_hs: np.ndarray | None,
                        d_last: list[np.ndarray], mt: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """BPTT through the cell: (δ of x W + b, δ of h U (+ b_rec), ∂J/∂(initial states)),
        the first two (T, B, G·u)."""
        raise NotImplementedError

    # -- config ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation.get_config(),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
            "name": self.name,
        }


def carry_masked(mt: np.ndarray | None, t: int, new: np.ndarray, old: np.ndarray) -> None:
    """Padded rows keep their previous state: new[b] = old[b] where the mask is False."""
    if mt is not None:
        np.copyto(new, old, where=~mt[t])


def split_masked(mt: np.ndarray | None, t: int, d: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """(∂J/∂h on the real rows, ∂J/∂h on the padded rows — passed on unchanged)."""
    if mt is None:
        return d, None
    m = mt[t]
    return np.where(m, d, 0), np.where(m, 0, d)
