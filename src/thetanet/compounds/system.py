r"""The noun-compound relation classifier: features → thetanet network(s) → relation.

Pipeline (the data flow of DESIGN.md):

    (modifier, head) ──FeatureSet──▶ x (CSR) ──Sequential (softmax regression or MLP)──▶ P(r | x)

:class:`NCClassifier` fits the features on the training compounds and trains one network per
seed (an ensemble: the seeds' probabilities are averaged). :meth:`~NCClassifier.fit` *selects*:
each member early-stops on val weighted-F1 (the competition metric) and keeps its best epoch;
the choice is the typed :class:`Selection`. :meth:`~NCClassifier.refit` *refits*: it retrains
every member from scratch on train + val for the epochs the selection chose. Saved as a
directory (:mod:`thetanet.compounds.storage`): ``nc.json`` + one thetanet model per member.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.blockmatrix import BlockMatrix
from thetanet.builders import mlp
from thetanet.callbacks import Callback, EarlyStopping
from thetanet.compounds.features import FeatureSet, build_features
from thetanet.compounds.scoring import score_labels
from thetanet.compounds.settings import DEFAULT_FEATURES, NCSettings
from thetanet.compounds.storage import NC_FORMAT, NC_FORMAT_VERSION, read_model_dir, write_model_dir
from thetanet.data.tratz import Compounds
from thetanet.files import ModelFileError
from thetanet.metrics import f1_score
from thetanet.model import Sequential

__all__ = ["DEFAULT_FEATURES", "NC_FORMAT", "NC_FORMAT_VERSION", "NCClassifier", "NCSettings",
           "Selection"]

#: The headline metrics of a score report (what ``report["val_selection"]`` keeps).
HEADLINE = ("accuracy", "macro_f1", "weighted_f1")


@dataclass(frozen=True)
class Selection:
    """What :meth:`NCClassifier.fit` chose on val; :meth:`NCClassifier.refit` uses it.

    ``best_epochs``: per member (seed), the 0-based epoch of its best val weighted-F1 (the
    weights it kept). ``scores``: the train-only ensemble's val scores (:func:`score_labels`:
    headline metrics, per relation, confusion); for a model loaded from a file only the
    headline metrics.
    """

    best_epochs: tuple[int, ...]
    scores: dict[str, Any]

    @property
    def epochs(self) -> list[int]:
        """Epochs to train each member for: the chosen epoch, counted from 1."""
        return [e + 1 for e in self.best_epochs]

    @property
    def headline(self) -> dict[str, float]:
        """Accuracy, macro-F1 and weighted-F1 on val."""
        return {k: self.scores[k] for k in HEADLINE}


class NCClassifier:
    """Noun-compound relation classifier built from thetanet networks."""

    def __init__(self, settings: NCSettings, labels: list[str]) -> None:
        settings.validate()
        self.settings = settings
        self.labels = list(labels)
        self.index = {lab: i for i, lab in enumerate(self.labels)}
        self.features: FeatureSet | None = None
        self.members: list[Sequential] = []
        #: per member, the 0-based epoch whose weights it holds
        self.best_epochs: list[int] = []
        self.histories: list[dict[str, list[float]]] = []
        #: what fit chose on val (None before, or after a fit with fixed epochs)
        self.selection: Selection | None = None
        #: timings, sizes, val_selection (the headline of selection.scores), refit
        self.report: dict[str, Any] = {}
        #: π: relation frequencies of the training data (add-one smoothed), for the adjustment
        self.class_prior: np.ndarray | None = None
        self.metadata: dict[str, Any] = {}

    # -- building blocks ---------------------------------------------------------------------
    def _network(self, input_dim: int, seed: int) -> Sequential:
        s = self.settings
        model = mlp([input_dim, *s.hidden, len(self.labels)], activation=s.activation,
                    output_activation="softmax", dropout=s.dropout,
                    input_dropout=s.input_dropout, l2=s.l2, kernel_initializer="he_uniform",
                    seed=seed)
        # lazy Adam: the wide sparse input leaves most first-layer rows without gradient
        model.compile({"name": "adam", "learning_rate": s.learning_rate, "lazy": True},
                      "sparse_categorical_crossentropy", metrics=["f1_weighted"])
        return model

    def encode(self, labels: list[str]) -> np.ndarray:
        unknown = sorted(set(labels) - set(self.index))
        if unknown:
            raise ValueError(f"unknown relation(s): {', '.join(unknown)}")
        return np.array([self.index[x] for x in labels], np.int64)

    def transform(self, data: Compounds) -> Any:
        if self.features is None:
            raise ValueError("the classifier is not fitted")
        # dense blocks stay dense (BLAS), sparse ones sparse: see thetanet.blockmatrix
        return BlockMatrix.from_parts(self.features.transform_parts(data.modifiers, data.heads))

    # -- training ----------------------------------------------------------------------------
    def fit(self, train: Compounds, val: Compounds | None = None, *, cache_dir: Any = None,
            verbose: int = 0, epochs: list[int] | None = None,
            checkpoint_dir: str | os.PathLike[str] | None = None, resume: bool = False,
            checkpoint_every: int | None = None,
            callbacks: Sequence[Callback] = ()) -> NCClassifier:
        """Fit features and networks on ``train``.

        With ``val``: each member early-stops on val weighted-F1 (of the logit-adjusted
        predictions when τ > 0) and keeps its best epoch; the result is :attr:`selection`.
        With ``epochs`` (one per seed) instead: train exactly that long, select nothing.
        ``callbacks`` join each member's training (after the selection's own).
        """
        if epochs is None and val is None:
            raise ValueError("need val data (for early stopping) or explicit epochs")
        if epochs is not None:
            val = None  # fixed epochs: nothing to select
        ck = _Checkpoints(checkpoint_dir, resume, checkpoint_every)
        timing, val_x = self._train(train, val, epochs, cache_dir, verbose, ck, callbacks)
        self.report = {"timing": timing, "train_size": len(train)}
        self.selection = None
        if val is not None:
            pred = self._proba(val_x).argmax(axis=1)
            scores = score_labels(val.labels or [], [self.labels[i] for i in pred], self.labels)
            self.selection = Selection(tuple(self.best_epochs), scores)
            self.report["val_selection"] = self.selection.headline
        return self

    def refit(self, train: Compounds, val: Compounds, *, cache_dir: Any = None,
              verbose: int = 0, checkpoint_dir: str | os.PathLike[str] | None = None,
              resume: bool = False, checkpoint_every: int | None = None) -> NCClassifier:
        """Retrain from scratch on train + val (features too): member i, with its seed, for
        ``selection.epochs[i]`` epochs — the length chosen on val. :attr:`selection` stays."""
        selection = self.selection
        if selection is None:
            raise ValueError("fit with val first: refit reuses the epochs chosen there")
        both = _joined(train, val)
        ck = _Checkpoints(checkpoint_dir, resume, checkpoint_every)
        timing, _ = self._train(both, None, selection.epochs, cache_dir, verbose, ck, ())
        self.best_epochs = list(selection.best_epochs)
        self.report = {**self.report, "refit": {"train_size": len(both),
                                                "epochs": selection.epochs, "timing": timing}}
        return self

    def _train(self, train: Compounds, val: Compounds | None, epochs: list[int] | None,
               cache_dir: Any, verbose: int, ck: _Checkpoints,
               callbacks: Sequence[Callback]) -> tuple[dict[str, float], Any]:
        """Features fitted on ``train``, then one network per seed: early-stopped on ``val``,
        or trained ``epochs[i]`` epochs. Returns the timing and val's features (or None)."""
        s = self.settings
        if epochs is not None and len(epochs) != len(s.seeds):
            raise ValueError(f"need one epoch count per seed ({len(s.seeds)}), got {epochs}")
        t0 = time.perf_counter()
        self.features = build_features(s.features, train, cache_dir=cache_dir)
        x = self.transform(train)
        y = self.encode(train.labels or [])
        self.class_prior = _prior(y, len(self.labels))
        val_xy = None if val is None else (self.transform(val), self.encode(val.labels or []))
        t_feat = time.perf_counter() - t0
        self.members, self.best_epochs, self.histories = [], [], []
        for i, seed in enumerate(s.seeds):
            model = self._network(x.shape[1], seed)
            fit_args = {"batch_size": s.batch_size, "seed": seed, "verbose": verbose,
                        **ck.args("select" if epochs is None else "refit", i)}
            if epochs is not None:
                hist = model.fit(x, y, epochs=epochs[i], callbacks=list(callbacks), **fit_args)
                best = epochs[i] - 1
            else:
                assert val_xy is not None
                # select on the metric of the predictions made: logit-adjusted if set
                monitor = []
                if s.logit_adjustment:
                    monitor = [_AdjustedValF1(val_xy, self.class_prior, s.logit_adjustment)]
                es = EarlyStopping(monitor[0].key if monitor else "val_f1_weighted",
                                   patience=s.patience, mode="max")
                hist = model.fit(x, y, epochs=s.max_epochs, validation_data=val_xy,
                                 callbacks=[*monitor, es, *callbacks], **fit_args)
                for m in monitor:
                    hist.history[m.key] = list(m.values)
                best = es.best_epoch
            self.members.append(model)
            self.best_epochs.append(int(best))
            self.histories.append(hist.history)
        timing = {"features_s": round(t_feat, 2),
                  "train_s": round(time.perf_counter() - t0 - t_feat, 2)}
        return timing, None if val_xy is None else val_xy[0]

    # -- inference ---------------------------------------------------------------------------
    def _proba(self, x: Any) -> np.ndarray:
        """Mean of the members' softmax outputs for features ``x``, logit-adjusted."""
        probs = self.members[0].predict(x)
        for m in self.members[1:]:
            probs += m.predict(x)
        probs /= len(self.members)
        return _adjusted(probs, self.class_prior, self.settings.logit_adjustment)

    def predict_proba(self, data: Compounds) -> np.ndarray:
        """Mean of the members' softmax outputs, shape (n, number of relations), after the
        logit adjustment of the settings (if any)."""
        if not self.members:
            raise ValueError("the classifier is not fitted")
        if len(data) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self._proba(self.transform(data))

    def predict(self, data: Compounds) -> tuple[list[str], np.ndarray]:
        """Relations and their probabilities."""
        probs = self.predict_proba(data)
        idx = probs.argmax(axis=1)
        return [self.labels[i] for i in idx], probs[np.arange(len(idx)), idx]

    def evaluate(self, data: Compounds) -> dict[str, Any]:
        pred, _ = self.predict(data)
        return score_labels(data.labels or [], pred, self.labels)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
        """Write the system to the directory ``path`` (crash-safe: see
        :mod:`thetanet.compounds.storage`)."""
        if self.features is None or not self.members:
            raise ValueError("nothing to save: the classifier is not fitted")
        content = {
            "labels": self.labels, "settings": asdict(self.settings),
            "features": self.features.get_config(), "best_epochs": self.best_epochs,
            "report": self.report, "metadata": metadata or {},
            "class_prior": None if self.class_prior is None else self.class_prior.tolist(),
        }
        return write_model_dir(path, content, self.members)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, cache_dir: Any = None) -> NCClassifier:
        """A saved system (formats 1 and 2); its selection comes back when the file has one."""
        doc, members = read_model_dir(path)
        doc_path = Path(path) / "nc.json"
        clf = cls(NCSettings(**doc["settings"]), doc["labels"])
        clf.features = FeatureSet.from_config(doc["features"], cache_dir=cache_dir)
        clf.members = members
        prior = doc.get("class_prior")
        if prior is not None:
            clf.class_prior = np.asarray(prior, dtype=np.float64)
            if clf.class_prior.shape != (len(clf.labels),) or not np.all(clf.class_prior > 0):
                raise ModelFileError(f"{doc_path}: class_prior must hold one positive "
                                     f"frequency per relation")
        clf.best_epochs = list(doc.get("best_epochs", []))
        clf.report = doc.get("report", {})
        clf.metadata = doc.get("metadata", {})
        chosen = clf.report.get("val_selection")
        if clf.best_epochs and isinstance(chosen, dict) and set(HEADLINE) <= set(chosen):
            clf.selection = Selection(tuple(clf.best_epochs), dict(chosen))
        return clf


