r"""scikit-learn estimators on the thetanet engine: :class:`MLPClassifier`, :class:`MLPRegressor`.

They follow scikit-learn's conventions (the constructor only stores parameters, ``fit``
validates them, fitted attributes end in ``_``) and pass its conformance suite
``sklearn.utils.estimator_checks.check_estimator``, so they work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score``, with dense or SciPy-sparse input::

    from sklearn.model_selection import GridSearchCV
    from thetanet.sklearn import MLPClassifier

    search = GridSearchCV(MLPClassifier(max_iter=50, random_state=0),
                          {"hidden_layer_sizes": [(32,), (64,)],
                           "activation": ["relu", "tanh", "sinc"]})
    search.fit(X, y)

The network is a :class:`thetanet.Sequential`: one ``Dense(h, activation, l2=l2)`` per hidden
size (each followed by ``Dropout(dropout)`` when ``dropout > 0``) and a softmax output trained
with cross-entropy (classifier; also for two classes) or an identity output trained with
mean squared error (regressor, one unit per target). The fitted model is ``model_``; its
ONNX export is ``thetanet.onnx.to_onnx(est.model_, path)`` (or ``to_onnx(est, path)``).

Inputs are flat feature rows ``X`` (n_samples, n_features), as everywhere in scikit-learn, so
these estimators build dense networks only: images reach them flattened, without the
convolutional layers (Conv2D, pooling) that would see their 2-D structure. For images use a
:class:`thetanet.Sequential` with ``Conv2D`` layers on (n, H, W, C) arrays directly.

Training stops like scikit-learn's MLPs: after ``max_iter`` epochs, or once the training loss
(or, with ``early_stopping``, the validation score on a held-out ``validation_fraction``)
has not improved by ``tol`` for ``n_iter_no_change`` consecutive epochs. With early stopping
the weights of the best validation epoch are restored. Reaching ``max_iter`` without that
convergence emits a ``ConvergenceWarning``.

Randomness: ``random_state`` (an int, ``None`` or a ``numpy.random.Generator``) seeds one
generator per ``fit``, from which the weight initialisation, the validation split, the
shuffling and the dropout masks are drawn; an int makes ``fit`` exactly repeatable.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from thetanet import activations as _activations
from thetanet import optimizers as _optimizers
from thetanet.builders import mlp
from thetanet.callbacks import Callback
from thetanet.layers import Dense
from thetanet.model import Sequential
from thetanet.utils import is_sparse

__all__ = ["MLPClassifier", "MLPRegressor"]

_SPARSE_FORMATS = ["csr", "csc", "coo"]
_FLOAT_DTYPES = [np.float64, np.float32]


def _seed_source(random_state: Any) -> np.random.Generator:
    """A fresh Generator for one ``fit`` from ``random_state`` (None, int, Generator, …)."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):  # scikit-learn's legacy convention
        return np.random.default_rng(random_state.randint(2**31))
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got "
                     f"{random_state!r}")


def _next_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


class _Monitor(Callback):
    """Per-epoch bookkeeping inside ``Sequential.fit``: hands each epoch's loss to the
    estimator's ``end_epoch`` (loss curve, tol / patience stopping, validation score and best
    weights) and stops training when it says so."""

    def __init__(self, end_epoch: Callable[[float], bool]) -> None:
        self.end_epoch = end_epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.end_epoch(float((logs or {})["loss"])):
            self.model.stop_training = True


