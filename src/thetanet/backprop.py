r"""Backpropagation through a graph of layers: the lecture's algorithm on a DAG.

The slides' network is a chain: a^(l+1) = g(Θ^(l) a^(l)), then δ^(L) = a^(L) − y and
δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g'(z^(l)). A graph only changes the bookkeeping:

- **forward**, nodes in topological order: a^(n) = layer_n(a^(inputs of n)) (every input of a
  node is computed before it);
- **the outputs**: J = Σ_k w_k J_k(a^(k), y_k) (+ the L2 terms), each output's δ scaled by w_k;
- **backward**, nodes in reverse topological order: the gradient arriving at a tensor a is the
  sum over the nodes c that read it, ∂J/∂a = Σ_c (∂J/∂a)_c — the multivariate chain rule: a feeds
  J along every path through its readers. A node runs its layer's backward once all its readers
  are done, which the reverse order guarantees. In a chain every tensor has one reader, the sum
  has one term, and this is exactly the slides' δ recursion.
- **a shared layer** (called at several nodes) has one Θ: ∂J/∂Θ = Σ over its nodes of each
  node's δ aᵀ. Its layer object caches one call's activations, so before the backward of an
  earlier node its forward is replayed on that node's inputs (with the same dropout draws), the
  node's outputs are copies, and its gradients are summed over the nodes.

Named strategies, chosen once per plan (:func:`make_plan`) and dispatched from
:func:`forward_backward`:

- output rules: :class:`FusedOnePass` (softmax + cross-entropy on integer labels: a, J and
  δ^(L) = a^(L) − y in one pass into the layer's buffers), :class:`Fused` (δ^(L) = a^(L) − y
  from a and z), :class:`Unfused` (∂J/∂a^(L); the layer's backward multiplies by g'(z));
- the folded learning rate: ``scale`` multiplies every δ^(L) (backprop is linear in them), and
  ``after_backward(layer)`` updates a layer as soon as its gradient is complete (see
  :mod:`thetanet.training`, which also owns the lazy-rows strategy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thetanet.layers.base import Layer
from thetanet.losses import Loss


class OutputRule:
    """How J_k and δ^(L) of one model output are computed (one strategy per output)."""

    #: the δ handed to the layer's backward is ∂J/∂z (fused) rather than ∂J/∂a
    preactivation = False
    #: the rule runs the output node's forward itself
    owns_forward = False

    def __init__(self, loss: Loss, weight: float) -> None:
        self.loss = loss
        self.weight = float(weight)

    def value(self, y: Any, a: Any, z: Any, mask: Any) -> float:
        """J_k; masked steps of a sequence count neither in J nor in δ."""
        return self.loss.value(y, a, z, mask=mask)


class Unfused(OutputRule):
    """J from a^(L); δ = ∂J/∂a^(L), added to what the tensor's readers send back."""

    def on_output(self, a: Any, y: Any, mask: Any, scale: float) -> tuple[float, Any]:
        loss = self.value(y, a, None, mask)
        delta = self.loss.grad(y, a, mask=mask)
        if scale != 1.0:
            delta *= scale
        return loss, delta


class Fused(OutputRule):
    """The output layer's g matches the loss: J exactly from z^(L), δ^(L) = (a^(L) − y)/m."""

    preactivation = True
    owns_forward = True

    def run(self, layer: Layer, x: Any, y: Any, mask: Any, scale: float, training: bool
            ) -> tuple[Any, float, Any]:
        a = layer.forward(x, True) if training or not layer.stochastic else x
        return (a, *self.fused(layer, a, y, mask, scale))

    def fused(self, layer: Layer, a: Any, y: Any, mask: Any, scale: float
              ) -> tuple[float, Any]:
        loss = self.value(y, a, layer.z, mask)
        delta = self.loss.fused_delta(y, a, mask=mask)
        if scale != 1.0:
            delta *= scale
        return loss, delta


class FusedOnePass(Fused):
    """Softmax + cross-entropy on integer labels: z^(L) into the layer's buffer, then a, J
    and δ^(L) in one pass into its (a, δ) buffers (:meth:`thetanet.losses.Loss.fused_step`).
    Labels per step (m, T) run as m·T rows, the masked ones counting neither in J nor in δ."""

    def run(self, layer: Layer, x: Any, y: Any, mask: Any, scale: float, training: bool
            ) -> tuple[Any, float, Any]:
        if not (y.ndim == 1 or y.dtype.kind == "i"):  # one-hot rows: the two-step way
            return super().run(layer, x, y, mask, scale, training)
        z = layer.forward_linear(x)
        a, delta = layer.output_buffers()
        if y.ndim == 1 and mask is None:  # one label per example (the common case)
            return a, self.loss.fused_step(y, z, a, delta, scale), delta
        loss = self.loss.fused_step(y.reshape(-1), z, a, delta, scale,  # type: ignore[call-arg]
                                    mask=None if mask is None else mask.reshape(-1))
        return (a.reshape(*y.shape, -1) if y.ndim == 2 else a), loss, delta


