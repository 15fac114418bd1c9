"""status.compute with spec.promotion: the Promoted condition, and Succeeded whichever way the gate went."""

from __future__ import annotations

from typing import Any

from kubeft_operator import config, status
from kubeft_operator.builders import meta, verify
from tests.unit.operator import factories
from tests.unit.operator.factories import job, job_condition, pod, terminated

GATE = {
    "promotion": {"thresholds": [{"metric": "eval_loss", "max": 2.5}]},
    "dataset": {"source": "/data/train.jsonl", "fields": {"text": "text"}, "validationFraction": 0.1},
}
RUN_ADAPTER = "s3://bucket/.kubeft-runs/prefix/uid-1/adapter"


def finished(report: dict[str, Any], *, spec_patch: dict[str, Any] | None = None) -> status.Result:
    observed = status.Observed(
        name="demo",
        generation=1,
        status={},
        spec=factories.spec(**(GATE if spec_patch is None else spec_patch)),
        job=job(conditions=[job_condition("Complete")], completionTime="2026-01-01T00:05:00Z"),
        pods=[pod("Succeeded", terminated=terminated(0, report))],
        uid="uid-1",
    )
    return status.compute(observed, now=factories.NOW)


def condition(result: status.Result, type_: str) -> dict[str, Any]:
    return next(c for c in result.status["conditions"] if c["type"] == type_)


def report(*, promoted: bool, uri: str, message: str) -> dict[str, Any]:
    return {
        "result": "Succeeded",
        "step": 5,
        "artifact": {"uri": uri, "sizeBytes": 10, "sha256": "abc"},
        "metrics": {"eval_loss": 3.0 if not promoted else 2.0},
        "promotion": {"promoted": promoted, "message": message, "checks": []},
    }


def test_a_passed_gate_is_promoted_with_its_numbers():
    result = finished(
        report(
            promoted=True, uri="s3://bucket/prefix", message="promoted to s3://bucket/prefix: eval_loss 2 <= 2.5 passed"
        )
    )
    promoted = condition(result, "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("True", "GatePassed")
    assert "eval_loss 2 <= 2.5 passed" in promoted["message"]
    assert result.status["artifact"]["uri"] == "s3://bucket/prefix"


def test_a_failed_gate_still_succeeds_and_points_at_the_run_prefix():
    message = f"not promoted, spec.output left untouched: eval_loss 3 <= 2.5 failed; the adapter stays at {RUN_ADAPTER}"
    result = finished(report(promoted=False, uri=RUN_ADAPTER, message=message))
    promoted = condition(result, "Promoted")
    assert (promoted["status"], promoted["reason"], promoted["message"]) == ("False", "GateFailed", message)
    assert result.status["phase"] == "Succeeded"
    assert result.status["artifact"]["uri"] == RUN_ADAPTER
    assert "not promoted" in condition(result, "Succeeded")["message"]


def test_a_trainer_that_reports_no_decision_is_not_promoted():
    result = finished({"result": "Succeeded", "artifact": {"uri": RUN_ADAPTER}})
    assert condition(result, "Promoted")["reason"] == "GateNotReported"


def test_without_a_gate_there_is_no_promoted_condition():
    result = finished({"result": "Succeeded", "artifact": {"uri": "s3://bucket/prefix"}}, spec_patch={})
    assert all(c["type"] != "Promoted" for c in result.status["conditions"])


def test_the_gate_verdict_becomes_an_event():
    result = finished(report(promoted=False, uri=RUN_ADAPTER, message="not promoted: eval_loss 3 <= 2.5 failed"))
    events = status.transitions({}, result.status)
    assert status.Event("Warning", "NotPromoted", "not promoted: eval_loss 3 <= 2.5 failed") in events


def verified_run(trainer_report: dict[str, Any]) -> status.Observed:
    """A custom-image run with a gate whose trainer finished, and whose NAME-verify Job measured the artifact."""
    spec = factories.spec(image="registry.example/team/trainer:1", **GATE)
    uri = trainer_report["artifact"]["uri"]
    verifier = pod(
        "Succeeded",
        name="demo-verify-x",
        job_uid="verify-uid",
        terminated=terminated(0, {"result": "Succeeded", "artifact": {"uri": uri, "sizeBytes": 10, "sha256": "abc"}}),
    )
    verifier["status"]["containerStatuses"][0]["name"] = meta.VERIFY_CONTAINER
    verify_body = job(uid="verify-uid", conditions=[job_condition("Complete")])
    verify_body["metadata"]["name"] = meta.verify_job_name("demo")
    return status.Observed(
        name="demo",
        generation=1,
        status={"phase": "Running", "startTime": factories.EARLIER},
        spec=spec,
        job=job(conditions=[job_condition("Complete")]),
        pods=[pod("Succeeded", terminated=terminated(0, trainer_report)), verifier],
        uid="uid-1",
        verify_reason=verify.reason(spec, config.Settings()),
        verify_job=verify_body,
    )


def test_the_operator_verifies_an_unpromoted_adapter_at_the_run_prefix():
    observed = verified_run(report(promoted=False, uri=RUN_ADAPTER, message="not promoted: eval_loss 3 <= 2.5 failed"))
    assert status.verify_target(observed) == (RUN_ADAPTER, "abc")
    result = status.compute(observed, now=factories.NOW)
    assert result.status["phase"] == "Succeeded"
    assert result.status["artifact"]["uri"] == RUN_ADAPTER
    assert condition(result, "Verified")["status"] == "True"
    assert condition(result, "Promoted")["reason"] == "GateFailed"


def test_a_claimed_promotion_whose_artifact_is_not_at_the_output_is_not_believed():
    claimed = report(
        promoted=True, uri=RUN_ADAPTER, message="promoted to s3://bucket/prefix: eval_loss 2 <= 2.5 passed"
    )
    result = status.compute(verified_run(claimed), now=factories.NOW)
    promoted = condition(result, "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", "ArtifactNotAtOutput")
    assert RUN_ADAPTER in promoted["message"]
