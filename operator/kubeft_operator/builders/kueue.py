"""Kueue's Workload of a queued trainer Job: how kubeft suspends and resumes it without fighting Kueue.

With a queue (``spec.scheduling.queueName``, or the operator's default queue, which
builders/defaults.py folds into the spec before this module sees it) the trainer Job is created
suspended and from then on Kueue is the only writer of its ``spec.suspend``: Kueue unsuspends it on
admission and suspends it again on preemption. Were kubeft to suspend an admitted Job itself, Kueue
would see an admitted workload whose Job is suspended and start it again, and the two would take
turns. So a user's ``spec.suspend`` goes through Kueue's own switch instead, the Workload's
``spec.active``: false evicts the workload (Kueue suspends the Job, the trainer checkpoints on
SIGTERM) and keeps it out of the queue; true queues it again. Kueue names the Workload after the
Job and labels it with the Job's uid; kubeft finds it by that label and checks the controller
ownerReference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubeft_operator.api import spec as spec_models

GROUP = "kueue.x-k8s.io"
# Newest first: Kueue v0.15 and later serve v1beta2, older releases only v1beta1.
WORKLOAD_VERSIONS = (f"{GROUP}/v1beta2", f"{GROUP}/v1beta1")
JOB_UID_LABEL = f"{GROUP}/job-uid"


def queued(spec: spec_models.FineTuneJobSpec) -> bool:
    """Whether Kueue admits this job's Job (it names a LocalQueue)."""
    return spec.scheduling is not None and spec.scheduling.queue_name is not None


def workload_of(workloads: Sequence[Mapping[str, Any]], job_uid: str) -> Mapping[str, Any] | None:
    """The Workload that Kueue created for the Job with ``job_uid``, if it exists yet."""
    for workload in workloads:
        refs = workload.get("metadata", {}).get("ownerReferences") or []
        if any(ref.get("uid") == job_uid and ref.get("controller") for ref in refs):
            return workload
    return None


def active_patch(workload: Mapping[str, Any], *, active: bool) -> dict[str, Any] | None:
    """The merge patch that sets the Workload's ``spec.active`` (absent means true), if it differs."""
    return None if workload.get("spec", {}).get("active", True) == active else {"spec": {"active": active}}
