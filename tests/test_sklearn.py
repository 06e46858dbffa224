"""thetanet.sklearn: scikit-learn's conformance suite, model selection, sparse input, stopping."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import scipy.sparse as sp  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_blobs, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from thetanet import activations  # noqa: E402
from thetanet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

#: Checks expected to fail, each with its reason (scikit-learn's own mechanism). None now.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=240, centers=3, n_features=5, random_state=1)
    return StandardScaler().fit_transform(x), y


def quiet_fit(est, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, y)


@pytest.mark.parametrize("estimator", [
    MLPClassifier(),
    MLPRegressor(),
    MLPClassifier(hidden_layer_sizes=(16, 8), activation="prelu", dropout=0.2,
                  early_stopping=True, learning_rate_init=0.01),
], ids=["MLPClassifier", "MLPRegressor", "MLPClassifier-prelu-dropout-early-stopping"])
def test_check_estimator(estimator):
    """scikit-learn's conformance suite: every check passes (none is expected to fail)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = check_estimator(estimator, expected_failed_checks=EXPECTED_FAILED_CHECKS,
                                  on_skip=None)  # on_fail="raise": any failure raises
    assert all(r["status"] in ("passed", "skipped") for r in results)
    assert sum(r["status"] == "passed" for r in results) >= 45


def test_grid_search_on_digits_picks_a_model(digits):
    x_train, x_test, y_train, y_test = digits
    grid = {"hidden_layer_sizes": [(16,), (48,)], "activation": ["relu", "tanh"]}
    search = GridSearchCV(MLPClassifier(max_iter=25, random_state=0), grid, cv=3)
    quiet_fit(search, x_train, y_train)
    assert search.best_params_["hidden_layer_sizes"] in grid["hidden_layer_sizes"]
    assert search.best_params_["activation"] in grid["activation"]
    assert len(search.cv_results_["params"]) == 4
    assert search.best_score_ > 0.85
    assert search.score(x_test, y_test) > 0.9
    assert search.best_estimator_.n_features_in_ == 64


def test_pipeline_and_cross_val_score_regression():
    x, y = make_regression(n_samples=240, n_features=6, noise=5.0, random_state=0)
    pipe = make_pipeline(StandardScaler(),
                         MLPRegressor((32,), learning_rate_init=0.01, max_iter=150,
                                      random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, x, y / y.std(), cv=3)
    assert scores.min() > 0.9


def test_sparse_input_gives_the_dense_result(digits):
    x_train, x_test, y_train, _ = digits
    dense = quiet_fit(MLPClassifier((24,), max_iter=5, random_state=3), x_train, y_train)
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.coo_array):
        sparse = quiet_fit(MLPClassifier((24,), max_iter=5, random_state=3), fmt(x_train),
                           y_train)
        np.testing.assert_allclose(sparse.predict_proba(fmt(x_test)),
                                   dense.predict_proba(x_test), atol=1e-10)
        np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-10)


def test_classifier_api(blobs):
    x, y = blobs
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = MLPClassifier((16,), max_iter=60, random_state=0)
    with pytest.raises(NotFittedError):
        clf.predict(x)
    quiet_fit(clf, x, labels)
    assert list(clf.classes_) == ["ant", "bee", "cat"]
    proba = clf.predict_proba(x)
    assert proba.shape == (240, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(x), clf.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(clf.predict_log_proba(x), np.log(proba))
    assert clf.score(x, labels) > 0.95
    assert len(clf.loss_curve_) == clf.n_iter_ == 60 and clf.t_ == 60 * 240
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert [c.shape for c in clf.coefs_] == [(5, 16), (16, 3)]
    assert clf.n_layers_ == 3 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"


def test_fit_is_repeatable_and_pickles(blobs):
    x, y = blobs
    a = quiet_fit(MLPClassifier((8,), max_iter=10, dropout=0.2, random_state=7), x, y)
    b = quiet_fit(clone(a), x, y)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.predict_proba(x), a.predict_proba(x))
    g = quiet_fit(MLPClassifier((8,), max_iter=3, random_state=np.random.default_rng(1)), x, y)
    assert g.n_iter_ == 3


