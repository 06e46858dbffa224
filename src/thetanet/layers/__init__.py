"""Layers: Dense (Θ^(j) with bias unit), Activation, Dropout, Maxout, and the convolutional half
— Conv2D, MaxPool2D, AveragePool2D, Flatten. One file per layer (the two pools share one).

Importing this package registers every layer class, so ``load_model`` rebuilds any of them in a
fresh process."""

from thetanet.layers.activation import Activation
from thetanet.layers.base import Layer, layer_from_config, register_layer
from thetanet.layers.conv2d import Conv2D
from thetanet.layers.dense import Dense
from thetanet.layers.dropout import Dropout
from thetanet.layers.flatten import Flatten
from thetanet.layers.maxout import Maxout
from thetanet.layers.pooling import AveragePool2D, MaxPool2D
from thetanet.layers.weighted import MAX_LAYER_PARAMS, ParameterBudgetError

__all__ = ["MAX_LAYER_PARAMS", "Activation", "AveragePool2D", "Conv2D", "Dense", "Dropout",
           "Flatten", "Layer", "MaxPool2D", "Maxout", "ParameterBudgetError",
           "layer_from_config", "register_layer"]
