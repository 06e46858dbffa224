"""Layers: Dense (Θ^(j) with bias unit), Activation, Dropout, Maxout, the convolutional half
— Conv2D, MaxPool2D, AveragePool2D, Flatten, Reshape —, the sequence half — Embedding, Masking,
SimpleRNN, LSTM, GRU (on a shared recurrent base), Bidirectional — and for model graphs the
merge layers (Concatenate, Add), RepeatVector and AdditiveAttention. One file per layer (the
two pools and the two merges share one).

Importing this package registers every layer class, so ``load_model`` rebuilds any of them in a
fresh process."""

from thetanet.layers.activation import Activation
from thetanet.layers.attention import AdditiveAttention, Attention
from thetanet.layers.base import Layer, layer_from_config, register_layer
from thetanet.layers.bidirectional import Bidirectional
from thetanet.layers.conv2d import Conv2D
from thetanet.layers.dense import Dense
from thetanet.layers.dropout import Dropout
from thetanet.layers.embedding import Embedding
from thetanet.layers.flatten import Flatten
from thetanet.layers.gru import GRU
from thetanet.layers.lstm import LSTM
from thetanet.layers.masking import Masking
from thetanet.layers.maxout import Maxout
from thetanet.layers.merge import Add, Concatenate
from thetanet.layers.pooling import AveragePool2D, MaxPool2D
from thetanet.layers.recurrent import Recurrent
from thetanet.layers.repeat_vector import RepeatVector
from thetanet.layers.reshape import Reshape
from thetanet.layers.simple_rnn import SimpleRNN
from thetanet.layers.weighted import MAX_LAYER_PARAMS, ParameterBudgetError

__all__ = ["GRU", "LSTM", "MAX_LAYER_PARAMS", "Activation", "Add", "AdditiveAttention",
           "Attention", "AveragePool2D", "Bidirectional", "Concatenate", "Conv2D", "Dense",
           "Dropout", "Embedding", "Flatten", "Layer", "MaxPool2D", "Masking", "Maxout",
           "ParameterBudgetError", "Recurrent", "RepeatVector", "Reshape", "SimpleRNN",
           "layer_from_config", "register_layer"]
