r"""Picking the architecture (the lecture's last step) as a search on Optuna.

    space ──trial.suggest_*──▶ params ──Architecture──▶ Sequential ──fit: early stopping,
    trial.report(val metric) per epoch ▶ pruner──▶ best val metric, mean over the seeds
    ──▶ study in a database (SQLite file by default; PostgreSQL / MySQL to share it)

The choices are the lecture's: number of hidden layers (0 = softmax regression), units per
layer, the activation g (any row of the table, or maxout with k pieces), dropout per layer and
on the input, L2 penalty λ, optimiser and learning rate η, batch size. Every trial is
reproducible from its parameters: :meth:`Architecture.from_params` rebuilds the network and the
study's seeds retrain it to the same value.

Processes or machines opening one ``storage`` URL and study share the study, each pulling
its own trials; a heartbeat fails (and requeues) a killed worker's trial; Ctrl-C records the
running trial as failed, then raises :class:`KeyboardInterrupt`. Optuna is an optional extra
(``pip install 'thetanet[search]'``), imported inside the functions.
"""

from __future__ import annotations

import json
import signal
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from thetanet.callbacks import Callback, EarlyStopping
from thetanet.layers import Dense, Dropout, Maxout
from thetanet.model import Sequential
from thetanet.search_storage import DEFAULT_DB_NAME as DEFAULT_DB_NAME  # re-exported
from thetanet.search_storage import default_storage_path as default_storage_path
from thetanet.search_storage import display_url as display_url
from thetanet.search_storage import load_existing_study as load_existing_study
from thetanet.search_storage import open_storage as open_storage
from thetanet.search_storage import storage_url as storage_url

#: study user attribute holding what every worker of the study must agree on
SETUP_ATTR = "thetanet_setup"


def hidden_activations() -> tuple[str, ...]:
    """Every elementwise activation of the table (and the learnable ones), then maxout."""
    from thetanet import activations

    return (*[n for n in activations.names() if activations.get(n).elementwise], "maxout")


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the search: ``(lo, hi)`` with lo == hi fixes a value; ``l2`` and η are
    searched on a log scale; ``l2=(0, 0)`` / ``dropout=(0, 0)`` turn them off."""

    layers: tuple[int, int] = (0, 3)
    units: tuple[int, int] = (16, 512)
    activations: tuple[str, ...] = field(default_factory=hidden_activations)
    pieces: tuple[int, int] = (2, 4)  # maxout's k
    dropout: tuple[float, float] = (0.0, 0.6)
    input_dropout: tuple[float, float] = (0.0, 0.3)
    l2: tuple[float, float] = (1e-6, 1e-2)
    optimizers: tuple[str, ...] = ("adam", "sgd", "momentum")
    learning_rate: tuple[float, float] = (1e-4, 1e-1)
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256)
    max_epochs: int = 30
    patience: int = 5

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Architecture:
    """One point of the space: everything needed to build and train the network."""

    hidden: tuple[int, ...] = ()
    activation: str = "relu"
    pieces: int = 2
    dropout: tuple[float, ...] = ()
    input_dropout: float = 0.0
    l2: float = 0.0
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Architecture:
        """The architecture of a trial's parameters (what :func:`suggest` drew)."""
        n = int(params.get("layers", 0))
        return cls(hidden=tuple(int(params[f"units_{i}"]) for i in range(n)),
                   activation=str(params.get("activation", "relu")),
                   pieces=int(params.get("pieces", 2)),
                   dropout=tuple(float(params.get(f"dropout_{i}", 0.0)) for i in range(n)),
                   input_dropout=float(params.get("input_dropout", 0.0)),
                   l2=float(params.get("l2", 0.0)),
                   optimizer=str(params.get("optimizer", "adam")),
                   learning_rate=float(params.get("learning_rate", 1e-3)),
                   batch_size=int(params.get("batch_size", 32)))

    def layers(self, n_outputs: int, output: str = "softmax") -> list[Any]:
        """Dropout on the input, then per hidden layer Dense (or Maxout) and its dropout."""
        out: list[Any] = [Dropout(self.input_dropout)] if self.input_dropout else []
        # He's initialisation for the piecewise-linear units, Glorot's for the others
        init = "he_uniform" if self.activation in ("relu", "prelu", "maxout") else "glorot_uniform"
        for units, rate in zip(self.hidden, self.dropout or (0.0,) * len(self.hidden)):
            out.append(Maxout(units, self.pieces, kernel_initializer=init, l2=self.l2)
                       if self.activation == "maxout" else
                       Dense(units, self.activation, kernel_initializer=init, l2=self.l2))
            if rate:
                out.append(Dropout(rate))
        out.append(Dense(n_outputs, output, l2=self.l2))
        return out

    def optimizer_config(self) -> dict[str, Any]:
        if self.optimizer == "momentum":  # SGD with Nesterov momentum 0.9
            return {"name": "sgd", "learning_rate": self.learning_rate, "momentum": 0.9,
                    "nesterov": True}
        return {"name": self.optimizer, "learning_rate": self.learning_rate}

    def build(self, input_dim: int, n_outputs: int, seed: int,
              metric: str = "accuracy") -> Sequential:
        """The compiled network (softmax output, cross-entropy), Θ initialised from ``seed``."""
        model = Sequential(self.layers(n_outputs), seed=seed)
        model.compile(self.optimizer_config(), "sparse_categorical_crossentropy",
                      metrics=[metric])
        model.build(input_dim)
        return model


