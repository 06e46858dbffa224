r"""Symbolic tensors: what calling a layer on ``Input(...)`` returns (Keras's functional style).

A :class:`SymbolicTensor` holds no numbers: it names one output of one :class:`Node`, a call of
a layer on symbolic inputs. :class:`thetanet.graph.Model` walks these links back from its outputs
to find the graph: a^(node) = layer(a^(inputs of the node)). A layer called twice (a shared
layer) has two nodes and one set of weights Θ.
"""

from __future__ import annotations

from typing import Any

Shape = tuple[int, ...]


class Node:
    """One call of ``layer`` on the symbolic tensors ``inputs``; ``outputs`` are its results."""

    __slots__ = ("inputs", "layer", "outputs")

    def __init__(self, layer: Any, inputs: tuple[SymbolicTensor, ...], n_outputs: int) -> None:
        self.layer = layer
        self.inputs = inputs
        self.outputs = tuple(SymbolicTensor(self, i) for i in range(n_outputs))


class SymbolicTensor:
    """Output ``index`` of ``node``. ``shape`` (one example's, without the batch axis) is known
    for an ``Input`` at once and for the others once a Model built from them is built."""

    __slots__ = ("index", "node", "shape")

    def __init__(self, node: Node, index: int, shape: Shape | None = None) -> None:
        self.node = node
        self.index = index
        self.shape = shape

    def __repr__(self) -> str:
        layer = self.node.layer
        return (f"<SymbolicTensor {layer.name or type(layer).__name__}[{self.index}] "
                f"shape={self.shape}>")
