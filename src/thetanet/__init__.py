"""thetanet: the lecture's feed-forward neural network on NumPy.

>>> from thetanet import Sequential
>>> from thetanet.layers import Dense
>>> model = Sequential([Dense(8, "relu"), Dense(3, "softmax")], seed=0)
"""

from thetanet._version import __version__
from thetanet.callbacks import EarlyStopping, History
from thetanet.layers import (
                             GRU,
                             LSTM,
                             Activation,
                             AveragePool2D,
                             Bidirectional,
                             Conv2D,
                             Dense,
                             Dropout,
                             Embedding,
                             Flatten,
                             Masking,
                             Maxout,
                             MaxPool2D,
                             SimpleRNN,
)
from thetanet.model import Sequential, load_checkpoint, load_model, rebuild
from thetanet.utils import one_hot

__all__ = ["GRU", "LSTM", "Activation", "AveragePool2D", "Bidirectional", "Conv2D", "Dense",
           "Dropout", "EarlyStopping", "Embedding", "Flatten", "History", "MaxPool2D", "Masking",
           "Maxout", "Sequential", "SimpleRNN", "__version__", "load_checkpoint", "load_model",
           "one_hot", "rebuild"]
