"""Activation behaviour that mutation testing found unpinned (issue 18; the mutants each test
kills are listed in benchmarks/results/mutation.md): the lecture table's text, APL's start and
its two derivative paths, the registry's refusals, and quiet numerics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from thetanet import Activation, Dense, Sequential
from thetanet import activations as A
from thetanet.activations.table import wrap_formula


def test_repr_shows_the_constructor_arguments():
    assert repr(A.PReLU(alpha=0.1)) == "PReLU(alpha=0.1, per_unit=False)"
    assert repr(A.Tanh()) == "Tanh()"


def test_apl_hinges_start_standard_normal():
    """The documented start: a = 0 (a ReLU), b ~ N(0, 1) from the model's generator."""
    g = A.APL(hinges=2)
    g.build(4000, np.dtype(np.float64), np.random.default_rng(0))
    b = g.params["b"]
    assert np.all(g.params["a"] == 0)
    assert abs(b.mean()) < 0.05 and abs(b.std() - 1) < 0.05


def test_apl_df_and_backward_agree_at_the_hinges_too():
    g = A.APL(hinges=2, a=[0.5, -0.25], b=[0.0, 1.0], per_unit=False)
    g.build(1, np.dtype(np.float64), np.random.default_rng(0))
    z = np.array([[-2.0], [0.0], [0.5], [1.0], [3.0]])  # 0 and 1 are hinges
    grad = np.linspace(1, 2, z.size).reshape(z.shape)
    delta = g.backward(z, g.f(z), grad.copy())
    np.testing.assert_array_equal(delta, grad * g.df(z))
    # away from the kinks df is the derivative
    zs = np.array([[-1.5], [0.3], [2.0]])
    h = 1e-6
    np.testing.assert_allclose(g.df(zs), (g.f(zs + h) - g.f(zs - h)) / (2 * h), atol=1e-8)


def test_arctan_derivative_of_huge_inputs_is_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = A.Arctan().df(np.array([1e200, -1e200, 0.0]))
    np.testing.assert_array_equal(d, [0.0, 0.0, 1.0])


def test_a_config_without_a_name_is_refused():
    with pytest.raises(ValueError, match="name"):
        A.get({"alpha": 0.5})


def test_registering_a_taken_name_says_which():
    clash = type("Clash", (A.ActivationFunction,), {"name": "relu"})
    with pytest.raises(ValueError, match="'relu'"):
        A.register(clash)
    assert type(A.get("relu")) is A.ReLU  # the registry is unchanged


def test_softmax_has_no_elementwise_derivative_and_says_what_to_use():
    with pytest.raises(TypeError, match="backward"):
        A.Softmax().df(np.zeros((2, 3)))


def test_activation_layer_as_the_fused_output_evaluates_exactly():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    model = Sequential([Dense(3), Activation("softmax")], dtype="float64", seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build(4)
    p = model.predict(x)
    np.testing.assert_allclose(model.evaluate(x, y), -np.log(p[np.arange(12), y]).mean(),
                               rtol=1e-12)


# -- the lecture table as text ------------------------------------------------------------------

def test_ranges_print_their_own_bounds():
    assert A.format_range(A.Tanh()) == "(−1, 1)"
    assert A.format_range(A.Arctan()) == "(−π/2, π/2)"
    assert A.format_range(A.ReLU()) == "[0, ∞)"


def test_the_monotonic_column_follows_the_functions():
    rows = {r[0]: r for r in A.table_rows(["relu", "gaussian", "sinc", "sinusoid"])}
    assert [rows[n][3] for n in ("relu", "gaussian", "sinc", "sinusoid")] == \
        ["yes", "no", "no", "no"]


@pytest.mark.parametrize("width", [24, 36, 60])
def test_wrapped_formulas_fit_their_width(width):
    for name in A.names():
        g = A.get(name)
        for text in (g.equation, g.derivative):
            lines = wrap_formula(text, width)
            assert " ".join(ln.strip() for ln in lines) == text  # nothing lost or reordered
            assert all(len(ln) <= width for ln in lines), (name, lines)


def test_wrapping_breaks_between_cases_and_at_spaces_outside_brackets():
    assert wrap_formula("aaaa, bbbb", 10) == ["aaaa, bbbb"]
    assert wrap_formula("aaaa, bbbb", 9) == ["aaaa,", "  bbbb"]  # 10 characters do not fit
    assert wrap_formula("X1 X2 X3 X4 X5 X6", 6) == ["X1 X2", "  X3", "  X4", "  X5", "  X6"]
    assert wrap_formula("f(x) = max(0, x + 1)", 8) == ["f(x) =", "  max(0, x + 1)"]


def test_wrapped_notes_indent_their_continuation_lines():
    text = A.format_table(["soft_exponential"], width=50)
    note = text.split("\n\n", 1)[1].splitlines()
    assert len(note) > 1 and note[0].startswith("soft_exponential")
    assert all(ln.startswith("  ") and len(ln) <= 50 for ln in note[1:])

