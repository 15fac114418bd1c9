"""What Kueue says about a queued job reaches its status: why it waits, where it was admitted, why it was preempted.

status.compute reads Kueue's Workload (status.workload_view of it) next to the Job; the Workloads
here are shaped like those of Kueue v0.17 (conditions QuotaReserved, Admitted, Evicted, Preempted;
``status.admission.clusterQueue`` while the Workload holds quota).
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeft_operator import status
from tests.unit.operator import factories
from tests.unit.operator.factories import job

NOW = "2026-01-01T00:10:00Z"
QUEUED = {"scheduling": {"queueName": "team-nlp"}}
PENDING = (
    "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor a100, "
    "1 more needed"
)
PREEMPTED = (
    "Preempted to accommodate a workload (UID: 0c5b, JobUID: 9f1e) due to prioritization in the ClusterQueue; "
    "preemptor path: /gpus; preemptee path: /gpus"
)


def _condition(type_: str, status_: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status_, "reason": reason, "message": message, "lastTransitionTime": NOW}


def workload(*conditions: dict[str, Any], cluster_queue: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": "job-demo-train-1a2b3", "namespace": "team-a"},
        "spec": {"queueName": "team-nlp", "active": True},
        "status": {"conditions": list(conditions), "requeueState": {"count": 1}},
    }
    if cluster_queue is not None:
        body["status"]["admission"] = {"clusterQueue": cluster_queue, "podSetAssignments": []}
    return body


WAITING = workload(_condition("QuotaReserved", "False", "Pending", PENDING))
ADMITTED = workload(
    _condition("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue gpus"),
    _condition("Admitted", "True", "Admitted", "The workload is admitted"),
    cluster_queue="gpus",
)
# Right after Kueue preempted it: the Job is suspended, its pods are stopping, quota still held.
PREEMPTED_STILL_HOLDING = workload(
    _condition("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue gpus"),
    _condition("Evicted", "True", "Preempted", PREEMPTED),
    _condition("Preempted", "True", "InClusterQueue", PREEMPTED),
    cluster_queue="gpus",
)
# Once its pods are gone: quota released, back in the queue, the eviction still on record.
PREEMPTED_REQUEUED = workload(
    _condition("QuotaReserved", "False", "Pending", PREEMPTED),
    _condition("Evicted", "True", "Preempted", PREEMPTED),
    _condition("Preempted", "True", "InClusterQueue", PREEMPTED),
)
EVICTED_FOR_TIMEOUT = workload(
    _condition("QuotaReserved", "False", "Pending", "Exceeded the PodsReady timeout"),
    _condition("Evicted", "True", "PodsReadyTimeout", "Exceeded the PodsReady timeout team-a/job-demo-train-1a2b3"),
)
# The user suspended (spec.active: false), then resumed: not Kueue's doing.
REACTIVATED = workload(
    _condition("QuotaReserved", "False", "Pending", PENDING),
    _condition("Evicted", "True", "Deactivated", "The workload is deactivated"),
)


def compute(body: dict[str, Any] | None, *, suspended: bool = True, current: dict[str, Any] | None = None) -> dict:
    observed = status.Observed(
        name="demo",
        generation=1,
        status=current or {},
        spec=factories.spec(**QUEUED),
        job=job(suspend=suspended),
        workload=status.workload_view(body) if body is not None else None,
    )
    return status.compute(observed, now=NOW).status


def condition(out: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in out["conditions"] if c["type"] == type_)


@pytest.mark.parametrize(
    ("body", "want_reason", "want_message", "want_running_reason"),
    [
        pytest.param(
            None,
            "WaitingForAdmission",
            "Job demo-train waits for Kueue to admit it from LocalQueue team-nlp",
            "Queued",
            id="no-workload-looked-up",
        ),
        pytest.param(
            WAITING,
            "WaitingForAdmission",
            f"Job demo-train waits for Kueue to admit it from LocalQueue team-nlp: {PENDING}",
            "Queued",
            id="waiting-for-quota-in-kueues-words",
        ),
        pytest.param(
            PREEMPTED_STILL_HOLDING,
            "Preempted",
            f"Kueue preempted Job demo-train (Preempted, InClusterQueue): {PREEMPTED}; it waits in LocalQueue "
            "team-nlp (ClusterQueue gpus) to be admitted again and resumes from its last checkpoint",
            "Preempted",
            id="preempted-names-its-cluster-queue-while-it-holds-quota",
        ),
        pytest.param(
            PREEMPTED_REQUEUED,
            "Preempted",
            f"Kueue preempted Job demo-train (Preempted, InClusterQueue): {PREEMPTED}; it waits in LocalQueue "
            "team-nlp to be admitted again and resumes from its last checkpoint",
            "Preempted",
            id="preempted-and-requeued",
        ),
        pytest.param(
            EVICTED_FOR_TIMEOUT,
            "Evicted",
            "Kueue evicted Job demo-train (PodsReadyTimeout): Exceeded the PodsReady timeout "
            "team-a/job-demo-train-1a2b3; it waits in LocalQueue team-nlp to be admitted again and resumes from "
            "its last checkpoint",
            "Evicted",
            id="evicted-for-another-reason",
        ),
        pytest.param(
            REACTIVATED,
            "WaitingForAdmission",
            f"Job demo-train waits for Kueue to admit it from LocalQueue team-nlp: {PENDING}",
            "Queued",
            id="a-deactivation-is-the-users-not-kueues",
        ),
    ],
)
def test_a_held_job_says_why_kueue_holds_it(body, want_reason, want_message, want_running_reason):
    out = compute(body)
    assert out["phase"] == "Queued"
    queued = condition(out, "Queued")
    assert (queued["status"], queued["reason"], queued["message"]) == ("True", want_reason, want_message)
    assert condition(out, "Running")["reason"] == want_running_reason


def test_admission_names_the_cluster_queue():
    waiting = compute(WAITING)
    out = compute(ADMITTED, suspended=False, current=waiting)
    queued = condition(out, "Queued")
    assert (queued["status"], queued["reason"]) == ("False", "Admitted")
    assert queued["message"] == "Kueue admitted Job demo-train in ClusterQueue gpus"


def test_admission_without_a_workload_says_only_that_kueue_admitted_it():
    out = compute(None, suspended=False, current=compute(None))
    assert condition(out, "Queued")["message"] == "Kueue admitted Job demo-train"


def test_preemption_posts_a_preempted_event_with_kueues_reason():
    running = compute(ADMITTED, suspended=False, current=compute(WAITING))
    running = {**running, "phase": "Running"}
    preempted = compute(PREEMPTED_STILL_HOLDING, current=running)
    (event,) = [e for e in status.transitions(running, preempted) if e.reason != "Started"]
    assert (event.type, event.reason) == ("Normal", "Preempted")
    assert "prioritization in the ClusterQueue" in event.message


def test_first_queueing_posts_a_queued_event():
    (event,) = [e for e in status.transitions({"phase": "Pending"}, compute(WAITING)) if e.reason != "Created"]
    assert event.reason == "Queued"
    assert PENDING in event.message


def test_the_queued_condition_keeps_its_transition_time_when_kueue_says_more():
    first = compute(None)
    later = compute(PREEMPTED_REQUEUED, current=first)
    assert condition(later, "Queued")["lastTransitionTime"] == condition(first, "Queued")["lastTransitionTime"]


def test_the_workload_view_keeps_only_what_status_reads():
    view = status.workload_view(PREEMPTED_STILL_HOLDING)
    assert view["status"]["admission"] == {"clusterQueue": "gpus"}
    assert [c["type"] for c in view["status"]["conditions"]] == ["QuotaReserved", "Evicted", "Preempted"]
    assert "lastTransitionTime" not in view["status"]["conditions"][0]
    assert "requeueState" not in view["status"]


@pytest.mark.parametrize(
    ("body", "want"),
    [(None, False), (workload(), False), (WAITING, True), (ADMITTED, True)],
    ids=["no-workload", "not-decided-yet", "pending", "admitted"],
)
def test_kueue_has_spoken_once_it_reserved_quota_or_said_why_not(body, want):
    assert status.kueue_has_spoken(status.workload_view(body) if body is not None else None) is want
