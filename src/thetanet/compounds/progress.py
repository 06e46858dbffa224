"""What :class:`~thetanet.compounds.system.NCClassifier` tells while it trains.

The classifier calls :meth:`Progress.phase` at each step of its pipeline (features, members,
refit) and asks :meth:`Progress.member` for a callback to join each member's training (its
epochs, val-F1, patience). The base class says nothing; ``thetanet nc train`` draws bars on a
terminal and plain lines elsewhere (:mod:`thetanet.cli.nc_progress`). The refit may run in a
second thread beside the selection (:mod:`thetanet.compounds.concurrent_refit`): an
implementation that prints must be thread-safe.
"""

from __future__ import annotations

from thetanet.callbacks import Callback, EarlyStopping

__all__ = ["Progress"]


class Progress:
    """Silent progress: subclass and override what you want to show."""

    def phase(self, text: str) -> None:
        """A step of the pipeline begins (``text``: what, e.g. "features on train")."""

    def member(self, phase: str, index: int, count: int, epochs: int | None,
               es: EarlyStopping | None) -> Callback | None:
        """A callback for member ``index`` of ``count`` in ``phase`` ("select" or "refit"),
        trained for up to ``epochs`` epochs (None: until the selection's choice, not known
        yet); ``es`` is the selection's early stopping (None for a refit). None: nothing."""
        return None
