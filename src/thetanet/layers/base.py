r"""The layer contract shared by every layer.

A layer maps the activations a^(l) of the layer below (``x``, one row per example: shape
(m, s_l) for flat layers, (m, *input_shape) in general) to its own output a^(l+1).

- ``build(input_shape, dtype=, rng=)`` creates the parameters for one example's shape (a tuple
  without the batch axis; an int n means (n,)) and returns the output shape;
- ``forward(x, training)`` computes the output and, in training, caches what ``backward``
  needs;
- ``backward(grad)`` takes ∂J/∂(output) (or δ = ∂J/∂z itself with ``grad_is_preactivation``,
  see :attr:`Layer.output_activation`), fills ``grads`` (same order and shapes as ``params``)
  and returns ∂J/∂x, or ``None`` when ``needs_input_grad`` is False (nothing below learns).

What a layer can do beyond that is declared here, with defaults, so that the model and the
training loop never probe for attributes or layer types:

=========================  ======================================================================
``stochastic``             random in training, the identity at inference (dropout)
``linear_backward``        gradients linear in the incoming gradient (scaling δ^(L) scales
                           them all: plain SGD may fold η into δ^(L))
``penalty()``              the layer's term in J (L2), 0 by default; ``has_penalty`` says if any
``output_activation``      name of the g applied last (its input z cached as ``self.z`` in
                           training), so a loss whose δ^(L) = a^(L) − y is exact can fuse with it
``forward_with_z(x)``      inference forward that also returns that z (an exact J from z^(L))
``fused_output``           the layer offers ``forward_linear`` / ``output_buffers``: a fused
                           loss computes a = g(z), J and δ^(L) in one pass into its buffers
``grad_rows()``            per gradient, the rows the last backward may have made non-zero
``multi_input``            ``forward`` takes a list of arrays (one per input tensor), ``build`` a
                           list of shapes, ``backward`` returns a list of gradients (merge
                           layers, attention)
``n_outputs``              outputs per call; above 1 ``forward`` returns a tuple, ``build`` a
                           list of shapes and ``backward`` takes a list of gradients
``accepts_mask``           ``forward(x, training, mask=...)`` takes the (batch, T) bool mask of
                           real steps (sequence layers); others are called without it
``compute_mask(x, mask)``  the mask of the output given the input and its mask: None by default
                           (dropped); ``propagates_mask`` layers pass it through unchanged
=========================  ======================================================================

Masks (sequences): True marks a real step, False a padded one. A padded step changes neither
a recurrent state nor the loss; backward is unchanged (``backward(grad)``), a mask-aware layer
keeps the mask it saw in forward. A multi-input layer gets (and ``compute_mask`` takes) a list
of masks, one per input; a layer with several outputs returns a list of masks.

Calling a layer on symbolic tensors (``Dense(8)(Input((4,)))``) records a
:class:`~thetanet.layers.symbolic.Node` and returns its output tensor(s): the functional style of
:class:`thetanet.graph.Model`. Arrays go through :meth:`Layer.forward`, never through a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from thetanet.layers.symbolic import Node, SymbolicTensor

_LAYER_CLASSES: dict[str, type[Layer]] = {}

Shape = tuple[int, ...]


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make ``cls`` loadable from its ``get_config()`` by class name."""
    _LAYER_CLASSES[cls.__name__] = cls
    return cls