class Call:
    """One node of the graph as the plan runs it: ``layer`` on the values in slots ``ins``,
    writing slots ``outs``; what the pass needs to know about it is worked out once here."""

    __slots__ = ("accepts_mask", "first", "fused", "in0", "ins", "layer", "multi_in",
                 "multi_out", "out0", "outs", "post", "pre", "shared", "simple")

    def __init__(self, layer: Layer, ins: tuple[int, ...], outs: tuple[int, ...],
                 rules: Sequence[tuple[int, int, OutputRule]], shared: bool, first: bool
                 ) -> None:
        self.layer, self.ins, self.outs = layer, ins, outs
        self.in0, self.out0 = ins[0], outs[0]
        self.multi_in, self.multi_out = layer.multi_input, len(outs) > 1
        self.accepts_mask = layer.accepts_mask
        #: the output rule that runs this node's forward (fused), or None
        self.fused = rules[0] if rules and rules[0][2].owns_forward else None
        #: output rules applied after the forward: (output number k, its slot, rule)
        self.post = tuple(r for r in rules if not r[2].owns_forward)
        #: the δ handed to backward is ∂J/∂z (fused) rather than ∂J/∂a
        self.pre = self.fused is not None
        #: the layer is shared: outputs copied, forward replayed before backward, Σ ∂J/∂Θ
        self.shared = shared
        #: the layer's first node: its gradient is complete after this node's backward
        self.first = first
        #: one tensor in, one out, an unshared layer that takes no mask: the short path
        self.simple = not (self.multi_in or self.multi_out or shared or self.accepts_mask)


@dataclass(frozen=True, eq=False)
class Plan:
    """What one training step runs, worked out once per (graph, losses)."""

    calls: tuple[Call, ...]
    input_slots: tuple[int, ...]
    n_slots: int
    penalized: tuple[Layer, ...]  # layers with a term in J (L2)
    losses: tuple[Loss | None, ...]
    #: some layer makes masks (overrides ``compute_mask``): thread them; else all are None
    masks: bool
    shared: bool  # some layer is shared


def choose_rule(layer: Layer, loss: Loss, weight: float, alone: bool) -> OutputRule:
    """The output strategy: fused when the layer's g is the loss's and nothing else reads the
    output (``alone``: one reader, the loss, and one node of a one-output layer)."""
    g = layer.output_activation
    if not alone or g is None or g != loss.fused_activation:
        return Unfused(loss, weight)
    if layer.fused_output and loss.fused_one_pass:
        return FusedOnePass(loss, weight)
    return Fused(loss, weight)


def make_plan(nodes: Sequence[tuple[Layer, tuple[int, ...], tuple[int, ...]]],
              input_slots: Sequence[int], output_slots: Sequence[int], n_slots: int,
              losses: Sequence[Loss | None], weights: Sequence[float]) -> Plan:
    """The plan for ``nodes`` (layer, input slots, output slots) in topological order."""
    readers = [0] * n_slots
    for _, ins, _ in nodes:
        for i in ins:
            readers[i] += 1
    for s in output_slots:
        readers[s] += 1
    count: dict[int, int] = {}
    for layer, _, _ in nodes:
        count[id(layer)] = count.get(id(layer), 0) + 1
    seen: set[int] = set()
    calls = []
    for layer, ins, outs in nodes:
        shared = count[id(layer)] > 1
        rules = []
        for k, s in enumerate(output_slots):
            loss = losses[k]
            if loss is not None and s in outs:
                alone = readers[s] == 1 and len(outs) == 1 and not shared
                rules.append((k, s, choose_rule(layer, loss, weights[k], alone)))
        calls.append(Call(layer, ins, outs, tuple(rules), shared, id(layer) not in seen))
        seen.add(id(layer))
    unique = list({id(c.layer): c.layer for c in calls}.values())
    makes_masks = any(type(ly).compute_mask is not Layer.compute_mask for ly in unique)
    return Plan(tuple(calls), tuple(input_slots), n_slots,
                tuple(ly for ly in unique if ly.has_penalty), tuple(losses), makes_masks,
                len(unique) < len(calls))


