"""The lecture's activation table: derivatives, table columns, numerical stability, CLI."""

import math
import re

import numpy as np
import pytest

from thetanet import Activation, Dense, Sequential
from thetanet import activations as A
from thetanet.cli import main
from thetanet.gradcheck import gradcheck

TWELVE = ["identity", "binary_step", "logistic", "tanh", "arctan", "relu", "softplus",
          "bent_identity", "soft_exponential", "sinusoid", "sinc", "gaussian"]
ALPHAS = (-0.5, 0.0, 0.5)
# every activation and parameter setting of acceptance check 1
SETTINGS = [(n, {}) for n in TWELVE if n != "soft_exponential"] + [
    ("soft_exponential", {"alpha": a}) for a in ALPHAS]
IDS = [n + "".join(f"-{k}={v}" for k, v in p.items()) for n, p in SETTINGS]
KINKS = {"relu": [0.0], "binary_step": [0.0]}


def _exact_domain(params):
    """Lower end of the region where soft_exponential uses its exact formula (α < 0)."""
    al = params.get("alpha", 0.0)
    if al >= 0:
        return -math.inf
    return (1 - 1e-3) / al - al  # u = 1 − α(x + α) = u_min = 1e-3


def _grid(name, params, lo=-8.0, hi=8.0, n=3201):
    x = np.linspace(lo, hi, n)
    for k in KINKS.get(name, []):
        x = x[np.abs(x - k) > 1e-3]
    return x[x > _exact_domain(params) + 1e-3]


def test_registry_names_order_and_aliases():
    assert A.LECTURE_TABLE == tuple(TWELVE)
    assert A.names() == [*TWELVE, "softmax", "prelu", "apl"]  # table, fixed, learnable
    assert isinstance(A.get("sigmoid"), A.Logistic)
    assert isinstance(A.get("linear"), A.Identity)
    assert isinstance(A.get(None), A.Identity)
    g = A.get("soft_exponential", alpha=0.5)
    assert g.alpha == 0.5 and A.get(g.get_config()).get_config() == g.get_config()
    with pytest.raises(ValueError, match="unknown activation"):
        A.get("swish")


@pytest.mark.parametrize("name", TWELVE + ["prelu", "apl"])
def test_equation_and_derivative_strings(name):
    g = A.get(name)
    assert g.equation.startswith("f") and g.derivative.startswith("f'")
    assert g.__doc__ and ("'" in g.__doc__ or "∂" in g.__doc__)  # formula + derivative


# -- acceptance check 1: df against central differences ---------------------------------------
@pytest.mark.parametrize(("name", "params"), SETTINGS, ids=IDS)
def test_df_matches_central_differences(name, params):
    g = A.get(name, **params)
    x = _grid(name, params)
    # step 1e-5, smaller near soft_exponential's domain limit (α < 0), where f'' ~ 1/u² is big
    al = params.get("alpha", 0.0)
    h = 1e-5 * (np.minimum(1.0, x - (1 / al - al)) if al < 0 else 1.0)
    num = (g.f(x + h) - g.f(x - h)) / (2 * h)
    an = g.df(x)
    assert an.dtype == np.float64
    # relative error where f' is not ~0; absolute error at zeros of f' (cos at π/2, …)
    big = np.abs(an) > 1e-4
    rel = np.abs(num[big] - an[big]) / np.abs(an[big])
    assert rel.size == 0 or rel.max() < 1e-6
    assert np.all(np.abs(num[~big] - an[~big]) < 1e-9)


@pytest.mark.parametrize(("name", "params"), SETTINGS, ids=IDS)
@pytest.mark.parametrize("layer", ["dense", "activation"])
def test_usable_in_layers_and_gradcheck(rng, name, params, layer):
    act = {"name": name, **params}
    x, y = rng.normal(size=(10, 4)), rng.integers(0, 3, 10)
    if layer == "dense":
        layers = [Dense(5, act), Dense(3, "softmax")]
    else:
        layers = [Dense(5), Activation(act), Dense(3, "softmax")]
    model = Sequential(layers, dtype="float64", seed=3)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(model, x, y) < 1e-6


# -- acceptance check 2: the table's columns ---------------------------------------------------
def _samples(rng):
    return np.sort(np.concatenate([np.linspace(-30, 30, 6001), rng.uniform(-1e4, 1e4, 2000),
                                   rng.normal(0, 3, 2000), [0.0]]))


@pytest.mark.parametrize(("name", "params"), SETTINGS, ids=IDS)
def test_monotonic_column(rng, name, params):
    g = A.get(name, **params)
    x = _samples(rng)
    x = x[x > _exact_domain(params) - 5]  # include soft_exponential's continuation region
    steps = np.diff(g.f(x))
    if g.monotonic:
        assert np.all(steps >= 0)
    else:
        assert np.any(steps < 0)


