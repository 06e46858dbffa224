"""Run by tests/test_data_from_copy.py in a fresh HOME (not collected by ``pytest`` itself):
the test fixtures must find the data where the CLI does."""

from pathlib import Path

from thetanet.cli.data import where
from thetanet.data.tratz import load_split


def test_tratz_is_found_where_the_cli_looks(data_root):
    info = where()
    assert Path(info["data_root"]["path"]) == data_root
    assert all(split["ok"] for split in info["tratz"].values())
    train, val = load_split("fine_lexical")  # the library's default root: the same one
    assert len(train) > len(val) > 0


def test_mnist_is_found_where_the_cli_looks(mnist_root):
    assert Path(where()["mnist"]["dir"]) == mnist_root / "mnist"