def suggest(trial: Any, space: SearchSpace) -> Architecture:
    """Draw an architecture for ``trial`` (an ``optuna.Trial``) from ``space``."""
    n = trial.suggest_int("layers", *space.layers)
    params: dict[str, Any] = {"layers": n}
    if n:
        params["activation"] = trial.suggest_categorical("activation", list(space.activations))
        if params["activation"] == "maxout":
            params["pieces"] = trial.suggest_int("pieces", *space.pieces)
    for i in range(n):
        params[f"units_{i}"] = trial.suggest_int(f"units_{i}", *space.units, log=True)
        if space.dropout[1] > 0:
            params[f"dropout_{i}"] = trial.suggest_float(f"dropout_{i}", *space.dropout)
    if space.input_dropout[1] > 0:
        params["input_dropout"] = trial.suggest_float("input_dropout", *space.input_dropout)
    if space.l2[1] > 0:
        params["l2"] = trial.suggest_float("l2", *space.l2, log=True)
    params["optimizer"] = trial.suggest_categorical("optimizer", list(space.optimizers))
    params["learning_rate"] = trial.suggest_float("learning_rate", *space.learning_rate, log=True)
    params["batch_size"] = trial.suggest_categorical("batch_size", list(space.batch_sizes))
    return Architecture.from_params(params)


class EpochReport(Callback):
    """Reports the monitored value of every epoch to the trial (``trial.report``), lets the
    pruner stop a hopeless trial (``optuna.TrialPruned``) and a pending Ctrl-C stop it."""

    def __init__(self, trial: Any, key: str, step_offset: int = 0, stop: StopRequest | None = None,
                 on_epoch: Callable[[int, int, float], None] | None = None) -> None:
        super().__init__()
        self.trial, self.key, self.offset = trial, key, step_offset
        self.stop, self.on_epoch = stop, on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import optuna

        value = float((logs or {})[self.key])
        self.trial.report(value, self.offset + epoch)
        if self.on_epoch is not None:
            self.on_epoch(self.trial.number, self.offset + epoch, value)
        if self.stop is not None and self.stop.requested:
            raise KeyboardInterrupt(f"search interrupted in trial {self.trial.number}")
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch + 1}: {self.key}={value:.4f}")


def fit_architecture(arch: Architecture, x: Any, y: np.ndarray, x_val: Any, y_val: np.ndarray,
                     *, seed: int, n_outputs: int, max_epochs: int = 30, patience: int = 5,
                     metric: str = "accuracy", callbacks: Sequence[Callback] = ()
                     ) -> tuple[Sequential, float, int]:
    """Train one network with early stopping on the val metric: (model, best value, epoch)."""
    model = arch.build(x.shape[1], n_outputs, seed, metric)
    es = EarlyStopping(f"val_{metric}", patience=patience, mode="max")
    model.fit(x, y, epochs=max_epochs, batch_size=arch.batch_size, seed=seed, verbose=0,
              validation_data=(x_val, y_val), callbacks=[*callbacks, es])
    return model, float(es.best), int(es.best_epoch)


