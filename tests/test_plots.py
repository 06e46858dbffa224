"""PNG figures: confusion matrix, learning curves, digit grid."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from thetanet.plots import plot_confusion_matrix, plot_digit_grid, plot_learning_curves  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    assert path.read_bytes()[:8] == PNG
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # not a blank canvas
    return img


def test_confusion_matrix_png(tmp_path):
    cm = np.array([[5, 1, 0], [0, 7, 2], [1, 0, 9]])
    p = plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "sub" / "cm.png", title="t")
    assert p == tmp_path / "sub" / "cm.png"
    a = _png(p)
    p2 = plot_confusion_matrix(cm[::-1, ::-1], ["a", "b", "c"], tmp_path / "cm2.png",
                               title="t")
    b = _png(p2)
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_confusion_matrix_many_classes_long_labels(tmp_path):
    rng = np.random.default_rng(0)
    k = 37
    cm = rng.integers(0, 30, (k, k)) + np.diag(rng.integers(50, 200, k))
    labels = [f"RELATION_{i}&SOMETHING_LONG" for i in range(k)]
    _png(plot_confusion_matrix(cm, labels, tmp_path / "cm37.png", normalize=False))


def test_confusion_matrix_input_errors(tmp_path):
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 classes in the matrix but 3 labels"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="non-negative"):
        plot_confusion_matrix(-np.ones((2, 2)), ["a", "b"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_learning_curves(tmp_path):
    hist = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "accuracy": [0.5, 0.7, 0.8],
            "val_f1_weighted": [0.4, 0.6, 0.65]}
    two = _png(plot_learning_curves(hist, tmp_path / "lc.png", title="curves"))
    one = _png(plot_learning_curves({"loss": hist["loss"]}, tmp_path / "lc1.png"))
    assert two.shape[1] > one.shape[1]  # two panels are wider than one
    with pytest.raises(ValueError, match="empty"):
        plot_learning_curves({"loss": []}, tmp_path / "none.png")


def test_digit_grid(tmp_path):
    rng = np.random.default_rng(0)
    _png(plot_digit_grid(rng.random((10, 8, 8)), list(range(10)), [1] * 10,
                         tmp_path / "g.png", title="grid"))
    _png(plot_digit_grid(rng.random((3, 784)), [1, 2, 3], [1, 2, 4], tmp_path / "flat.png"))
    _png(plot_digit_grid(np.zeros((0, 8, 8)), [], [], tmp_path / "empty.png"))
    few = imread(plot_digit_grid(rng.random((100, 8, 8)), [0] * 100, [1] * 100,
                                 tmp_path / "few.png", max_images=8))
    more = imread(plot_digit_grid(rng.random((100, 8, 8)), [0] * 100, [1] * 100,
                                  tmp_path / "more.png", max_images=24))
    assert few.shape[0] < more.shape[0]  # 1 row vs 3 rows
    with pytest.raises(ValueError, match="not square"):
        plot_digit_grid(rng.random((2, 10)), [0, 1], [0, 1], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="3 images but 2 true"):
        plot_digit_grid(rng.random((3, 8, 8)), [0, 1], [0, 1, 2], tmp_path / "bad.png")
