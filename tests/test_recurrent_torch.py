"""SimpleRNN, LSTM and GRU against PyTorch autograd (float64): outputs, J and ∂J/∂(every
parameter) within 1e-6 relative, and five optimiser steps (plain SGD, SGD with momentum,
Adam) equal.

Keras 3's layout ↔ torch's: kernel = weight_ihᵀ, recurrent_kernel = weight_hhᵀ; LSTM gates
i, f, c, o in both; GRU z, r, h (Keras) ↔ r, z, n (torch), reset_after=True ↔ torch's GRU,
bias (2, 3u) = [bias_ih; bias_hh]; a single Keras bias ↔ bias_ih with bias_hh = 0."""

import numpy as np
import pytest

from thetanet import GRU, LSTM, Dense, Embedding, Sequential, SimpleRNN

torch = pytest.importorskip("torch")

TORCH = {SimpleRNN: torch.nn.RNN, LSTM: torch.nn.LSTM, GRU: torch.nn.GRU}
B, T, D, U, K = 4, 5, 3, 6, 4


def _perm(cls, a):
    """Keras gate blocks (last axis) → torch's: GRU swaps z and r."""
    if cls is not GRU:
        return a
    return np.concatenate([a[..., U:2 * U], a[..., :U], a[..., 2 * U:]], axis=-1)


def _torch_rnn(cls, layer):
    """A torch module with the layer's weights (Keras layout → torch's); for a single Keras
    bias, torch's bias_hh is fixed at 0 (not trained)."""
    module = TORCH[cls](layer.kernel.shape[0], U, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(_perm(cls, layer.kernel).T))
        module.weight_hh_l0.copy_(torch.tensor(_perm(cls, layer.recurrent_kernel).T))
        if cls is GRU:
            module.bias_ih_l0.copy_(torch.tensor(_perm(cls, layer.bias[0])))
            module.bias_hh_l0.copy_(torch.tensor(_perm(cls, layer.bias[1])))
        else:
            module.bias_ih_l0.copy_(torch.tensor(layer.bias))
            module.bias_hh_l0.zero_()
            module.bias_hh_l0.requires_grad_(False)
    return module


def _keras_layout(cls, module, grad):
    """The module's weights (or their gradients) in Keras's layout: kernel, recurrent kernel,
    bias."""
    get = (lambda t: t.grad.numpy()) if grad else (lambda t: t.detach().numpy())
    w_ih, w_hh = get(module.weight_ih_l0), get(module.weight_hh_l0)
    out = [_perm(cls, w_ih.T), _perm(cls, w_hh.T)]
    if cls is GRU:
        return out + [np.stack([_perm(cls, get(module.bias_ih_l0)),
                                _perm(cls, get(module.bias_hh_l0))])]
    return out + [get(module.bias_ih_l0)]


def _torch_forward(module, dense, x):
    return module(x)[0] @ dense[0] + dense[1]


def _model(cls, opt):
    model = Sequential([cls(U, return_sequences=True), Dense(K, "softmax")], dtype="float64",
                       seed=3)
    model.compile(opt, "sparse_categorical_crossentropy")
    model.build((T, D))
    rnn = model.layers[0]
    rnn.bias[...] = np.random.default_rng(9).normal(size=rnn.bias.shape)  # non-zero biases
    return model


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_outputs_and_every_gradient_match_torch(cls):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(B, T, D)), rng.integers(0, K, (B, T))
    model = _model(cls, "sgd")
    rnn, dense = model.layers
    rnn.needs_input_grad = True
    module = _torch_rnn(cls, rnn)
    td = [torch.tensor(p.copy(), requires_grad=True) for p in dense.params]
    tx = torch.tensor(x, requires_grad=True)
    z = _torch_forward(module, td, tx)
    tl = torch.nn.functional.cross_entropy(z.reshape(-1, K), torch.tensor(y).reshape(-1))
    tl.backward()
    loss, probs = model.forward_backward(x, y)
    assert loss == pytest.approx(tl.item(), rel=1e-10)
    np.testing.assert_allclose(probs, torch.softmax(z, -1).detach().numpy(), rtol=1e-6,
                               atol=1e-12)
    for ours, theirs in zip(rnn.grads + dense.grads, _keras_layout(cls, module, True) +
                            [t.grad.numpy() for t in td]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_five_optimiser_steps_match_torch(cls, opt):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(B, T, D)), rng.integers(0, K, (B, T))
    ours = {"sgd": {"name": "sgd", "learning_rate": 0.1},  # the folded-η path
            "momentum": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
            "adam": {"name": "adam", "learning_rate": 0.01}}[opt]
    model = _model(cls, ours)
    rnn, dense = model.layers
    module = _torch_rnn(cls, rnn)
    td = [torch.tensor(p.copy(), requires_grad=True) for p in dense.params]
    trainable = [p for p in module.parameters() if p.requires_grad] + td
    topt = torch.optim.Adam(trainable, lr=0.01) if opt == "adam" else \
        torch.optim.SGD(trainable, lr=0.1, momentum=0.9 if opt == "momentum" else 0.0)
    for _ in range(5):
        loss = model.train_on_batch(x, y)
        topt.zero_grad()
        z = _torch_forward(module, td, torch.tensor(x))
        tl = torch.nn.functional.cross_entropy(z.reshape(-1, K), torch.tensor(y).reshape(-1))
        tl.backward()
        topt.step()
        assert loss == pytest.approx(tl.item(), rel=1e-9)
    want = _keras_layout(cls, module, False) + [t.detach().numpy() for t in td]
    for w, t in zip(model.get_weights(), want):
        np.testing.assert_allclose(w, t, rtol=1e-6, atol=1e-9)


def test_padded_lstm_matches_torch_packed_sequences():
    """mask_zero + post-padding ↔ torch's pack_padded_sequence: the last real h per sequence
    and ∂J/∂Θ (float64)."""
    rng = np.random.default_rng(3)
    lengths = np.array([5, 3, 1, 4])
    ids = rng.integers(1, 9, (B, T))
    for i, n in enumerate(lengths):
        ids[i, n:] = 0
    y = rng.integers(0, K, B)
    model = Sequential([Embedding(9, D, mask_zero=True), LSTM(U), Dense(K, "softmax")],
                       dtype="float64", seed=4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build(T)
    emb, rnn, dense = model.layers
    module = _torch_rnn(LSTM, rnn)
    te = torch.tensor(emb.embeddings.copy(), requires_grad=True)
    td = [torch.tensor(p.copy(), requires_grad=True) for p in dense.params]
    packed = torch.nn.utils.rnn.pack_padded_sequence(te[torch.tensor(ids)],
                                                     torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    _, (h, _) = module(packed)
    h = h[0]  # final states, in the batch's order
    tl = torch.nn.functional.cross_entropy(h @ td[0] + td[1], torch.tensor(y))
    tl.backward()
    loss, _ = model.forward_backward(ids, y)
    assert loss == pytest.approx(tl.item(), rel=1e-10)
    want = [te.grad.numpy(), *_keras_layout(LSTM, module, True), *(t.grad.numpy() for t in td)]
    for ours, theirs in zip(model.grads, want):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)
