"""thetanet: the lecture's feed-forward neural network on NumPy."""

__version__ = "0.1.0"
