import numpy as np
import pytest

from thetanet import initializers


@pytest.mark.parametrize("name", ["zeros", "ones", "uniform_epsilon", "glorot_uniform",
                                  "glorot_normal", "he_uniform", "he_normal", "normal",
                                  "constant"])
def test_shapes_dtypes_and_seeded(name):
    init = initializers.get(name)
    a = init((30, 20), np.random.default_rng(1), np.float32)
    b = init((30, 20), np.random.default_rng(1), np.float32)
    assert a.shape == (30, 20) and a.dtype == np.float32
    assert np.array_equal(a, b)


def test_epsilon_bound_is_the_lectures():
    eps = np.sqrt(6) / np.sqrt(30 + 20)
    a = initializers.get("uniform_epsilon")((30, 20), np.random.default_rng(0), np.float64)
    assert np.abs(a).max() <= eps and np.abs(a).max() > 0.9 * eps


def test_he_normal_scale():
    a = initializers.get("he_normal")((400, 400), np.random.default_rng(0), np.float64)
    assert a.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)


def test_constant_and_unknown():
    init = initializers.get({"name": "constant", "value": 0.5})
    assert np.all(init((2, 2), np.random.default_rng(0), np.float32) == 0.5)
    assert initializers.serialize(init) == {"name": "constant", "value": 0.5}
    with pytest.raises(ValueError, match="unknown initializer 'lecun'"):
        initializers.get("lecun")
