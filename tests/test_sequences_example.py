"""``thetanet sequences``: the addition data are right, a GRU learns to add digit strings
(held-out sums right), progress goes to stderr (none with --quiet), --plots draws the curves."""

import importlib.util
import json

import numpy as np
import pytest

from thetanet.cli import main
from thetanet.examples.sequences import addition_data, read_sums


def test_addition_data_write_the_sums_digit_by_digit():
    x, y, pairs = addition_data(300, max_digits=4, seed=3)
    assert x.shape == y.shape == (300, 5)
    np.testing.assert_array_equal(read_sums(y, x), pairs.sum(axis=1))
    a = (x - 1) // 10 * (x != 0)
    np.testing.assert_array_equal(read_sums(a, x), pairs[:, 0])
    lengths = (x != 0).sum(axis=1)
    assert lengths.min() == 2 and lengths.max() == 5  # variable lengths: padding, masks
    assert np.all(np.diff((x != 0).astype(int), axis=1) <= 0)  # padding only at the end


def test_a_gru_learns_to_add(capsys):
    code = main(["sequences", "--epochs", "5", "--train", "2000", "--test", "200",
                 "--digits", "4", "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    doc = json.loads(out)
    assert doc["digit_accuracy"] > 0.95 and doc["sum_accuracy"] > 0.8
    assert len(doc["history"]["loss"]) == 5
    assert doc["history"]["loss"][-1] < doc["history"]["loss"][0] / 4
    assert err.count("epoch ") == 5 and "sums right" in err


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib not installed")
def test_quiet_and_plots(tmp_path, capsys):
    code = main(["sequences", "--cell", "simple_rnn", "--epochs", "1", "--train", "200",
                 "--test", "50", "--digits", "3", "--quiet", "--plots", str(tmp_path / "p")])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert (tmp_path / "p" / "learning_curves.png").stat().st_size > 1000
    assert "of the sums right" in out


def test_bad_arguments(capsys):
    assert main(["sequences", "--digits", "18"]) == 2
    assert "at most 17" in capsys.readouterr().err
