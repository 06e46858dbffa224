"""Pins the uniform initialisers' bound and distribution (issue 18, behaviour 4).

U[−ε, ε] with ε = √6/√(L_in + L_out) (the lecture's ε-uniform, = Glorot uniform) and
ε = √(6/L_in) (He uniform). On 150,000 draws the largest |w| lies within ε·(1 − 10⁻³) of ε
(the chance that it does not is 0.999^150000 ≈ e^−150), so a bound 1 % too small fails, and a
Kolmogorov-Smirnov test against U(−ε, ε) checks that the draws fill the interval evenly. The
normal initialisers get the same KS check against N(0, σ²).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from thetanet import Dense, Sequential, initializers

SHAPE = (500, 300)  # fan_in, fan_out
UNIFORM = {
    "uniform_epsilon": math.sqrt(6) / math.sqrt(SHAPE[0] + SHAPE[1]),
    "glorot_uniform": math.sqrt(6) / math.sqrt(SHAPE[0] + SHAPE[1]),
    "he_uniform": math.sqrt(6 / SHAPE[0]),
}
NORMAL = {
    "glorot_normal": math.sqrt(2 / (SHAPE[0] + SHAPE[1])),
    "he_normal": math.sqrt(2 / SHAPE[0]),
}


@pytest.mark.parametrize("name", sorted(UNIFORM))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_fills_exactly_its_bound(name, dtype):
    eps = UNIFORM[name]
    w = initializers.get(name)(SHAPE, np.random.default_rng(0), np.dtype(dtype))
    assert w.shape == SHAPE and w.dtype == dtype
    top = float(np.abs(w).max())
    assert eps * (1 - 1e-3) <= top <= eps * (1 + 1e-7)  # float32 rounding of ε itself
    assert float(w.max()) > eps * (1 - 1e-3) and float(w.min()) < -eps * (1 - 1e-3)
    ks = stats.kstest(w.ravel().astype(np.float64), stats.uniform(loc=-eps, scale=2 * eps).cdf)
    assert ks.pvalue > 1e-3, ks


@pytest.mark.parametrize("name", sorted(NORMAL))
def test_normal_has_its_variance(name):
    sigma = NORMAL[name]
    w = initializers.get(name)(SHAPE, np.random.default_rng(0), np.dtype(np.float64))
    ks = stats.kstest(w.ravel(), stats.norm(scale=sigma).cdf)
    assert ks.pvalue > 1e-3, ks
    # the KS test is not sharp on the scale: σ·1.01 must be told apart
    assert abs(float(w.std()) / sigma - 1) < 4e-3


def test_dense_uses_the_lectures_epsilon_by_default():
    model = Sequential([Dense(SHAPE[1])], dtype="float64", seed=0).build(SHAPE[0])
    kernel = model.get_weights()[0]
    eps = UNIFORM["uniform_epsilon"]
    assert eps * (1 - 1e-3) <= float(np.abs(kernel).max()) <= eps
    ks = stats.kstest(kernel.ravel(), stats.uniform(loc=-eps, scale=2 * eps).cdf)
    assert ks.pvalue > 1e-3, ks
