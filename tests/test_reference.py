"""The fast engine equals the lecture's plain-NumPy algorithm (thetanet.reference) in float64
to 1e-12, on random dense networks: every activation of the table in hidden layers, dropout
(the engine's masks handed to the reference), L2, batch sizes 1 to 33, the three losses, labels
and one-hot targets."""

from __future__ import annotations

import numpy as np
import pytest

from thetanet import Dense, Dropout, Sequential, reference
from thetanet.activations import LECTURE_TABLE

OUTPUTS = [("categorical_crossentropy", "softmax", "labels"),
           ("categorical_crossentropy", "softmax", "one_hot"),
           ("binary_crossentropy", "logistic", "probabilities"),
           ("mse", "identity", "values"), ("mse", "tanh", "values")]


def random_case(seed: int) -> tuple[Sequential, np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(seed)
    loss, out_g, target = OUTPUTS[seed % len(OUTPUTS)]
    widths = rng.integers(1, 7, size=rng.integers(1, 4)).tolist()
    layers: list = []
    for i, w in enumerate(widths):
        g = LECTURE_TABLE[(seed + 5 * i) % len(LECTURE_TABLE)]
        layers.append(Dense(w, g, l2=float(rng.choice([0.0, 0.03]))))
        if rng.random() < 0.5:
            layers.append(Dropout(float(rng.choice([0.2, 0.5]))))
    k = int(rng.integers(2, 5))
    layers.append(Dense(k, out_g, l2=float(rng.choice([0.0, 0.01]))))
    model = Sequential(layers, dtype="float64", seed=seed)
    model.compile("sgd", loss)
    m = int(rng.choice([1, 7, 33]))
    x = rng.normal(size=(m, int(rng.integers(1, 6))))
    y = {"labels": rng.integers(0, k, m), "one_hot": np.eye(k)[rng.integers(0, k, m)],
         "probabilities": rng.random((m, k)), "values": rng.normal(size=(m, k))}[target]
    return model, x, y, loss


@pytest.mark.parametrize("seed", range(40))
def test_fast_engine_equals_the_reference(seed: int) -> None:
    model, x, y, loss = random_case(seed)
    xc, yc = model._check_x(x), model._check_y(y, x.shape[0])
    j_fast, _ = model.forward_backward(xc, yc, training=True)
    dense = [ly for ly in model.layers if isinstance(ly, Dense)]
    masks: list[np.ndarray | None] = []
    for ly in model.layers:  # the mask after each Dense layer (None: no dropout there)
        if isinstance(ly, Dense):
            masks.append(None)
        else:
            masks[-1] = ly.mask
    j_ref, grads = reference.backprop([d.theta for d in dense],
                                      [d.activation.get_config() for d in dense], x, y, loss,
                                      l2=[d.l2 for d in dense], masks=masks)
    assert abs(j_fast - j_ref) <= 1e-12 * max(1.0, abs(j_ref))
    for d, g in zip(dense, grads):
        fast = np.hstack([d.d_bias[:, None], d.d_kernel.T])  # ∂J/∂Θ in Θ's layout
        assert np.max(np.abs(fast - g)) <= 1e-12, d.name


def test_reference_refuses_what_it_does_not_define() -> None:
    with pytest.raises(ValueError, match="loss"):
        reference.cost("hinge", np.ones((1, 2)) / 2, np.zeros((1, 2)), [], [])
    with pytest.raises(ValueError, match="no reference"):
        reference.output_delta("binary_crossentropy", "tanh", np.zeros((1, 1)),
                               np.zeros((1, 1)), np.zeros((1, 1)))
