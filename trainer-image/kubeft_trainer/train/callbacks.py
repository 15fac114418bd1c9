"""Trainer callbacks: progress and metrics, TensorBoard, divergence, checkpoints, SIGTERM, AdaLoRA.

Each is small and does one thing; :func:`kubeft_trainer.train.run` wires them in.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import torch
import transformers

from kubeft_trainer import errors, progress, storage
from kubeft_trainer.train import checkpoints, divergence, preemption

log = logging.getLogger(__name__)

# Log keys that are bookkeeping, not metrics.
_NOT_METRICS = {"epoch", "total_flos", "step"}


class Progress(transformers.TrainerCallback):
    """Logs a line per logging step and sends progress + latest metrics to the FineTuneJob status."""

    def __init__(self, reporter: progress.Reporter) -> None:
        self.reporter = reporter
        self.metrics: dict[str, float] = {}
        self.last_checkpoint_step: int | None = None
        self._started = 0.0
        self._start_step = 0
        self._loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.monotonic()
        self._start_step = state.global_step
        self.reporter.report(progress=self.body(state), force=True)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            self._loss = float(logs["loss"])
        for key, value in logs.items():
            if (
                key not in _NOT_METRICS
                and isinstance(value, int | float)
                and not key.endswith(("_runtime", "_per_second"))
            ):
                self.metrics[key] = float(value)
        body = self.body(state)
        extras = " ".join(f"{k} {v:.4g}" for k, v in logs.items() if isinstance(v, float) and k != "epoch")
        log.info("step %s %s eta %s", body["summary"], extras, body.get("eta", "?"))
        self.reporter.report(progress=body, metrics=self.metrics)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.reporter.report(progress=self.body(state), metrics=self.metrics, force=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.reporter.report(progress=self.body(state), metrics=self.metrics, force=True)

    def body(self, state: Any) -> dict[str, Any]:
        step, total = state.global_step, state.max_steps or None
        eta = None
        done = step - self._start_step
        if total and done > 0:
            eta = (time.monotonic() - self._started) / done * max(total - step, 0)
        return progress.progress_body(
            step=step,
            total_steps=total,
            epoch=state.epoch,
            loss=self._loss,
            eta_seconds=eta,
            last_checkpoint_step=self.last_checkpoint_step,
            start_step=self._start_step,
        )


class TensorBoard(transformers.TrainerCallback):
    """Scalars into a SummaryWriter we own (so logs after training, e.g. the final eval, land there too)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        for key, value in logs.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key not in _NOT_METRICS:
                tag = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key.removeprefix('train_')}"
                self.writer.add_scalar(tag, value, state.global_step)


class DivergenceStop(transformers.TrainerCallback):
    """Stops training once the guard says the loss diverged; the pipeline then exits 65."""

    def __init__(self, guard: divergence.Guard) -> None:
        self.guard = guard
        self.message: str | None = None
        self.step: int | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.message or not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        message = self.guard.observe(loss, step=state.global_step)
        if message:
            self.message, self.step = message, state.global_step
            log.error("diverged: %s", message)
            control.should_training_stop = True
            control.should_save = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Between logging steps a NaN loss still shows up in the gradient norm.
        if self.message:
            control.should_training_stop = True
            control.should_save = False


class Checkpoints(transformers.TrainerCallback):
    """After each Trainer save: mark the checkpoint complete, upload it (marker last), report it.

    A checkpoint saved while the divergence guard sees the loss outside its bound is never marked
    complete, so no retry or resume starts from weights that were already running away.
    """

    def __init__(
        self,
        remote: checkpoints.Remote | None,
        progress_cb: Progress,
        *,
        identity: checkpoints.Identity,
        guard: divergence.Guard | None = None,
    ) -> None:
        self.remote = remote
        self.progress_cb = progress_cb
        self.identity = identity
        self.guard = guard

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every rank has written its part (its RNG state, an FSDP shard) before rank 0 marks the
            # checkpoint complete and uploads it.
            torch.distributed.barrier()
        if not state.is_world_process_zero:
            return
        step = state.global_step
        if self.guard is not None and self.guard.outside_bound:
            log.warning("checkpoint %d not marked complete: the loss is outside the divergence bound", step)
            return
        directory = pathlib.Path(args.output_dir) / f"checkpoint-{step}"
        checkpoints.mark_complete(directory, step=step, identity=self.identity)
        if self.remote is not None:
            try:
                self.remote.upload(directory, step=step)
            except Exception as exc:
                if storage.is_permanent(exc):
                    # Every later upload would be refused too: stop now rather than train for nothing.
                    raise errors.OutputFailed(
                        f"uploading checkpoint {step} to {self.remote.root} was refused "
                        f"({storage.error_code(exc) or exc}); check the credentials' write access to that prefix",
                        permanent=True,
                    ) from exc
                # Not fatal: a later checkpoint or the final export may still get through.
                log.warning("checkpoint %d not uploaded (it will not be resumed from): %s", step, exc)
                return
        self.progress_cb.last_checkpoint_step = step


class StopOnPreemption(transformers.TrainerCallback):
    """Turns a SIGTERM flag into save-and-stop within one micro-batch, on every rank at once.

    The flag is checked after every micro-batch, not only after an optimizer step: with
    ``gradientAccumulationSteps: 16`` a step is 16 forward/backward passes, and the grace period
    must not wait for them. A stop between micro-batches drops the partial gradients and saves the
    last completed step; the retry redoes those micro-batches. On the way out nothing else runs:
    no evaluation (per step or per epoch) and no second save of a step already saved.
    """

    def __init__(self, flag: preemption.Preemption) -> None:
        self.flag = flag
        self.step: int | None = None
        self.saved_step: int | None = None
        self.by_peer = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flag.training = True
        # A resumed run starts at its checkpoint's step, which is saved already.
        self.saved_step = state.global_step

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flag.training = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._maybe_stop(state, control)

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The Trainer saves only at step and epoch ends; on_epoch_end below saves this one.
        self._maybe_stop(state, control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.step is not None:
            control.should_evaluate = False
            control.should_save = self.saved_step != state.global_step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.saved_step = state.global_step

    def _maybe_stop(self, state: Any, control: Any) -> None:
        if self.step is None and self._requested():
            self.step = state.global_step
            log.info("SIGTERM: saving step %d and stopping", state.global_step)
        if self.step is not None:
            control.should_evaluate = False
            control.should_save = self.saved_step != state.global_step
            control.should_training_stop = True

    def _requested(self) -> bool:
        own = self.flag.requested
        requested = own
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Ranks may see the signal a step apart, and in a multi-node group only the pods that were
            # stopped see it at all; agree, or the collective save would deadlock.
            device = "cuda" if torch.cuda.is_available() else "cpu"
            t = torch.tensor([1.0 if own else 0.0], device=device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            requested = bool(t.item())
        if requested and not own:
            # Stopped for another rank: exit PeerStopped (not counted) unless this rank's own SIGTERM
            # comes before the run ends (then it was stopped too, microseconds later).
            self.by_peer = True
        return requested


class AdaLoraBudget(transformers.TrainerCallback):
    """AdaLoRA reallocates its rank budget after each optimizer step; the Trainer does not do it itself."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.model.base_model.update_and_allocate(state.global_step)