def as_shape(shape: Any) -> Shape:
    """One example's shape as a tuple of positive ints: ``n`` → ``(n,)``."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                       for d in dims):
        raise ValueError(f"an input shape must be positive integers, got {shape!r}")
    return tuple(int(d) for d in dims)


def flat_width(shape: Any, layer: str) -> int:
    """The width n of a flat input shape (n,); ``layer`` names the layer that needs it."""
    dims = as_shape(shape)
    if len(dims) != 1:
        raise ValueError(f"{layer} needs flat inputs (examples × features), got examples of "
                         f"shape {dims}; put a Flatten layer before it")
    return dims[0]


def l2_penalty(kernel: np.ndarray, l2: float) -> float:
    """(λ/2)‖kernel‖², the L2 term a layer adds to the loss (bias not regularised)."""
    if not l2:
        return 0.0
    flat = kernel.ravel()
    return 0.5 * l2 * float(np.dot(flat, flat))


def layer_from_config(config: dict[str, Any]) -> Layer:
    """Rebuild an (unbuilt) layer from ``{"class_name": ..., "config": {...}}``."""
    try:
        cls = _LAYER_CLASSES[config["class_name"]]
    except KeyError as exc:
        raise ValueError(f"unknown layer in config: {config.get('class_name')!r}") from exc
    return cls(**config["config"])


class Layer:
    """Base class: subclasses implement ``build``, ``forward``, ``backward``, ``get_config``."""

    #: Names of the arrays in ``params`` (Keras order), e.g. ("kernel", "bias").
    param_names: ClassVar[tuple[str, ...]] = ()
    #: Random in training and the identity at inference (dropout): a forward pass that keeps
    #: caches for a backward pass without training noise (gradient checks) skips the layer.
    stochastic: ClassVar[bool] = False
    #: ``backward`` is linear in the incoming gradient, parameter gradients included (no added
    #: term such as L2): then δ^(L)·η gives η·∂J/∂θ everywhere, and plain SGD folds η into
    #: δ^(L). Built-in layers declare it (a property where it depends on ``l2``).
    linear_backward: bool = False
    #: The layer implements :meth:`forward_linear` and :meth:`output_buffers`.
    fused_output: ClassVar[bool] = False
    #: ``forward`` / ``build`` take lists (one entry per input), ``backward`` returns a list.
    multi_input: ClassVar[bool] = False
    #: Outputs per call: above 1, ``forward`` returns a tuple and ``backward`` takes a list.
    n_outputs: ClassVar[int] = 1
    #: ``forward`` takes ``mask=`` (bool (batch, T), True = real step, or None).
    accepts_mask: ClassVar[bool] = False
    #: :meth:`compute_mask` returns the input mask unchanged (steps map to steps).
    propagates_mask: ClassVar[bool] = False

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.built = False
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        #: widths (s_l, s_{l+1}): the number of values per example (the product of the shape)
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        self.needs_input_grad = True
        self.dtype: np.dtype = np.dtype(np.float32)
        self.rng: np.random.Generator = np.random.default_rng(0)
        #: z, the input of the output activation, cached by a training forward (see
        #: ``output_activation``)
        self.z: Any = None

    # -- contract ----------------------------------------------------------------------------
    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        """Create parameters for examples of shape ``input_shape``; return the output shape.

        The default keeps the shape and creates nothing (activation, dropout layers).
        """
        shape = as_shape(input_shape)
        self._set_shapes(shape, shape, dtype)
        return shape

    def _set_shapes(self, input_shape: Shape, output_shape: Shape, dtype: Any) -> None:
        """Record the shapes (and flat widths) and the dtype; mark the layer built."""
        self.input_shape, self.output_shape = input_shape, output_shape
        self.input_dim = int(np.prod(input_shape))
        self.output_dim = int(np.prod(output_shape))
        self.dtype = np.dtype(dtype)
        self.built = True

    def forward(self, x: Any, training: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __call__(self, inputs: Any) -> Any:
        """The functional style: this layer applied to symbolic tensors (one, or a list for a
        ``multi_input`` layer); returns its output tensor (a tuple for ``n_outputs`` > 1)."""
        many = isinstance(inputs, (list, tuple))
        tensors = tuple(inputs) if many else (inputs,)
        if not tensors or not all(isinstance(t, SymbolicTensor) for t in tensors):
            raise TypeError(f"{type(self).__name__} is called on symbolic tensors (from "
                            "thetanet.graph.Input); to apply it to arrays use forward(x)")
        if many != self.multi_input:
            what = "a list of tensors" if self.multi_input else "one tensor"
            raise ValueError(f"{type(self).__name__} is called on {what}")
        node = Node(self, tensors, self.n_outputs)
        return node.outputs if self.n_outputs > 1 else node.outputs[0]

    # -- declared capabilities (defaults) ----------------------------------------------------
    @property
    def has_penalty(self) -> bool:
        """Whether :meth:`penalty` can be non-zero (the training step skips it otherwise)."""
        return False

    def penalty(self) -> float:
        """The layer's regularisation term in J, e.g. (λ/2)‖kernel‖²; 0 by default."""
        return 0.0

    @property
    def output_activation(self) -> str | None:
        """Name of the activation g the layer applies last, whose input z a training forward
        caches as ``self.z``; ``backward(δ, grad_is_preactivation=True)`` then takes
        δ = ∂J/∂z. None for layers without one (dropout, maxout)."""
        return None

    def forward_with_z(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Inference forward that also returns z, the input of ``output_activation``: (z, a)."""
        raise NotImplementedError(f"{type(self).__name__} has no output activation")

    def forward_linear(self, x: Any) -> np.ndarray:
        """Training forward up to z (``fused_output`` layers): z into a reused buffer, with x
        and z cached for :meth:`backward`."""
        raise NotImplementedError(f"{type(self).__name__} has no fused output")

    def output_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The (a, δ) buffers of the current batch (``fused_output`` layers): the caller writes
        a = g(z) and δ^(L) into them; ``a`` is the layer's cached output from then on."""
        raise NotImplementedError(f"{type(self).__name__} has no fused output")

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """The mask of this layer's output for input ``x`` with mask ``mask``: the input mask
        for ``propagates_mask`` layers, else None (no mask downstream). Lists for layers with
        several inputs / outputs."""
        return mask if self.propagates_mask else None

    # -- parameters --------------------------------------------------------------------------
    @property
    def params(self) -> list[np.ndarray]:
        """Trainable arrays, updated in place by the optimiser."""
        return []

    @property
    def grads(self) -> list[np.ndarray]:
        """∂J/∂param for each entry of ``params``, filled by ``backward``."""
        return []

    def grad_rows(self) -> list[np.ndarray | None]:
        """Per entry of ``grads``: ``None``, or the sorted rows that the last ``backward`` may
        have made non-zero (all other rows are exactly zero), for lazy optimisers."""
        return [None] * len(self.grads)

    @property
    def weight_names(self) -> list[str]:
        return list(self.param_names)

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({args})"


def makes_masks(layers: Sequence[Layer]) -> bool:
    """Whether a layer may make a mask (overrides ``compute_mask``): then it is threaded."""
    return any(type(layer).compute_mask is not Layer.compute_mask for layer in layers)


def forward_masked(layers: Sequence[Layer], a: Any, training: bool | None, mask: Any
                   ) -> tuple[Any, Any]:
    """Forward through ``layers`` threading the mask (the model's way): each layer's output
    mask comes from ``compute_mask(a, mask)``; mask-aware layers get ``mask=``. ``training``:
    True (training noise, caches for backward), False (no noise, caches kept: gradient
    checks), or None for inference (``forward(a, False)``: predict, evaluate)."""
    cache = training is not None
    for layer in layers:
        if training is False and layer.stochastic:
            continue
        out_mask = layer.compute_mask(a, mask)
        a = layer.forward(a, cache, mask=mask) if layer.accepts_mask else \
            layer.forward(a, cache)
        mask = out_mask
    return a, mask
