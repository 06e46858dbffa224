"""thetanet: the lecture's feed-forward neural network on NumPy.

>>> from thetanet import Sequential
>>> from thetanet.layers import Dense
>>> model = Sequential([Dense(8, "relu"), Dense(3, "softmax")], seed=0)
"""

__version__ = "0.1.0"

from thetanet.callbacks import EarlyStopping, History  # noqa: E402
from thetanet.io import load_model  # noqa: E402
from thetanet.layers import Activation, Dense, Dropout, Maxout  # noqa: E402
from thetanet.model import Sequential  # noqa: E402
from thetanet.utils import one_hot  # noqa: E402

__all__ = ["Activation", "Dense", "Dropout", "Maxout", "EarlyStopping", "History", "Sequential",
           "__version__", "load_model", "one_hot"]
