"""The termination message: the JSON of docs/DESIGN.md, under 4 KiB, written where Kubernetes reads it."""

from __future__ import annotations

import json
import math
import pathlib

from kubeft_trainer import progress


def test_success_message_carries_step_artifact_and_metrics() -> None:
    text = progress.termination_message(
        result="Succeeded",
        step=50,
        artifact={"uri": "s3://b/p", "sizeBytes": 123, "sha256": "ab"},
        metrics={"train_loss": 1.2, "eval_loss": 1.3},
    )
    assert json.loads(text) == {
        "result": "Succeeded",
        "step": 50,
        "artifact": {"uri": "s3://b/p", "sizeBytes": 123, "sha256": "ab"},
        "metrics": {"train_loss": 1.2, "eval_loss": 1.3},
    }


def test_the_promotion_decision_survives_a_message_cut_to_fit() -> None:
    gate = {"promoted": False, "message": "not promoted", "checks": [{"metric": "eval_loss", "max": 2.5}]}
    metrics = {f"eval_metric_{i}": float(i) for i in range(400)} | {"eval_loss": 3.0}
    text = progress.termination_message(result="Succeeded", step=5, metrics=metrics, promotion=gate)
    assert len(text.encode()) <= progress.TERMINATION_LIMIT
    assert json.loads(text)["promotion"] == gate


def test_failure_message_carries_reason_and_message() -> None:
    text = progress.termination_message(result="Failed", reason="DatasetNotFound", message="upload it")
    assert json.loads(text) == {"result": "Failed", "reason": "DatasetNotFound", "message": "upload it"}


def test_non_finite_metrics_are_dropped_to_keep_json_valid() -> None:
    text = progress.termination_message(result="Succeeded", metrics={"eval_loss": math.nan, "train_loss": 1.0})
    assert json.loads(text)["metrics"] == {"train_loss": 1.0}


def test_long_messages_are_cut_below_4_kib() -> None:
    text = progress.termination_message(
        result="Failed", reason="DatasetInvalid", message="é" * 10_000, metrics={f"m{i}": 1.0 for i in range(500)}
    )
    doc = json.loads(text)
    assert len(text.encode()) <= 4096
    assert doc["reason"] == "DatasetInvalid"


def test_written_to_the_path_in_kubeft_termination_log(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "termination-log"
    assert progress.write_termination_message(
        '{"result": "Succeeded"}', environ={"KUBEFT_TERMINATION_LOG": str(target)}
    )
    assert target.read_text() == '{"result": "Succeeded"}'


def test_outside_kubernetes_nothing_is_written_to_dev() -> None:
    if pathlib.Path(progress.TERMINATION_LOG).exists():
        return
    assert progress.write_termination_message("{}", environ={}) is None
    assert not pathlib.Path(progress.TERMINATION_LOG).exists()


def test_failure_message_never_carries_the_trainers_secret_env_values(monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "plain-looking-secret-value")
    monkeypatch.setenv("HF_TOKEN", "another-secret-value")
    message = "signing with plain-looking-secret-value failed; hub said another-secret-value is invalid"
    text = progress.termination_message(result="Failed", reason="OutputFailed", message=message)
    assert json.loads(text)["message"] == "signing with [REDACTED] failed; hub said [REDACTED] is invalid"
