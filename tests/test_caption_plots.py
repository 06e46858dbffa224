"""The attention figure: an image and one α map per generated word."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from thetanet.plots import plot_attention  # noqa: E402


def _alphas(corner: int) -> np.ndarray:
    a = np.full((3, 6, 6), 0.01)
    (a[:, :3, :3] if corner == 0 else a[:, 3:, 3:])[...] = 1.0
    return a / a.sum(axis=(1, 2), keepdims=True)


def test_attention_figure_png(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((48, 48)) * 0.3
    words = ["a", "large", "seven"]
    p = plot_attention(image, words, _alphas(0), tmp_path / "x" / "att.png", title="scene")
    img = imread(p)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.shape[0] > 100 and img[..., :3].std() > 0.01
    other = imread(plot_attention(image, words, _alphas(1), tmp_path / "att2.png",
                                  title="scene"))
    assert img.shape == other.shape and not np.array_equal(img, other)


def test_attention_figure_input_errors(tmp_path):
    with pytest.raises(ValueError, match="one \\(g_h, g_w\\) α map per word"):
        plot_attention(np.zeros((8, 8)), ["a", "b"], np.zeros((3, 2, 2)), tmp_path / "a.png")
