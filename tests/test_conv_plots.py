"""The learnt-filters figure of a convolutional layer (thetanet.plots.plot_filters)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from thetanet.plots import plot_filters  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("shape", [(3, 3, 1, 6), (5, 5, 3, 20), (2, 4, 12, 2)])
def test_plot_filters_writes_a_png_atomically(tmp_path, shape):
    kernel = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    path = plot_filters(kernel, tmp_path / "f" / "filters.png", title="filters")
    assert path == tmp_path / "f" / "filters.png"
    assert path.read_bytes()[:8] == PNG
    assert sorted(p.name for p in path.parent.iterdir()) == ["filters.png"]  # no temp files


def test_plot_filters_rejects_a_non_kernel(tmp_path):
    with pytest.raises(ValueError, match="k_h, k_w, C_in, C_out"):
        plot_filters(np.zeros((3, 3, 4)), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_filters_of_a_zero_kernel(tmp_path):
    assert plot_filters(np.zeros((3, 3, 1, 4)), tmp_path / "z.png").read_bytes()[:8] == PNG
