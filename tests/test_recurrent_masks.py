"""Hypothesis: over random batch sizes, lengths and arbitrary masks (not only padding at the
end), a recurrent layer's run on a masked batch equals each sequence's real steps run alone,
in outputs, final states and ∂J/∂Θ; padded steps carry the state and get no δ."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from thetanet import GRU, LSTM, SimpleRNN

CLASSES = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def _layer(kind, backwards, seed):
    layer = CLASSES[kind](3, return_sequences=True, return_state=True, go_backwards=backwards)
    layer.build((1, 2), dtype=np.float64, rng=np.random.default_rng(seed))
    layer.bias[...] = np.random.default_rng(seed + 1).normal(size=layer.bias.shape)
    layer.needs_input_grad = True
    return layer


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(CLASSES)), backwards=st.booleans(),
       seed=st.integers(0, 2**16),
       masks=st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=1, max_size=4))
def test_masked_batch_equals_real_steps_alone(kind, backwards, seed, masks):
    steps = max(len(m) for m in masks)
    mask = np.array([m + [False] * (steps - len(m)) for m in masks], bool)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(mask.shape[0], steps, 2))
    w = rng.normal(size=(mask.shape[0], steps, 3))
    order = slice(None, None, -1) if backwards else slice(None)
    w_real = w * mask[:, order, None]  # J = Σ over the real outputs of w · output
    layer = _layer(kind, backwards, seed)
    out, *finals = layer.forward(x, True, mask=mask)
    dx = layer.backward([w_real] + [None] * len(finals))
    grads = [g.copy() for g in layer.grads]
    assert not np.any(dx[~mask])  # padded steps get no δ
    want = [np.zeros_like(g) for g in grads]
    for i in range(mask.shape[0]):
        real = np.flatnonzero(mask[i])
        if real.size == 0:  # nothing real: the state stays at h_0 = 0
            assert not np.any(out[i]) and not any(np.any(f[i]) for f in finals)
            continue
        alone = _layer(kind, backwards, seed)
        o, *f = alone.forward(x[i:i + 1, real], True)
        # outputs come in processing order; a padded step repeats the carried output
        got = out[i][mask[i, order]]
        np.testing.assert_allclose(got, o[0], atol=1e-12)
        for a, b in zip(finals, f):
            np.testing.assert_allclose(a[i], b[0], atol=1e-12)
        alone.backward([w[i:i + 1][:, mask[i, order]]] + [None] * len(f))
        for acc, g in zip(want, alone.grads):
            acc += g
    for g, acc in zip(grads, want):
        np.testing.assert_allclose(g, acc, atol=1e-10)