def forward_backward(plan: Plan, xs: Sequence[Any], ys: Sequence[Any], training: bool = True,
                     scale: float = 1.0,
                     after_backward: Callable[[Layer], None] | None = None
                     ) -> tuple[float, list[Any]]:
    """One batch: forward, J (with L2 terms) and backprop filling every layer's ``grads`` with
    ∂J/∂θ (times ``scale``). Returns (J, [a of each slot]). Without ``training`` the
    stochastic layers are skipped both ways (no noise, caches kept: gradient checks).
    ``after_backward(layer)`` runs once a layer's gradient is complete, unless J is not finite.
    """
    run = _Run(plan, training)
    loss = run.forward(xs, ys, scale)
    if after_backward is not None and not math.isfinite(loss):
        after_backward = None  # diverged: leave the weights alone
    run.backward(after_backward)
    if plan.penalized:  # J += (λ/2)‖kernel‖² per regularised layer
        loss += sum(layer.penalty() for layer in plan.penalized)
    return loss, run.vals


class _Run:
    """The values, masks and gradients of one forward/backward pass, slot by slot."""

    __slots__ = ("acc", "grads", "last", "masks", "plan", "replay", "training", "vals")

    def __init__(self, plan: Plan, training: bool) -> None:
        self.plan, self.training = plan, training
        self.vals: list[Any] = [None] * plan.n_slots
        self.masks: list[Any] = [None] * plan.n_slots
        self.grads: list[Any] = [None] * plan.n_slots  # ∂J/∂a (or δ = ∂J/∂z, fused)
        if plan.shared:
            self.replay: dict[int, tuple[Any, Any, Any]] = {}  # node: inputs, masks, rng
            self.last: dict[int, int] = {}  # per shared layer: the node its caches hold
            self.acc: dict[int, list[np.ndarray]] = {}  # per shared layer: Σ ∂J/∂Θ so far

    def forward(self, xs: Sequence[Any], ys: Sequence[Any], scale: float) -> float:
        """a^(n) for every node in topological order; returns Σ_k w_k J_k."""
        vals, training = self.vals, self.training
        for s, x in zip(self.plan.input_slots, xs):
            vals[s] = x
        loss = 0.0
        plain = not self.plan.masks
        for i, call in enumerate(self.plan.calls):
            if call.fused is not None:  # the output rule runs this node's forward
                loss += self.forward_fused(call, ys, scale)
            elif plain and call.simple:  # one tensor in, one out, no mask: a = layer(x)
                layer, x = call.layer, vals[call.in0]
                vals[call.out0] = x if not training and layer.stochastic else \
                    layer.forward(x, True)
            else:
                self.forward_call(i, call)
            for k, s, rule in call.post:  # J_k and ∂J/∂a^(L) of an unfused output
                j, delta = rule.on_output(vals[s], ys[k], self.masks[s],  # type: ignore
                                          scale * rule.weight)
                self.add(s, delta)
                loss += rule.weight * j
        return loss

    def inputs(self, call: Call) -> tuple[Any, Any]:
        """The node's input value(s) and mask(s)."""
        vals, masks = self.vals, self.masks
        if call.multi_in:
            return [vals[s] for s in call.ins], [masks[s] for s in call.ins]
        return vals[call.in0], masks[call.in0]

    def forward_fused(self, call: Call, ys: Sequence[Any], scale: float) -> float:
        """An output node whose rule computes a^(L), w_k J_k and δ^(L) itself."""
        if self.plan.masks or call.multi_in:
            x, mask = self.inputs(call)
            out_mask = call.layer.compute_mask(x, mask) if self.plan.masks else None
        else:
            x, out_mask = self.vals[call.in0], None
        k, s, rule = call.fused  # type: ignore[misc]
        self.vals[s], j, self.grads[s] = rule.run(  # type: ignore[attr-defined]
            call.layer, x, ys[k], out_mask, scale * rule.weight, self.training)
        self.masks[s] = out_mask
        return rule.weight * j

    def forward_call(self, i: int, call: Call) -> None:
        """Any other node: masks threaded, several inputs or outputs, shared layers."""
        layer = call.layer
        x, mask = self.inputs(call)
        out_mask = layer.compute_mask(x, mask) if self.plan.masks else None
        if call.shared:
            self.replay[i] = (x, mask, _rng_state(layer))
            self.last[id(layer)] = i
        if not self.training and layer.stochastic:  # no noise: the identity
            out = x
        elif call.accepts_mask:
            out = layer.forward(x, True, mask=mask)  # type: ignore[call-arg]
        else:
            out = layer.forward(x, True)
        self.store(call, out, out_mask)

    def store(self, call: Call, out: Any, out_mask: Any) -> None:
        outs = out if call.multi_out else (out,)
        masks = out_mask if call.multi_out and out_mask is not None else \
            (out_mask,) * len(call.outs)
        for s, a, m in zip(call.outs, outs, masks):
            # a shared layer writes its next call into the same buffers: keep a copy
            self.vals[s] = np.array(a, copy=True) if call.shared else a
            self.masks[s] = m

    def add(self, slot: int, g: Any) -> None:
        """Σ over readers: the gradient ``g`` one reader sends back to the tensor in ``slot``."""
        if g is None:
            return
        cur = self.grads[slot]
        self.grads[slot] = g if cur is None else cur + g

    def backward(self, after_backward: Callable[[Layer], None] | None) -> None:
        """δ from the outputs down, nodes in reverse topological order."""
        grads, training, calls = self.grads, self.training, self.plan.calls
        for i in range(len(calls) - 1, -1, -1):
            call = calls[i]
            if not call.simple:
                self.backward_call(i, call, after_backward)
                continue
            g = grads[call.out0]
            if g is None:
                continue  # nothing above this node learns from it
            layer = call.layer
            if training or not layer.stochastic:  # (skipped in forward: the identity)
                g = layer.backward(g, grad_is_preactivation=True) if call.pre else \
                    layer.backward(g)
            if g is not None:  # Σ over readers
                cur = grads[call.in0]
                grads[call.in0] = g if cur is None else cur + g
            if after_backward is not None:
                after_backward(layer)

    def backward_call(self, i: int, call: Call,
                      after_backward: Callable[[Layer], None] | None) -> None:
        """The backward of a node with several inputs or outputs, or of a shared layer."""
        g: Any = self.output_grads(call) if call.multi_out else self.grads[call.out0]
        if g is None:
            return
        layer = call.layer
        if not self.training and layer.stochastic:
            self.add(call.in0, g)  # skipped in forward: the identity
            return
        if call.shared:
            self.prepare_shared(i, call)
        din = layer.backward(g, grad_is_preactivation=call.pre)
        if call.shared:
            self.sum_shared(call, layer)
        if call.multi_in:
            for s, d in zip(call.ins, din or ()):
                self.add(s, d)
        else:
            self.add(call.in0, din)
        if after_backward is not None and call.first:
            after_backward(layer)

    def output_grads(self, call: Call) -> list[Any] | None:
        """The gradients of a node's several outputs (zeros for one nobody reads), or None
        when none has one."""
        g = [self.grads[s] for s in call.outs]
        if all(d is None for d in g):
            return None
        return [np.zeros_like(self.vals[s]) if d is None else d for s, d in zip(call.outs, g)]

    def prepare_shared(self, i: int, call: Call) -> None:
        """Give the shared layer the caches of node ``i`` (replaying its forward)."""
        layer = call.layer
        if self.last.get(id(layer)) == i:
            return
        x, mask, state = self.replay[i]
        if state is not None:
            layer.rng.bit_generator.state = state  # the same dropout draws as in forward
        if self.training or not layer.stochastic:
            if call.accepts_mask:
                layer.forward(x, True, mask=mask)  # type: ignore[call-arg]
            else:
                layer.forward(x, True)
        self.last[id(layer)] = i

    def sum_shared(self, call: Call, layer: Layer) -> None:
        """∂J/∂Θ = Σ over the layer's nodes; written into ``grads`` at its first node."""
        acc = self.acc.get(id(layer))
        if acc is None:
            self.acc[id(layer)] = acc = [np.array(g, copy=True) for g in layer.grads]
        else:
            for a, g in zip(acc, layer.grads):
                a += g
        if call.first:
            for g, a in zip(layer.grads, acc):
                g[...] = a


