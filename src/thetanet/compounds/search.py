r"""Architecture search for the noun-compound classifier: a space over :class:`NCSettings`.

A trial draws settings — which feature extractors and their block weights, the neighbours
block (on or off, its weight and word space; :mod:`thetanet.compounds.features.neighbours`),
hidden layers (0 = softmax regression, 1–3) and units, the activation g, dropout on the hidden
layers and on the input, L2 λ, the Adam learning rate η, the batch size, the logit adjustment
τ — and trains one :class:`NCClassifier` per seed of the study with early stopping on val
weighted-F1. Each epoch's val F1 goes to ``trial.report`` (the pruner may stop the trial); the
objective is the mean over the seeds of the selected models' val weighted-F1, exactly what
``thetanet nc train`` prints for those settings and seed: :func:`settings_from_params` rebuilds
them from the trial's parameters, and the trial keeps them as its ``settings`` attribute too.

The study lives in any Optuna storage (see :mod:`thetanet.search`); its default name is
``nc-SPLIT``. The test split is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from thetanet.compounds.features.neighbours import SPACES as NEIGHBOUR_SPACES
from thetanet.compounds.features.neighbours import NeighbourOptions
from thetanet.compounds.recipes import MAX_EPOCHS, PATIENCE
from thetanet.compounds.settings import NCSettings
from thetanet.compounds.study_checks import (
    NamedTrial,
    check_params,
    check_seeds,
    check_space,
)
from thetanet.compounds.system import NCClassifier
from thetanet.search import (
    SETUP_ATTR,
    EpochReport,
    StopRequest,
    display_url,
    hidden_activations,
    load_existing_study,
    open_storage,
    open_study,
    run_study,
    storage_url,
    summary,
)

#: the extractors a search picks from by default (see compounds.features)
SEARCH_FEATURES = ("wordnet", "minilm-static", "wordnet-gloss", "words", "chars",
                   "pair-bilinear")


@dataclass(frozen=True)
class NCSpace:
    """Ranges of the noun-compound search (a pair with lo == hi fixes the value)."""

    features: tuple[str, ...] = SEARCH_FEATURES
    #: extractors whose ``normalize`` option is searched too
    normalize: tuple[str, ...] = ("wordnet",)
    weights: tuple[float, float] = (0.5, 4.0)
    layers: tuple[int, int] = (0, 3)
    units: tuple[int, int] = (64, 1024)
    activations: tuple[str, ...] = field(
        default_factory=lambda: tuple(a for a in hidden_activations() if a != "maxout"))
    dropout: tuple[float, float] = (0.0, 0.6)
    input_dropout: tuple[float, float] = (0.0, 0.4)
    l2: tuple[float, float] = (1e-6, 1e-2)
    l2_can_be_off: bool = True  # a choice l2_on ∈ {True, False} before the value
    learning_rate: tuple[float, float] = (1e-4, 1e-2)
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256)
    logit_adjustment: tuple[float, float] = (0.0, 1.0)
    #: the neighbours block's weight when a trial turns it on ((0, 0): never on); its other
    #: options keep their defaults (k 50, T 0.05, training rows leave out shared words)
    neighbours: tuple[float, float] = (1.0, 32.0)
    #: the block's word spaces to choose from (features/neighbours.py SPACES)
    neighbour_spaces: tuple[str, ...] = ("minilm+gloss", "minilm+gloss+wordnet")
    #: how many neighbours blocks a trial may stack (each further one drawn when the one
    #: before is on: its own weight and word space)
    neighbour_blocks: int = 2
    # early stopping as the recipes', so that --warm-start evaluates a recipe as nc train does
    max_epochs: int = MAX_EPOCHS
    patience: int = PATIENCE

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> NCSpace:
        """A space from JSON, every field checked (:func:`check_space`)."""
        if not isinstance(doc, dict):
            raise ValueError(f"a search space must be an object, got {doc!r:.60}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(f"unknown search-space field(s): {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        spaces = doc.get("neighbour_spaces", cls.neighbour_spaces)
        if not spaces or not all(isinstance(s, str) and s in NEIGHBOUR_SPACES for s in spaces):
            raise ValueError(f"neighbour_spaces must list word spaces among "
                             f"{', '.join(NEIGHBOUR_SPACES)}, got {spaces!r:.80}")
        return check_space(cls(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in doc.items()}))


#: ready-made spaces: ``full`` (the default) and ``quick`` (one cheap extractor, small nets,
#: few epochs: a smoke test or a demo in seconds)
SPACES: dict[str, NCSpace] = {
    "full": NCSpace(),
    "quick": NCSpace(features=("chars",), normalize=(), weights=(1.0, 1.0), layers=(0, 1),
                     units=(16, 64), activations=("relu", "tanh"), dropout=(0.0, 0.5),
                     input_dropout=(0.0, 0.0), learning_rate=(1e-3, 3e-2),
                     batch_sizes=(128, 256), neighbours=(0.0, 0.0),
                     neighbour_spaces=("minilm+gloss",), neighbour_blocks=1, max_epochs=4,
                     patience=1),
}


def suggest_settings(trial: Any, space: NCSpace, base: NCSettings) -> NCSettings:
    """Draw the settings of ``trial`` (an ``optuna.Trial``); ``base`` gives the rest."""
    params: dict[str, Any] = {}
    for name in space.features:
        if len(space.features) > 1:
            params[f"use_{name}"] = trial.suggest_categorical(f"use_{name}", [True, False])
        if space.weights[0] != space.weights[1]:
            params[f"weight_{name}"] = trial.suggest_float(f"weight_{name}", *space.weights,
                                                           log=True)
        if name in space.normalize:
            params[f"normalize_{name}"] = trial.suggest_categorical(f"normalize_{name}",
                                                                    [False, True])
    n = params["layers"] = trial.suggest_int("layers", *space.layers)
    if n:
        params["activation"] = trial.suggest_categorical("activation", list(space.activations))
        if space.dropout[1] > 0:
            params["dropout"] = trial.suggest_float("dropout", *space.dropout)
    for i in range(n):
        params[f"units_{i}"] = trial.suggest_int(f"units_{i}", *space.units, log=True)
    if space.input_dropout[1] > 0:
        params["input_dropout"] = trial.suggest_float("input_dropout", *space.input_dropout)
    if space.l2_can_be_off:
        params["l2_on"] = trial.suggest_categorical("l2_on", [True, False])
    if space.l2[1] > 0 and params.get("l2_on", True):
        params["l2"] = trial.suggest_float("l2", *space.l2, log=True)
    params["learning_rate"] = trial.suggest_float("learning_rate", *space.learning_rate,
                                                  log=True)
    params["batch_size"] = trial.suggest_categorical("batch_size", list(space.batch_sizes))
    if space.logit_adjustment[1] > 0:
        params["logit_adjustment"] = trial.suggest_float("logit_adjustment",
                                                         *space.logit_adjustment)
    for i in range(space.neighbour_blocks if space.neighbours[1] > 0 else 0):
        key = _block_key(i)
        on = params[f"use_{key}"] = trial.suggest_categorical(f"use_{key}", [True, False])
        if not on:
            break
        params[f"weight_{key}"] = trial.suggest_float(
            f"weight_{key}", *space.neighbours, log=space.neighbours[0] > 0)
        if len(space.neighbour_spaces) > 1:
            params[f"{key}_space"] = trial.suggest_categorical(
                f"{key}_space", list(space.neighbour_spaces))
    return settings_from_params(params, space, base)


def _block_key(i: int) -> str:
    """The parameter names of the i-th neighbours block: ``neighbours``, ``neighbours_2`` …"""
    return "neighbours" if i == 0 else f"neighbours_{i + 1}"


def settings_from_params(params: dict[str, Any], space: NCSpace,
                         base: NCSettings) -> NCSettings:
    """The settings of a trial's parameters: the same on every machine, at any later time."""
    specs, used = [], []
    for name in space.features:
        opts = []
        if params.get(f"normalize_{name}"):
            opts.append("normalize=true")
        weight = round(float(params.get(f"weight_{name}", space.weights[0])), 3)
        if weight != 1.0:
            opts.append(f"weight={weight:g}")
        specs.append(f"{name}:{','.join(opts)}" if opts else name)
        if params.get(f"use_{name}", True):
            used.append(specs[-1])
    used = used or specs[:1]  # every extractor drawn off: the first one
    n = int(params.get("layers", 0))
    return replace(base, features=used,
                   hidden=[int(params[f"units_{i}"]) for i in range(n)],
                   activation=str(params.get("activation", base.activation)),
                   dropout=float(params.get("dropout", 0.0)),
                   input_dropout=float(params.get("input_dropout", 0.0)),
                   l2=float(params.get("l2", 0.0)) if params.get("l2_on", True) else 0.0,
                   learning_rate=float(params.get("learning_rate", base.learning_rate)),
                   batch_size=int(params.get("batch_size", base.batch_size)),
                   logit_adjustment=float(params.get("logit_adjustment", 0.0)),
                   neighbours=_neighbours_spec(params, space),
                   max_epochs=space.max_epochs, patience=space.patience)


