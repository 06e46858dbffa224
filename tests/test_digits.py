"""Digits: loaders, the stratified split, augmentation (thetanet.data.digits), the recipe
(thetanet.examples.digits) and ``thetanet digits``."""

import json

import numpy as np
import pytest

from thetanet.cli import main
from thetanet.data import digits as D
from thetanet.examples import digits as E


def test_sklearn_digits_loader():
    images, labels = D.load_sklearn_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))


def test_stratified_split_is_exact_disjoint_and_seeded():
    y = np.repeat(np.arange(4), [10, 20, 30, 41])
    tr, te = D.stratified_split(y, 0.2, seed=3)
    assert np.intersect1d(tr, te).size == 0
    assert np.array_equal(np.union1d(tr, te), np.arange(y.size))
    assert np.bincount(y[te]).tolist() == [2, 4, 6, 8]  # round(0.2 · 41) = 8
    tr2, te2 = D.stratified_split(y, 0.2, seed=3)
    assert np.array_equal(te, te2)
    _, te3 = D.stratified_split(y, 0.2, seed=4)
    assert not np.array_equal(te, te3)
    with pytest.raises(ValueError, match="test_size"):
        D.stratified_split(y, 1.0)


def test_sklearn_dataset_split():
    data = D.load_dataset("sklearn-digits")
    assert data.x_train.shape == (1438, 64) and data.x_test.shape == (359, 64)
    assert data.image_shape == (8, 8)
    counts = np.bincount(data.y_test)
    assert counts.min() >= 35 and counts.max() <= 37
    other = D.load_dataset("sklearn-digits", seed=1)
    assert not np.array_equal(data.y_test, other.y_test) or not np.array_equal(
        data.x_test, other.x_test)


def test_mnist_t10k_split(mnist_root):
    data = D.load_dataset("mnist-t10k", mnist_root)
    assert data.x_train.shape == (8000, 784) and data.x_test.shape == (2000, 784)
    assert data.x_train.dtype == np.float32
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert data.y_train[:3].tolist() == [7, 2, 1]
    images, labels = D.load_mnist("t10k", mnist_root)
    assert np.array_equal(data.x_test, images[8000:].reshape(2000, -1))
    assert np.array_equal(data.y_test, labels[8000:])
    # "mnist" falls back to the t10k split when the training files are absent
    if not (mnist_root / "mnist" / "train-images-idx3-ubyte.gz").exists():
        assert D.load_dataset("mnist", mnist_root).name == "mnist-t10k"


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_dataset("cifar")


def test_random_shift():
    rng = np.random.default_rng(0)
    images = np.zeros((50, 6, 6), np.float32)
    images[:, 2:4, 2:4] = rng.random((50, 2, 2))  # empty border: shifts keep every pixel
    out = D.random_shift(images, 1, np.random.default_rng(1), fraction=1.0)
    assert np.allclose(out.sum(axis=(1, 2)), images.sum(axis=(1, 2)))
    moved = ~np.all(out == images, axis=(1, 2))
    assert 0.7 < moved.mean() < 1.0  # 8 of 9 offsets move the image
    for img, src in zip(out, images):  # each result is a translate of its source
        assert any(np.array_equal(img, np.roll(src, (a, b), axis=(0, 1)))
                   for a in (-1, 0, 1) for b in (-1, 0, 1))
    again = D.random_shift(images, 1, np.random.default_rng(1), fraction=1.0)
    assert np.array_equal(out, again)
    assert np.array_equal(D.random_shift(images, 1, rng, fraction=0.0), images)
    half = D.random_shift(images, 1, np.random.default_rng(2), fraction=0.5)
    assert 0.2 < (~np.all(half == images, axis=(1, 2))).mean() < 0.7