def _rng_state(layer: Layer) -> Any:
    """The generator state of a stochastic layer before a call (to replay its draws)."""
    return layer.rng.bit_generator.state if layer.stochastic else None


def infer(plan: Plan, xs: Sequence[Any], with_z: bool = False
          ) -> tuple[list[Any], list[Any], dict[int, Any]]:
    """Inference forward (no dropout, no caches needed): (values, masks, z) per slot; with
    ``with_z`` the fused outputs also give z^(L) (an exact J by log-sum-exp, as in training)."""
    vals: list[Any] = [None] * plan.n_slots
    masks: list[Any] = [None] * plan.n_slots
    zs: dict[int, Any] = {}
    for s, x in zip(plan.input_slots, xs):
        vals[s] = x
    for call in plan.calls:
        layer = call.layer
        if call.multi_in:
            x, mask = [vals[i] for i in call.ins], [masks[i] for i in call.ins]
        else:
            x, mask = vals[call.in0], masks[call.in0]
        out_mask = layer.compute_mask(x, mask) if plan.masks else None
        if with_z and call.fused is not None:
            zs[call.out0], out = layer.forward_with_z(x)
        elif layer.accepts_mask:
            out = layer.forward(x, training=False, mask=mask)  # type: ignore[call-arg]
        else:
            out = layer.forward(x, training=False)
        outs = out if call.multi_out else (out,)
        out_masks = out_mask if call.multi_out and out_mask is not None else \
            (out_mask,) * len(call.outs)
        for s, a, m in zip(call.outs, outs, out_masks):
            vals[s] = np.array(a, copy=True) if call.shared else a
            masks[s] = m
    return vals, masks, zs
