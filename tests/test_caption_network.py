"""The captioner's network: gradients (central differences, float64), attention's Σα = 1, and
parity of the decoder pieces with PyTorch autograd."""

from __future__ import annotations

import numpy as np
import pytest

from thetanet.captions.decoder import AdditiveAttention, LSTMDecoder
from thetanet.captions.network import CaptionConfig, CaptionNet, with_coordinates
from thetanet.data import scenes as S
from thetanet.gradcheck import relative_error


def _batch(rng: np.random.Generator, B: int = 3, T: int = 5, canvas: int = 8):
    images = rng.random((B, canvas, canvas))
    tokens = rng.integers(3, len(S.VOCAB), (B, T))
    targets = rng.integers(3, len(S.VOCAB), (B, T))
    tokens[0, 3:] = 0   # a short caption: padding in the input and the targets
    targets[0, 3:] = 0
    return images, tokens, targets


def _numeric(net: CaptionNet, images, tokens, targets, p: np.ndarray, idx: np.ndarray,
             eps: float = 1e-6) -> np.ndarray:
    flat = p.reshape(-1)
    out = np.empty(idx.size)
    for k, i in enumerate(idx):
        orig = flat[i]
        flat[i] = orig + eps
        jp = net.loss(net.forward(images, tokens, training=True)[0], targets)
        flat[i] = orig - eps
        jm = net.loss(net.forward(images, tokens, training=True)[0], targets)
        flat[i] = orig
        out[k] = (jp - jm) / (2 * eps)
    return out


@pytest.mark.parametrize("attention, hidden", [(True, 0), (True, 6), (False, 0), (False, 6)])
def test_gradients_match_central_differences(attention, hidden):
    rng = np.random.default_rng(0)
    cfg = CaptionConfig(canvas=8, filters=(3, 4), embed=4, units=5, attention_units=3,
                        attention=attention, hidden=hidden, dtype="float64")
    net = CaptionNet(cfg, seed=1)
    images, tokens, targets = _batch(rng)
    net.loss(net.forward(images, tokens, training=True)[0], targets)
    net.backward(targets)
    grads = [g.copy() for g in net.grads]
    assert len(grads) == len(net.params)
    for p, g in zip(net.params, grads):
        idx = rng.choice(p.size, size=min(p.size, 12), replace=False)
        num = _numeric(net, images, tokens, targets, p, idx)
        assert relative_error(g.reshape(-1)[idx], num) < 1e-6, p.shape


def test_padding_steps_do_not_count():
    rng = np.random.default_rng(2)
    cfg = CaptionConfig(canvas=8, filters=(3, 4), embed=4, units=5, attention_units=3,
                        dtype="float64")
    net = CaptionNet(cfg, seed=1)
    images, tokens, targets = _batch(rng)
    P, alpha = net.forward(images, tokens)
    other = tokens.copy()
    other[0, 3:] = 5  # change only inputs at padded steps of caption 0
    P2, _ = net.forward(images, other)
    assert net.loss(P, targets) == pytest.approx(net.loss(P2, targets))
    np.testing.assert_allclose(alpha.sum(axis=2), 1.0)
    assert alpha.shape == (3, 5, 4)


def _torch():
    return pytest.importorskip("torch")


def test_lstm_and_attention_match_torch_autograd():
    torch = _torch()
    rng = np.random.default_rng(3)
    B, T, e, u, L, d, a = 2, 4, 3, 5, 6, 4, 3
    lstm = LSTMDecoder(e, u, rng, np.float64)
    att = AdditiveAttention(d, u, a, rng, np.float64)
    x, h0, c0 = rng.normal(size=(B, T, e)), rng.normal(size=(B, u)), rng.normal(size=(B, u))
    F = rng.normal(size=(B, L, d))
    H = lstm.forward(x, h0, c0)
    ctx, alpha = att.forward(H, F)
    R = rng.normal(size=ctx.shape)  # J = Σ R ⊙ ctx
    dH_att, dF = att.backward(R)
    dx, dh0, dc0 = lstm.backward(dH_att)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in dict(
        x=x, h0=h0, c0=c0, F=F, W=lstm.W, U=lstm.U, b=lstm.b, Wf=att.Wf, Wq=att.Wq,
        bq=att.bq, v=att.v).items()}
    h, c, hs = t["h0"], t["c0"], []
    for s in range(T):
        z = t["x"][:, s] @ t["W"] + h @ t["U"] + t["b"]
        i, f, g, o = z.split(u, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
    Ht = torch.stack(hs, 1)
    S_ = torch.tanh((t["F"] @ t["Wf"])[:, None] + (Ht @ t["Wq"] + t["bq"])[:, :, None])
    al = torch.softmax(S_ @ t["v"], dim=2)
    ct = al @ t["F"]
    (ct * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(alpha, al.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ctx, ct.detach().numpy(), atol=1e-12)
    pairs = [(dx, "x"), (dh0, "h0"), (dc0, "c0"), (dF, "F"), (lstm.grads[0], "W"),
             (lstm.grads[1], "U"), (lstm.grads[2], "b"), (att.grads[0], "Wf"),
             (att.grads[1], "Wq"), (att.grads[2], "bq"), (att.grads[3], "v")]
    for ours, name in pairs:
        np.testing.assert_allclose(ours, t[name].grad.numpy(), atol=1e-10, err_msg=name)


def test_coordinates_and_config_errors():
    x = with_coordinates(np.zeros((1, 4, 6), np.float32))
    assert x.shape == (1, 4, 6, 3)
    np.testing.assert_allclose(x[0, :, 0, 1], np.linspace(-1, 1, 4))
    np.testing.assert_allclose(x[0, 0, :, 2], np.linspace(-1, 1, 6))
    with pytest.raises(ValueError, match="divisible"):
        CaptionConfig(canvas=20, filters=(2, 2, 2))
