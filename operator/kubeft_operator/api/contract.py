"""The operator <-> trainer contract, stated once: config document, exit codes, dataset fields per task.

Who reads what (docs/DESIGN.md has the picture):

- the operator renders the trainer config document (``apiVersion``/``kind`` below, the spec in
  wire form, ``metadata`` name/namespace/uid, ``resumeFrom``) into the ConfigMap; the trainer
  (kubeft_trainer/config.py) and the fake trainer read it back;
- the operator sets :data:`PROGRESS_INTERVAL_ENV` on the trainer container, the trainer's least time
  between two progress patches;
- the trainer exits with one of :data:`EXIT_CODES`; the operator's Job fails at once on the
  non-retryable ones (``podFailurePolicy``, builders/job.py) and names the reason when a pod left
  no termination message (status.py);
- :data:`TASK_FIELDS` is what each task needs from ``spec.dataset.fields``: the CRD's CEL rules
  (api/spec.py), the trainer's own check of hand-written configs and the docs derive from it.

The spec and status models (api/spec.py, api/status.py), the progress report the trainer patches
(``api.status.Progress``) and where a run's files live (api/layout.py) complete the contract.
Pure constants; importable without pydantic.
"""

from __future__ import annotations

import dataclasses

GROUP = "kubeft.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TRAINER_CONFIG_KIND = "TrainerConfig"


@dataclasses.dataclass(frozen=True)
class ExitCode:
    code: int
    reason: str  # the termination reason the operator reports when the pod left no message
    retryable: bool  # retried (True) or fails the Job at once (False)
    meaning: str
    # Whether a retry counts toward spec.retryLimit. Only a pod that stopped because another pod of
    # its group did is not counted: the group restarts, and the pod that caused it counts once.
    counted: bool = True


EXIT_OK = 0
EXIT_INFRA = 1
EXIT_USER_ERROR = 64
EXIT_DIVERGED = 65
EXIT_GPU_UNAVAILABLE = 66
EXIT_PEER_STOPPED = 67
EXIT_PREEMPTED = 143

EXIT_CODES = (
    ExitCode(EXIT_OK, "Succeeded", False, "the adapter was exported"),
    ExitCode(EXIT_INFRA, "Error", True, "an infrastructure failure (network, storage, node); worth a retry"),
    ExitCode(EXIT_USER_ERROR, "InvalidConfig", False, "the spec, data, model or output cannot work as given"),
    ExitCode(EXIT_DIVERGED, "Diverged", False, "the loss became NaN/inf or ran away"),
    ExitCode(
        EXIT_GPU_UNAVAILABLE,
        "GPUUnavailable",
        False,
        "the pod asked for GPUs but CUDA is unusable or sees fewer devices (driver, device plugin or image)",
    ),
    ExitCode(
        EXIT_PEER_STOPPED,
        "PeerStopped",
        True,
        "another pod of a multi-node group was stopped (it saved the group's checkpoint) or was lost; this one "
        "restarts with the group, and only the pod that caused it counts toward retryLimit",
        counted=False,
    ),
    ExitCode(EXIT_PREEMPTED, "Preempted", True, "SIGTERM: a checkpoint was saved; the next attempt resumes from it"),
)
# Exit codes that fail the Job at once (the podFailurePolicy's FailJob rule).
NO_RETRY_EXIT_CODES = tuple(e.code for e in EXIT_CODES if not e.retryable and e.code != EXIT_OK)
# Exit codes whose retry does not count (the podFailurePolicy's Ignore rule of a multi-node Job).
UNCOUNTED_EXIT_CODES = tuple(e.code for e in EXIT_CODES if not e.counted)
# Reasons for failed pods without a termination message, by exit code.
EXIT_REASONS = {e.code: e.reason for e in EXIT_CODES if e.code not in (EXIT_OK, EXIT_INFRA)}

# The trainer patches its progress report (``api.status.Progress``) at most every this many seconds,
# and always on a checkpoint and at the end. The operator sets the variable on every trainer pod
# (chart: trainer.progressIntervalSeconds); the default keeps a FineTuneJob's status, its watchers
# and Argo CD from churning with every optimizer step.
PROGRESS_INTERVAL_ENV = "KUBEFT_PROGRESS_INTERVAL"
# spec.training.parallelism with `auto` decided by the operator (ddp or fsdp): it has the fit
# estimate and the GPU memory table; the trainer reads the variable first (kubeft_trainer/config.py).
PARALLELISM_ENV = "KUBEFT_PARALLELISM"
DEFAULT_PROGRESS_INTERVAL_SECONDS = 30.0

# Task -> the alternatives of `spec.dataset.fields` it needs (any one alternative, all of its fields).
TASK_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "CAUSAL_LM": (("text",), ("messages",), ("prompt", "completion")),
    "SEQ_2_SEQ_LM": (("prompt", "completion"),),
    "SEQ_CLS": (("text", "label"),),
    "TOKEN_CLS": (("tokens", "tags"),),
    "QUESTION_ANS": (("question", "context", "answer"),),
    "FEATURE_EXTRACTION": (("text", "pair"),),
}


def task_fields_message(task: str) -> str:
    """`task X needs spec.dataset.fields.a and spec.dataset.fields.b, or ...`, for the CEL rule and the trainer."""
    options = [" and ".join(f"spec.dataset.fields.{f}" for f in option) for option in TASK_FIELDS[task]]
    return f"task {task} needs " + ", or ".join(options)


def task_fields_rule(task: str) -> str:
    """The CEL rule on the spec that holds when `task` has the dataset fields it needs."""
    options = [" && ".join(f"has(self.dataset.fields.{f})" for f in option) for option in TASK_FIELDS[task]]
    return f"self.task != '{task}' || " + " || ".join(f"({o})" if "&&" in o else o for o in options)
