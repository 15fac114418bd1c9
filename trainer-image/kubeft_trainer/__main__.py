"""Entry point: `kubeft-train --config FILE` / `python -m kubeft_trainer --config FILE`.

Runs :func:`kubeft_trainer.pipeline.run` and turns its outcome into the exit code and the JSON
termination message of docs/DESIGN.md: 0 exported, 64 user error, 65 diverged, 143 SIGTERM
(checkpoint saved), anything else an infrastructure failure worth a retry. Every rank tells
:mod:`kubeft_trainer.launch` when its SIGTERM handler is in place and which code it exits with; the
launcher passes SIGTERM on from then, and exits with the worst rank's code after `accelerate launch`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from kubeft_operator.api import contract
from kubeft_operator.api import spec as spec_models
from kubeft_trainer import config, egress, errors, launch, progress
from kubeft_trainer.train import preemption

log = logging.getLogger("kubeft_trainer")

RETRYABLE = {e.code: e.retryable for e in contract.EXIT_CODES}
COUNTED = {e.code: e.counted for e in contract.EXIT_CODES}


def setup_logging() -> None:
    rank = os.environ.get("RANK")
    prefix = f"[rank {rank}] " if rank not in (None, "0") else ""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def main(argv: list[str] | None = None) -> int:
    # First of all: the launcher holds a SIGTERM until this process says its handler is in place.
    flag = preemption.Preemption().install()
    launch.mark_ready()
    try:
        code = _run(argv, flag)
        launch.record_exit_code(code, retryable=retryable(code), counted=COUNTED.get(code, True))
    finally:
        flag.restore()
    return code


def retryable(code: int) -> bool:
    """The contract's verdict on an exit code; one it does not name is an infrastructure failure, retried."""
    return RETRYABLE.get(code, True)


def _run(argv: list[str] | None, flag: preemption.Preemption) -> int:
    parser = argparse.ArgumentParser(prog="kubeft-train", description="Fine-tune a PEFT adapter from a kubeft config.")
    parser.add_argument("--config", required=True, help="trainer config file (kind: TrainerConfig)")
    try:
        # In the try: a SIGTERM held by the launcher may arrive at once, and must end as Preempted.
        args = parser.parse_args(argv)
        setup_logging()
        cfg = config.load(args.config)
        log.info("job %s: %s %s on %s", cfg.name, cfg.spec.method.type, cfg.spec.task, cfg.spec.model.source)
        endpoints = [e for e in (cfg.spec.storage and cfg.spec.storage.endpoint, _hub_endpoint(cfg.spec)) if e]
        egress.install(endpoints, private_allowed=egress.allow_private())
        from kubeft_trainer import pipeline

        result = pipeline.run(cfg, flag=flag)
    except Exception as exc:
        # The outcome is decided; a SIGTERM from now on must not replace it.
        flag.finish()
        return _failed(exc)
    flag.finish()
    artifact = result.artifact.wire() if result.artifact else None
    _terminate(
        result="Succeeded",
        step=result.outcome.step,
        artifact=artifact,
        metrics=result.outcome.metrics,
        promotion=result.promotion,
    )
    return errors.EXIT_OK


def _failed(exc: Exception) -> int:
    """Report a failure (termination message, log) and return its exit code."""
    refused = egress.refused_in(exc)
    if refused is not None:
        # Where the endpoint leads is refused (the spec must change; a retry cannot help),
        # however deep in a client's or the pipeline's own errors it surfaced.
        log.error("EndpointRefused: %s", refused)
        _terminate(result="Failed", reason="EndpointRefused", message=f"{refused}; point the endpoint elsewhere")
        return errors.EXIT_USER_ERROR
    if int(os.environ.get("WORLD_SIZE") or 1) > 1 and errors.peer_lost(exc) and not isinstance(exc, errors.UserError):
        # Another process of the group died (its own pod reports why, and counts); this one restarts
        # with the group, uncounted. Inside one pod the launcher reports the worst rank, the cause.
        log.error("PeerStopped: %s: %s", type(exc).__name__, exc)
        message = f"another process of the group was lost ({type(exc).__name__}: {exc}); the group restarts"
        _terminate(result="Failed", reason="PeerStopped", message=message, step=getattr(exc, "step", None))
        return errors.EXIT_PEER_STOPPED
    if isinstance(exc, errors.TrainerError):
        log.error("%s: %s", exc.reason, exc.message)
        _terminate(result="Failed", reason=exc.reason, message=exc.message, step=exc.step)
        return exc.exit_code
    # Every exit writes a termination message, unexpected ones too (exit 1: retried).
    traceback.print_exception(exc)
    _terminate(result="Failed", reason="Error", message=f"{type(exc).__name__}: {exc}")
    return errors.EXIT_INFRA


def _hub_endpoint(spec: spec_models.FineTuneJobSpec) -> str | None:
    hub = spec.output.hub
    return hub.endpoint if hub is not None else None


def _writes_termination_message() -> bool:
    """The first process of each pod: of a multi-node group every pod has its own message to leave
    (the operator reads pod 0's for a success, the one that caused a failure's for a failure)."""
    return (os.environ.get("LOCAL_RANK") or os.environ.get("RANK") or "0") == "0"


def _terminate(**fields: object) -> None:
    text = progress.termination_message(**fields)  # type: ignore[arg-type]
    if _writes_termination_message():
        progress.write_termination_message(text)
    print(text, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