def checked_settings(params: dict[str, Any], space: NCSpace, base: NCSettings,
                     where: str) -> NCSettings:
    """The settings of a trial's parameters, checked: in the space (:func:`check_params`),
    then by the command line's rules (:meth:`NCSettings.validate`)."""
    check_params(params, space, where)
    settings = settings_from_params(dict(params), space, base)
    try:
        settings.validate()
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return settings


def setup_of(study: Any, name: str) -> tuple[NCSpace, list[int]]:
    """The space and the training seeds a study's stored setup describes, checked."""
    setup = study.user_attrs.get(SETUP_ATTR)
    setup = {} if setup is None else setup
    if not isinstance(setup, dict):
        raise ValueError(f"study {name!r}: its setup must be an object, got {setup!r:.60}")
    try:
        space = NCSpace.from_dict(setup["space"]) if "space" in setup else SPACES["full"]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"study {name!r}: setup space: {exc}") from None
    return space, check_seeds(setup.get("seeds", [0]), name)


def _neighbours_spec(params: dict[str, Any], space: NCSpace) -> str | None:
    specs = []
    for i in range(space.neighbour_blocks):
        key = _block_key(i)
        if not params.get(f"use_{key}", False):
            break
        spec = f"weight={round(float(params[f'weight_{key}']), 3):g},exclude=shared-word"
        word_space = params.get(f"{key}_space", space.neighbour_spaces[0])
        specs.append(spec if word_space == NeighbourOptions.space
                     else f"{spec},space={word_space}")
    return "; ".join(specs) if specs else None