class _BaseMLP(BaseEstimator):
    """Shared parameters, validation, network construction and the training loop."""

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: Any = "relu",
                 dropout: float = 0.0, l2: float = 0.0, solver: str = "adam",
                 learning_rate_init: float = 0.001, momentum: float = 0.9,
                 batch_size: Any = "auto", max_iter: int = 200, shuffle: bool = True,
                 tol: float = 1e-4, n_iter_no_change: int = 10, early_stopping: bool = False,
                 validation_fraction: float = 0.1, random_state: Any = None,
                 dtype: str = "float64", verbose: int = 0) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose

    # -- to be provided by the subclasses ----------------------------------------------------
    _output_activation = "identity"
    _loss = "mse"

    def _encode_targets(self, y: np.ndarray, first: bool, classes: Any) -> np.ndarray:
        """The targets as the network wants them; on the ``first`` fit, set up the outputs."""
        raise NotImplementedError

    def _validation_score(self, x: Any, y: np.ndarray) -> float:
        raise NotImplementedError

    # -- validation --------------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (numbers.Integral, np.integer)) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, got "
                             f"{self.hidden_layer_sizes!r}") from None
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, (numbers.Integral, np.integer)) or s < 1:
                raise ValueError(f"hidden_layer_sizes must hold positive integers, got "
                                 f"{self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _check_params(self) -> None:
        def number(name: str, low: float, high: float, low_open: bool, high_open: bool,
                   integer: bool = False) -> None:
            v = getattr(self, name)
            kinds = (numbers.Integral,) if integer else (numbers.Real,)
            ok = isinstance(v, kinds) and not isinstance(v, bool) and np.isfinite(v)
            if ok:
                ok = (v > low if low_open else v >= low) and (v < high if high_open else
                                                              v <= high)
            if not ok:
                lo, hi = "(" if low_open else "[", ")" if high_open else "]"
                kind = "an integer" if integer else "a number"
                raise ValueError(f"{name} must be {kind} in {lo}{low}, {high}{hi}, got {v!r}")

        self._hidden_sizes()
        try:
            _activations.get(self.activation)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"activation: {exc}") from exc
        number("dropout", 0, 1, False, True)
        number("l2", 0, np.inf, False, True)
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver must be 'adam' or 'sgd', got {self.solver!r}")
        number("learning_rate_init", 0, np.inf, True, True)
        number("momentum", 0, 1, False, True)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            number("batch_size", 1, np.inf, False, True, integer=True)
        number("max_iter", 1, np.inf, False, True, integer=True)
        number("tol", 0, np.inf, False, True)
        number("n_iter_no_change", 1, np.inf, False, True, integer=True)
        number("validation_fraction", 0, 1, True, True)
        if str(self.dtype) not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    # -- the network -------------------------------------------------------------------------
    def _make_model(self, n_features: int, n_outputs: int, seed: int) -> Sequential:
        model = mlp([n_features, *self._hidden_sizes(), n_outputs],
                    activation=self.activation,  # a config dict: one copy per layer
                    output_activation=self._output_activation, dropout=float(self.dropout),
                    l2=float(self.l2), seed=seed, dtype=str(self.dtype))
        if self.solver == "adam":
            opt: _optimizers.Optimizer = _optimizers.Adam(float(self.learning_rate_init))
        else:
            opt = _optimizers.SGD(float(self.learning_rate_init), momentum=float(self.momentum),
                                  nesterov=self.momentum > 0)
        model.compile(optimizer=opt, loss=self._loss)
        return model

    def _init_state(self, n_features: int, n_outputs: int) -> None:
        """Fresh network and bookkeeping (the attributes scikit-learn users expect)."""
        self._rng = _seed_source(self.random_state)
        self.model_ = self._make_model(n_features, n_outputs, _next_seed(self._rng))
        dense = [layer for layer in self.model_.layers if isinstance(layer, Dense)]
        self.coefs_ = [layer.kernel for layer in dense]
        self.intercepts_ = [layer.bias for layer in dense]
        self.n_layers_ = len(dense) + 1
        self.n_outputs_ = n_outputs
        self.out_activation_ = self._output_activation
        self.loss_curve_: list[float] = []
        self.n_iter_ = 0
        self.t_ = 0
        self.best_loss_ = np.inf
        self.validation_scores_: list[float] | None = None
        self.best_validation_score_: float | None = None
        self._no_improvement_count = 0

    def _batch(self, n: int) -> int:
        return min(200, n) if isinstance(self.batch_size, str) else min(int(self.batch_size), n)

    def _train(self, x: Any, y: np.ndarray, epochs: int, incremental: bool) -> None:
        """Run ``epochs`` epochs of ``Sequential.fit`` with the stopping rules."""
        validation = None
        if self.early_stopping and not incremental:
            n = x.shape[0]
            if n < 2:
                raise ValueError(f"early_stopping needs at least 2 samples (a training and a "
                                 f"validation part), got {n} sample")
            n_val = min(max(1, int(np.ceil(self.validation_fraction * n))), n - 1)
            stratify = None
            if self._loss != "mse":  # stratified when every class can be in both parts
                counts = np.bincount(y)
                counts = counts[counts > 0]
                if counts.min() >= 2 and len(counts) <= min(n_val, n - n_val):
                    stratify = y
            x, xv, y, yv = train_test_split(x, y, test_size=n_val, stratify=stratify,
                                            random_state=_next_seed(self._rng))
            validation = (xv, yv)
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            self._best_weights = self.model_.get_weights()
        elif self.best_loss_ is None:  # partial_fit after a fit with early stopping
            self.best_loss_ = np.inf
        self._converged = False
        self._no_improvement_count = 0
        monitor = _Monitor(partial(self._end_epoch, n_samples=x.shape[0], validation=validation,
                                   stop_on_plateau=not incremental))
        self.model_.fit(x, y, epochs=epochs, batch_size=self._batch(x.shape[0]),
                        shuffle=bool(self.shuffle), seed=_next_seed(self._rng),
                        verbose=2 if self.verbose else 0, callbacks=[monitor])
        if validation is not None:
            self.model_.set_weights(self._best_weights)
            del self._best_weights
        if not incremental and not self._converged and self.n_iter_ >= epochs:
            warnings.warn(f"{type(self).__name__}: the maximum of {epochs} iterations "
                          "(max_iter) was reached and training has not converged yet.",
                          ConvergenceWarning, stacklevel=4)

    def _end_epoch(self, loss: float, n_samples: int, validation: tuple[Any, Any] | None,
                   stop_on_plateau: bool) -> bool:
        """Record one epoch (loss curve, samples seen, validation score, best weights); True
        when training should stop (no improvement by ``tol`` for ``n_iter_no_change``)."""
        self.loss_curve_.append(loss)
        self.n_iter_ += 1
        self.t_ += n_samples
        if validation is not None:
            score = float(self._validation_score(*validation))
            self.validation_scores_.append(score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = self.model_.get_weights()
        else:
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if loss < self.best_loss_:
                self.best_loss_ = loss
        if stop_on_plateau and self._no_improvement_count > self.n_iter_no_change:
            self._converged = True
            return True
        return False

    def _fit(self, X: Any, y: Any, incremental: bool, classes: Any = None) -> _BaseMLP:
        self._check_params()
        first = not (incremental and hasattr(self, "model_"))
        X, y = validate_data(self, X, y, reset=first, accept_sparse=_SPARSE_FORMATS,
                             dtype=_FLOAT_DTYPES, **self._y_validation())
        if is_sparse(X):
            X = X.tocsr()
        y = self._encode_targets(y, first, classes)
        if first:
            n_outputs = self._n_outputs(y)
            self._init_state(X.shape[1], n_outputs)
        self._train(X, y, 1 if incremental else int(self.max_iter), incremental)
        return self

    def _y_validation(self) -> dict[str, Any]:
        return {}

    def _n_outputs(self, y: np.ndarray) -> int:
        raise NotImplementedError

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, accept_sparse=_SPARSE_FORMATS,
                          dtype=_FLOAT_DTYPES)
        if is_sparse(X):
            X = X.tocsr()
        return np.asarray(self.model_.predict(X), dtype=np.float64)

    def __sklearn_tags__(self):  # noqa: D105 - scikit-learn's protocol
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: softmax output, cross-entropy, thetanet engine.

    Args:
        hidden_layer_sizes: units of each hidden layer, e.g. ``(100,)`` or ``(64, 32)``;
            ``()`` is softmax regression.
        activation: hidden activation: any name of :func:`thetanet.activations.names`
            ("relu", "tanh", "logistic", "sinc", "prelu", …) or a config dict such as
            ``{"name": "soft_exponential", "alpha": 0.5, "learnable": True}``.
        dropout: dropout rate after each hidden layer (0 = none).
        l2: L2 penalty λ of every Dense layer (adds (λ/2)‖W‖² to the mean loss).
        solver: "adam" or "sgd" (with ``momentum``, Nesterov when momentum > 0).
        learning_rate_init: the optimiser's learning rate η.
        momentum: SGD momentum μ (ignored by Adam).
        batch_size: examples per update; "auto" = min(200, n_samples).
        max_iter: maximum number of epochs.
        shuffle: reshuffle the training set every epoch.
        tol, n_iter_no_change: stop when the loss (or validation accuracy) has not improved
            by ``tol`` for ``n_iter_no_change`` consecutive epochs.
        early_stopping: hold out ``validation_fraction`` (stratified) and stop on its
            accuracy; the best epoch's weights are restored.
        validation_fraction: share of the training data held out for early stopping.
        random_state: None, an int or a ``numpy.random.Generator`` (see the module docs).
        dtype: "float64" (default) or "float32" for the network's arithmetic.
        verbose: 0 silent, else one line per epoch on stderr.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``model_`` (the Sequential),
    ``coefs_``/``intercepts_`` (the Dense kernels and biases, shared with ``model_``),
    ``loss_curve_``, ``n_iter_``, ``t_``, ``best_loss_``, ``validation_scores_``,
    ``best_validation_score_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``.
    """

    _output_activation = "softmax"
    _loss = "sparse_categorical_crossentropy"

    def _y_validation(self) -> dict[str, Any]:
        return {"multi_output": False}

    def _encode_targets(self, y: np.ndarray, first: bool, classes: Any) -> np.ndarray:
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != y
        if np.any(unseen):
            raise ValueError(f"y contains labels not in classes_ {self.classes_.tolist()}: "
                             f"{np.unique(y[unseen]).tolist()}")
        return idx.astype(np.int64)

    def _n_outputs(self, y: np.ndarray) -> int:
        return len(self.classes_)

    def _validation_score(self, x: Any, y: np.ndarray) -> float:
        return float(np.mean(np.argmax(self.model_.predict(x), axis=1) == y))

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train a fresh network on (X, y); X dense or sparse, y class labels."""
        return self._fit(X, y, incremental=False)  # type: ignore[return-value]

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing from the current weights.

        ``classes`` (all labels that will ever occur) is required on the first call.
        """
        if not hasattr(self, "model_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)),
                                                        self.classes_):
            raise ValueError(f"classes={np.unique(classes).tolist()} differs from classes_ "
                             f"{self.classes_.tolist()} of the earlier calls")
        return self._fit(X, y, incremental=True, classes=classes)  # type: ignore[return-value]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        p = self._forward(X)
        p /= p.sum(axis=1, keepdims=True)
        return p

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Natural logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self._forward(X)
        return self.classes_[np.argmax(proba, axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: identity output, mean squared error, thetanet engine.

    Same parameters as :class:`MLPClassifier` (early stopping scores R² on the held-out
    part). ``y`` may have several columns (one output unit each); ``predict`` returns the
    shape ``y`` had in ``fit``: (n,) for a 1-D target, (n, k) otherwise.
    """

    _output_activation = "identity"
    _loss = "mse"

    def _y_validation(self) -> dict[str, Any]:
        return {"multi_output": True, "y_numeric": True}

    def _encode_targets(self, y: np.ndarray, first: bool, classes: Any) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._y_ndim = y.ndim
        y = y.reshape(y.shape[0], -1)
        if not first and y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} targets but the model was fitted with "
                             f"{self.n_outputs_}")
        return y

    def _n_outputs(self, y: np.ndarray) -> int:
        return int(y.shape[1])

    def _validation_score(self, x: Any, y: np.ndarray) -> float:
        from sklearn.metrics import r2_score

        return float(r2_score(y, self.model_.predict(x)))

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train a fresh network on (X, y); X dense or sparse, y of shape (n,) or (n, k)."""
        return self._fit(X, y, incremental=False)  # type: ignore[return-value]

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y), continuing from the current weights."""
        return self._fit(X, y, incremental=True)  # type: ignore[return-value]

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape (n,) or (n, k) like the ``y`` given to ``fit``."""
        out = self._forward(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):  # noqa: D105 - scikit-learn's protocol
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