def test_convergence_warning_and_tol_stopping(blobs):
    x, y = blobs
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        MLPClassifier((8,), max_iter=3, random_state=0).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier((8,), max_iter=500, tol=10.0, n_iter_no_change=2,
                            random_state=0).fit(x, y)
    # epoch 1 improves on inf; then no epoch beats the best by tol = 10, and training stops
    # once that has happened more than n_iter_no_change = 2 times (scikit-learn's rule)
    assert clf.n_iter_ == 4


def test_early_stopping_restores_the_best_epoch(digits):
    x_train, _, y_train, _ = digits
    clf = quiet_fit(MLPClassifier((32,), max_iter=40, early_stopping=True,
                                  n_iter_no_change=3, random_state=0), x_train, y_train)
    assert clf.validation_scores_ and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.85
    assert clf.best_loss_ is None
    # the restored weights are the best epoch's: refit with exactly that many epochs
    best = int(np.argmax(clf.validation_scores_)) + 1
    again = quiet_fit(clone(clf).set_params(max_iter=best, n_iter_no_change=1000), x_train,
                      y_train)
    np.testing.assert_allclose(again.predict_proba(x_train), clf.predict_proba(x_train))


def test_partial_fit(blobs):
    x, y = blobs
    clf = MLPClassifier((16,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(x, y)
    clf.partial_fit(x[:100], y[:100], classes=[0, 1, 2, 3])
    for _ in range(30):
        clf.partial_fit(x, y)
    assert clf.n_iter_ == 31 and list(clf.classes_) == [0, 1, 2, 3]
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(x, y) > 0.9
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(x[:3], [0, 1, 9])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(x[:, :3], y)
    reg = MLPRegressor((8,), random_state=0)
    for _ in range(3):
        reg.partial_fit(x, y.astype(float))
    assert reg.n_iter_ == 3 and reg.predict(x).shape == (240,)


def test_regressor_multi_output_and_float32():
    x, y = make_regression(n_samples=150, n_features=4, n_targets=2, noise=1.0,
                           random_state=0)
    y = y / y.std(axis=0)
    reg = quiet_fit(MLPRegressor((32,), learning_rate_init=0.01, max_iter=100,
                                 random_state=0, dtype="float32"), x, y)
    pred = reg.predict(x)
    assert pred.shape == (150, 2) and pred.dtype == np.float64
    assert reg.model_.dtype == np.float32 and reg.n_outputs_ == 2
    assert reg.score(x, y) > 0.9


@pytest.mark.parametrize("activation", [
    *activations.names(),
    {"name": "soft_exponential", "alpha": 0.3, "learnable": True, "per_unit": True},
])
def test_every_registry_activation_trains(blobs, activation):
    x, y = blobs
    clf = quiet_fit(MLPClassifier((12,), activation=activation, max_iter=15,
                                  learning_rate_init=0.01, random_state=0), x, y)
    assert np.isfinite(clf.loss_curve_).all()
    if activation != "binary_step":  # f' = 0: only the output layer learns
        assert clf.loss_curve_[-1] < clf.loss_curve_[0]


@pytest.mark.parametrize("params, match", [
    ({"activation": "nope"}, "unknown activation"),
    ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes"),
    ({"dropout": 1.0}, "dropout"),
    ({"solver": "lbfgs"}, "solver"),
    ({"learning_rate_init": 0}, "learning_rate_init"),
    ({"batch_size": 0}, "batch_size"),
    ({"max_iter": 0}, "max_iter"),
    ({"dtype": "float16"}, "dtype"),
    ({"random_state": "x"}, "random_state"),
])
def test_invalid_parameters_fail_in_fit_not_init(blobs, params, match):
    x, y = blobs
    clf = MLPClassifier(**params)  # storing never fails
    with pytest.raises(ValueError, match=match):
        clf.fit(x, y)
