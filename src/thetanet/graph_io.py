r"""What a model graph shows the world: predict, evaluate, weights, config, save, summary.

Mixed into :class:`thetanet.graph.Model` (the construction and the training step live there);
every method here works on any graph, a Sequential's chain included, through the attributes
declared below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thetanet import backprop as _backprop
from thetanet import metrics as _metrics
from thetanet import saving as _saving
from thetanet.training import batch_rows

if TYPE_CHECKING:
    from thetanet.layers import Layer
    from thetanet.layers.symbolic import Node, SymbolicTensor
    from thetanet.losses import Loss
    from thetanet.optimizers import Optimizer


class GraphIO:
    """predict / evaluate / weights / config / summary for a built graph."""

    layers: list[Layer]
    nodes: list[Node]
    inputs: list[SymbolicTensor]
    outputs: list[SymbolicTensor]
    output_slots: tuple[int, ...]
    many_in: bool
    many_out: bool
    dtype: np.dtype
    seed: int | None
    name: str | None
    metrics: list[str]
    loss: Any
    loss_weights: tuple[float, ...]
    optimizer: Optimizer | None
    _topology: list[tuple[Layer, tuple[int, ...], tuple[int, ...]]]
    _slots: dict[int, int]

    if TYPE_CHECKING:
        @property
        def params(self) -> list[np.ndarray]: ...
        @property
        def losses(self) -> tuple[Loss | None, ...]: ...
        @property
        def output_names(self) -> list[str]: ...
        @property
        def input_names(self) -> list[str]: ...
        def weight_names(self) -> list[str]: ...
        def count_params(self) -> int: ...
        def _require_built(self) -> None: ...
        def _require_compiled(self) -> None: ...
        def _check_x(self, x: Any, name: str = "x") -> Any: ...
        def _check_y(self, y: Any, n: int, name: str = "y") -> Any: ...
        def _plan(self) -> _backprop.Plan: ...

    # -- inference ---------------------------------------------------------------------------
    def _inference_plan(self) -> _backprop.Plan:
        return _backprop.make_plan(self._topology, range(len(self.inputs)), self.output_slots,
                                   len(self._slots), (None,) * len(self.outputs),
                                   (1.0,) * len(self.outputs))

    def _parts(self, x: Any) -> tuple[Any, ...]:
        return x.parts if self.many_in else (x,)

    def predict(self, x: Any, batch_size: int | None = 8192) -> Any:
        """h_Θ(x): the output activations for every row (a list with several outputs)."""
        self._require_built()
        x = self._check_x(x)
        n = x.shape[0]
        step = batch_rows(batch_size, n)
        plan = self._inference_plan()
        outs: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for s in range(0, max(n, 1), max(step, 1)):
            vals = _backprop.infer(plan, self._parts(x[s:s + step]))[0]
            for k, slot in enumerate(self.output_slots):
                outs[k].append(np.asarray(vals[slot]))
        joined = [np.concatenate(o) if len(o) > 1 else o[0].copy() for o in outs]
        return joined if self.many_out else joined[0]

    def predict_classes(self, x: Any, batch_size: int | None = 8192) -> np.ndarray:
        """Class indices: argmax of a^(L), or a > 0.5 for a single logistic output."""
        if self.many_out:
            raise ValueError("predict_classes needs a single-output model")
        return _metrics.to_labels(self.predict(x, batch_size))

    def evaluate(self, x: Any, y: Any, batch_size: int | None = 8192,
                 return_dict: bool = False) -> Any:
        """Loss (with L2 terms) and the compiled metrics on (x, y), without training."""
        self._require_compiled()
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        if x.shape[0] == 0:  # a loss of 0 for no data would read as a perfect score
            raise ValueError("evaluate needs at least one example, got 0")
        logs = self._evaluate(x, y, batch_size)
        if return_dict:
            return logs
        return logs["loss"] if not self.metrics else [logs["loss"], *(logs[m]
                                                                      for m in self.metrics)]

    def _evaluate(self, x: Any, y: Any, batch_size: int | None) -> dict[str, float]:
        """J = Σ_k w_k J_k (+ L2), each J_k from z^(L) where the output is fused, as in
        training; per-output losses as ``<output>_loss`` with several outputs."""
        n = x.shape[0]
        step = batch_rows(batch_size, n)
        plan = self._plan()
        rules = {k: r for c in plan.calls
                 for k, _, r in (*c.post, *([c.fused] if c.fused else []))}
        totals = [0.0] * len(self.outputs)
        preds: list[np.ndarray] = []
        for s in range(0, n, step):
            vals, masks, zs = _backprop.infer(plan, self._parts(x[s:s + step]), with_z=True)
            yb = y[s:s + step]
            ys = yb.parts if self.many_out else (yb,)
            for k, rule in rules.items():
                slot = self.output_slots[k]
                a = vals[slot]
                totals[k] += rule.value(ys[k], a, zs.get(slot), masks[slot]) * a.shape[0]
            if self.metrics:
                preds.append(np.asarray(vals[self.output_slots[0]]))
        per = {k: totals[k] / max(n, 1) for k in rules}
        loss = 0.0
        for k in sorted(per):
            loss += rules[k].weight * per[k]
        logs = {"loss": loss + sum(layer.penalty() for layer in self.layers)}
        if self.many_out:
            logs.update({f"{self.output_names[k]}_loss": v for k, v in per.items()})
        out_all = np.concatenate(preds) if preds else \
            np.zeros((0, int(np.prod(self.outputs[0].shape or (1,)))), self.dtype)
        for m in self.metrics:
            logs[m] = _metrics.get(m)(y, out_all)
        return logs

    # -- weights -----------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter in Keras order (per Dense: kernel (in, out), bias (out,))."""
        return [p.copy() for p in self.params]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._require_built()
        params = self.params
        if len(weights) != len(params):
            raise ValueError(f"expected {len(params)} weight arrays, got {len(weights)}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"weight {i} ({self.weight_names()[i]}) must have shape "
                                 f"{p.shape}, got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"weight {i} ({self.weight_names()[i]}) contains NaN or inf")
            p[...] = w

    # -- config and files --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The graph: layers (each once), inputs, nodes (a layer index and the tensors it
        reads: ``["input", k]`` or ``["node", j, output]``) and outputs."""
        index = {id(layer): i for i, layer in enumerate(self.layers)}
        where: dict[int, list[Any]] = {id(t): ["input", k] for k, t in enumerate(self.inputs)}
        nodes = []
        for j, node in enumerate(self.nodes):
            nodes.append({"layer": index[id(node.layer)],
                          "inputs": [where[id(t)] for t in node.inputs]})
            for o, t in enumerate(node.outputs):
                where[id(t)] = ["node", j, o]
        return {
            "class_name": "Model", "name": self.name, "dtype": self.dtype.name,
            "seed": self.seed,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self.layers],
            "inputs": [{"name": t.node.layer.name, "shape": list(t.shape or ())}
                       for t in self.inputs],
            "nodes": nodes, "outputs": [where[id(t)] for t in self.outputs],
            "many_inputs": self.many_in, "many_outputs": self.many_out,
        }

    def get_compile_config(self) -> dict[str, Any] | None:
        if self.loss is None or self.optimizer is None:
            return None
        loss = [None if v is None else v.get_config() for v in self.losses]
        cfg = {"optimizer": self.optimizer.get_config(),
               "loss": loss if self.many_out else loss[0], "metrics": list(self.metrics)}
        if self.many_out:
            cfg["loss_weights"] = list(self.loss_weights)
        return cfg

    def save(self, path: Any, metadata: dict[str, Any] | None = None) -> None:
        """Save architecture (JSON) and weights (.npz) to the directory ``path``, atomically."""
        _saving.save_model(self, path, metadata=metadata)

    def summary(self, print_fn: Any = print) -> str:
        """One row per layer call: name (class, g), output shape, parameters, and for a graph
        that is not a chain the tensors the call reads."""
        chain = all(len(n.inputs) == 1 and (i == 0 or n.inputs[0].node is self.nodes[i - 1])
                    for i, n in enumerate(self.nodes)) and len(self.layers) == len(self.nodes)
        head = ("Layer", "Output shape", "Params") + (() if chain else ("Connected to",))
        rows, seen = [head], set()
        for node in self.nodes:
            layer = node.layer
            act = layer.output_activation
            label = f"{layer.name} ({type(layer).__name__}" + (f", {act})" if act else ")")
            shape = " ".join("×".join(map(str, t.shape or ())) or "?" for t in node.outputs)
            params = "shared" if id(layer) in seen else str(layer.count_params())
            seen.add(id(layer))
            reads = ", ".join(str(t.node.layer.name) for t in node.inputs)
            rows.append((label, shape, params) + (() if chain else (reads,)))
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(f"{c:<{w[i]}}" if i in (0, 3) else f"{c:>{w[i]}}"
                           for i, c in enumerate(r)).rstrip() for r in rows]
        sep = "-" * max(len(line) for line in lines)
        default = type(self).__name__.lower()
        text = "\n".join([f'Model "{self.name or default}" ({self.dtype.name})', sep,
                          lines[0], sep, *lines[1:], sep,
                          f"Total params: {self.count_params()}"])
        if print_fn is not None:
            print_fn(text)
        return text