# -- storage, sampler, pruner, study ---------------------------------------------------------
def trial_seeded_sampler(seed: int, startup_trials: int = 10) -> Any:
    """TPE whose random stream is seeded from (seed, trial number): one worker's search is
    reproducible, and workers started with the same seed still draw different trials (the
    database hands out unique numbers). TPE's model is the study's history, so a fresh
    TPE per trial loses nothing; constant liar keeps workers off each other's running
    trials."""
    import optuna

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._cached: tuple[int, Any] | None = None

        def _for(self, trial: Any) -> Any:
            if self._cached is None or self._cached[0] != trial.number:
                state = np.random.SeedSequence([seed, trial.number]).generate_state(1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    tpe = optuna.samplers.TPESampler(
                        seed=int(state[0]), n_startup_trials=startup_trials,
                        multivariate=True, group=True, constant_liar=True)
                self._cached = (trial.number, tpe)
            return self._cached[1]

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            return self._for(trial).sample_independent(study, trial, name, dist)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._for(trial).after_trial(study, trial, state, values)

    return TrialSeededTPE()


def make_pruner(pruner: Any, max_epochs: int) -> Any:
    """``"median"`` (default), ``"hyperband"``, ``"none"``, or an Optuna pruner as is."""
    import optuna

    if not isinstance(pruner, str):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min(3, max_epochs))
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {pruner!r}; choose median, hyperband or none")


def open_study(storage: Any, study_name: str, *, seed: int = 0, pruner: Any = "median",
               setup: dict[str, Any] | None = None, max_epochs: int = 30,
               startup_trials: int = 10, missing_as: dict[str, Any] | None = None) -> Any:
    """Create the study or join it. ``setup`` (JSON-able: space, seeds, data …) is stored on
    creation; a worker with a different setup is refused, so one study never mixes two.
    ``missing_as``: what a field meant before it existed, for setups stored without it
    (nested like ``setup``), so that older studies can still be continued."""
    import optuna

    setup = None if setup is None else json.loads(json.dumps(setup))  # as stored
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                load_if_exists=True,
                                sampler=trial_seeded_sampler(seed, startup_trials),
                                pruner=make_pruner(pruner, max_epochs))
    if setup is not None:
        stored = study.user_attrs.get(SETUP_ATTR)
        if stored is None:
            study.set_user_attr(SETUP_ATTR, setup)
            return study
        if missing_as:
            stored = _filled(stored, json.loads(json.dumps(missing_as)))
        diff = _differences(stored, setup)
        if diff:
            raise ValueError(f"study {study_name!r} was created with another setup (differs "
                             f"in: {', '.join(diff)}); use the same options or another study")
    return study


def _filled(stored: Any, missing_as: dict[str, Any]) -> Any:
    """``stored`` with the fields of ``missing_as`` it lacks added (recursively)."""
    if not isinstance(stored, dict):
        return stored
    out = dict(stored)
    for key, value in missing_as.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = _filled(out[key], value)
    return out


