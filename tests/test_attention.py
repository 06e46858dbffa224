"""AdditiveAttention (layers/attention.py): Σα = 1, masked locations get α = 0, gradient checks
in a graph (both outputs trained, one query per step and one per example), and parity with a
PyTorch implementation of the same formula."""

from __future__ import annotations

import numpy as np
import pytest

from thetanet import AdditiveAttention, Dense, Flatten, Input, Model, load_model
from thetanet.gradcheck import gradcheck

M, T, L, Q, D, U = 3, 4, 5, 6, 7, 8


def layer_and_inputs(seed: int = 0, per_step: bool = True
                     ) -> tuple[AdditiveAttention, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    att = AdditiveAttention(U)
    q_shape = (T, Q) if per_step else (Q,)
    att.build([q_shape, (L, D), (L,)], dtype="float64", rng=rng)
    h = rng.normal(size=(M, *q_shape))
    f = rng.normal(size=(M, L, D))
    loc = np.ones((M, L))
    loc[0, 3:] = 0  # example 0: only 3 real locations
    loc[2, 0] = 0
    return att, [h, f, loc]


@pytest.mark.parametrize("per_step", [True, False])
def test_weights_sum_to_one_and_masked_locations_get_zero(per_step: bool) -> None:
    att, x = layer_and_inputs(per_step=per_step)
    context, alpha = att.forward(x, training=False)
    lead = (M, T) if per_step else (M,)
    assert context.shape == (*lead, D) and alpha.shape == (*lead, L)
    assert np.allclose(alpha.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(alpha[0, ..., 3:] == 0) and np.all(alpha[2, ..., 0] == 0)
    assert np.all(alpha[1] > 0)
    # the context is the α-weighted sum of the features
    f = x[1]
    want = np.einsum("m...l,mld->m...d", alpha, f)
    assert np.allclose(context, want, atol=1e-12)


def test_mask_from_the_graph_and_from_a_third_input_agree() -> None:
    att, x = layer_and_inputs()
    via_input = att.forward(x)[1]
    via_mask = att.forward(x[:2], mask=[None, x[2] > 0.5])[1]
    assert np.array_equal(via_input, via_mask)


def attention_model(per_step: bool) -> Model:
    q = Input((T, Q) if per_step else (Q,), name="query")
    f = Input((L, D), name="features")
    loc = Input((L,), name="locations")
    context, alpha = AdditiveAttention(U, name="att")([q, f, loc])
    flat = Flatten()(context) if per_step else context
    out = Dense(3, "softmax", name="cls")(flat)
    a_out = Flatten()(alpha) if per_step else alpha
    return Model([q, f, loc], [out, a_out], dtype="float64", seed=2)


@pytest.mark.parametrize("per_step", [True, False])
def test_attention_gradcheck_both_outputs(per_step: bool) -> None:
    model = attention_model(per_step)
    model.compile("sgd", ["sparse_categorical_crossentropy", "mse"])
    _, x = layer_and_inputs(seed=4, per_step=per_step)
    rng = np.random.default_rng(5)
    width = T * L if per_step else L
    y = [rng.integers(0, 3, M), rng.random((M, width))]
    assert gradcheck(model, x, y) < 1e-7


def test_parity_with_torch_formula() -> None:
    torch = pytest.importorskip("torch")
    att, x = layer_and_inputs(seed=7)
    context, alpha = att.forward(x, training=True)
    rng = np.random.default_rng(8)
    g_c, g_a = rng.normal(size=context.shape), rng.normal(size=alpha.shape)
    d_h, d_f, _ = att.backward([g_c, g_a])

    h, f = (torch.tensor(v, requires_grad=True) for v in x[:2])
    loc = torch.tensor(x[2]) > 0.5
    wq, wf, b, v = (torch.tensor(p, requires_grad=True) for p in att.params)
    s = torch.tanh((h @ wq)[:, :, None, :] + (f @ wf)[:, None, :, :] + b)
    e = (s @ v).masked_fill(~loc[:, None, :], float("-inf"))
    ta = torch.softmax(e, dim=-1)
    tc = ta @ f
    ((tc * torch.tensor(g_c)).sum() + (ta * torch.tensor(g_a)).sum()).backward()
    assert np.allclose(context, tc.detach().numpy(), atol=1e-12)
    assert np.allclose(alpha, ta.detach().numpy(), atol=1e-12)
    for ours, theirs in [(d_h, h), (d_f, f), *zip(att.grads, (wq, wf, b, v))]:
        assert np.max(np.abs(ours - theirs.grad.numpy())) < 1e-10


def test_config_round_trip_and_validation() -> None:
    att = AdditiveAttention(4, name="a")
    assert AdditiveAttention(**att.get_config()).get_config() == att.get_config()
    with pytest.raises(ValueError, match="units"):
        AdditiveAttention(0)
    with pytest.raises(ValueError, match="budget"):
        AdditiveAttention(10**5).build([(4,), (5, 10**4)], dtype="float32",
                                       rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="features"):
        AdditiveAttention(3).build([(4,), (5,)], dtype="float64",
                                   rng=np.random.default_rng(0))


def captioner_like(seed: int = 0) -> tuple[Model, Model]:
    """The captioner's pattern: words → Embedding(mask_zero) → LSTM(return_sequences) → a
    query per step over image features → [h | context] → softmax per step; and a second model
    on the same layers that also returns α (for plots)."""
    from thetanet import LSTM, Concatenate, Embedding

    words, feats = Input((T,), name="words"), Input((L, D), name="features")
    h = LSTM(6, return_sequences=True, name="lstm")(Embedding(9, 4, mask_zero=True)(words))
    context, alpha = AdditiveAttention(U, name="att")([h, feats])
    probs = Dense(9, "softmax", name="next")(Concatenate()([h, context]))
    train = Model([words, feats], probs, dtype="float64", seed=seed)
    return train, Model([words, feats], [probs, alpha])  # the same layers: Θ shared


def caption_batch(seed: int = 3) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    words = rng.integers(1, 9, size=(M, T))
    words[0, 2:] = 0  # padding: masked steps
    words[2, 3:] = 0
    return [words, rng.normal(size=(M, L, D))], rng.integers(0, 9, size=(M, T))


def test_captioner_pattern_gradcheck_and_masked_steps(tmp_path: object) -> None:
    train, with_alpha = captioner_like()
    train.compile("sgd", "sparse_categorical_crossentropy")
    x, y = caption_batch()
    assert gradcheck(train, x, y, eps=1e-5) < 1e-6  # small gradients: a larger ε
    # the targets of padded steps count neither in J nor in its gradient
    y2 = y.copy()
    y2[0, 2:] = (y2[0, 2:] + 1) % 9
    j1 = train.evaluate(x, y)
    assert train.evaluate(x, y2) == j1
    probs, alpha = with_alpha.predict(x)
    assert np.array_equal(probs, train.predict(x))  # the same layers, the same Θ
    assert alpha.shape == (M, T, L) and np.allclose(alpha.sum(axis=-1), 1.0)
    hist = train.fit(x, y, epochs=3, batch_size=2, verbose=0, seed=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert np.array_equal(with_alpha.predict(x)[0], train.predict(x))  # trained Θ shared
    with_alpha.save(tmp_path / "m")  # type: ignore[operator]
    again = load_model(tmp_path / "m")  # type: ignore[operator]
    for a, b in zip(with_alpha.predict(x), again.predict(x)):
        assert np.array_equal(a, b)
