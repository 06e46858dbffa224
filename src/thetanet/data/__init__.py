"""Datasets: logic truth tables, digits (sklearn, MNIST IDX), Tratz noun compounds."""

from thetanet.data.paths import data_root

__all__ = ["data_root"]
