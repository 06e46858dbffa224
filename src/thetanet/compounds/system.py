r"""The noun-compound relation classifier: features → thetanet network(s) → relation.

Pipeline (the data flow of DESIGN.md):

    (modifier, head) ──FeatureSet──▶ x (CSR) ──Sequential (softmax regression or MLP)──▶ P(r | x)

:class:`NCClassifier` fits the features on the training compounds and trains one network per
seed (an ensemble: the seeds' probabilities are averaged). :meth:`~NCClassifier.fit` *selects*:
each member early-stops on val weighted-F1 (the competition metric) and keeps its best epoch;
the choice is the typed :class:`Selection`. :meth:`~NCClassifier.refit` *refits*: it retrains
every member from scratch on train + val for the epochs the selection chose;
:meth:`~NCClassifier.select_and_refit` does both, the refit in a second thread one epoch
behind the selection (:mod:`thetanet.compounds.concurrent_refit`). The report records what the
model was trained and selected on (:mod:`thetanet.compounds.provenance`). Saved as a
directory (:mod:`thetanet.compounds.storage`): ``nc.json`` + one thetanet model per member.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.blockmatrix import BlockMatrix
from thetanet.builders import mlp
from thetanet.callbacks import Callback, EarlyStopping
from thetanet.compounds.adjustment import AdjustedValF1, adjusted, class_prior
from thetanet.compounds.concurrent_refit import Lockstep, run_beside
from thetanet.compounds.features import FeatureSet, build_features
from thetanet.compounds.features.base import frozen_caches
from thetanet.compounds.features.neighbours import NeighbourBlocks
from thetanet.compounds.known_words import known_words
from thetanet.compounds.progress import Progress
from thetanet.compounds.provenance import (
    Overlap,
    compound_digest,
    decode_digest,
    encode_digest,
    overlap,
)
from thetanet.compounds.scoring import score_labels
from thetanet.compounds.settings import DEFAULT_FEATURES, NCSettings
from thetanet.compounds.storage import NC_FORMAT, NC_FORMAT_VERSION, read_model_dir, write_model_dir
from thetanet.data.tratz import Compounds
from thetanet.data.tsv import CHUNK_LINES
from thetanet.files import ModelFileError
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
    headline metrics. ``histories``: each member's per-epoch logs of the selection run (empty
    for a loaded model).
    """

    best_epochs: tuple[int, ...]
    scores: dict[str, Any]
    histories: tuple[dict[str, list[float]], ...] = ()

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
        #: the neighbours block appended to the features (settings.neighbours), fitted with them
        self.neighbours: NeighbourBlocks | None = None
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

    def transform(self, data: Compounds, *, training_rows: bool = False) -> Any:
        """The network's input: the features, then the neighbours block (if any;
        ``training_rows``: ``data`` are the compounds it was fitted on)."""
        if self.features is None:
            raise ValueError("the classifier is not fitted")
        # dense blocks dense, sparse ones sparse (blockmatrix); a group of compounds at a
        # time, so blocks comparing the same words share cosines (features/cosines.py)
        m, h, n = list(data.modifiers), list(data.heads), max(len(data.modifiers), 1)
        g = n if self.neighbours is None else self.neighbours.group_rows()
        return BlockMatrix.from_row_groups([self._parts(m[a:a + g], h[a:a + g], training_rows, a)
                                            for a in range(0, n, g)])

    def _parts(self, mods: list[str], heads: list[str], rows: bool, at: int) -> list[Any]:
        parts = self.features.transform_parts(mods, heads)
        if self.neighbours is not None:
            parts.append(self.neighbours.transform(mods, heads, training_rows=rows, first_row=at))
        return parts

    def _extractors(self) -> list[Any]:
        """Every extractor the input reads words through (frozen while predicting)."""
        assert self.features is not None
        more = self.neighbours.extractors if self.neighbours is not None else []
        inner = [w for e in self.features.extractors for w in e.word_extractors]
        return [*self.features.extractors, *inner, *more]

    @property
    def input_dim(self) -> int:
        """Columns of :meth:`transform`: the features' and the neighbours block's."""
        if self.features is None:
            raise ValueError("the classifier is not fitted")
        return self.features.dim + (self.neighbours.dim if self.neighbours is not None else 0)

    # -- training ----------------------------------------------------------------------------
    def fit(self, train: Compounds, val: Compounds | None = None, *, cache_dir: Any = None,
            verbose: int = 0, epochs: list[int] | None = None,
            checkpoint_dir: str | os.PathLike[str] | None = None, resume: bool = False,
            checkpoint_every: int | None = None, callbacks: Sequence[Callback] = (),
            progress: Progress | None = None) -> NCClassifier:
        """Fit features and networks on ``train``.

        With ``val``: each member early-stops on val weighted-F1 (of the logit-adjusted
        predictions when τ > 0) and keeps its best epoch; the result is :attr:`selection`.
        With ``epochs`` (one per seed) instead: train exactly that long, select nothing.
        ``callbacks`` join each member's training (after the selection's own); ``progress``
        hears of each step (:class:`~thetanet.compounds.progress.Progress`).
        """
        if epochs is None and val is None:
            raise ValueError("need val data (for early stopping) or explicit epochs")
        if epochs is not None:
            val = None  # fixed epochs: nothing to select
        ck = _Checkpoints(checkpoint_dir, resume, checkpoint_every)
        timing, val_x = self._train(train, val, epochs, cache_dir, verbose, ck, callbacks,
                                    progress or Progress(), "select" if val else "train")
        self._selected(train, val, val_x, timing)
        return self

    def refit(self, train: Compounds, val: Compounds, *, cache_dir: Any = None,
              verbose: int = 0, checkpoint_dir: str | os.PathLike[str] | None = None,
              resume: bool = False, checkpoint_every: int | None = None,
              progress: Progress | None = None) -> NCClassifier:
        """Retrain from scratch on train + val (features too): member i, with its seed, for
        ``selection.epochs[i]`` epochs — the length chosen on val. :attr:`selection` stays."""
        selection = self._chosen()
        both = _joined(train, val)
        ck = _Checkpoints(checkpoint_dir, resume, checkpoint_every)
        timing, _ = self._train(both, None, selection.epochs, cache_dir, verbose, ck, (),
                                progress or Progress(), "refit")
        self._refitted(both, timing)
        return self

    def select_and_refit(self, train: Compounds, val: Compounds, *, cache_dir: Any = None,
                         verbose: int = 0, alongside: bool = True,
                         checkpoint_dir: str | os.PathLike[str] | None = None,
                         resume: bool = False, checkpoint_every: int | None = None,
                         progress: Progress | None = None) -> NCClassifier:
        """:meth:`fit` on ``train`` selecting on ``val``, then :meth:`refit` — with
        ``alongside`` (and no checkpoints) the refit trains in a second thread one epoch
        behind the selection (:mod:`~thetanet.compounds.concurrent_refit`): the same weights
        bit for bit, in less wall time."""
        report = progress or Progress()
        if not alongside or checkpoint_dir is not None:
            kw = {"cache_dir": cache_dir, "verbose": verbose, "checkpoint_dir": checkpoint_dir,
                  "resume": resume, "checkpoint_every": checkpoint_every, "progress": report}
            return self.fit(train, val, **kw).refit(train, val, **kw)
        both = _joined(train, val)
        twin = NCClassifier(self.settings, self.labels)
        out: dict[str, Any] = {}
        none = _Checkpoints(None, False, None)
        n, most = len(self.settings.seeds), self.settings.max_epochs

        # the selection's features first: the shared WordNet reader is not thread-safe, so
        # the refit builds its features while the selection only trains
        ready = self._prepare(train, val, cache_dir, report, "select")

        def select(steps: list[Lockstep]) -> None:
            out["select"] = self._members(ready, None, verbose, none, (), report, "select",
                                          lambda i, es: [steps[i].selection(es, most)])

        def refit(steps: list[Lockstep]) -> None:
            out["refit"] = twin._train(both, None, [most] * n, cache_dir, 0, none, (), report,
                                       "refit", lambda i, es: [steps[i].refit()], follow=True)

        report.phase("refit: on train + val in a second thread, one epoch behind the selection")
        run_beside(select, refit, n)
        timing, val_x = out["select"]
        self._selected(train, val, val_x, timing)
        chosen = self._chosen()
        self.features, self.class_prior = twin.features, twin.class_prior
        self.neighbours = twin.neighbours  # fitted on train + val, as the refit's features
        self.members = twin.members
        self.histories = [{k: v[:e] for k, v in h.items()}  # the epochs a refit trains
                          for h, e in zip(twin.histories, chosen.epochs)]
        self._refitted(both, out["refit"][0], alongside=True)
        return self

    def _chosen(self) -> Selection:
        if self.selection is None:
            raise ValueError("fit with val first: refit reuses the epochs chosen there")
        return self.selection

    def _selected(self, train: Compounds, val: Compounds | None, val_x: Any,
                  timing: dict[str, Any]) -> None:
        """The report and :attr:`selection` after a fit."""
        self.report = {"timing": timing, "train_size": len(train),
                       "trained_on": encode_digest(compound_digest(train.modifiers,
                                                                   train.heads))}
        self.selection = None
        if val is not None:
            pred = self._proba(val_x).argmax(axis=1)
            scores = score_labels(val.labels or [], [self.labels[i] for i in pred], self.labels)
            self.selection = Selection(tuple(self.best_epochs), scores, tuple(self.histories))
            self.report["val_selection"] = self.selection.headline
            self.report["selected_on"] = encode_digest(compound_digest(val.modifiers,
                                                                       val.heads))

    def _refitted(self, both: Compounds, timing: dict[str, Any], alongside: bool = False
                  ) -> None:
        selection = self._chosen()
        self.best_epochs = list(selection.best_epochs)
        self.report = {**self.report, "refit": {"train_size": len(both), "alongside": alongside,
                                                "epochs": selection.epochs, "timing": timing},
                       "trained_on": encode_digest(compound_digest(both.modifiers, both.heads))}

    def _train(self, train: Compounds, val: Compounds | None, epochs: list[int] | None,
               cache_dir: Any, verbose: int, ck: _Checkpoints, callbacks: Sequence[Callback],
               progress: Progress, phase: str,
               extra: Callable[[int, EarlyStopping | None], list[Callback]] | None = None,
               follow: bool = False) -> tuple[dict[str, float], Any]:
        """Features fitted on ``train``, then one network per seed: early-stopped on ``val``,
        or trained ``epochs[i]`` epochs (``follow``: at most, a callback of ``extra`` stops
        it). ``extra(i, es)``: more callbacks for member i. Returns the timing and val's
        features (or None)."""
        ready = self._prepare(train, val, cache_dir, progress, phase)
        return self._members(ready, epochs, verbose, ck, callbacks, progress, phase, extra,
                             follow)

    def _prepare(self, train: Compounds, val: Compounds | None, cache_dir: Any,
                 progress: Progress, phase: str) -> _Prepared:
        """Features fitted on ``train``; its (x, y), val's, and the time it took."""
        s = self.settings
        t0 = time.perf_counter()
        what = "train + val" if phase == "refit" else "train"
        progress.phase(f"{phase}: features {', '.join(s.features)} on {len(train):,} {what} "
                       f"compounds")
        self.features = build_features(s.features, train, cache_dir=cache_dir)
        y = self.encode(train.labels or [])
        options = s.neighbour_blocks()  # fitted with the labels: train's, or train + val's
        self.neighbours = None if not options else NeighbourBlocks.create(
            options, len(self.labels), cache_dir=cache_dir, share=self.features.extractors
        ).fit(train.modifiers, train.heads, y)
        x = self.transform(train, training_rows=True)
        self.class_prior = class_prior(y, len(self.labels))
        val_xy = None if val is None else (self.transform(val), self.encode(val.labels or []))
        t_feat = time.perf_counter() - t0
        progress.phase(f"{phase}: features ready, {x.shape[1]:,} columns ({t_feat:.1f} s)")
        return _Prepared(x, y, val_xy, t_feat)

    def _members(self, ready: _Prepared, epochs: list[int] | None, verbose: int,
                 ck: _Checkpoints, callbacks: Sequence[Callback], progress: Progress,
                 phase: str,
                 extra: Callable[[int, EarlyStopping | None], list[Callback]] | None = None,
                 follow: bool = False) -> tuple[dict[str, float], Any]:
        """One network per seed on prepared features (see :meth:`_train`)."""
        s = self.settings
        if epochs is not None and len(epochs) != len(s.seeds):
            raise ValueError(f"need one epoch count per seed ({len(s.seeds)}), got {epochs}")
        t0 = time.perf_counter()
        x, y, val_xy = ready.x, ready.y, ready.val_xy
        self.members, self.best_epochs, self.histories = [], [], []
        for i, seed in enumerate(s.seeds):
            model = self._network(x.shape[1], seed)
            fit_args = {"batch_size": s.batch_size, "seed": seed, "verbose": verbose,
                        **ck.args("select" if epochs is None else "refit", i)}
            if epochs is not None:
                shown = progress.member(phase, i, len(s.seeds), None if follow else epochs[i],
                                        None)
                more = [*(extra(i, None) if extra else []), *([shown] if shown else [])]
                hist = model.fit(x, y, epochs=epochs[i], callbacks=[*callbacks, *more],
                                 **fit_args)
                best = epochs[i] - 1
            else:
                assert val_xy is not None
                # select on the metric of the predictions made: logit-adjusted if set
                monitor = []
                if s.logit_adjustment:
                    monitor = [AdjustedValF1(val_xy, self.class_prior, s.logit_adjustment)]
                es = EarlyStopping(monitor[0].key if monitor else "val_f1_weighted",
                                   patience=s.patience, mode="max")
                shown = progress.member(phase, i, len(s.seeds), s.max_epochs, es)
                more = [*(extra(i, es) if extra else []), *([shown] if shown else [])]
                hist = model.fit(x, y, epochs=s.max_epochs, validation_data=val_xy,
                                 callbacks=[*monitor, es, *more, *callbacks], **fit_args)
                for m in monitor:
                    hist.history[m.key] = list(m.values)
                best = es.best_epoch
            self.members.append(model)
            self.best_epochs.append(int(best))
            self.histories.append(hist.history)
        timing = {"features_s": round(ready.seconds, 2),
                  "train_s": round(time.perf_counter() - t0, 2)}
        return timing, None if val_xy is None else val_xy[0]

    # -- inference ---------------------------------------------------------------------------
    def _proba(self, x: Any) -> np.ndarray:
        """Mean of the members' softmax outputs for features ``x``, logit-adjusted."""
        probs = self.members[0].predict(x)
        for m in self.members[1:]:
            probs += m.predict(x)
        probs /= len(self.members)
        return adjusted(probs, self.class_prior, self.settings.logit_adjustment)

    def predict_proba(self, data: Compounds) -> np.ndarray:
        """Mean of the members' softmax outputs, shape (n, number of relations), after the
        logit adjustment of the settings (if any). Computed :data:`CHUNK_LINES` compounds at
        a time with the feature cache frozen (:func:`frozen_caches`): memory holds one chunk's
        features, and the words predicted never enter the cache."""
        if not self.members or self.features is None:
            raise ValueError("the classifier is not fitted")
        if len(data) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        parts = []
        with frozen_caches(self._extractors()):
            for s in range(0, len(data), CHUNK_LINES):
                chunk = Compounds(data.modifiers[s:s + CHUNK_LINES],
                                  data.heads[s:s + CHUNK_LINES], None)
                parts.append(self._proba(self.transform(chunk)))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def predict_chunks(self, chunks: Iterable[Compounds]
                       ) -> Iterator[tuple[Compounds, list[str], np.ndarray]]:
        """``(chunk, relations, probabilities)`` for each chunk of a stream (e.g.
        :func:`thetanet.data.tratz.iter_compounds`): any length, in one chunk's memory."""
        for chunk in chunks:
            labels, probs = self.predict(chunk)
            yield chunk, labels, probs

    def predict(self, data: Compounds) -> tuple[list[str], np.ndarray]:
        """Relations and their probabilities."""
        probs = self.predict_proba(data)
        idx = probs.argmax(axis=1)
        return [self.labels[i] for i in idx], probs[np.arange(len(idx)), idx]

    def evaluate(self, data: Compounds) -> dict[str, Any]:
        pred, _ = self.predict(data)
        return score_labels(data.labels or [], pred, self.labels)

    def overlap(self, data: Compounds) -> Overlap | None:
        """How many compounds of ``data`` this model was trained or selected on (None: the
        model does not record it — saved before the report kept a digest)."""
        trained = self.report.get("trained_on")
        if not isinstance(trained, dict):
            return None
        selected = self.report.get("selected_on")
        try:
            return overlap(data.modifiers, data.heads, decode_digest(trained),
                           decode_digest(selected) if isinstance(selected, dict) else None)
        except ValueError as exc:
            raise ModelFileError(f"this model's report: {exc}") from exc

    def known_words(self, data: Compounds) -> np.ndarray:
        """Boolean (n, 2): whether some representation of the features knows the modifier
        and the head of each compound (:func:`~thetanet.compounds.known_words.known_words`)."""
        if self.features is None:
            raise ValueError("the classifier is not fitted")
        with frozen_caches(self.features.extractors):  # asking never grows the cache
            return known_words(self.features, data.modifiers, data.heads)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
        """Write the system to the directory ``path`` (crash-safe: see
        :mod:`thetanet.compounds.storage`)."""
        if self.features is None or not self.members:
            raise ValueError("nothing to save: the classifier is not fitted")
        settings = asdict(self.settings)
        if settings["neighbours"] is None:  # readable by thetanet versions without the block
            del settings["neighbours"]
        content = {
            "labels": self.labels, "settings": settings,
            "features": self.features.get_config(), "best_epochs": self.best_epochs,
            "report": self.report, "metadata": metadata or {},
            "class_prior": None if self.class_prior is None else self.class_prior.tolist(),
        }
        if self.neighbours is not None:
            content["neighbours"] = self.neighbours.get_state()
        return write_model_dir(path, content, self.members)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, cache_dir: Any = None) -> NCClassifier:
        """A saved system (formats 1 and 2); its selection comes back when the file has one."""
        doc, members = read_model_dir(path)  # checked: see thetanet.compounds.storage
        doc_path = Path(path) / "nc.json"
        try:
            clf = cls(NCSettings(**doc["settings"]), doc["labels"])
            clf.features = FeatureSet.from_config(doc["features"], cache_dir=cache_dir)
            options = clf.settings.neighbour_blocks()
            if (not options) != (doc.get("neighbours") is None):
                raise ValueError("the settings and the saved neighbours block disagree")
            if options:
                clf.neighbours = NeighbourBlocks.from_state(
                    options, len(clf.labels), doc["neighbours"], cache_dir=cache_dir,
                    share=clf.features.extractors)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                RecursionError) as exc:
            raise ModelFileError(f"{doc_path}: invalid settings or features "
                                 f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        if any(m.input_dim != clf.input_dim for m in members):
            raise ModelFileError(f"{doc_path}: the features have {clf.input_dim} columns, "
                                 "the member networks another input size")
        clf.members = members
        prior = doc.get("class_prior")
        if prior is not None:
            clf.class_prior = np.asarray(prior, dtype=np.float64)
            if clf.class_prior.shape != (len(clf.labels),) or not np.all(clf.class_prior > 0):
                raise ModelFileError(f"{doc_path}: class_prior must hold one positive "
                                     f"frequency per relation")  # bounds: check_document
        clf.best_epochs = list(doc.get("best_epochs", []))
        clf.report = doc.get("report", {})
        clf.metadata = doc.get("metadata", {})
        chosen = clf.report.get("val_selection")
        if clf.best_epochs and isinstance(chosen, dict) and set(HEADLINE) <= set(chosen):
            clf.selection = Selection(tuple(clf.best_epochs), dict(chosen))
        return clf


@dataclass(frozen=True)
class _Prepared:
    """Fitted features of a training run: train's (x, y), val's (or None), seconds taken."""

    x: Any
    y: np.ndarray
    val_xy: tuple[Any, np.ndarray] | None
    seconds: float


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


def _joined(train: Compounds, val: Compounds) -> Compounds:
    return Compounds(train.modifiers + val.modifiers, train.heads + val.heads,
                     (train.labels or []) + (val.labels or []))
