"""The FineTuneJob status: what the operator (and, for `progress`, the trainer) reports.

Written by :mod:`kubeft_operator.status` (phase, conditions, artifact) and by the trainer's
progress reporter (``progress``, ``metrics``, ``dataset``), each through its own field manager.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from kubeft_operator.api.base import ApiModel


class Phase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED.value, Phase.FAILED.value})


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    type: str = Field(description="Created, Queued, Running, Suspended, Succeeded or Failed.")
    status: str = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase machine-readable reason.")
    message: str = Field(default="", description="What happened, and what to do about it.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(default=None, description="Spec generation this was computed from.")


class Progress(ApiModel):
    """Live training progress, reported by the trainer."""

    step: int = Field(default=0, description="Optimizer steps done.")
    total_steps: int | None = Field(default=None, description="Optimizer steps planned.")
    epoch: float | None = Field(default=None, description="Epochs done (fractional).")
    percent: int | None = Field(default=None, description="step / totalSteps, in percent.")
    loss: float | None = Field(default=None, description="Latest training loss.")
    eta_seconds: int | None = Field(default=None, description="Estimated seconds left.")
    eta: str | None = Field(default=None, description="Estimated time left, human readable.")
    summary: str | None = Field(default=None, description="`step/total (percent%)`, for kubectl get.")
    last_checkpoint_step: int | None = Field(default=None, description="Step of the latest durable checkpoint.")
    start_step: int | None = Field(
        default=None,
        description="Step the current trainer pod started from: 0 for a fresh start, else the step of this "
        "run's own checkpoint it resumed (a retry, a resume after suspend or preemption).",
    )
    updated_at: str | None = Field(default=None, description="When the trainer last reported (RFC 3339).")


class LengthBucket(ApiModel):
    """One bucket of the token-length histogram: records of at most `upTo` tokens, above the previous bucket."""

    up_to: int | None = Field(default=None, description="Upper bound in tokens; left out for the open last bucket.")
    count: int = Field(description="Training records in this bucket.")


class TokenLengths(ApiModel):
    """Token lengths of the training records before truncation."""

    max_length: int = Field(description="spec.dataset.maxLength: longer records are truncated to it.")
    truncated: int = Field(description="Training records longer than maxLength.")
    truncated_fraction: float = Field(description="truncated / records used, 0 to 1.")
    p50: int = Field(description="Median length in tokens.")
    p95: int = Field(description="95th percentile length in tokens.")
    max: int = Field(description="Longest record in tokens.")
    histogram: list[LengthBucket] = Field(
        default_factory=list, description="Records per fixed bucket (powers of two), first to last non-empty one."
    )


class DatasetSummary(ApiModel):
    """The dataset preflight, reported by the trainer after tokenizing and before loading the model."""

    result: str = Field(description="Passed, Warning (see warnings) or Failed (a spec.dataset.preflight threshold).")
    records_read: int = Field(
        description="Training records read from spec.dataset.source (after the validation split)."
    )
    records_used: int = Field(description="Training records left to train on.")
    validation_records: int | None = Field(default=None, description="Validation records, when there are any.")
    dropped: dict[str, int] | None = Field(default=None, description="Training records dropped, per reason.")
    token_lengths: TokenLengths | None = Field(default=None, description="Token-length histogram and truncation.")
    labels: dict[str, int] | None = Field(
        default=None, description="Training records per class (SEQ_CLS), the most frequent 20 classes."
    )
    warnings: list[str] | None = Field(default=None, description="What looks wrong, without failing the run.")
    message: str | None = Field(default=None, description="Why the preflight failed, and what to do.")
    report_uri: str | None = Field(
        default=None, description="The full report (JSON): the run prefix in S3, or a local path without one."
    )
    checked_at: str | None = Field(default=None, description="When the trainer wrote this (RFC 3339).")


class FitEstimate(ApiModel):
    """Memory each GPU needs, estimated at admission from spec.model.config (api/estimate.py)."""

    total_gib: float = Field(description="Estimated peak per GPU, GiB: the sum of the parts below.")
    weights_gib: float = Field(description="Base model weights, in the load dtype or quantized.")
    adapter_gib: float = Field(description="Trainable parameters with their gradients and AdamW state (fp32).")
    activations_gib: float = Field(description="Activations kept for the backward pass, and the logits.")
    overhead_gib: float = Field(description="CUDA context and allocator allowance.")
    trainable_params: int = Field(description="Parameters the method trains.")
    sharded_over: int | None = Field(
        default=None,
        description="With FSDP (spec.training.parallelism): the processes that weights, adapter and optimizer state "
        "are split over, already divided out of weightsGib and adapterGib; left out when each GPU holds a replica.",
    )
    gpu_memory_gib: float | None = Field(
        default=None,
        description="Memory of one of the job's GPUs, as the operator declares it (chart value trainer.gpuMemoryGiB); "
        "left out when it declares none for them.",
    )
    gpu: str | None = Field(
        default=None, description="Which declaration gpuMemoryGib came from: a node label=value or a resource name."
    )


class Artifact(ApiModel):
    """The exported adapter."""

    uri: str = Field(description="Where the adapter is: s3://... or hf://org/name.")
    size_bytes: int | None = Field(default=None, description="Total size of the adapter files.")
    sha256: str | None = Field(default=None, description="sha256 of manifest.json, which lists every file's sha256.")
    hub_uri: str | None = Field(default=None, description="Hub location, when pushed to the Hub as well.")


class Children(ApiModel):
    """Objects the operator created for this run."""

    config_map: str | None = Field(default=None, description="ConfigMap holding the rendered trainer config.")
    job: str | None = Field(default=None, description="batch/v1 Job running the trainer.")
    service_account: str | None = Field(default=None, description="ServiceAccount the trainer runs as.")


class FineTuneJobStatus(ApiModel):
    """Observed state of a FineTuneJob."""

    phase: Phase | None = Field(default=None, description="Pending, Queued, Running, Suspended, Succeeded or Failed.")
    conditions: list[Condition] = Field(default_factory=list, description="Detailed conditions.")
    observed_generation: int | None = Field(default=None, description="Last spec generation acted upon.")
    start_time: str | None = Field(default=None, description="When training started.")
    completion_time: str | None = Field(default=None, description="When the run finished.")
    progress: Progress | None = Field(default=None, description="Live training progress.")
    metrics: dict[str, float] | None = Field(default=None, description="Latest training and evaluation metrics.")
    dataset: DatasetSummary | None = Field(
        default=None, description="The dataset preflight: records used and dropped, token lengths, labels."
    )
    estimate: FitEstimate | None = Field(
        default=None, description="Estimated GPU memory per GPU, from spec.model.config; see condition Fits."
    )
    artifact: Artifact | None = Field(default=None, description="The exported adapter.")
    tensorboard_uri: str | None = Field(default=None, description="Where TensorBoard event files are streamed.")
    run_uri: str | None = Field(
        default=None,
        description="This run's own prefix beside the output: checkpoints/ (deleted after a successful export "
        "unless spec.output.keepCheckpoints) and, by default, tensorboard/.",
    )
    resumed_from: str | None = Field(
        default=None, description="The adapter or checkpoint whose weights this run started from (spec.resumeFrom)."
    )
    children: Children | None = Field(default=None, description="Names of the child objects.")
    retries: int | None = Field(default=None, description="Trainer pods that failed and were retried.")
