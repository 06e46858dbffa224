"""The refit in a second thread, one epoch behind the selection: the same weights, less time.

:meth:`NCClassifier.refit <thetanet.compounds.system.NCClassifier.refit>` retrains each member
on train + val for the epochs the selection chose. Training is deterministic per seed and does
not depend on how many epochs were asked for, so the refit of a member can run beside its
selection run (NumPy and BLAS release the GIL) and be cut at the chosen epoch b:

- the refit never finishes an epoch k before the selection has finished epoch k; it then
  keeps a copy of its weights iff k is the selection's best epoch so far (the only epoch it
  has done that can still be chosen);
- once the selection has stopped with best epoch b, the refit stops after epoch b, or, if it
  is past b already, takes back its copy of epoch b.

When the refit finishes epoch b, the selection has finished epoch b, so its best is b then:
the copy exists. The result is bit for bit the weights of a refit after the selection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from thetanet.callbacks import Callback, EarlyStopping

__all__ = ["Lockstep", "run_beside"]


class Aborted(RuntimeError):
    """The other side of the lockstep failed; this side stops."""


class Lockstep:
    """How far one member's selection run got, for its refit: ``done`` epochs finished,
    ``best`` (0-based) so far, ``final`` best once it stopped; ``failed`` when a side failed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.done, self.best = 0, -1
        self.final: int | None = None
        self.failed = False

    def update(self, **state: Any) -> None:
        with self._cond:
            self.__dict__.update(state)
            self._cond.notify_all()

    def fail(self) -> None:
        self.update(failed=True)

    def wait_until(self, ready: Callable[[], bool]) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.failed or ready())
            if self.failed:
                raise Aborted("the run beside this one failed")

    def selection(self, es: EarlyStopping, max_epochs: int) -> Callback:
        """The callback on the selection run (after ``es``): publishes its progress."""
        return _Publish(self, es, max_epochs)

    def refit(self) -> Callback:
        """The callback on the refit run: follows the selection, cuts at its best epoch."""
        return _Follow(self)


class _Publish(Callback):
    def __init__(self, step: Lockstep, es: EarlyStopping, max_epochs: int) -> None:
        self.step, self.es, self.max_epochs = step, es, max_epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.step.failed:
            raise Aborted("the refit beside the selection failed")
        stops = self.model.stop_training or epoch + 1 >= self.max_epochs
        self.step.update(done=epoch + 1, best=self.es.best_epoch,
                       final=self.es.best_epoch if stops else None)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.step.update(final=self.es.best_epoch)  # also after a divergence


class _Follow(Callback):
    def __init__(self, step: Lockstep) -> None:
        self.step = step
        self.kept: tuple[int, list[np.ndarray]] | None = None
        self.last = -1

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.kept, self.last = (-1, self.model.get_weights()), -1  # a selection of 0 epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.step.wait_until(lambda: self.step.done > epoch or self.step.final is not None)
        self.last = epoch
        final = self.step.final
        if final is not None and epoch >= final:
            self.model.stop_training = True
        elif epoch == self.step.best:
            self.kept = (epoch, self.model.get_weights())

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.step.wait_until(lambda: self.step.final is not None)
        final = self.step.final
        assert final is not None
        if final < self.last:  # past the chosen epoch: take back its weights
            if self.kept is None or self.kept[0] != final:  # pragma: no cover - see above
                raise RuntimeError(f"the refit kept no copy of epoch {final + 1}")
            self.model.set_weights(self.kept[1])
        self.kept = None


def run_beside(select: Callable[[list[Lockstep]], None],
               refit: Callable[[list[Lockstep]], None], members: int) -> None:
    """``select(steps)`` here and ``refit(steps)`` in a second thread, one :class:`Lockstep`
    per member. A failure on either side stops the other; it is raised here after the
    thread has ended."""
    steps = [Lockstep() for _ in range(members)]
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            refit(steps)
        except BaseException as exc:  # handed to the selection's thread
            errors.append(exc)
            for step in steps:
                step.fail()

    worker = threading.Thread(target=follow, name="nc-refit", daemon=True)
    worker.start()
    try:
        select(steps)
    except BaseException as exc:
        for step in steps:
            step.fail()
        worker.join()
        if isinstance(exc, Aborted) and errors:
            raise errors[0] from None
        raise
    worker.join()
    if errors:
        raise errors[0]
