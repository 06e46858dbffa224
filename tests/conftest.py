"""Shared fixtures. Data is found exactly as the CLI finds it: ``$THETANET_DATA``, else the
user data root (``thetanet data where`` shows it; ``make test`` points THETANET_DATA at
``../shared/data`` only when that shared copy exists). A test needing data that is really
absent skips, saying which data, where it was looked for and how to get it; ``pytest`` ends
with one line counting the skips by reason."""

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from thetanet.data import idx, tratz
from thetanet.data.paths import data_root as cli_data_root
from thetanet.data.paths import data_root_origin, fetch_command


def _where(root: Path) -> str:
    return f"data root {root}, from {data_root_origin()}"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data root holding the four Tratz splits (train.tsv and val.tsv of each)."""
    root = cli_data_root()
    missing = [s for s in tratz.SPLITS
               if not all((root / "tratz" / s / f"{p}.tsv").is_file() for p in ("train", "val"))]
    if missing:
        pytest.skip(f"Tratz split(s) {', '.join(missing)} not in {_where(root)}; get them with "
                    f"`{fetch_command('tratz')}`")
    return root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The data root holding MNIST t10k (the only MNIST part the tests read)."""
    root = cli_data_root()
    if not idx.mnist_available("t10k", root):
        pytest.skip(f"MNIST t10k not in {_where(root)}; get it with "
                    f"`{fetch_command('mnist')} --split t10k`")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The very last line (after pytest's counts): how many tests skipped, grouped by reason
    (the data, a package, …)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not hasattr(reporter, "stats"):
        return
    skipped = [r for r in reporter.stats.get("skipped", []) if r.when != "collect" or r.skipped]
    if not skipped:
        reporter.write_line("skipped: none")
        return
    reasons = Counter(_skip_reason(r) for r in skipped)
    parts = [f"{n} × {reason}" for reason, n in reasons.most_common()]
    reporter.write_line(f"skipped {len(skipped)}: " + "; ".join(parts))


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on a usable backend (torch), or a skip saying why not."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras not installed")
    from thetanet.keras_convert import import_keras  # picks a backend (torch) first

    try:
        return import_keras()
    except Exception as exc:  # Keras 2, or no usable backend
        pytest.skip(f"Keras 3 not usable: {exc}")
