"""status.compute: a table of observed states -> phase and conditions, then the finer rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kubeft_operator import status
from tests.unit.operator import factories
from tests.unit.operator.factories import job, job_condition, pod, terminated

SUCCESS_REPORT = {
    "result": "Succeeded",
    "step": 5,
    "artifact": {"uri": "s3://bucket/prefix", "sizeBytes": 123, "sha256": "abc"},
    "metrics": {"train_loss": 1.5, "eval_loss": 1.75},
}
QUEUED = {"scheduling": {"queueName": "team-nlp"}}


def observe(
    *,
    spec_patch: dict[str, Any] | None = None,
    current: dict[str, Any] | None = None,
    job_body: dict[str, Any] | None = None,
    pods: list[dict[str, Any]] | None = None,
    create_error: str | None = None,
) -> status.Observed:
    return status.Observed(
        name="demo",
        generation=1,
        status=current or {},
        spec=factories.spec(**(spec_patch or {})),
        job=job_body,
        pods=pods or [],
        create_error=create_error,
    )


def conditions(result: status.Result) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result.status.get("conditions", [])}


ROWS = [
    pytest.param(
        {"create_error": "creating Job team-a/demo-train: forbidden"},
        "Pending",
        {"Created": ("False", "CreateFailed")},
        id="children-creation-failed",
    ),
    pytest.param(
        {"job_body": job()},
        "Pending",
        {"Created": ("True", "ChildrenCreated"), "Running": ("False", "Starting")},
        id="job-created-no-pod-yet",
    ),
    pytest.param(
        {"job_body": job(), "pods": [pod("Pending")]},
        "Pending",
        {"Created": ("True", "ChildrenCreated"), "Running": ("False", "Starting")},
        id="pod-pending",
    ),
    pytest.param(
        {
            "job_body": job(),
            "pods": [
                pod(
                    "Pending",
                    waiting={"reason": "CreateContainerConfigError", "message": 'secret "s3-creds" not found'},
                )
            ],
        },
        "Pending",
        {"Created": ("True", "ChildrenCreated"), "Running": ("False", "CreateContainerConfigError")},
        id="missing-secret",
    ),
    pytest.param(
        {"job_body": job(), "pods": [pod("Pending", unschedulable="0/1 nodes have nvidia.com/gpu")]},
        "Pending",
        {"Created": ("True", "ChildrenCreated"), "Running": ("False", "Unschedulable")},
        id="unschedulable",
    ),
    pytest.param(
        {"job_body": job(), "pods": [pod("Running")]},
        "Running",
        {"Created": ("True", "ChildrenCreated"), "Running": ("True", "TrainerRunning")},
        id="running",
    ),
    pytest.param(
        {"spec_patch": QUEUED, "job_body": job(suspend=True)},
        "Queued",
        {
            "Created": ("True", "ChildrenCreated"),
            "Queued": ("True", "WaitingForAdmission"),
            "Running": ("False", "Queued"),
        },
        id="queued-in-kueue",
    ),
    pytest.param(
        {
            "spec_patch": QUEUED,
            "current": {
                "phase": "Queued",
                "conditions": [
                    {
                        "type": "Queued",
                        "status": "True",
                        "reason": "W",
                        "message": "",
                        "lastTransitionTime": factories.EARLIER,
                    }
                ],
            },
            "job_body": job(),
            "pods": [pod("Running")],
        },
        "Running",
        {
            "Created": ("True", "ChildrenCreated"),
            "Queued": ("False", "Admitted"),
            "Running": ("True", "TrainerRunning"),
        },
        id="admitted-by-kueue",
    ),
    pytest.param(
        {"spec_patch": {"suspend": True}, "job_body": job(suspend=True)},
        "Suspended",
        {
            "Created": ("True", "ChildrenCreated"),
            "Suspended": ("True", "SuspendedByUser"),
            "Running": ("False", "Suspended"),
        },
        id="suspended-by-user",
    ),
    pytest.param(
        {"job_body": job(suspend=True)},
        "Pending",
        {"Created": ("True", "ChildrenCreated"), "Running": ("False", "Resuming")},
        id="resuming",
    ),
    pytest.param(
        {
            "job_body": job(conditions=[job_condition("Complete")], completionTime=factories.EARLIER),
            "pods": [pod("Succeeded", terminated=terminated(0, SUCCESS_REPORT))],
        },
        "Succeeded",
        {
            "Created": ("True", "ChildrenCreated"),
            "Running": ("False", "Completed"),
            "Succeeded": ("True", "AdapterExported"),
        },
        id="succeeded",
    ),
    pytest.param(
        {
            "job_body": job(conditions=[job_condition("Failed", "PodFailurePolicy")], failed=1),
            "pods": [
                pod(
                    "Failed",
                    terminated=terminated(
                        64, {"result": "Failed", "reason": "DatasetNotFound", "message": "no such file"}
                    ),
                )
            ],
        },
        "Failed",
        {"Created": ("True", "ChildrenCreated"), "Running": ("False", "Failed"), "Failed": ("True", "DatasetNotFound")},
        id="config-error",
    ),
    pytest.param(
        {"job_body": job(conditions=[job_condition("Failed", "DeadlineExceeded", "Job was active longer")])},
        "Failed",
        {
            "Created": ("True", "ChildrenCreated"),
            "Running": ("False", "Failed"),
            "Failed": ("True", "DeadlineExceeded"),
        },
        id="deadline-exceeded",
    ),
]


@pytest.mark.parametrize(("observed", "want_phase", "want_conditions"), ROWS)
def test_observed_state_maps_to_phase_and_conditions(observed, want_phase, want_conditions):
    result = status.compute(observe(**observed), now=factories.NOW)
    assert result.status["phase"] == want_phase
    assert conditions(result) == want_conditions


def test_success_reports_artifact_metrics_and_times():
    result = status.compute(
        observe(
            job_body=job(
                conditions=[job_condition("Complete")],
                completionTime="2026-01-01T00:05:00Z",
                startTime="2026-01-01T00:01:00Z",
            ),
            pods=[pod("Succeeded", terminated=terminated(0, SUCCESS_REPORT))],
        ),
        now=factories.NOW,
    )
    assert result.status["artifact"] == {"uri": "s3://bucket/prefix", "sizeBytes": 123, "sha256": "abc"}
    assert result.status["metrics"] == {"train_loss": 1.5, "eval_loss": 1.75}
    assert result.status["startTime"] == "2026-01-01T00:01:00Z"
    assert result.status["completionTime"] == "2026-01-01T00:05:00Z"


def test_failure_carries_the_trainer_reason_and_message():
    report = {"result": "Failed", "reason": "TargetModulesNotFound", "message": "no q_proj; modules are: c_attn"}
    result = status.compute(
        observe(
            job_body=job(conditions=[job_condition("Failed", "PodFailurePolicy")], failed=1),
            pods=[pod("Failed", terminated=terminated(64, report))],
        ),
        now=factories.NOW,
    )
    failed = next(c for c in result.status["conditions"] if c["type"] == "Failed")
    assert (failed["reason"], failed["message"]) == ("TargetModulesNotFound", "no q_proj; modules are: c_attn")


def test_a_pod_without_usable_gpus_fails_the_run_at_once_with_what_the_trainer_saw():
    """Exit 66 (GPUUnavailable) is in the Job's FailJob rule, so one failed pod ends the run."""
    seen = (
        "spec.resources.gpus is 2, but only 1 CUDA device(s) are visible; check the device plugin on the node. "
        "Seen: NVIDIA driver 580.65.06, torch built for CUDA 13.2, 1 CUDA device(s) visible, "
        "CUDA_VISIBLE_DEVICES=unset, NVIDIA_VISIBLE_DEVICES=GPU-1"
    )
    report = {"result": "Failed", "reason": "GPUUnavailable", "message": seen}
    result = status.compute(
        observe(
            job_body=job(conditions=[job_condition("Failed", "PodFailurePolicy")], failed=1),
            pods=[pod("Failed", terminated=terminated(66, report))],
        ),
        now=factories.NOW,
    )
    assert result.status["phase"] == "Failed"
    failed = next(c for c in result.status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"], failed["message"]) == ("True", "GPUUnavailable", seen)


def test_a_log_tail_in_the_failure_loses_its_credentials():
    tail = "Traceback ...\nClientError: key AKIAIOSFODNN7EXAMPLE, aws_secret_access_key=wJalrXUtnFEMIK7"
    result = status.compute(
        observe(
            job_body=job(conditions=[job_condition("Failed", "BackoffLimitExceeded")], failed=4),
            pods=[pod("Failed", terminated=terminated(1, tail))],
        ),
        now=factories.NOW,
    )
    failed = next(c for c in result.status["conditions"] if c["type"] == "Failed")
    assert "AKIAIOSFODNN7EXAMPLE" not in failed["message"] and "wJalrXUtnFEMIK7" not in failed["message"]
    assert "key [REDACTED], aws_secret_access_key=[REDACTED]" in failed["message"]
    (event,) = [e for e in status.transitions({}, result.status) if e.reason == "Failed"]
    assert "AKIAIOSFODNN7EXAMPLE" not in event.message and "[REDACTED]" in event.message


@pytest.mark.parametrize(
    ("term", "want_reason"),
    [
        (terminated(64, "not json at all"), "InvalidConfig"),
        (terminated(65), "Diverged"),
        (terminated(66), "GPUUnavailable"),
        (terminated(137, reason="OOMKilled"), "OOMKilled"),
        (terminated(1, "Traceback ..."), "Error"),
    ],
)
def test_failure_without_a_report_is_named_after_the_exit(term, want_reason):
    result = status.compute(
        observe(
            job_body=job(conditions=[job_condition("Failed", "BackoffLimitExceeded")], failed=4),
            pods=[pod("Failed", terminated=term)],
        ),
        now=factories.NOW,
    )
    failed = next(c for c in result.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == want_reason
    assert f"exited with code {term['exitCode']}" in failed["message"]


def test_retries_exhausted_says_how_many_attempts_were_made():
    report = {"result": "Failed", "reason": "Error", "message": "CUDA error"}
    result = status.compute(
        observe(
            job_body=job(conditions=[job_condition("Failed", "BackoffLimitExceeded")], failed=4),
            pods=[pod("Failed", terminated=terminated(1, report))],
        ),
        now=factories.NOW,
    )
    failed = next(c for c in result.status["conditions"] if c["type"] == "Failed")
    assert failed["message"] == "CUDA error (gave up after 4 failed attempts; retryLimit is 3)"
    assert result.status["retries"] == 4


def test_finished_job_waits_briefly_for_the_pod_that_carries_the_report():
    just_now = "2026-01-01T00:09:57Z"
    result = status.compute(
        observe(current={"phase": "Running"}, job_body=job(conditions=[job_condition("Complete", at=just_now)])),
        now=factories.NOW,
    )
    assert result.status == {"phase": "Running"}
    assert result.requeue_after == pytest.approx(7.0)


def test_finished_job_without_its_pod_succeeds_after_the_grace_period():
    result = status.compute(
        observe(job_body=job(conditions=[job_condition("Complete")])),
        now=factories.NOW,
    )
    assert result.status["phase"] == "Succeeded"
    assert conditions(result)["Succeeded"] == ("True", "TrainerSucceeded")


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_terminal_status_never_changes_even_when_the_job_is_gone(phase):
    current = {"phase": phase, "conditions": [], "completionTime": factories.EARLIER}
    result = status.compute(observe(current=current, job_body=None), now=factories.NOW)
    assert result.status == current
    assert status.changes(current, result.status) == {}


def test_transition_time_is_kept_while_the_condition_status_holds():
    first = status.compute(observe(job_body=job(), pods=[pod("Running")]), now=factories.EARLIER)
    later = status.compute(observe(current=first.status, job_body=job(), pods=[pod("Running")]), now=factories.NOW)
    assert later.status["conditions"] == first.status["conditions"]
    assert status.changes(first.status, later.status) == {}


def test_transition_time_moves_when_the_condition_flips():
    first = status.compute(observe(job_body=job()), now=factories.EARLIER)
    later = status.compute(observe(current=first.status, job_body=job(), pods=[pod("Running")]), now=factories.NOW)
    running = next(c for c in later.status["conditions"] if c["type"] == "Running")
    created = next(c for c in later.status["conditions"] if c["type"] == "Created")
    assert running["lastTransitionTime"] == factories.NOW
    assert created["lastTransitionTime"] == factories.EARLIER


def test_run_stays_running_between_retries():
    current = status.compute(observe(job_body=job(), pods=[pod("Running")]), now=factories.EARLIER).status
    between = status.compute(
        observe(current=current, job_body=job(failed=1), pods=[pod("Failed", terminated=terminated(1))]),
        now=factories.NOW,
    )
    assert between.status["phase"] == "Running"
    assert between.status["retries"] == 1


def test_missing_secret_message_names_the_secret():
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "s3-creds" not found'}
    result = status.compute(observe(job_body=job(), pods=[pod("Pending", waiting=waiting)]), now=factories.NOW)
    running = next(c for c in result.status["conditions"] if c["type"] == "Running")
    assert "s3-creds" in running["message"]


def test_pods_of_an_earlier_job_are_ignored():
    result = status.compute(observe(job_body=job(), pods=[pod("Running", job_uid="old-job")]), now=factories.NOW)
    assert result.status["phase"] == "Pending"


def test_invalid_spec_fails_the_run_with_the_reason():
    observed = status.Observed(name="demo", generation=1, status={}, spec=None, spec_error="spec.task: bad")
    result = status.compute(observed, now=factories.NOW)
    assert result.status["phase"] == "Failed"
    assert conditions(result) == {"Failed": ("True", "InvalidSpec")}


def test_status_never_includes_progress():
    current = {"phase": "Running", "progress": {"step": 3}}
    result = status.compute(observe(current=current, job_body=job(), pods=[pod("Running")]), now=factories.NOW)
    assert "progress" not in result.status
    assert "progress" not in status.changes(current, result.status)


def test_run_prefix_and_tensorboard_sit_beside_the_s3_output():
    observed = dataclasses.replace(observe(), uid="u-1")
    result = status.compute(observed, now=factories.NOW)
    assert result.status["runUri"] == "s3://bucket/.kubeft-runs/prefix/u-1"
    assert result.status["tensorboardUri"] == "s3://bucket/.kubeft-runs/prefix/u-1/tensorboard"


def test_waiting_for_the_resume_source_is_pending_and_polled():
    observed = dataclasses.replace(observe(), waiting="waiting for FineTuneJob a (now Running) to finish")
    result = status.compute(observed, now=factories.NOW)
    assert result.status["phase"] == "Pending"
    assert conditions(result)["Created"] == ("False", "WaitingForResumeSource")
    assert result.requeue_after == status.RESUME_POLL_SECONDS


@pytest.mark.parametrize(
    ("current", "ttl", "want_remaining"),
    [
        ({"phase": "Succeeded", "completionTime": factories.EARLIER}, 60, -540.0),
        ({"phase": "Failed", "completionTime": factories.EARLIER}, 3600, 3000.0),
        ({"phase": "Succeeded", "completionTime": factories.EARLIER}, None, None),
        ({"phase": "Running"}, 60, None),
    ],
)
def test_ttl_counts_from_completion(current, ttl, want_remaining):
    spec = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    assert status.ttl_remaining(current, spec, now=factories.NOW) == want_remaining
