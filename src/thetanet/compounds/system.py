r"""The noun-compound relation classifier: features → thetanet network(s) → relation.

Pipeline (the data flow of DESIGN.md):

    (modifier, head) ──FeatureSet──▶ x (CSR) ──Sequential (softmax regression or MLP)──▶ P(r | x)

:class:`NCClassifier` fits the features on the training compounds, trains one network per seed
with early stopping on val weighted-F1 (the competition metric), averages the seeds'
probabilities (an ensemble), and can refit on train + val with the epochs chosen on val.
Saved as a directory: ``nc.json`` (labels, settings, fitted feature config, report) and one
thetanet model directory per ensemble member — JSON + npz, never pickle.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thetanet import Dense, Dropout, EarlyStopping, Sequential, load_model
from thetanet.blockmatrix import BlockMatrix
from thetanet.callbacks import Callback
from thetanet.compounds.features import FeatureSet, build_features
from thetanet.compounds.scoring import score_labels
from thetanet.data.tratz import Compounds
from thetanet.io import atomic_write_text

NC_FORMAT = "thetanet-nc"
NC_FORMAT_VERSION = 2  # 2: class_prior (logit adjustment); 1 still read
DEFAULT_FEATURES = ("wordnet", "minilm-static")


@dataclass
class NCSettings:
    """Everything that defines a trained system besides the data (all chosen on val)."""

    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    hidden: list[int] = field(default_factory=list)  # [] = softmax regression
    activation: str = "relu"
    dropout: float = 0.0
    input_dropout: float = 0.0
    l2: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 60
    patience: int = 5
    seeds: list[int] = field(default_factory=lambda: [0])
    #: τ of post-hoc logit adjustment (Menon et al. 2021): predict argmax log p − τ log π,
    #: π the training relation frequencies; τ > 0 favours rarer relations (0: plain argmax)
    logit_adjustment: float = 0.0

    def validate(self) -> None:
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if not 0 <= self.dropout < 1 or not 0 <= self.input_dropout < 1:
            raise ValueError("dropout rates must be in [0, 1)")
        if not self.seeds:
            raise ValueError("need at least one seed")
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ValueError("max_epochs and batch_size must be positive")
        if not math.isfinite(self.logit_adjustment):
            raise ValueError(f"logit_adjustment must be finite, got {self.logit_adjustment}")


class NCClassifier:
    """Noun-compound relation classifier built from thetanet networks."""

    def __init__(self, settings: NCSettings, labels: list[str]) -> None:
        settings.validate()
        self.settings = settings
        self.labels = list(labels)
        self.index = {lab: i for i, lab in enumerate(self.labels)}
        self.features: FeatureSet | None = None
        self.members: list[Sequential] = []
        self.best_epochs: list[int] = []
        self.histories: list[dict[str, list[float]]] = []
        self.report: dict[str, Any] = {}
        #: π: relation frequencies of the training data (add-one smoothed), for the adjustment
        self.class_prior: np.ndarray | None = None
        self.metadata: dict[str, Any] = {}
        self._twins: dict[str, Any] | None = None  # refits trained beside the selection

    # -- building blocks ---------------------------------------------------------------------
    def _network(self, input_dim: int, seed: int) -> Sequential:
        s = self.settings
        layers: list[Any] = []
        if s.input_dropout:
            layers.append(Dropout(s.input_dropout))
        for h in s.hidden:
            layers.append(Dense(h, s.activation, kernel_initializer="he_uniform", l2=s.l2))
            if s.dropout:
                layers.append(Dropout(s.dropout))
        layers.append(Dense(len(self.labels), "softmax", l2=s.l2))
        model = Sequential(layers, seed=seed)
        # lazy Adam: the wide sparse input leaves most first-layer rows without gradient
        model.compile({"name": "adam", "learning_rate": s.learning_rate, "lazy": True},
                      "sparse_categorical_crossentropy", metrics=["f1_weighted"])
        model.build(input_dim)
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
            checkpoint_every: int | None = None, refit_alongside: bool = False) -> NCClassifier:
        """Fit features and networks on ``train``.

        With ``val``: each member early-stops on val weighted-F1 and keeps its best epoch.
        With ``epochs`` (one per seed): train exactly that long (the refit).
        ``refit_alongside`` (with ``val``, without checkpoints): also train the refit on
        train + val in a second thread, beside each member's selection run; :meth:`refit`
        then only swaps it in (see :class:`_RefitTwin`: the same weights, ~1.6× less time on
        two cores).
        """
        s = self.settings
        if refit_alongside and (val is None or epochs is not None or checkpoint_dir is not None):
            raise ValueError("refit_alongside needs val data, no fixed epochs, no checkpoints")
        t0 = time.perf_counter()
        self.features = build_features(s.features, train, cache_dir=cache_dir)
        x = self.transform(train)
        y = self.encode(train.labels or [])
        self.class_prior = _prior(y, len(self.labels))
        val_xy = None
        if val is not None:
            val_xy = (self.transform(val), self.encode(val.labels or []))
        twin_data = None
        self._twins = None
        if refit_alongside:
            assert val is not None
            both = _joined(train, val)
            twin_features = build_features(s.features, both, cache_dir=cache_dir)
            twin_x = BlockMatrix.from_parts(twin_features.transform_parts(both.modifiers,
                                                                          both.heads))
            twin_data = (twin_x, self.encode(both.labels or []))
            self._twins = {"features": twin_features, "members": [], "histories": [],
                           "train_size": len(both), "started": time.perf_counter(),
                           "class_prior": _prior(twin_data[1], len(self.labels))}
        t_feat = time.perf_counter() - t0
        self.members, self.best_epochs, self.histories = [], [], []
        for i, seed in enumerate(s.seeds):
            model = self._network(x.shape[1], seed)
            phase = "refit" if epochs is not None else "select"
            ck = {"checkpoint": None if checkpoint_dir is None
                  else Path(checkpoint_dir) / f"{phase}-member-{i}",
                  "resume": resume and checkpoint_dir is not None,
                  "checkpoint_every": checkpoint_every}
            if epochs is not None:
                hist = model.fit(x, y, epochs=epochs[i], batch_size=s.batch_size, seed=seed,
                                 verbose=verbose, **ck)
                best = epochs[i] - 1
            else:
                if val_xy is None:
                    raise ValueError("need val data (for early stopping) or explicit epochs")
                # select on the metric of the predictions made: logit-adjusted if set
                monitor = []
                if s.logit_adjustment:
                    monitor = [_AdjustedValF1(val_xy, self.class_prior, s.logit_adjustment)]
                es = EarlyStopping(monitor[0].key if monitor else "val_f1_weighted",
                                   patience=s.patience, mode="max")
                if twin_data is None:
                    hist = model.fit(x, y, epochs=s.max_epochs, batch_size=s.batch_size,
                                     validation_data=val_xy, seed=seed, verbose=verbose,
                                     callbacks=[*monitor, es], **ck)
                else:
                    hist = self._fit_with_twin(model, x, y, val_xy, [*monitor, es], es, seed,
                                               twin_data, verbose)
                for m in monitor:
                    hist.history[m.key] = list(m.values)
                best = es.best_epoch
            self.members.append(model)
            self.best_epochs.append(int(best))
            self.histories.append(hist.history)
        self.report["timing"] = {"features_s": round(t_feat, 2),
                                 "train_s": round(time.perf_counter() - t0 - t_feat, 2)}
        self.report["train_size"] = len(train)
        return self

    def refit(self, train: Compounds, val: Compounds, *, cache_dir: Any = None,
              verbose: int = 0, **checkpointing: Any) -> NCClassifier:
        """Retrain from scratch on train + val for the epochs chosen on val (per seed)."""
        if not self.best_epochs:
            raise ValueError("fit with val first: refit reuses the epochs chosen there")
        both = _joined(train, val)
        epochs = [e + 1 for e in self.best_epochs]
        twins = self._twins
        if twins is not None and len(twins["members"]) == len(self.members):
            # trained alongside the selection runs (fit(refit_alongside=True))
            if twins["train_size"] != len(both):
                raise ValueError("refit data differ from the data fit trained the twins on")
            self.features, self.members = twins["features"], twins["members"]
            self.histories, self.class_prior = twins["histories"], twins["class_prior"]
            self.report = {**self.report, "refit": {
                "train_size": len(both), "epochs": epochs, "alongside_selection": True,
                "timing": {"train_s": twins.get("train_s")}}}
            self._twins = None
            return self
        chosen = list(self.best_epochs)
        report = dict(self.report)
        self.fit(both, None, cache_dir=cache_dir, verbose=verbose, epochs=epochs,
                 **checkpointing)
        self.best_epochs = chosen
        self.report = {**report, "refit": {"train_size": len(both), "epochs": epochs,
                                           "timing": self.report.get("timing")}}
        return self

    def _fit_with_twin(self, model: Sequential, x: Any, y: np.ndarray, val_xy: Any,
                       callbacks: list[Callback], es: EarlyStopping, seed: int,
                       twin_data: tuple[Any, np.ndarray], verbose: int) -> Any:
        """The selection run of one member here, its refit on train + val in a thread."""
        s = self.settings
        assert self._twins is not None
        twin = self._network(twin_data[0].shape[1], seed)
        link = _RefitTwin(s.patience)
        worker = threading.Thread(target=link.train, name=f"nc-refit-seed{seed}", daemon=True,
                                  args=(twin, *twin_data, s.max_epochs, s.batch_size, seed))
        worker.start()
        final = -1  # abort the twin unless the selection run completes
        try:
            hist = model.fit(x, y, epochs=s.max_epochs, batch_size=s.batch_size,
                             validation_data=val_xy, seed=seed, verbose=verbose,
                             callbacks=[*callbacks, _SelectionReport(link, es)])
            final = es.best_epoch
        finally:
            link.finish(final)
            worker.join()
        if link.error is not None:
            raise RuntimeError(f"the refit beside the selection failed: {link.error}") \
                from link.error
        if link.weights is None:  # pragma: no cover - the twin keeps the chosen epoch
            raise RuntimeError(f"the refit kept no snapshot of epoch {final + 1}")
        twin.set_weights(link.weights)
        self._twins["members"].append(twin)
        self._twins["histories"].append(
            {k: v[: final + 1] for k, v in link.history.items()})
        self._twins["train_s"] = round(time.perf_counter() - self._twins["started"], 2)
        return hist

    # -- inference ---------------------------------------------------------------------------
    def predict_proba(self, data: Compounds) -> np.ndarray:
        """Mean of the members' softmax outputs, shape (n, number of relations), after the
        logit adjustment of the settings (if any)."""
        if not self.members:
            raise ValueError("the classifier is not fitted")
        if len(data) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        x = self.transform(data)
        probs = self.members[0].predict(x)
        for m in self.members[1:]:
            probs += m.predict(x)
        probs /= len(self.members)
        return _adjusted(probs, self.class_prior, self.settings.logit_adjustment)

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
        """Write the system to the directory ``path``: built aside, then swapped in."""
        if self.features is None or not self.members:
            raise ValueError("nothing to save: the classifier is not fitted")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; the model should be readable
        try:
            for i, m in enumerate(self.members):
                m.save(tmp / f"member-{i}")
            doc = {
                "format": NC_FORMAT, "format_version": NC_FORMAT_VERSION,
                "labels": self.labels, "settings": asdict(self.settings),
                "features": self.features.get_config(), "best_epochs": self.best_epochs,
                "members": [f"member-{i}" for i in range(len(self.members))],
                "report": self.report, "metadata": metadata or {},
                "class_prior": None if self.class_prior is None else self.class_prior.tolist(),
            }
            atomic_write_text(tmp / "nc.json", json.dumps(doc, indent=1, sort_keys=True))
            _swap_in(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, cache_dir: Any = None) -> NCClassifier:
        from thetanet.io import locked_dir

        path = Path(path)
        if not path.exists() and _orphans(path):
            _recover(path)  # a save was killed between its two renames
        with locked_dir(path.parent, shared=True):  # never between _swap_in's two renames
            return cls._load(path, cache_dir=cache_dir)

    @classmethod
    def _load(cls, path: Path, *, cache_dir: Any = None) -> NCClassifier:
        from thetanet.io import ModelFileError

        doc_path = path / "nc.json"
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelFileError(f"{doc_path}: no noun-compound model here") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{doc_path}: corrupt ({exc})") from exc
        if doc.get("format") != NC_FORMAT:
            raise ModelFileError(f"{doc_path}: not a thetanet noun-compound model")
        if int(doc.get("format_version", 0)) > NC_FORMAT_VERSION:
            raise ModelFileError(f"{doc_path}: format {doc['format_version']} is newer than "
                                 f"this thetanet reads ({NC_FORMAT_VERSION}); upgrade")
        clf = cls(NCSettings(**doc["settings"]), doc["labels"])
        clf.features = FeatureSet.from_config(doc["features"], cache_dir=cache_dir)
        for name in doc["members"]:
            if "/" in name or "\\" in name or name.startswith("."):
                raise ModelFileError(f"{doc_path}: invalid member name {name!r}")
            clf.members.append(load_model(path / name))
        prior = doc.get("class_prior")
        if prior is not None:
            clf.class_prior = np.asarray(prior, dtype=np.float64)
            if clf.class_prior.shape != (len(clf.labels),) or not np.all(clf.class_prior > 0):
                raise ModelFileError(f"{doc_path}: class_prior must hold one positive "
                                     f"frequency per relation")
        clf.best_epochs = list(doc.get("best_epochs", []))
        clf.report = doc.get("report", {})
        clf.metadata = doc.get("metadata", {})
        return clf


def _swap_in(tmp: Path, path: Path) -> None:
    """Replace directory ``path`` by ``tmp``: readers see the old or the new one, whole."""
    from thetanet.io import locked_dir

    with locked_dir(path.parent):
        _swap_in_locked(tmp, path)


def _swap_in_locked(tmp: Path, path: Path) -> None:
    if not path.exists():
        os.replace(tmp, path)
    else:
        if not (path / "nc.json").exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} exists and is not a noun-compound model; not replacing")
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
        os.replace(path, old / "model")
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    # left by saves killed between the renames (we hold the lock: none is in progress)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.old.*"):
        shutil.rmtree(stale, ignore_errors=True)


def _orphans(path: Path) -> list[Path]:
    """Previous models that a killed save moved aside (``.NAME.old.*/model``), newest first."""
    found = [d / "model" for d in path.parent.glob(f".{glob.escape(path.name)}.old.*")
             if (d / "model" / "nc.json").is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _recover(path: Path) -> None:
    """Put the newest orphaned model back at ``path`` (no new model reached it)."""
    from thetanet.io import locked_dir

    with locked_dir(path.parent):
        orphans = _orphans(path)
        if path.exists() or not orphans:
            return  # another process got here first
        os.replace(orphans[0], path)
        warnings.warn(f"{path}: restored the previous model after an interrupted save",
                      stacklevel=3)
        for orphan in orphans:
            shutil.rmtree(orphan.parent, ignore_errors=True)


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


class _RefitTwin(Callback):
    """The refit of one member, trained in a thread while its selection run goes on.

    Training is deterministic per seed and does not depend on how many epochs were asked for,
    so the first E epochs of a long run are the run of E epochs. The twin therefore trains on,
    keeps a copy of its weights after every epoch the selection may still choose (its best so
    far, and those it has not evaluated yet), waits when it is more than patience + 2 epochs
    ahead, and stops at the epoch finally chosen: the weights :meth:`NCClassifier.refit`
    would train from scratch, for ~1.6× less wall time on two cores (NumPy and BLAS release the
    GIL).
    """

    def __init__(self, patience: int) -> None:
        super().__init__()
        self.cond = threading.Condition()
        self.evaluated, self.best = -1, -1
        self.final: int | None = None
        self.ahead = patience + 2
        self.snapshots: dict[int, list[np.ndarray]] = {}
        self.weights: list[np.ndarray] | None = None
        self.history: dict[str, list[float]] = {}
        self.error: BaseException | None = None

    # the selection's side
    def selected(self, epoch: int, best: int) -> None:
        with self.cond:
            self.evaluated, self.best = epoch, best
            self.cond.notify_all()

    def finish(self, final: int) -> None:
        """The epoch chosen (-1: stop, keep nothing)."""
        with self.cond:
            self.final = final
            self.cond.notify_all()

    # the twin's side (a thread)
    def train(self, twin: Sequential, x: Any, y: np.ndarray, max_epochs: int,
              batch_size: int, seed: int) -> None:
        try:
            hist = twin.fit(x, y, epochs=max_epochs, batch_size=batch_size, seed=seed,
                            verbose=0, callbacks=[self])
            self.history = hist.history
            with self.cond:
                while self.final is None:
                    self.cond.wait()
                self.weights = self.snapshots.get(self.final)
        except BaseException as exc:  # handed to the selection's thread
            self.error = exc
        finally:
            self.snapshots = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        weights = self.model.get_weights()
        with self.cond:
            while self.final is None and epoch - self.evaluated > self.ahead:
                self.cond.wait()
            self.snapshots[epoch] = weights
            if self.final is not None:
                keep = {self.final}
            else:
                keep = {self.best} | {e for e in self.snapshots if e > self.evaluated}
            self.snapshots = {e: w for e, w in self.snapshots.items() if e in keep}
            if self.final is not None and epoch >= self.final:
                self.model.stop_training = True


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
        from thetanet.metrics import f1_score

        probs = _adjusted(self.model.predict(self.x), self.prior, self.tau)
        value = f1_score(self.y, probs.argmax(axis=1), average="weighted")
        self.values.append(float(value))
        if logs is not None:
            logs[self.key] = value

    def get_state(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.values = [float(v) for v in state.get("values", [])]


class _SelectionReport(Callback):
    """Tells the twin how far the selection run got (after EarlyStopping updated)."""

    def __init__(self, twin: _RefitTwin, es: EarlyStopping) -> None:
        super().__init__()
        self.twin, self.es = twin, es

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.twin.selected(epoch, self.es.best_epoch)
