"""Layers: Dense (Θ^(j) with bias unit), Activation, Dropout, Maxout. One file per layer."""

from thetanet.layers.activation import Activation
from thetanet.layers.base import Layer, layer_from_config, register_layer
from thetanet.layers.dense import Dense
from thetanet.layers.dropout import Dropout
from thetanet.layers.maxout import Maxout

__all__ = ["Activation", "Dense", "Dropout", "Layer", "Maxout", "layer_from_config",
           "register_layer"]
