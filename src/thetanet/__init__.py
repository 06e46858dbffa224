"""thetanet: the lecture's feed-forward neural network on NumPy.

>>> from thetanet import Sequential
>>> from thetanet.layers import Dense
>>> model = Sequential([Dense(8, "relu"), Dense(3, "softmax")], seed=0)

Graphs (several inputs / outputs, shared layers) in Keras's functional style:

>>> from thetanet import Input, Model
>>> x = Input((4,))
>>> model = Model(x, Dense(3, "softmax")(Dense(8, "relu")(x)))
"""

from thetanet._version import __version__
from thetanet.callbacks import EarlyStopping, History
from thetanet.graph import Input, Model
from thetanet.layers import (
                             GRU,
                             LSTM,
                             Activation,
                             Add,
                             AdditiveAttention,
                             Attention,
                             AveragePool2D,
                             Bidirectional,
                             Concatenate,
                             Conv2D,
                             Dense,
                             Dropout,
                             Embedding,
                             Flatten,
                             Masking,
                             Maxout,
                             MaxPool2D,
                             RepeatVector,
                             Reshape,
                             SimpleRNN,
)
from thetanet.model import Sequential, load_checkpoint, load_model, rebuild
from thetanet.utils import one_hot

__all__ = ["GRU", "LSTM", "Activation", "Add", "AdditiveAttention", "Attention",
           "AveragePool2D", "Bidirectional", "Concatenate", "Conv2D", "Dense", "Dropout",
           "EarlyStopping", "Embedding", "Flatten", "History", "Input", "MaxPool2D", "Masking",
           "Maxout", "Model", "RepeatVector", "Reshape", "Sequential", "SimpleRNN", "__version__",
           "load_checkpoint", "load_model", "one_hot", "rebuild"]
