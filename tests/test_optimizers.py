import numpy as np
import pytest

from thetanet import optimizers


def _run(opt, steps=3):
    p = [np.array([1.0, -2.0]), np.array([[0.5]])]
    for t in range(steps):
        opt.step(p, [np.array([0.1 * (t + 1), -0.3]), np.array([[0.2]])])
    return p


def test_sgd_plain_is_gradient_descent():
    p = _run(optimizers.SGD(0.5), steps=1)
    np.testing.assert_allclose(p[0], [1.0 - 0.05, -2.0 + 0.15])


def test_sgd_momentum_matches_formula():
    mu, lr = 0.9, 0.1
    p = _run(optimizers.SGD(lr, momentum=mu))
    v, x = 0.0, 1.0
    for t in range(3):
        g = 0.1 * (t + 1)
        v = g if t == 0 else mu * v + g
        x -= lr * v
    assert p[0][0] == pytest.approx(x)


def test_nesterov_matches_formula():
    mu, lr = 0.9, 0.1
    p = _run(optimizers.SGD(lr, momentum=mu, nesterov=True))
    v, x = 0.0, 1.0
    for t in range(3):
        g = 0.1 * (t + 1)
        v = g if t == 0 else mu * v + g
        x -= lr * (g + mu * v)
    assert p[0][0] == pytest.approx(x)


def test_adam_matches_formula():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p = _run(optimizers.Adam(lr, b1, b2, eps))
    m = v = 0.0
    x = 1.0
    for t in range(1, 4):
        g = 0.1 * t
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    assert p[0][0] == pytest.approx(x, rel=1e-12)


@pytest.mark.parametrize("name,cls", [("sgd", optimizers.SGD), ("adam", optimizers.Adam),
                                      ("Adam", optimizers.Adam)])
def test_get_by_name(name, cls):
    assert isinstance(optimizers.get(name), cls)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        optimizers.get("rmsprop")
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.SGD(-1)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        optimizers.SGD(0.1, nesterov=True)


def test_config_round_trip():
    opt = optimizers.Adam(0.003, beta_2=0.99)
    again = optimizers.get(opt.get_config())
    assert again.get_config() == opt.get_config()


def test_lazy_adam_skips_zero_rows_and_matches_adam_elsewhere():
    rng = np.random.default_rng(0)
    p_lazy = [rng.normal(size=(100, 4))]
    p_full = [p_lazy[0].copy()]
    lazy, full = optimizers.Adam(0.01, lazy=True), optimizers.Adam(0.01)
    g = rng.normal(size=(100, 4))
    g[10:] = 0  # only rows 0..9 see input
    for _ in range(3):
        lazy.step(p_lazy, [g.copy()])
        full.step(p_full, [g.copy()])
    start = p_full[0].copy()
    np.testing.assert_allclose(p_lazy[0][:10], p_full[0][:10], rtol=1e-12)
    # untouched rows never moved (with zero gradient from the start, Adam doesn't move them
    # either; after a non-zero step full Adam keeps drifting them by momentum, lazy does not)
    np.testing.assert_array_equal(p_lazy[0][10:], start[10:])
    g2 = np.zeros_like(g)
    g2[:5] = 1.0
    before = p_lazy[0].copy()
    lazy.step(p_lazy, [g2])
    np.testing.assert_array_equal(p_lazy[0][5:], before[5:])
    assert np.all(p_lazy[0][:5] != before[:5])
    assert optimizers.get(lazy.get_config()).lazy


def test_lazy_adam_row_hint_runs_and_scattered_rows_match_adam():
    """A hint mixing a long run of rows (updated as a slice) and scattered rows (gathered)
    gives Adam's update on exactly those rows; the rest stay where they were."""
    rng = np.random.default_rng(3)
    p_lazy = [rng.normal(size=(300, 5))]
    p_full = [p_lazy[0].copy()]
    rows = np.concatenate([[2, 7], np.arange(40, 90), [150, 151, 299]])
    g = np.zeros((300, 5))
    lazy, full = optimizers.Adam(0.01, lazy=True), optimizers.Adam(0.01)
    start = p_lazy[0].copy()
    for _ in range(3):
        g[rows] = rng.normal(size=(rows.size, 5))
        lazy.step(p_lazy, [g.copy()], [rows])
        full.step(p_full, [g.copy()])
    np.testing.assert_allclose(p_lazy[0][rows], p_full[0][rows], rtol=1e-12)
    rest = np.setdiff1d(np.arange(300), rows)
    np.testing.assert_array_equal(p_lazy[0][rest], start[rest])
    # without the hint the scan finds the same rows: the same result
    p_scan = [start.copy()]
    scan = optimizers.Adam(0.01, lazy=True)
    rng = np.random.default_rng(3)
    rng.normal(size=(300, 5))
    for _ in range(3):
        g[rows] = rng.normal(size=(rows.size, 5))
        scan.step(p_scan, [g.copy()])
    np.testing.assert_array_equal(p_scan[0], p_lazy[0])


# -- one protocol ------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [{"name": "sgd", "learning_rate": 0.1},
                                 {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5},
                                 {"name": "adam"}, {"name": "adam", "lazy": True}])
def test_every_optimizer_takes_row_hints_and_leaves_grads_alone(rng, cfg):
    """step(params, grads, rows): hints give the same result (exact hints), grads unchanged."""
    p = rng.normal(size=(80, 3))
    g = np.zeros_like(p)
    g[[3, 40, 41]] = rng.normal(size=(3, 3))
    a, b = optimizers.get(dict(cfg)), optimizers.get(dict(cfg))
    pa, pb, g0 = p.copy(), p.copy(), g.copy()
    for _ in range(3):
        a.step([pa], [g])
        b.step([pb], [g], [np.array([3, 40, 41])])
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(g, g0)
    assert a.iterations == b.iterations == 3
    assert a.uses_rows == bool(cfg.get("lazy"))


def test_folded_learning_rate_only_for_plain_gradient_descent():
    assert optimizers.SGD(0.3).folded_learning_rate() == 0.3
    assert optimizers.SGD(0.3, momentum=0.9).folded_learning_rate() is None
    assert optimizers.Adam().folded_learning_rate() is None

    class Clipped(optimizers.SGD):  # its own update rule: nothing may be folded
        def step(self, params, grads, rows=None):
            super().step(params, [np.clip(g, -1, 1) for g in grads])

    assert Clipped(0.3).folded_learning_rate() is None


def test_folded_step_equals_the_plain_step(rng):
    """apply_folded(η·g) layer by layer + end_folded_step == step(g)."""
    params = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    grads = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    plain, folded = optimizers.SGD(0.05), optimizers.SGD(0.05)
    p1 = [p.copy() for p in params]
    p2 = [p.copy() for p in params]
    plain.step(p1, grads)
    eta = folded.folded_learning_rate()
    for p, g in zip(p2, grads):  # one "layer" at a time
        folded.apply_folded([p], [eta * g])
    folded.end_folded_step()
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-15)
    assert plain.iterations == folded.iterations == 1
