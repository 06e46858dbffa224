"""Five train_on_batch steps against PyTorch autograd + torch.optim (float64, 1e-6)."""

import numpy as np
import pytest

from thetanet import Dense, Sequential

torch = pytest.importorskip("torch")

TORCH_ACT = {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid,
             "identity": lambda z: z}


def _torch_opt(name, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.1)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True)
    return torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999), eps=1e-8)


def _ours_opt(name):
    return {"sgd": {"name": "sgd", "learning_rate": 0.1},
            "momentum": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
            "nesterov": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                         "nesterov": True},
            "adam": {"name": "adam", "learning_rate": 0.01}}[name]


@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("hidden", [[], [6], [7, 5, 4]])
@pytest.mark.parametrize("act", ["relu", "tanh", "logistic"])
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "mse",
                                  "binary_crossentropy"])
def test_five_steps_match_torch(opt, hidden, act, loss):
    rng = np.random.default_rng(len(hidden) * 100 + hash((opt, act, loss)) % 97)
    x = rng.normal(size=(16, 5))
    k = 3
    out_act = {"sparse_categorical_crossentropy": "softmax", "mse": "identity",
               "binary_crossentropy": "logistic"}[loss]
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, k, 16)
    elif loss == "mse":
        y = rng.normal(size=(16, k))
    else:
        y = (rng.random((16, k)) < 0.5).astype(np.float64)
    layers = [Dense(h, act) for h in hidden] + [Dense(k, out_act)]
    model = Sequential(layers, dtype="float64", seed=1)
    model.compile(_ours_opt(opt), loss)
    model.build(5)
    tparams = [torch.tensor(w.copy(), requires_grad=True) for w in model.get_weights()]
    topt = _torch_opt(opt, tparams)
    tx, ty = torch.tensor(x), torch.tensor(y)
    for _ in range(5):
        ours = model.train_on_batch(x, y)
        topt.zero_grad()
        a = tx
        for i in range(len(hidden)):
            a = TORCH_ACT[act](a @ tparams[2 * i] + tparams[2 * i + 1])
        z = a @ tparams[-2] + tparams[-1]
        if loss == "sparse_categorical_crossentropy":
            tl = torch.nn.functional.cross_entropy(z, ty)
        elif loss == "mse":
            tl = torch.nn.functional.mse_loss(z, ty)
        else:
            tl = torch.nn.functional.binary_cross_entropy_with_logits(z, ty)
        tl.backward()
        topt.step()
        assert ours == pytest.approx(tl.item(), rel=1e-9, abs=1e-12)
    for w, t in zip(model.get_weights(), tparams):
        np.testing.assert_allclose(w, t.detach().numpy(), rtol=1e-6, atol=1e-6)
