"""Layers: Dense (Θ^(j) with bias unit), Activation, Dropout, Maxout, the convolutional half
— Conv2D, MaxPool2D, AveragePool2D, Flatten, Reshape — and for model graphs the merge layers
(Concatenate, Add) and AdditiveAttention. One file per layer (the two pools, the two merges
share one).

Importing this package registers every layer class, so ``load_model`` rebuilds any of them in a
fresh process."""

from thetanet.layers.activation import Activation
from thetanet.layers.attention import AdditiveAttention, Attention
from thetanet.layers.base import Layer, layer_from_config, register_layer
from thetanet.layers.conv2d import Conv2D
from thetanet.layers.dense import Dense
from thetanet.layers.dropout import Dropout
from thetanet.layers.flatten import Flatten
from thetanet.layers.maxout import Maxout
from thetanet.layers.merge import Add, Concatenate
from thetanet.layers.pooling import AveragePool2D, MaxPool2D
from thetanet.layers.reshape import Reshape

__all__ = ["Activation", "Add", "AdditiveAttention", "Attention", "AveragePool2D",
           "Concatenate", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "MaxPool2D",
           "Maxout", "Reshape", "layer_from_config", "register_layer"]
