"""thetanet: the lecture's feed-forward neural network on NumPy.

>>> from thetanet import Sequential
>>> from thetanet.layers import Dense
>>> model = Sequential([Dense(8, "relu"), Dense(3, "softmax")], seed=0)
"""

from thetanet._version import __version__
from thetanet.callbacks import EarlyStopping, History
from thetanet.graph import Input, Model
from thetanet.layers import (
                             Activation,
                             Add,
                             AdditiveAttention,
                             Attention,
                             AveragePool2D,
                             Concatenate,
                             Conv2D,
                             Dense,
                             Dropout,
                             Flatten,
                             Maxout,
                             MaxPool2D,
                             Reshape,
)
from thetanet.model import Sequential, load_checkpoint, load_model, rebuild
from thetanet.utils import one_hot

__all__ = ["Activation", "Add", "AdditiveAttention", "Attention", "AveragePool2D",
           "Concatenate", "Reshape", "Conv2D", "Dense", "Dropout", "EarlyStopping",
           "Flatten", "History", "Input", "MaxPool2D", "Maxout", "Model", "Sequential",
           "__version__", "load_checkpoint", "load_model", "one_hot", "rebuild"]