def test_parse_hidden():
    assert E.parse_hidden("300,100") == (300, 100)
    assert E.parse_hidden("none") == ()
    with pytest.raises(ValueError, match="comma-separated"):
        E.parse_hidden("3,a")
    with pytest.raises(ValueError, match="positive"):
        E.parse_hidden("3,-1")


def _tiny(data, n=300):
    return D.DigitsData(data.name, data.x_train[:n], data.y_train[:n], data.x_test,
                        data.y_test, data.image_shape, data.split)


def test_training_is_seeded_and_learns():
    data = _tiny(D.load_dataset("sklearn-digits"))
    recipe = E.Recipe(hidden=(32,), dropout=0.1, epochs=12, batch_size=32, learning_rate=1e-2,
                      shift=1)
    a = E.train_digits(data, recipe, seed=5, threads=1, monitor_test=True)
    b = E.train_digits(data, recipe, seed=5, threads=1, monitor_test=False)
    c = E.train_digits(data, recipe, seed=6, threads=1, monitor_test=False)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        assert np.array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc)
               for wa, wc in zip(a.model.get_weights(), c.model.get_weights()))
    assert a.test_accuracy > 0.8
    assert a.confusion.sum() == data.y_test.size
    assert a.per_class[3] == pytest.approx(a.confusion[3, 3] / a.confusion[3].sum())
    assert len(a.history["loss"]) == 12 and len(a.history["test_accuracy"]) == 12
    assert a.history["loss"][-1] < a.history["loss"][0]
    assert a.test_accuracy == pytest.approx(a.history["test_accuracy"][-1])
    assert "test_accuracy" not in b.history


def test_build_mlp_matches_the_recipe():
    model = E.build_mlp(64, 10, E.Recipe(hidden=(20, 7), dropout=0.0))
    widths = [layer.units for layer in model.layers]
    assert widths == [20, 7, 10]
    assert model.layers[-1].activation.name == "softmax"
    model = E.build_mlp(64, 10, E.Recipe(hidden=(), dropout=0.5))  # softmax regression
    assert len(model.layers) == 1