@pytest.mark.parametrize(("name", "params"), SETTINGS, ids=IDS)
def test_identity_near_origin_column(name, params):
    g = A.get(name, **params)
    zero = np.zeros(1)
    if g.identity_near_origin:
        assert g.f(zero)[0] == 0 and g.df(zero)[0] == 1
        # and f(x) ≈ x nearby: the error is second order
        x = np.array([-1e-4, 1e-4])
        assert np.all(np.abs(g.f(x) - x) < 1e-7)
    else:
        assert not (np.isclose(g.f(zero)[0], 0) and np.isclose(g.df(zero)[0], 1))
    if name == "soft_exponential":
        assert g.identity_near_origin == (params["alpha"] == 0)


@pytest.mark.parametrize(("name", "params"), SETTINGS, ids=IDS)
def test_range_column_holds_and_is_tight(rng, name, params):
    g = A.get(name, **params)
    lo, hi = g.range
    assert isinstance(lo, float) and isinstance(hi, float) and lo < hi
    x = _samples(rng)
    fx = g.f(x)
    assert np.all(fx >= lo) and np.all(fx <= hi)
    # tight: the samples come close to each finite end and far out towards each infinite one
    for bound, extreme in ((lo, fx.min()), (hi, fx.max())):
        if math.isinf(bound):
            assert abs(extreme) > 10 and np.sign(extreme) == np.sign(bound)
        else:
            assert abs(extreme - bound) < 1e-3


def test_sinc_range_lower_bound():
    assert A.get("sinc").range[0] == pytest.approx(-0.217234, abs=1e-6)
    x = np.linspace(4.49, 4.50, 100001)
    assert A.get("sinc").f(x).min() == pytest.approx(A.SINC_MIN, abs=1e-12)


def test_soft_exponential_range_and_monotonic_by_alpha():
    assert A.get("soft_exponential", alpha=0.5).range == (-1.5, math.inf)
    assert A.get("soft_exponential", alpha=-0.5).range == (-math.inf, math.inf)
    assert all(A.get("soft_exponential", alpha=a).monotonic for a in ALPHAS)


