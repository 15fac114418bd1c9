"""The operator verifies the adapter itself when the trainer ran unvetted code; it never takes its word."""

from __future__ import annotations

import dataclasses
from typing import Any

from kubeft_operator import config, status
from kubeft_operator.builders import meta, verify
from tests.unit.operator import factories

SETTINGS = config.Settings()
CLAIM = {"uri": "s3://bucket/prefix", "sizeBytes": 10, "sha256": "a" * 64}
CUSTOM = {"image": "registry.example/team/trainer:1"}


def trainer_done(artifact: dict[str, Any] | None = CLAIM) -> tuple[dict[str, Any], dict[str, Any]]:
    job = factories.job(conditions=[factories.job_condition("Complete")])
    report = {"result": "Succeeded", "step": 5, "metrics": {"eval_loss": 1.0}, "artifact": artifact}
    return job, factories.pod("Succeeded", terminated=factories.terminated(0, report, reason="Completed"))


def verify_job(*conditions: dict[str, Any]) -> dict[str, Any]:
    body = factories.job(uid="verify-uid", conditions=list(conditions))
    body["metadata"]["name"] = meta.verify_job_name("demo")
    return body


def verify_pod(phase: str, report: dict[str, Any], code: int) -> dict[str, Any]:
    pod = factories.pod(
        phase, name="demo-verify-x", job_uid="verify-uid", terminated=factories.terminated(code, report)
    )
    pod["status"]["containerStatuses"][0]["name"] = meta.VERIFY_CONTAINER
    return pod


def observe(spec_patch: dict[str, Any], *, verify_body: dict[str, Any] | None = None, pods=()) -> status.Observed:
    spec = factories.spec(**spec_patch)
    job, trainer_pod = trainer_done()
    return status.Observed(
        name="demo",
        generation=1,
        status={"phase": "Running", "startTime": factories.EARLIER},
        spec=spec,
        job=job,
        pods=[trainer_pod, *pods],
        uid="uid-1",
        verify_reason=verify.reason(spec, SETTINGS),
        verify_job=verify_body,
    )


def test_only_unvetted_trainers_are_verified() -> None:
    assert verify.reason(factories.spec(), SETTINGS) is None
    assert verify.reason(factories.spec(image=SETTINGS.trainer_image), SETTINGS) is None
    assert "registry.example/team/trainer:1" in str(verify.reason(factories.spec(**CUSTOM), SETTINGS))
    assert "trustRemoteCode" in str(verify.reason(factories.spec(model={"trustRemoteCode": True}), SETTINGS))


def test_the_verify_job_runs_the_operators_image_with_no_token_and_only_storage_secrets() -> None:
    spec = factories.spec(
        **CUSTOM, storage={"credentialsSecretRef": {"name": "s3"}}, model={"tokenSecretRef": {"name": "hf"}}
    )
    body = verify.build(factories.OWNER, spec, settings=SETTINGS, uri=CLAIM["uri"], sha256=CLAIM["sha256"])
    pod = body["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == SETTINGS.trainer_image != spec.image
    assert container["command"][:3] == ["python", "-m", "kubeft_trainer.export.verify"]
    assert container["command"][-4:] == ["--uri", CLAIM["uri"], "--sha256", CLAIM["sha256"]]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secrets == {"s3"}
    assert body["metadata"]["name"] == "demo-verify"
    assert meta.is_owned_by(body, factories.OWNER.uid)
    assert body["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [64, 65, 66]


def test_the_verify_pod_pulls_with_the_trainer_pull_secrets() -> None:
    settings = dataclasses.replace(SETTINGS, trainer_image_pull_secrets=("registry",))
    spec = factories.spec(**CUSTOM)
    body = verify.build(factories.OWNER, spec, settings=settings, uri=CLAIM["uri"], sha256=CLAIM["sha256"])
    assert body["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry"}]


def test_a_custom_image_run_is_not_succeeded_until_verified() -> None:
    observed = observe(CUSTOM)
    assert status.verify_target(observed) == (CLAIM["uri"], CLAIM["sha256"])
    result = status.compute(observed, now=factories.NOW)
    assert result.status["phase"] == "Running"
    verified = {c["type"]: c for c in result.status["conditions"]}["Verified"]
    assert (verified["status"], verified["reason"]) == ("False", "Verifying")
    assert "artifact" not in result.status


def test_the_verifiers_measurement_is_the_artifact_not_the_trainers_claim() -> None:
    measured = {"uri": CLAIM["uri"], "sizeBytes": 99, "sha256": "b" * 64}
    pods = [verify_pod("Succeeded", {"result": "Succeeded", "artifact": measured}, 0)]
    observed = observe(CUSTOM, verify_body=verify_job(factories.job_condition("Complete")), pods=pods)
    result = status.compute(observed, now=factories.NOW)
    assert result.status["phase"] == "Succeeded"
    assert result.status["artifact"] == measured
    conditions = {c["type"]: (c["status"], c["reason"]) for c in result.status["conditions"]}
    assert conditions["Verified"] == ("True", "ArtifactVerified")
    assert conditions["Succeeded"] == ("True", "AdapterExported")


def test_a_forged_result_fails_with_the_verifiers_reason() -> None:
    report = {"result": "Failed", "reason": "ArtifactUnverified", "message": "s3://bucket/prefix has no manifest.json"}
    pods = [verify_pod("Failed", report, 64)]
    observed = observe(CUSTOM, verify_body=verify_job(factories.job_condition("Failed")), pods=pods)
    result = status.compute(observed, now=factories.NOW)
    assert result.status["phase"] == "Failed"
    failed = {c["type"]: c for c in result.status["conditions"]}["Failed"]
    assert failed["reason"] == "ArtifactUnverified" and "no manifest.json" in failed["message"]
    assert "artifact" not in result.status


def test_the_operators_own_image_is_trusted_as_before() -> None:
    observed = observe({})
    assert status.verify_target(observed) is None
    assert status.compute(observed, now=factories.NOW).status["artifact"] == CLAIM


def test_a_hub_only_result_is_not_verified_by_kubeft() -> None:
    observed = observe(CUSTOM)
    job, pod = trainer_done({"uri": "hf://org/adapter", "sha256": "c" * 64})
    observed = dataclasses.replace(observed, job=job, pods=[pod])
    assert status.verify_target(observed) is None
