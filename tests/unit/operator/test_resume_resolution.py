"""spec.resumeFrom: a URI passes through; a job name becomes its adapter, its checkpoint, a wait, or a refusal."""

from __future__ import annotations

from typing import Any

from kubeft_operator.builders import resume
from tests.unit.operator import factories


def source(phase: str | None, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "first"}, "spec": factories.MINIMAL, "status": {"phase": phase, **status}}


def resolve(spec_patch: dict[str, Any], body: dict[str, Any] | None, **source_patch: Any) -> resume.Resolution:
    spec = factories.spec(**spec_patch)
    parsed = factories.spec(**source_patch) if body is not None else None
    return resume.resolve("second", "team-a", spec, source=body, source_spec=parsed)


JOB = {"resumeFrom": {"job": "first"}}


def test_no_resume_from_resolves_to_nothing() -> None:
    assert resume.resolve("second", "ns", factories.spec(), source=None, source_spec=None) == resume.Resolution()


def test_a_uri_is_passed_to_the_trainer_as_is() -> None:
    got = resolve({"resumeFrom": {"uri": "s3://bucket/adapters/old/"}}, None)
    assert got == resume.Resolution(uri="s3://bucket/adapters/old")


def test_a_succeeded_job_gives_its_exported_adapter() -> None:
    body = source("Succeeded", artifact={"uri": "s3://bucket/prefix", "sha256": "ab"})
    assert resolve(JOB, body) == resume.Resolution(uri="s3://bucket/prefix")


def test_a_failed_job_gives_its_latest_durable_checkpoint() -> None:
    body = source("Failed", runUri="s3://bucket/.kubeft-runs/prefix/u0", progress={"lastCheckpointStep": 40})
    assert resolve(JOB, body).uri == "s3://bucket/.kubeft-runs/prefix/u0/checkpoints/checkpoint-40"
    assert "without a durable checkpoint" in str(resolve(JOB, source("Failed")).refused)


def test_an_unfinished_job_is_waited_for() -> None:
    for phase in ("Running", "Pending", "Suspended", None):
        got = resolve(JOB, source(phase))
        assert got.uri is None and got.refused is None
        assert got.wait is not None and "first" in got.wait


def test_another_rank_is_refused_before_any_pod() -> None:
    body = source("Succeeded", artifact={"uri": "s3://bucket/prefix"})
    got = resolve({**JOB, "method": {"lora": {"r": 32}}}, body)
    assert got.uri is None
    assert got.refused is not None and "spec.method.lora.r is 32 here but 16" in got.refused


def test_a_missing_job_or_itself_is_refused_with_what_to_do() -> None:
    missing = resolve(JOB, None)
    assert missing.refused is not None and "no FineTuneJob of that name in namespace team-a" in missing.refused
    assert "spec.resumeFrom.uri" in missing.refused
    itself = resume.resolve("first", "team-a", factories.spec(**JOB), source=None, source_spec=None)
    assert itself.refused is not None and "itself" in itself.refused


def test_a_hub_only_adapter_cannot_be_resumed_by_name() -> None:
    got = resolve(JOB, source("Succeeded", artifact={"uri": "hf://org/adapter"}))
    assert got.refused is not None and "not to S3" in got.refused
