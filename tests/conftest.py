import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The read-only shared data (THETANET_DATA wins); tests needing it skip when absent."""
    root = Path(os.environ.get("THETANET_DATA", SHARED_DATA))
    if not root.exists():
        pytest.skip(f"data root {root} not present")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