def _differences(stored: Any, setup: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two setups differ (``space.units`` …)."""
    if not (isinstance(stored, dict) and isinstance(setup, dict)):
        return [] if stored == setup else [prefix.rstrip(".") or "setup"]
    return [d for k in sorted(set(stored) | set(setup))
            for d in _differences(stored.get(k), setup.get(k), f"{prefix}{k}.")]


class StopRequest:
    """While active (main thread): the first Ctrl-C asks the search to stop after the
    current trial's bookkeeping; a second one raises at once. ``Sequential.fit`` holds
    SIGINT itself while training and raises ``KeyboardInterrupt`` after the batch."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt("interrupted twice: aborting at once")
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_study(study: Any, objective: Callable[[Any, StopRequest], float], *,
              n_trials: int | None = None, timeout: float | None = None,
              max_trials: int | None = None,
              on_trial: Callable[[Any], None] | None = None) -> list[int]:
    """Run trials of ``objective(trial, stop)`` in this worker: ``n_trials`` of them, until
    ``timeout`` seconds, or until the study holds ``max_trials`` finished or running trials.
    ``on_trial(frozen_trial)`` sees each trial of this worker when it has ended.
    Returns the numbers of the trials this worker ran; raises ``KeyboardInterrupt`` after
    Ctrl-C (the interrupted trial recorded as failed)."""
    import optuna

    done: list[int] = []

    def budget_left() -> bool:
        if max_trials is None:
            return True
        State = optuna.trial.TrialState
        states = (State.COMPLETE, State.PRUNED, State.RUNNING)
        return len(study.get_trials(deepcopy=False, states=states)) < max_trials

    def after(study: Any, trial: Any) -> None:
        done.append(trial.number)
        if on_trial is not None:
            on_trial(trial)
        if stop.requested or not budget_left():
            study.stop()

    with StopRequest() as stop:
        if budget_left() and n_trials != 0:
            study.optimize(lambda t: objective(t, stop), n_trials=n_trials, timeout=timeout,
                           callbacks=[after], gc_after_trial=False)
    if stop.requested:
        raise KeyboardInterrupt(f"search stopped after trial(s) {done[-1:]}")
    return done


def summary(study: Any) -> dict[str, Any]:
    """Best value, parameters and user attributes, and the number of trials by state."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    out: dict[str, Any] = {"study": study.study_name, "trials": len(trials),
                           "states": dict(Counter(t.state.name for t in trials)),
                           "setup": study.user_attrs.get(SETUP_ATTR)}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        out.update(best_trial=best.number, best_value=best.value, best_params=best.params,
                   best_attrs=best.user_attrs)
    return out


# -- the library entry -----------------------------------------------------------------------
@dataclass
class SearchResult:
    """What :func:`search_architecture` returns: the study's summary, this worker's trials."""

    study_name: str
    storage: str
    trials_run: list[int]
    summary: dict[str, Any]

    @property
    def best_value(self) -> float | None:
        return self.summary.get("best_value")

    @property
    def best_architecture(self) -> Architecture | None:
        params = self.summary.get("best_params")
        return None if params is None else Architecture.from_params(params)


def search_architecture(x: Any, y: Any, x_val: Any, y_val: Any, *,
                        space: SearchSpace | None = None, n_trials: int | None = 20,
                        timeout: float | None = None, storage: str | None = None,
                        study_name: str = "thetanet-search", seed: int = 0,
                        pruner: Any = "median", seeds: int = 1, metric: str = "accuracy",
                        max_trials: int | None = None, heartbeat_interval: int = 30,
                        grace_period: int | None = None, startup_trials: int = 10,
                        on_epoch: Callable[[int, int, float], None] | None = None,
                        on_trial: Callable[[Any], None] | None = None
                        ) -> SearchResult:
    """Search the architecture of a classifier of ``y`` (integer labels) from ``x`` on the
    validation data: each trial trains ``seeds`` networks (seeds ``seed``, ``seed`` + 1, …)
    with early stopping on val ``metric`` and scores their mean best value.

    ``storage``: a SQLAlchemy URL (default :func:`default_storage_path`, a SQLite file in the
    user data directory; ``postgresql://user@host/db`` to share one study between machines).
    ``n_trials`` is this worker's count, ``max_trials`` the study's; ``on_epoch(trial, step,
    value)`` sees every reported epoch, ``on_trial(frozen_trial)`` every ended trial.
    Returns the study's summary and this worker's trials.
    """
    space = space or SearchSpace()
    y, y_val = np.asarray(y), np.asarray(y_val)
    n_outputs = int(max(y.max(), y_val.max())) + 1
    train_seeds = [seed + i for i in range(seeds)]
    setup = {"space": space.to_dict(), "seeds": train_seeds, "metric": metric,
             "data": {"train": int(x.shape[0]), "val": int(x_val.shape[0]),
                      "inputs": int(x.shape[1]), "classes": n_outputs}}
    store = open_storage(storage, heartbeat_interval=heartbeat_interval,
                         grace_period=grace_period)
    study = open_study(store, study_name, seed=seed, pruner=pruner, setup=setup,
                       max_epochs=space.max_epochs * seeds, startup_trials=startup_trials)

    def objective(trial: Any, stop: StopRequest) -> float:
        arch = suggest(trial, space)
        values, epochs = [], []
        for i, s in enumerate(train_seeds):
            report = EpochReport(trial, f"val_{metric}", i * space.max_epochs, stop, on_epoch)
            _, value, epoch = fit_architecture(
                arch, x, y, x_val, y_val, seed=s, n_outputs=n_outputs, metric=metric,
                max_epochs=space.max_epochs, patience=space.patience, callbacks=[report])
            values.append(value)
            epochs.append(epoch + 1)
        trial.set_user_attr("seed_values", values)
        trial.set_user_attr("epochs", epochs)
        return float(np.mean(values))

    done = run_study(study, objective, n_trials=n_trials, timeout=timeout,
                     max_trials=max_trials, on_trial=on_trial)
    return SearchResult(study_name, display_url(storage_url(storage)), done, summary(study))