# -- acceptance check 3: finite everywhere on [−1e4, 1e4] --------------------------------------
@pytest.mark.parametrize(("name", "params"), SETTINGS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_on_wide_inputs_and_dtype_preserved(name, params, dtype):
    g = A.get(name, **params)
    x = np.concatenate([np.linspace(-1e4, 1e4, 20001), [-1e-30, 0.0, 1e-30]]).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        fx, dfx = g.f(x), g.df(x)
        delta = g.backward(x, fx, np.ones_like(x))
    for arr in (fx, dfx, delta):
        assert arr.dtype == dtype
        assert np.all(np.isfinite(arr))


@pytest.mark.parametrize(("name", "params"), SETTINGS, ids=IDS)
def test_f_out_may_alias_input(rng, name, params):
    g = A.get(name, **params)
    z = rng.normal(size=(5, 3)).astype(np.float32)
    want = g.f(z.copy())
    got = g.f(z, out=z)
    assert got is z and np.array_equal(got, want)


def test_integer_input_becomes_float64():
    assert A.get("sinc").f(np.array([0, 1, 2])).dtype == np.float64


# -- numerical stability of the delicate ones --------------------------------------------------
def test_logistic_and_softplus_for_large_inputs():
    lg, sp = A.get("logistic"), A.get("softplus")
    x = np.array([-1000.0, -50.0, 50.0, 1000.0])
    with np.errstate(over="raise"):
        s, p = lg.f(x), sp.f(x)
    assert s[0] == 0.0 and s[3] == 1.0
    assert s[1] == pytest.approx(math.exp(-50), rel=1e-12)
    assert p[1] == pytest.approx(math.exp(-50), rel=1e-12)  # log1p keeps e^x, not 0
    assert p[2] == 50.0 and p[3] == 1000.0
    np.testing.assert_array_equal(sp.df(x), lg.f(x))


def test_sinc_at_and_near_zero():
    g = A.get("sinc")
    assert g.f(np.zeros(1))[0] == 1.0 and g.df(np.zeros(1))[0] == 0.0
    tiny = np.array([1e-300, 1e-12, 1e-6])
    np.testing.assert_allclose(g.df(tiny), -tiny / 3, rtol=1e-10)
    np.testing.assert_allclose(g.f(tiny), 1 - tiny**2 / 6, rtol=1e-15)
    x = np.concatenate([np.linspace(-3, 3, 6001), [0.5 - 1e-12, 0.5 + 1e-12]])
    np.testing.assert_allclose(g.f(x), np.sinc(x / np.pi), rtol=1e-13, atol=1e-15)
    # the series and the closed form agree at the switch point
    left, right = g.df(np.array([0.5 - 1e-12])), g.df(np.array([0.5 + 1e-12]))
    assert abs(left[0] - right[0]) < 1e-11


def test_bent_identity_without_cancellation():
    g = A.get("bent_identity")
    x = np.array([1e-5, -1e-5])
    # (√(x² + 1) − 1)/2 computed naively loses ~6 digits here; x·x/(√(x² + 1) + 1) does not
    np.testing.assert_allclose(g.f(x) - x, x**2 / 4 - x**4 / 16, rtol=1e-9)
    assert np.isfinite(g.f(np.array([1e300]))).all()


def test_soft_exponential_branches_and_continuity_in_alpha():
    x = np.linspace(-1, 3, 41)
    f0 = A.get("soft_exponential", alpha=0.0).f(x)
    np.testing.assert_array_equal(f0, x)
    for al in (1e-9, -1e-9):
        np.testing.assert_allclose(A.get("soft_exponential", alpha=al).f(x), x, atol=1e-8)
    g = A.get("soft_exponential", alpha=0.5)
    np.testing.assert_allclose(g.f(x), (np.exp(0.5 * x) - 1) / 0.5 + 0.5, rtol=1e-13)
    g = A.get("soft_exponential", alpha=-0.5)
    np.testing.assert_allclose(g.f(x), -np.log(1 + 0.5 * (x - 0.5)) / -0.5, rtol=1e-13)


@pytest.mark.parametrize("alpha", [-0.5, -1e-3, -1e-7, 0.0, 1e-7, 1e-3, 0.5])
def test_soft_exponential_alpha_derivative(alpha):
    x = np.linspace(-1.4, 4, 541)
    h = 1e-6
    num = (A.get("soft_exponential", alpha=alpha + h).f(x)
           - A.get("soft_exponential", alpha=alpha - h).f(x)) / (2 * h)
    an = A.get("soft_exponential", alpha=alpha).df_dalpha(x)
    # at α = 0 the two branches meet with different second derivatives: O(h) error there
    tol = 1e-5 if abs(alpha) < 1e-6 else 1e-7
    np.testing.assert_allclose(an, num, rtol=tol)
    if alpha == 0.0:
        np.testing.assert_array_equal(an, x**2 / 2 + 1)


def test_soft_exponential_domain_limit_for_negative_alpha():
    g = A.get("soft_exponential", alpha=-0.5)
    boundary = 1 / -0.5 + 0.5  # u = 0 at x = −1.5
    x_c = (1 - 1e-3) / -0.5 + 0.5  # the exact formula stops at u = u_min = 1e-3
    x = np.array([-1e4, -3.0, boundary, x_c - 1e-9, x_c + 1e-9, -1.0])
    with np.errstate(all="raise"):
        fx, dfx, dax = g.f(x), g.df(x), g.df_dalpha(x)
    assert np.all(np.isfinite(fx)) and np.all(np.isfinite(dfx)) and np.all(np.isfinite(dax))
    # beyond the limit: the tangent line at u = u_min (slope 1/u_min), continuous at x_c
    np.testing.assert_allclose(dfx[:4], 1e3)
    assert abs(fx[3] - fx[4]) < 1e-5
    assert abs(dax[3] - dax[4]) < 1e-2 * abs(dax[3])
    assert np.all(np.diff(fx) > 0)
    # a different guard moves the switch point
    g2 = A.get("soft_exponential", alpha=-0.5, u_min=0.1)
    assert g2.df(np.array([-3.0]))[0] == pytest.approx(10.0)


def test_soft_exponential_bad_parameters():
    with pytest.raises(ValueError, match="alpha"):
        A.get("soft_exponential", alpha=float("nan"))
    with pytest.raises(ValueError, match="u_min"):
        A.get("soft_exponential", u_min=0.0)
    with pytest.raises(ValueError, match="learnable"):
        A.get("soft_exponential", per_unit=True)


def test_soft_exponential_saturates_instead_of_inf():
    g = A.get("soft_exponential", alpha=0.5)
    for dt in (np.float32, np.float64):
        x = np.array([1e4], dt)
        assert g.f(x)[0] == np.finfo(dt).max and g.df(x)[0] == np.finfo(dt).max


def test_binary_step_cannot_learn_by_backprop(rng):
    g = A.get("binary_step")
    assert "cannot learn by backprop" in " ".join(g.__doc__.split())
    x = rng.normal(size=(20, 3))
    np.testing.assert_array_equal(g.df(x), 0)
    model = Sequential([Dense(6, "binary_step"), Dense(2, "softmax")], seed=0)
    model.compile({"name": "sgd", "learning_rate": 0.5}, "sparse_categorical_crossentropy")
    first = model.layers[0]
    model.build(3)
    before = first.kernel.copy()
    model.fit(x, rng.integers(0, 2, 20), epochs=3, verbose=0, seed=0)
    np.testing.assert_array_equal(first.kernel, before)  # δ below a step layer is 0


# -- the table as text ------------------------------------------------------------------------
def _formula_cells(text):
    """{first word of the name: the formula column's lines joined}, cut by the dash row."""
    lines = text.split("\n\n")[0].splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    lo, hi = spans[1]
    cells, name = {}, None
    for ln in lines[2:]:
        if ln[:spans[0][1]].strip():
            name = ln.split()[0]
            cells[name] = []
        cells[name].append(ln[lo:hi].strip())
    return {n: " ".join(parts) for n, parts in cells.items()}


@pytest.mark.parametrize("names", [TWELVE, None], ids=["twelve", "all"])
def test_text_table_fits_100_columns_and_holds_every_formula(names):
    names = names or A.names()
    text = A.format_table(names)
    assert max(len(ln) for ln in text.splitlines()) <= 100
    header = text.splitlines()[0]
    for col in ("name", "equation", "derivative", "monotonic", "≈x near 0", "range"):
        assert col in header
    cells = _formula_cells(text)
    assert list(cells) == names
    for n in names:  # equation, then derivative, unwrapped back to the class's strings
        g = A.get(n)
        assert cells[n] == " ".join(f"{g.equation} {g.derivative}".split())
    # a wider terminal gets fewer, longer lines; the notes are wrapped too
    wide = A.format_table(names, width=200)
    assert len(wide.splitlines()) < len(text.splitlines())
    assert max(len(ln) for ln in wide.splitlines()) > 100


def test_wrap_formula_breaks_between_cases_never_inside_brackets():
    eq = A.get("soft_exponential").equation
    lines = A.table.wrap_formula(eq, 38)
    assert lines == ["f(a,x) = -ln(1 - a(x+a))/a (a<0);", "  x (a=0); (e^(ax) - 1)/a + a (a>0)"]
    apl = A.table.wrap_formula(A.get("apl").equation, 38)
    assert all(len(ln) <= 38 for ln in apl)
    assert "  max(0, -x + b_s) (a, b learned)" in apl  # the bracketed term stays whole
    assert A.table.wrap_formula("f(x) = x", 38) == ["f(x) = x"]


def test_markdown_table_one_line_per_activation():
    md = A.format_table(A.names(), markdown=True).splitlines()
    assert md[0] == "| name | equation | derivative | monotonic | ≈x near 0 | range |"
    relu = next(ln for ln in md if ln.startswith("| relu |"))
    assert relu == f"| relu | {A.ReLU.equation} | {A.ReLU.derivative} | yes | no | [0, ∞) |"
    assert len(md) == 2 + len(A.names()) + 1 + 2  # header, rows, blank, the two notes


def test_format_range_brackets():
    assert A.format_range(A.get("relu")) == "[0, ∞)"
    assert A.format_range(A.get("arctan")) == "(−π/2, π/2)"
    assert A.format_range(A.get("binary_step")) == "{0, 1}"
    assert A.format_range(A.get("sinc")) == "[−0.217234, 1]"
    assert A.format_range(A.get("prelu", alpha=0.0)) == "(0, ∞)"  # learnable: ends open


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_prints_table_from_code(capsys):
    assert main(["activations"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for col in ("name", "equation", "derivative", "monotonic", "≈x near 0", "range"):
        assert col in header
    for n in TWELVE:
        line = next(ln for ln in out.splitlines() if ln.startswith(n))
        assert A.get(n).equation[:20] in line  # the row starts with its equation
    sinc = next(ln for ln in out.splitlines() if ln.startswith("sinc"))
    assert "[−0.217234, 1]" in sinc and sinc.split()[-4:-2] == ["no", "no"]
    relu = next(ln for ln in out.splitlines() if ln.startswith("relu"))
    assert re.search(r"\byes\s+no\s+\[0, ∞\)$", relu)
    assert max(len(ln) for ln in out.splitlines()) <= 100  # fits a 100-column terminal
    assert main(["activations", "--all", "--markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| name |") and "| prelu |" in md and "| apl |" in md


def test_cli_plot_writes_png_with_twelve_panels(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from thetanet.cli.activations import plot

    out = tmp_path / "out.png"
    assert main(["activations", "--plot", str(out)]) == 0
    assert "(12 panels)" in capsys.readouterr().out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    fig = plot(tmp_path / "again.png")
    assert len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes] == TWELVE
    assert main(["activations", "--plot", str(tmp_path / "missing" / "x.png")]) == 2