@dataclass(frozen=True)
class _Checkpoints:
    """Where each member's training checkpoints go (``None``: no checkpoints)."""

    directory: str | os.PathLike[str] | None
    resume: bool
    every: int | None

    def args(self, phase: str, member: int) -> dict[str, Any]:
        return {"checkpoint": None if self.directory is None
                else Path(self.directory) / f"{phase}-member-{member}",
                "resume": self.resume and self.directory is not None,
                "checkpoint_every": self.every}


def _adjusted(probs: np.ndarray, prior: np.ndarray | None, tau: float) -> np.ndarray:
    """Logit adjustment in place: p·π^(−τ), renormalised — the softmax of the adjusted logits
    log p − τ log π (τ = 0: ``probs`` unchanged)."""
    if tau:
        if prior is None:
            raise ValueError("logit adjustment needs the training relation frequencies")
        probs *= (prior ** -tau).astype(probs.dtype)
        probs /= probs.sum(axis=1, keepdims=True)
    return probs


def _prior(y: np.ndarray, n_labels: int) -> np.ndarray:
    """Add-one smoothed relation frequencies (every π_r > 0, so log π is finite)."""
    counts = np.bincount(y, minlength=n_labels).astype(np.float64) + 1.0
    return counts / counts.sum()


def _joined(train: Compounds, val: Compounds) -> Compounds:
    return Compounds(train.modifiers + val.modifiers, train.heads + val.heads,
                     (train.labels or []) + (val.labels or []))


class _AdjustedValF1(Callback):
    """Adds ``val_f1_weighted_adjusted``: val weighted-F1 of the logit-adjusted predictions."""

    key = "val_f1_weighted_adjusted"

    def __init__(self, val_xy: tuple[Any, np.ndarray], prior: np.ndarray | None,
                 tau: float) -> None:
        super().__init__()
        self.x, self.y = val_xy
        self.prior, self.tau = prior, tau
        self.values: list[float] = []  # per epoch (fit's History has recorded logs already)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        probs = _adjusted(self.model.predict(self.x), self.prior, self.tau)
        value = f1_score(self.y, probs.argmax(axis=1), average="weighted")
        self.values.append(float(value))
        if logs is not None:
            logs[self.key] = value

    def get_state(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.values = [float(v) for v in state.get("values", [])]
