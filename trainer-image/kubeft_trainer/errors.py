"""Failures the trainer reports, each with the termination reason and exit code of docs/DESIGN.md.

Raised anywhere in the pipeline; :mod:`kubeft_trainer.__main__` turns them into the exit code the
Job's podFailurePolicy matches and the `{"result": "Failed", "reason": ...}` termination message.
"""

from __future__ import annotations

import re

from kubeft_operator.api import contract

# The codes and what the operator does with each live in the contract (api/contract.py).
EXIT_OK = contract.EXIT_OK
EXIT_USER_ERROR = contract.EXIT_USER_ERROR
EXIT_DIVERGED = contract.EXIT_DIVERGED
EXIT_GPU_UNAVAILABLE = contract.EXIT_GPU_UNAVAILABLE
EXIT_PREEMPTED = contract.EXIT_PREEMPTED
EXIT_PEER_STOPPED = contract.EXIT_PEER_STOPPED
EXIT_INFRA = contract.EXIT_INFRA


class TrainerError(Exception):
    """A failure with a machine-readable reason and a message that says what to do."""

    reason = "Error"
    exit_code = EXIT_INFRA

    def __init__(self, message: str, *, step: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step


class UserError(TrainerError):
    """The spec, the data or the model cannot work as given; retrying will not help (exit 64)."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidConfig(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidConfig", message)


class DatasetNotFound(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("DatasetNotFound", message)


class DatasetInvalid(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("DatasetInvalid", message)


class DatasetPreflightFailed(UserError):
    """The dataset report broke a threshold of spec.dataset.preflight (too few records, too much truncation)."""

    def __init__(self, message: str) -> None:
        super().__init__("DatasetPreflightFailed", message)


class ModelNotFound(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("ModelNotFound", message)


class TargetModulesNotFound(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("TargetModulesNotFound", message)


class ChatTemplateMissing(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("ChatTemplateMissing", message)


class QuantizationUnavailable(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("QuantizationUnavailable", message)


class Diverged(TrainerError):
    """The loss became NaN/inf or ran away (exit 65, not retried)."""

    reason = "Diverged"
    exit_code = EXIT_DIVERGED


class GPUUnavailable(TrainerError):
    """spec.resources.gpus asked for GPUs this pod cannot use (exit 66, not retried).

    Raised at start, before any download, by :mod:`kubeft_trainer.devices`; the message names the
    driver, torch's CUDA, the device count and the visible-devices variables it saw.
    """

    reason = "GPUUnavailable"
    exit_code = EXIT_GPU_UNAVAILABLE


class Preempted(TrainerError):
    """SIGTERM: a checkpoint was saved where possible; the retry resumes from it (exit 143)."""

    reason = "Preempted"
    exit_code = EXIT_PREEMPTED


class PeerStopped(Preempted):
    """Another pod of a multi-node group stopped: it got the SIGTERM and the whole group saved its
    checkpoint at the step all ranks agreed on, or it was lost mid-collective. This pod restarts
    with the group without counting toward retryLimit (exit 67); the pod that caused it counts."""

    reason = "PeerStopped"
    exit_code = EXIT_PEER_STOPPED


# What a collective raises when a process of the group is gone: gloo's "Connection closed by peer"
# (a plain RuntimeError, checked on the message; torch 2.x) and the typed errors of newer backends.
_PEER_LOST = re.compile(
    r"Connection (closed|reset) by peer|remote worker crash|Broken pipe|NCCL.*remote process exited"
)


def peer_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says another process of the group went away."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in ("DistNetworkError", "DistBackendError") or (
            isinstance(current, RuntimeError) and _PEER_LOST.search(str(current))
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


class OutputFailed(TrainerError):
    """Writing checkpoints or the adapter failed. Retried unless `permanent` (exit 1, or 64)."""

    reason = "OutputFailed"

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        if permanent:
            self.exit_code = EXIT_USER_ERROR
