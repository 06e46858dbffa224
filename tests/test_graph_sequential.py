"""Sequential is a special case of the model graph: training one gives bit-for-bit the weights,
losses and predictions that Sequential gave before the graph existed (the fixture written by
``tests/fixtures/make_sequential_before_graph.py`` with the code of that time)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_spec = importlib.util.spec_from_file_location(
    "make_sequential_before_graph", FIXTURES / "make_sequential_before_graph.py")
assert _spec is not None and _spec.loader is not None
before = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(before)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "sequential_before_graph.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", sorted(before.CASES))
def test_sequential_trains_bit_for_bit_as_before(name: str, expected: dict[str, np.ndarray]
                                                 ) -> None:
    got = before.run_case(name)
    want = {k: v for k, v in expected.items() if k.startswith(name + "/")}
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert np.array_equal(got[key], value), f"{key} differs from the fixture"