def test_cli_sklearn_digits_acceptance(capsys):
    """Acceptance 4: test accuracy ≥ 98% (its time, under a minute on 2 cores, is measured by
    benchmarks/digits.py: benchmarks/results/digits.md)."""
    assert main(["digits", "--dataset", "sklearn-digits", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dataset"] == "sklearn-digits"
    assert doc["test_accuracy"] >= 0.98
    assert len(doc["per_class"]) == 10 and min(doc["per_class"]) > 0.9
    cm = np.array(doc["confusion_matrix"])
    assert cm.sum() == doc["n_test"] == 359
    assert doc["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert doc["blas_threads"] == 1


def test_cli_mnist_smoke_with_plots(mnist_root, tmp_path, capsys):
    code = main(["digits", "--dataset", "mnist-t10k", "--data-dir", str(mnist_root), "--epochs",
                 "1", "--hidden", "32", "--shift", "0", "--plots", str(tmp_path / "p"),
                 "--threads", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "mnist-t10k: 8000 training / 2000 test images" in out
    acc = float(out.split("test accuracy: ")[1].split("%")[0]) / 100
    assert 0.8 < acc < 1.0
    assert out.count("images)") == 10  # one per-class line per digit
    for name in ("confusion_matrix.png", "misclassified.png", "learning_curves.png"):
        assert (tmp_path / "p" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs"),
    (["--hidden", "3,x"], "comma-separated"),
    (["--dropout", "1.5"], "--dropout"),
    (["--threads", "-1"], "--threads"),
])
def test_cli_digits_rejects_bad_arguments(capsys, argv, message):
    assert main(["digits", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_mnist_is_a_clear_error(tmp_path, capsys):
    assert main(["digits", "--dataset", "mnist-full", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "MNIST train not found" in err and "--download" in err


# -- the CNN (issue 17) ------------------------------------------------------------------------
TINY_CNN = E.Recipe(model="cnn", filters=(8, 16), kernel_size=3, hidden=(32,), dropout=0.1,
                    conv_dropout=0.1, epochs=10, batch_size=16, learning_rate=5e-3, shift=1)


def test_build_cnn_matches_the_recipe():
    model = E.build_cnn((28, 28), 10, E.default_recipe("mnist-t10k", "cnn"))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPool2D", "Dropout", "Conv2D", "MaxPool2D", "Dropout",
                     "Flatten", "Dense", "Dropout", "Dense"]
    assert model.input_shape == (28, 28, 1)
    assert [layer.output_shape for layer in model.layers[:5]] == [
        (28, 28, 16), (14, 14, 16), (14, 14, 16), (14, 14, 32), (7, 7, 32)]
    assert model.layers[-1].activation.name == "softmax" and model.layers[-1].units == 10
    odd = E.build_cnn((8, 8), 10, E.Recipe(model="cnn", filters=(2, 3, 4), hidden=()))
    assert odd.layers[-2].output_shape == (4,)  # 8 → 4 → 2 → 1 ("same" pools)
    assert E.default_recipe("sklearn-digits", "cnn").ensemble == 3
    with pytest.raises(ValueError, match="unknown model"):
        E.default_recipe("sklearn-digits", "rnn")


def test_cnn_ensemble_is_seeded_and_averages_its_members():
    data = _tiny(D.load_dataset("sklearn-digits"), 400)
    recipe = E.with_overrides(TINY_CNN, ensemble=2)
    a = E.train_digits(data, recipe, seed=3, threads=1, monitor_test=True)
    b = E.train_digits(data, recipe, seed=3, threads=1, monitor_test=False)
    assert len(a.members) == 2 and a.model is a.members[0]
    for wa, wb in zip(a.members[1].get_weights(), b.members[1].get_weights()):
        assert np.array_equal(wa, wb)
    assert not np.array_equal(a.members[0].get_weights()[0], a.members[1].get_weights()[0])
    x = data.x_test.reshape(-1, 8, 8, 1)
    mean = (a.members[0].predict(x).astype(np.float64) + a.members[1].predict(x)) / 2
    np.testing.assert_array_equal(a.predictions, mean.argmax(axis=1))
    assert a.test_accuracy > 0.7
    assert len(a.history["test_accuracy"]) == 10  # the first member's curves


def test_cli_cnn_plots_and_saved_ensemble(tmp_path, capsys):
    from thetanet import load_model

    assert main(["digits", "--model", "cnn", "--epochs", "2", "--ensemble", "2", "--plots",
                 str(tmp_path / "p"), "--save-model", str(tmp_path / "m"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["recipe"]["model"] == "cnn" and doc["recipe"]["ensemble"] == 2
    assert doc["recipe"]["filters"] == [32, 64]
    for name in ("confusion_matrix.png", "misclassified.png", "learning_curves.png",
                 "filters.png"):
        assert (tmp_path / "p" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    members = [load_model(tmp_path / "m" / f"member_{i}") for i in range(2)]
    data = D.load_dataset("sklearn-digits")
    x = data.x_test.reshape(-1, 8, 8, 1)
    pred = (members[0].predict(x).astype(np.float64) + members[1].predict(x)).argmax(axis=1)
    assert doc["test_accuracy"] == pytest.approx(np.mean(pred == data.y_test))
    assert main(["digits", "--model", "cnn", "--search"]) == 2
    assert "MLP architectures only" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a positive integer
        main(["digits", "--model", "cnn", "--ensemble", "0"])


def test_cli_cnn_mnist_smoke(mnist_root, capsys):
    assert main(["digits", "--model", "cnn", "--dataset", "mnist-t10k", "--data-dir",
                 str(mnist_root), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "CNN 28×28×1 → conv3×3 16 → pool → conv3×3 32 → pool → 128 → 10" in out
    assert float(out.split("test accuracy: ")[1].split("%")[0]) > 90