def params_from_settings(settings: NCSettings, space: NCSpace) -> dict[str, Any]:
    """The parameters of ``settings`` in ``space`` (to enqueue a recipe as a trial): the
    inverse of :func:`settings_from_params` for settings the space can express."""
    from thetanet.compounds.features import parse_feature_spec

    chosen = dict(parse_feature_spec(spec) for spec in settings.features)
    unknown = sorted(set(chosen) - set(space.features))
    if unknown:
        raise ValueError(f"feature(s) {', '.join(unknown)} are not in the search space")
    params: dict[str, Any] = {}
    for name in space.features:
        opts = chosen.get(name, {})
        params[f"use_{name}"] = name in chosen
        params[f"weight_{name}"] = float(opts.get("weight", 1.0))
        if name in space.normalize:
            params[f"normalize_{name}"] = bool(opts.get("normalize", False))
    params["layers"] = len(settings.hidden)
    params.update({f"units_{i}": h for i, h in enumerate(settings.hidden)})
    params.update(activation=settings.activation, dropout=settings.dropout,
                  input_dropout=settings.input_dropout, l2_on=settings.l2 > 0,
                  learning_rate=settings.learning_rate, batch_size=settings.batch_size,
                  logit_adjustment=settings.logit_adjustment)
    if settings.l2 > 0:
        params["l2"] = settings.l2
    blocks = settings.neighbour_blocks()
    if len(blocks) > (space.neighbour_blocks if space.neighbours[1] > 0 else 0):
        raise ValueError(f"{len(blocks)} neighbours block(s) {settings.neighbours!r} are not "
                         f"in the search space (at most {space.neighbour_blocks})")
    for i, opts in enumerate(blocks):
        key = _block_key(i)
        if (opts.space not in space.neighbour_spaces
                or opts != NeighbourOptions(weight=opts.weight, space=opts.space)):
            raise ValueError(f"the neighbours block {settings.neighbours!r} is not in the "
                             "search space (it searches the weight and the word space of "
                             f"the block, spaces {', '.join(space.neighbour_spaces)})")
        params.update({f"use_{key}": True, f"weight_{key}": opts.weight})
        if len(space.neighbour_spaces) > 1:
            params[f"{key}_space"] = opts.space
    if len(blocks) < space.neighbour_blocks and space.neighbours[1] > 0:
        params[f"use_{_block_key(len(blocks))}"] = False
    return params


#: what setup fields added later meant in studies stored before them: a space without
#: ``neighbours`` never turned the block on; one without ``neighbour_spaces`` had the
#: default word space only
SETUP_BEFORE: dict[str, Any] = {"space": {"neighbours": [0.0, 0.0],
                                          "neighbour_spaces": ["minilm+gloss"],
                                          "neighbour_blocks": 1}}


