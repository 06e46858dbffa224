r"""The model graph: ``Input``, layers called on symbolic tensors, ``Model(inputs, outputs)``.

Keras's functional style::

    image = Input((8, 8, 1), name="image")
    words = Input((5,), name="words")
    shared = Dense(6, "tanh")                     # one Θ, called on two tensors below
    a, b = shared(Dense(5)(Flatten()(image))), shared(words)
    out1 = Dense(3, "softmax", name="class")(Concatenate()([a, b]))
    out2 = Dense(1, name="size")(Add()([a, b]))
    model = Model([image, words], [out1, out2])

A model is a directed acyclic graph whose nodes are layer calls. Forward propagation visits
the nodes in topological order; backpropagation visits them in reverse, the δ arriving at a
tensor summed over the nodes it feeds (:mod:`thetanet.backprop` has the algorithm in the
lecture's notation). :class:`thetanet.model.Sequential` is the special case of a chain.

Training, checkpoints and callbacks are :class:`thetanet.training.Trainer`'s, the same code for
every model. With several inputs ``x`` is a list (or a dict by input name); with several
outputs ``y`` is a list (or dict by output layer name), ``loss`` one loss for all outputs or one
per output (``None``: the output is not trained, e.g. attention weights kept for plots), and
J = Σ_k w_k J_k with ``loss_weights`` w.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from thetanet import backprop as _backprop
from thetanet import losses as _losses
from thetanet import metrics as _metrics
from thetanet import optimizers as _optimizers
from thetanet.graph_io import GraphIO
from thetanet.layers import Layer, layer_from_config
from thetanet.layers.base import as_shape
from thetanet.layers.symbolic import Node, SymbolicTensor
from thetanet.training import Trainer
from thetanet.utils import MultiArray, check_array, sum_is_finite

__all__ = ["Input", "Model"]

#: The layers a Model has built, with their (input shapes, output shapes): a Model made later
#: from the same layers shares their Θ instead of drawing new weights.
_BUILT: weakref.WeakKeyDictionary[Layer, tuple[list[Any], list[Any]]] = \
    weakref.WeakKeyDictionary()


class InputLayer(Layer):
    """The source of one model input (no parameters, never run)."""

    def __init__(self, shape: Any, name: str | None = None) -> None:
        super().__init__(name)
        self.shape = as_shape(shape)


def Input(shape: Any, name: str | None = None) -> SymbolicTensor:  # noqa: N802 (Keras's name)
    """A model input: examples of ``shape`` (without the batch axis), e.g. ``Input((8, 8, 1))``."""
    layer = InputLayer(shape, name)
    tensor = Node(layer, (), 1).outputs[0]
    tensor.shape = layer.shape
    return tensor


def _as_list(tensors: Any, what: str) -> list[SymbolicTensor]:
    many = tensors if isinstance(tensors, (list, tuple)) else [tensors]
    if not many or not all(isinstance(t, SymbolicTensor) for t in many):
        raise TypeError(f"Model {what} must be symbolic tensors (from Input and layer calls)")
    return list(many)


def topological_nodes(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]
                      ) -> list[Node]:
    """The layer calls between ``inputs`` and ``outputs``, each after the calls it reads
    (depth-first from the outputs, inputs in order: a chain comes out in its own order)."""
    order: list[Node] = []
    done: set[int] = set()
    active: set[int] = set()
    sources = {id(t) for t in inputs}

    def visit(t: SymbolicTensor) -> None:
        if id(t) in sources:
            return
        node = t.node
        if isinstance(node.layer, InputLayer):
            raise ValueError(f"the graph is disconnected: it reads the Input "
                             f"{node.layer.name or ''!r} that is not among the model's inputs")
        if id(node) in done:
            return
        if id(node) in active:
            raise ValueError("the graph has a cycle")
        active.add(id(node))
        for parent in node.inputs:
            visit(parent)
        active.discard(id(node))
        done.add(id(node))
        order.append(node)

    for t in outputs:
        visit(t)
    return order


class Model(GraphIO, Trainer):
    """A network given by its input and output tensors, trained by backpropagation.

    Args:
        inputs: one ``Input`` tensor or a list of them.
        outputs: one tensor or a list of them, computed from the inputs by layer calls.
        dtype: "float32" or "float64" (default: float32, or the dtype of the layers when
            another Model built them: the two then share their Θ).
        seed: seed for weight initialisation (and, plus one, for the layers' generators).
        name: optional name (shown by :meth:`summary`, saved in the config).
    """

    def __init__(self, inputs: Any, outputs: Any, dtype: Any = None,
                 seed: int | None = None, name: str | None = None) -> None:
        ins, outs = _as_list(inputs, "inputs"), _as_list(outputs, "outputs")
        if dtype is None:  # the dtype of layers another Model built, else float32
            built = [n.layer for n in topological_nodes(ins, outs) if n.layer in _BUILT]
            dtype = built[0].dtype if built else "float32"
        self._setup(dtype, seed, name)
        self._init_graph(ins, outs,
                         many_in=isinstance(inputs, (list, tuple)),
                         many_out=isinstance(outputs, (list, tuple)))

    def _setup(self, dtype: Any, seed: int | None, name: str | None) -> None:
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dt
        self.seed = seed
        self.name = name
        self.layers: list[Layer] = []
        self.built = False
        self.optimizer: _optimizers.Optimizer | None = None
        self.loss: Any = None  # one Loss, or a tuple per output (None: not trained)
        self.loss_weights: tuple[float, ...] = ()
        self.metrics: list[str] = []
        self.stop_training = False
        self.history = None
        self.metadata: dict[str, Any] = {}
        self._plan_cache: _backprop.Plan | None = None
        self._plan_loss: Any = None  # the loss the cached plan was made for

    # -- construction ------------------------------------------------------------------------
    def _init_graph(self, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor],
                    many_in: bool, many_out: bool) -> None:
        """Find the nodes, number the tensors (slots), build every layer once."""
        for t in inputs:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError("Model inputs must be Input(...) tensors")
        self.inputs, self.outputs = inputs, outputs
        self.many_in, self.many_out = many_in, many_out
        self.nodes = topological_nodes(inputs, outputs)
        slots: dict[int, int] = {id(t): i for i, t in enumerate(inputs)}
        for node in self.nodes:
            for t in node.outputs:
                slots[id(t)] = len(slots)
        self._slots = slots
        self._topology = [(n.layer, tuple(slots[id(t)] for t in n.inputs),
                           tuple(slots[id(t)] for t in n.outputs)) for n in self.nodes]
        self.output_slots = tuple(slots[id(t)] for t in outputs)
        unique: dict[int, Layer] = {}
        for node in self.nodes:
            unique.setdefault(id(node.layer), node.layer)
        self.layers = list(unique.values())
        self.shared_layers = len(unique) < len(self.nodes)
        self._build_layers()
        self.built = True
        self._reseed(None if self.seed is None else self.seed + 1)

    def _build_layers(self) -> None:
        """Create each layer's parameters at its first call (topological order, one
        generator: a chain initialises exactly as a Sequential always has). A layer already
        built by another Model keeps its Θ (the two models share it)."""
        self._name_layers()
        rng = np.random.default_rng(self.seed)
        first: dict[int, tuple[list[Any], list[Any]]] = {}  # per layer: in and out shapes
        for node in self.nodes:
            layer = node.layer
            shapes = [t.shape for t in node.inputs]
            if any(s is None for s in shapes):
                raise ValueError(f"layer {layer.name}: an input's shape is unknown")
            known = first.get(id(layer)) or _BUILT.get(layer)
            if known is not None:  # a shared layer: the same input shapes at every call
                if known[0] != shapes or layer.dtype != self.dtype:
                    raise ValueError(f"layer {layer.name} was built for {known[0]} "
                                     f"({layer.dtype.name}), called on {shapes} "
                                     f"({self.dtype.name})")
                outs = known[1]
            else:
                arg = shapes if layer.multi_input else shapes[0]
                out = layer.build(arg, dtype=self.dtype, rng=rng)
                outs = list(out) if layer.n_outputs > 1 else [out]
            first[id(layer)] = (shapes, outs)
            for t, s in zip(node.outputs, outs):
                t.shape = as_shape(s)
        self._set_needs_input_grad()
        for layer in self.layers:
            _BUILT[layer] = first[id(layer)]

    def _name_layers(self) -> None:
        """``<class>_<index>`` for unnamed layers; two layers of one name are refused."""
        for i, layer in enumerate(self.layers):
            if layer.name is None:
                layer.name = f"{type(layer).__name__.lower()}_{i}"
        names = [layer.name for layer in self.layers]
        twice = sorted({str(n) for n in names if names.count(n) > 1})
        if twice:  # the weights are saved and shown by layer name
            raise ValueError(f"two layers of the model share the name(s) {twice}; a layer used "
                             "twice is one layer called twice, not two layers of one name")

    def _set_needs_input_grad(self) -> None:
        """A layer needs ∂J/∂x when something that learns lies below one of its calls (in
        this model, or in another that shares the layer)."""
        learns: dict[int, bool] = {}
        needs: dict[int, bool] = {}
        for node in self.nodes:
            below = any(learns.get(id(t), False) for t in node.inputs)
            needs[id(node.layer)] = needs.get(id(node.layer), False) or below
            for t in node.outputs:
                learns[id(t)] = below or bool(node.layer.params)
        for layer in self.layers:
            shared = layer in _BUILT and layer.needs_input_grad
            layer.needs_input_grad = needs[id(layer)] or shared

    def _reseed(self, seed: Any) -> np.random.Generator:
        """Give every layer its own generator, derived from ``seed`` (dropout masks)."""
        rng = np.random.default_rng(seed)
        for layer, child in zip(self.layers, rng.spawn(len(self.layers))):
            layer.rng = child
        return rng

    def get_layer(self, name: str) -> Layer:
        """The layer called ``name`` (to call it again in another Model: its Θ is shared)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers: {[ly.name for ly in self.layers]}")

    @property
    def output_names(self) -> list[str]:
        return [str(t.node.layer.name) for t in self.outputs]

    @property
    def input_names(self) -> list[str]:
        return [str(t.node.layer.name or f"input_{i}") for i, t in enumerate(self.inputs)]

    @property
    def output_dim(self) -> int:
        self._require_built()
        return int(np.prod(self.outputs[0].shape))  # type: ignore[arg-type]

    @property
    def params(self) -> list[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads]

    def grad_rows(self) -> list[np.ndarray | None]:
        """Per gradient, the rows the last backward may have made non-zero (lazy optimisers);
        all rows of a shared layer's gradients (a sum over its calls)."""
        return [r for layer in self.layers for r in layer.grad_rows()] if not \
            self.shared_layers else [None] * len(self.grads)

    def weight_names(self) -> list[str]:
        return [f"{layer.name}/{n}" for layer in self.layers for n in layer.weight_names]

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def compile(self, optimizer: Any = "sgd", loss: Any = "categorical_crossentropy",
                metrics: Sequence[str] | None = None, loss_weights: Any = None) -> None:
        """Choose the optimiser (name, config or instance), the loss(es) and the logged
        metrics; with several outputs ``loss`` and ``loss_weights`` may be lists or dicts by
        output name."""
        k = len(self.outputs) if self.built else 1  # a Sequential compiles before building
        losses = [_losses.get(v) if v is not None else None
                  for v in self._per_output(loss, "loss")]
        if all(v is None for v in losses):
            raise ValueError("at least one output needs a loss")
        weights = [1.0] * k if loss_weights is None else \
            [float(w) for w in self._per_output(loss_weights, "loss_weights", broadcast=False)]
        if metrics and k > 1:
            raise ValueError("metrics are computed for single-output models only")
        self.optimizer = _optimizers.get(optimizer)
        self.loss = losses[0] if k == 1 else tuple(losses)
        self.loss_weights = tuple(weights)
        self.metrics = list(metrics or [])
        for m in self.metrics:
            _metrics.get(m)
        self._plan_cache = None

    def _per_output(self, value: Any, what: str, broadcast: bool = True) -> list[Any]:
        if not self.built:
            return [value]
        names, k = self.output_names, len(self.outputs)
        if isinstance(value, dict):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(f"{what} names unknown outputs {sorted(unknown)}; outputs: "
                                 f"{names}")
            return [value.get(n) for n in names]
        if isinstance(value, (list, tuple)):
            if len(value) != k:
                raise ValueError(f"{what} has {len(value)} entries for {k} outputs")
            return list(value)
        if not broadcast and k > 1:
            raise ValueError(f"{what} must be a list or dict for a model with {k} outputs")
        return [value] * k

    @property
    def losses(self) -> tuple[_losses.Loss | None, ...]:
        return self.loss if isinstance(self.loss, tuple) else (self.loss,)

    # -- propagation -------------------------------------------------------------------------
    def _plan(self) -> _backprop.Plan:
        plan = self._plan_cache
        if plan is not None and self._plan_loss is self.loss:
            return plan
        return self._make_plan()

    def _make_plan(self) -> _backprop.Plan:
        """Work out (again) what a training step runs: after the loss, the layers or their
        L2 terms changed."""
        self._require_compiled()
        plan = _backprop.make_plan(self._topology, range(len(self.inputs)), self.output_slots,
                                   len(self._slots), self.losses,
                                   self.loss_weights or (1.0,) * len(self.outputs))
        self._plan_cache, self._plan_loss = plan, self.loss
        return plan

    def forward_backward(self, x: Any, y: Any, training: bool = True) -> tuple[float, Any]:
        """Forward pass, loss J (with L2 terms) and backprop filling every layer's ``grads``
        with ∂J/∂θ. Returns (J, a^(L)) (a list with several outputs); a^(L) may be a reused
        buffer: read it before the next call."""
        self._make_plan()
        return self._forward_backward(x, y, training)

    def _forward_backward(self, x: Any, y: Any, training: bool = True, scale: float = 1.0,
                          after_backward: Any = None) -> tuple[float, Any]:
        """The lecture's forward and backward pass on one batch (:mod:`thetanet.backprop`)."""
        xs = x.parts if self.many_in else (x,)
        ys = y.parts if self.many_out else (y,)
        plan = self._plan_cache if self._plan_loss is self.loss else self._plan()
        loss, vals = _backprop.forward_backward(plan, xs, ys, training, scale,  # type: ignore
                                                after_backward)
        if self.many_out:
            return loss, [vals[s] for s in self.output_slots]
        return loss, vals[self.output_slots[0]]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """The (built, uncompiled) graph that :meth:`get_config` describes."""
        layers = [layer_from_config(c) for c in config["layers"]]
        inputs = [Input(tuple(c["shape"]), c.get("name")) for c in config["inputs"]]
        done: list[tuple[SymbolicTensor, ...]] = []

        def tensor(ref: list[Any]) -> SymbolicTensor:
            if ref[0] == "input":
                return inputs[int(ref[1])]
            if ref[0] == "node" and 0 <= int(ref[1]) < len(done):
                return done[int(ref[1])][int(ref[2])]
            raise ValueError(f"bad tensor reference {ref!r}")

        for node in config["nodes"]:
            layer = layers[int(node["layer"])]
            ins = [tensor(r) for r in node["inputs"]]
            out = layer(ins if layer.multi_input else ins[0])
            done.append(tuple(out) if layer.n_outputs > 1 else (out,))
        outputs = [tensor(r) for r in config["outputs"]]
        return cls(inputs if config.get("many_inputs", True) else inputs[0],
                   outputs if config.get("many_outputs", True) else outputs[0],
                   dtype=config["dtype"], seed=config.get("seed"), name=config.get("name"))

    # -- checks ------------------------------------------------------------------------------
    def _require_built(self) -> None:
        if not self.built:
            raise ValueError("the model is not built yet: call build(input_dim) or fit first")

    def _require_compiled(self) -> None:
        if self.loss is None or self.optimizer is None:
            raise ValueError("the model must be compiled before training: call "
                             "model.compile(optimizer, loss)")

    def _check_x(self, x: Any, name: str = "x") -> Any:
        """x as the model's dtype, finite, of the input shapes: one array, or a MultiArray of
        one per input (from a list, or a dict by input name)."""
        if not self.many_in:
            return self._check_one_x(x, self.inputs[0].shape, name)
        parts = self._by_name(x, self.input_names, name)
        return MultiArray(self._check_one_x(p, t.shape, f"{name}[{n!r}]")
                          for p, t, n in zip(parts, self.inputs, self.input_names))

    def _check_one_x(self, x: Any, shape: Any, name: str) -> Any:
        if not (type(x) is np.ndarray and x.dtype == self.dtype and x.ndim == 2
                and x.flags.c_contiguous and x.size and sum_is_finite(x)):
            x = check_array(x, self.dtype, name, flat=len(shape) == 1)
        if x.shape[1:] != shape:
            if len(shape) == 1 and x.ndim == 2:
                raise ValueError(f"{name} has {x.shape[1]} features per row but the model "
                                 f"expects {shape[0]}")
            raise ValueError(f"{name} has examples of shape {tuple(x.shape[1:])} but the model "
                             f"expects {shape}")
        return x

    @staticmethod
    def _by_name(x: Any, names: list[str], what: str) -> list[Any]:
        if isinstance(x, dict):
            missing = [n for n in names if n not in x]
            if missing or len(x) != len(names):
                raise ValueError(f"{what} must have the keys {names}, got {sorted(x)}")
            return [x[n] for n in names]
        if not isinstance(x, (list, tuple)) or len(x) != len(names):
            raise ValueError(f"{what} must be a list of {len(names)} arrays (or a dict by "
                             f"name: {names})")
        return list(x)

    def _check_y(self, y: Any, n: int, name: str = "y") -> Any:
        """Targets in the form each output's loss wants (a MultiArray with several outputs;
        an output without a loss takes None)."""
        if not self.many_out:
            return self._targets(self.losses[0], y, n, self.outputs[0].shape, name)
        parts = self._by_name(y, self.output_names, name)
        return MultiArray(self._targets(loss, p, n, t.shape, f"{name}[{oname!r}]")
                          for loss, p, t, oname in zip(self.losses, parts, self.outputs,
                                                       self.output_names))

    def _targets(self, loss: _losses.Loss | None, y: Any, n: int, shape: Any, name: str
                 ) -> np.ndarray:
        """One output's targets: per step, (n, T), for a sequence output (T, K)."""
        if loss is None:  # not trained: no targets needed
            return np.zeros((n, 0), self.dtype)
        if shape is not None and len(shape) == 2:
            if self.metrics:  # they would count the padded steps: compute them from predict
                raise ValueError("compiled metrics are not supported on sequence outputs yet")
            return loss.sequence_targets(y, n, shape, self.dtype, name)
        return loss.targets(y, n, int(np.prod(shape)), self.dtype, name)
