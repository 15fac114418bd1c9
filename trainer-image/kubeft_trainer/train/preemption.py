"""SIGTERM handling: finish the step, save and upload a checkpoint, exit 143.

Kubernetes sends SIGTERM on preemption, eviction and node drain, then SIGKILL after the grace
period. Before training starts there is nothing to save, so the handler raises
:class:`~kubeft_trainer.errors.Preempted` at once; during training it only raises a flag that
:class:`kubeft_trainer.train.callbacks.StopOnPreemption` turns into save-and-stop after the
current micro-batch. Once the run has an outcome (:meth:`Preemption.finish`) a SIGTERM changes
nothing. Installed by :mod:`kubeft_trainer.__main__` first thing in every rank, which then tells
:mod:`kubeft_trainer.launch` that it may pass SIGTERM on.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from kubeft_trainer import errors

log = logging.getLogger(__name__)


class Preemption:
    def __init__(self) -> None:
        self.requested = False
        self.training = False
        self.finished = False
        self._previous: Any = None

    def install(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def finish(self) -> None:
        """The run has its outcome (exported, failed, or preempted at a step); keep it whatever comes."""
        self.finished = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.requested = True
        if self.finished:
            if first:
                log.warning("SIGTERM after the run ended: keeping its outcome")
            return
        if not self.training:
            if not first:
                # A second SIGTERM (torchrun stopping the other ranks once one exits, or a person)
                # that lands after the training loop stopped for the first must not replace its
                # outcome (the step it saved) with this one.
                return
            raise errors.Preempted("SIGTERM outside the training loop; the retry resumes from the last checkpoint")
        if first:
            log.warning("SIGTERM: saving a checkpoint after this micro-batch, then exiting")