def study_name_for(split: str) -> str:
    return f"nc-{split}"


def search_nc(split: str, train: Any, val: Any, labels: Sequence[str], *,
              space: NCSpace | None = None, n_trials: int | None = 20,
              timeout: float | None = None, max_trials: int | None = None,
              storage: str | None = None, study_name: str | None = None, seed: int = 0,
              seeds: int = 1, pruner: Any = "median", cache_dir: Any = None,
              heartbeat_interval: int = 30, grace_period: int | None = None,
              startup_trials: int = 10, enqueue: Sequence[dict[str, Any]] = (),
              on_epoch: Callable[[int, int, float], None] | None = None,
              on_trial: Callable[[Any], None] | None = None,
              ) -> tuple[list[int], dict[str, Any]]:
    """Run this worker's trials of the split's study: (trials run here, study summary).
    ``enqueue``: parameters to try first (e.g. today's recipe), unless already tried;
    ``on_epoch(trial, step, value)``, ``on_trial(frozen_trial)``: progress hooks."""
    space = space or SPACES["full"]
    train_seeds = [seed + i for i in range(seeds)]
    base = NCSettings(seeds=train_seeds[:1])
    setup = {"split": split, "space": space.to_dict(), "seeds": train_seeds,
             "metric": "val weighted-F1", "data": {"train": len(train), "val": len(val)}}
    store = open_storage(storage, heartbeat_interval=heartbeat_interval,
                         grace_period=grace_period)
    study = open_study(store, study_name or study_name_for(split), seed=seed, pruner=pruner,
                       setup=setup, max_epochs=space.max_epochs * seeds,
                       startup_trials=startup_trials, missing_as=SETUP_BEFORE)
    for params in enqueue:
        study.enqueue_trial(params, skip_if_exists=True)

    def objective(trial: Any, stop: StopRequest) -> float:
        where = f"study {study.study_name!r} trial {trial.number}"
        check_params(_enqueued(study, trial), space, where)  # before anything is drawn
        settings = suggest_settings(NamedTrial(trial, where), space, base)
        # an enqueued trial's values may lie outside the space: refused, never trained
        settings = checked_settings(trial.params, space, base, where)
        # the model's F1 on val after each epoch, logit-adjusted when τ > 0 (what selects)
        key = "val_f1_weighted_adjusted" if settings.logit_adjustment else "val_f1_weighted"
        values, epochs = [], []
        for i, s in enumerate(train_seeds):
            clf = NCClassifier(replace(settings, seeds=[s]), list(labels))
            report = EpochReport(trial, key, i * space.max_epochs, stop, on_epoch)
            clf.fit(train, val, cache_dir=cache_dir, callbacks=[report])
            assert clf.selection is not None
            values.append(float(clf.selection.scores["weighted_f1"]))
            epochs.append(clf.selection.epochs[0])
        trial.set_user_attr("settings", asdict(replace(settings, seeds=train_seeds)))
        trial.set_user_attr("seed_values", values)
        trial.set_user_attr("epochs", epochs)
        return float(np.mean(values))

    done = run_study(study, objective, n_trials=n_trials, timeout=timeout,
                     max_trials=max_trials, on_trial=on_trial)
    return done, summary(study)


def _enqueued(study: Any, trial: Any) -> dict[str, Any]:
    """The parameters fixed for a running trial by ``enqueue_trial`` (none: ``{}``)."""
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == trial.number:
            fixed = frozen.system_attrs.get("fixed_params")
            return fixed if isinstance(fixed, dict) else {}
    return {}


def best_settings(split: str, *, storage: str | None = None, study_name: str | None = None
                  ) -> tuple[NCSettings, dict[str, Any]]:
    """The settings of the study's best trial (rebuilt from its parameters) and its origin:
    study, trial number, value."""
    name = study_name or study_name_for(split)
    study = load_existing_study(storage, name)
    space, seeds = setup_of(study, name)  # checked before anything is loaded
    setup = study.user_attrs.get(SETUP_ATTR) or {}
    if setup.get("split", split) != split:
        raise ValueError(f"study {name!r} searched split {setup['split']!r:.40}, not {split!r}")
    try:
        best = study.best_trial
    except ValueError as exc:
        raise ValueError(f"study {name!r} has no finished trial yet") from exc
    settings = checked_settings(best.params, space, NCSettings(seeds=seeds[:1]),
                                f"study {name!r} trial {best.number}")
    origin = {"study": name, "trial": best.number, "value": best.value,
              "seeds": seeds, "storage": display_url(storage_url(storage))}
    return settings, origin
