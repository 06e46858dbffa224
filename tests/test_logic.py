"""The lecture's logic-gate networks (Intuitions) and learning XNOR by backprop."""

import json

import numpy as np
import pytest

from thetanet.cli import main
from thetanet.examples.logic import (
    GATES,
    gate_dataset,
    gate_network,
    learn_gate,
    network_theta,
    truth_table,
)

# The lecture's slides, written out independently of the module's table.
SLIDE_THETA = {
    "AND": [[[-30, 20, 20]]],
    "OR": [[[-10, 20, 20]]],
    "NOT": [[[10, -20]]],
    "NOR": [[[10, -20, -20]]],
    "XNOR": [[[-30, 20, 20], [10, -20, -20]], [[-10, 20, 20]]],
}
BOOL = {
    "AND": lambda a, b: a & b,
    "OR": lambda a, b: a | b,
    "NOT": lambda a: 1 - a,
    "NOR": lambda a, b: (1 - a) & (1 - b),
    "XNOR": lambda a, b: int(a == b),
}


def sigmoid(z):
    return 1 / (1 + np.exp(-np.asarray(z, float)))


@pytest.mark.parametrize("name", list(SLIDE_THETA))
def test_networks_carry_the_lectures_theta(name):
    model = gate_network(name)
    assert network_theta(model) == SLIDE_THETA[name]
    assert [layer.activation.name for layer in model.layers] == ["logistic"] * len(model.layers)


@pytest.mark.parametrize("name", list(SLIDE_THETA))
def test_truth_table_is_the_boolean_function(name):
    rows = truth_table(name)
    arity = GATES[name].arity
    assert len(rows) == 2 ** arity
    assert sorted(tuple(r["x"]) for r in rows) == sorted(
        tuple(int(b) for b in np.binary_repr(i, arity)) for i in range(2 ** arity))
    for r in rows:
        expected = BOOL[name](*r["x"])
        assert r["output"] == expected
        # large weights: h_Θ(x) is within 1e-4 of the Boolean value
        assert abs(r["h"] - expected) < 1e-4


def test_and_values_match_the_sigmoid_by_hand():
    h = {tuple(r["x"]): r["h"] for r in truth_table("AND")}
    assert h[(0, 0)] == pytest.approx(sigmoid(-30), rel=1e-9)
    assert h[(0, 1)] == pytest.approx(sigmoid(-10), rel=1e-9)
    assert h[(0, 1)] == pytest.approx(0.0000454, rel=1e-2)
    assert h[(1, 1)] == pytest.approx(sigmoid(10), rel=1e-12)


def test_xnor_hidden_layer_is_and_and_nor():
    for r in truth_table("XNOR"):
        a1, a2 = r["hidden"]
        x1, x2 = r["x"]
        assert round(a1) == (x1 & x2)
        assert round(a2) == ((1 - x1) & (1 - x2))
        assert r["h"] == pytest.approx(sigmoid(-10 + 20 * a1 + 20 * a2), rel=1e-9)


def test_single_layer_gates_have_no_hidden_units():
    assert all(r["hidden"] == [] for r in truth_table("AND"))


def test_unknown_gate_is_rejected():
    with pytest.raises(ValueError, match="unknown gate"):
        truth_table("NAND")
    with pytest.raises(ValueError, match="no weights"):
        gate_network("XOR")


def test_cli_logic_json_acceptance(capsys):
    assert main(["logic", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["gates"]) == ["AND", "OR", "NOT", "NOR", "XNOR"]
    for name, gate in doc["gates"].items():
        assert gate["theta"] == SLIDE_THETA[name]
        assert len(gate["rows"]) == 2 ** GATES[name].arity
        for row in gate["rows"]:
            assert set(row) == {"x", "hidden", "h", "output"}
            assert row["output"] == BOOL[name](*row["x"])
            assert 0.0 < row["h"] < 1.0
    assert all(len(r["x"]) == 1 for r in doc["gates"]["NOT"]["rows"])
    assert all(len(r["hidden"]) == 2 for r in doc["gates"]["XNOR"]["rows"])
    and_01 = next(r for r in doc["gates"]["AND"]["rows"] if r["x"] == [0, 1])
    assert and_01["h"] == pytest.approx(0.0000454, rel=1e-2)


def test_cli_logic_text(capsys):
    assert main(["logic"]) == 0
    out = capsys.readouterr().out
    for name in SLIDE_THETA:
        assert f"{name}:" in out
    assert "a1^(2) a2^(2)" in out
    assert "[-30  20  20]" in out and "[ 10 -20 -20]" in out
    assert "MISMATCH" not in out


def test_gate_dataset():
    x, y = gate_dataset("xnor")
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [1, 0, 0, 1]


def test_learned_xnor_acceptance():
    """Acceptance 2: at least 19 of 20 seeds reach 100% with the default recipe."""
    res = learn_gate("XNOR", seeds=range(20))
    assert res.hidden in (2, 3)
    assert res.n_perfect >= 19, res.epochs
    x, y = gate_dataset("XNOR")
    for ep, acc, thetas in zip(res.epochs, res.accuracy, res.thetas):
        if ep is None:
            continue
        assert 1 <= ep <= res.max_epochs
        assert acc == 1.0
        # the learned Θ, run forward by hand, computes XNOR
        a = np.hstack([np.ones((4, 1)), x])
        for j, theta in enumerate(thetas):
            a = sigmoid(a @ np.asarray(theta).T)
            if j < len(thetas) - 1:
                a = np.hstack([np.ones((4, 1)), a])
        assert ((a[:, 0] > 0.5) == (y == 1)).all()


def test_zero_initialisation_cannot_learn_xnor():
    res = learn_gate("XNOR", seeds=[0], initializer="zeros", max_epochs=3000)
    assert res.n_perfect == 0
    assert res.accuracy[0] < 1.0
    hidden = np.asarray(res.thetas[0][0])
    # symmetry is never broken: every hidden unit has the same Θ row ...
    assert np.allclose(hidden, hidden[0])
    # ... and x1, x2 get the same weight, so the network is a monotone function of x1 + x2
    assert np.allclose(hidden[:, 1], hidden[:, 2])


def test_zero_initialisation_can_learn_a_monotone_gate():
    """The zero-init failure is XNOR's non-monotonicity, not a broken training loop."""
    res = learn_gate("AND", seeds=[0], initializer="zeros", max_epochs=3000)
    assert res.n_perfect == 1


def test_cli_learn_json(capsys):
    assert main(["logic", "--learn", "xnor", "--json", "--seeds", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gate"] == "XNOR"
    rnd, zero = doc["random_init"], doc["zero_init"]
    assert rnd["seeds"] == 4 and len(rnd["epochs"]) == 4
    assert rnd["reached_100"] == sum(e is not None for e in rnd["epochs"])
    assert zero["reached_100"] == 0


def test_cli_learn_text(capsys):
    assert main(["logic", "--learn", "xnor", "--seeds", "3", "--hidden", "3"]) == 0
    out = capsys.readouterr().out
    assert "2-3-1" in out and "seeds reach 100%" in out and "Zero initialisation" in out


def test_cli_learn_rejects_bad_arguments(capsys):
    assert main(["logic", "--learn", "xnor", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
