"""Failures the trainer reports, each with the termination reason and exit code of docs/DESIGN.md.

Raised anywhere in the pipeline; :mod:`kubeft_trainer.__main__` turns them into the exit code the
Job's podFailurePolicy matches and the `{"result": "Failed", "reason": ...}` termination message.
"""

from __future__ import annotations

from kubeft_operator.api import contract

# The codes and what the operator does with each live in the contract (api/contract.py).
EXIT_OK = contract.EXIT_OK
EXIT_USER_ERROR = contract.EXIT_USER_ERROR
EXIT_DIVERGED = contract.EXIT_DIVERGED
EXIT_GPU_UNAVAILABLE = contract.EXIT_GPU_UNAVAILABLE
EXIT_PREEMPTED = contract.EXIT_PREEMPTED
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


class OutputFailed(TrainerError):
    """Writing checkpoints or the adapter failed. Retried unless `permanent` (exit 1, or 64)."""

    reason = "OutputFailed"

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        if permanent:
            self.exit_code = EXIT_USER_ERROR
