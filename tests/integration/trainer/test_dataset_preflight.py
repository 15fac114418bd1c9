"""The dataset preflight runs before the model is loaded: report file, status.dataset, TensorBoard, fail fast."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

from tensorboard.backend.event_processing import event_accumulator

from kubeft_operator.api import status as api_status
from kubeft_trainer import __main__ as entry
from kubeft_trainer import config, dataset_report, pipeline
from tests.fixtures.s3 import S3
from tests.integration.trainer import records
from tests.integration.trainer.conftest import merge, spec_doc, termination
from tests.integration.trainer.test_progress_reporting import RecordingReporter


def tensorboard_texts(log_dir: pathlib.Path) -> dict[str, str]:
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return {
        tag.removesuffix("/text_summary"): acc.Tensors(tag)[0].tensor_proto.string_val[0].decode()
        for tag in acc.Tags()["tensors"]
        if tag.endswith("/text_summary")
    }


def half_too_long(n: int) -> list[dict[str, Any]]:
    rows = records.all_shapes(n, seed=3)
    for row in rows[::2]:
        row["text"] = " ".join([row["text"]] * 30)
    return rows


def test_a_good_chat_dataset_is_reported_in_status_the_run_prefix_and_tensorboard(
    s3: S3, tiny: dict[str, pathlib.Path], matrix_data: pathlib.Path
) -> None:
    spec = spec_doc(s3, model=tiny["causal-lm"], data=matrix_data, task="CAUSAL_LM", fields={"messages": "messages"})
    cfg = config.parse({"spec": spec, "metadata": {"uid": "run-1"}}, environ=os.environ)
    reporter = RecordingReporter()

    pipeline.run(cfg, reporter=reporter)

    bodies = [body["status"] for body in reporter.bodies]
    first = next(i for i, s in enumerate(bodies) if "dataset" in s)
    assert all("progress" not in s for s in bodies[:first]), "status.dataset comes before the first step"
    summary = api_status.DatasetSummary.model_validate(bodies[first]["dataset"])
    assert summary.result == "Passed"
    assert (summary.records_read, summary.records_used) == (24, 24)
    assert summary.token_lengths is not None and summary.token_lengths.truncated == 0
    assert summary.report_uri == cfg.dataset_report_uri

    local = json.loads(cfg.dataset_report_path.read_text())
    stored = json.loads(s3.read(cfg.dataset_report_uri.split("/", 3)[3]))
    assert local == stored
    assert local["shape"] == "chat" and "capital of" in local["chatSample"]
    assert sum(b["count"] for b in local["train"]["tokenLengths"]["histogram"]) == 24

    texts = tensorboard_texts(cfg.tensorboard_dir)
    assert texts[dataset_report.TEXT_TAG].startswith("**Dataset preflight: Passed**")
    assert "capital of" in texts[dataset_report.CHAT_SAMPLE_TAG]
    uploaded = [key for key in s3.keys("") if "tfevents" in key and key.endswith(".dataset")]
    assert uploaded, "the preflight's event file is uploaded before training starts"


def test_classification_reports_the_label_distribution(
    s3: S3, tiny: dict[str, pathlib.Path], matrix_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    spec = spec_doc(
        s3, model=tiny["encoder"], data=matrix_data, task="SEQ_CLS", fields={"text": "text", "label": "label"}
    )
    cfg = config.parse({"spec": spec}, environ=os.environ)
    pipeline.run(cfg)

    report = json.loads(cfg.dataset_report_path.read_text())
    want = {"asia": 0, "europe": 0}
    for row in records.all_shapes(24, seed=1):
        want[row["label"]] += 1
    assert report["labels"] == want and report["shape"] == "classification"


def test_too_many_truncated_records_fail_before_the_model_is_loaded(
    s3: S3,
    tiny: dict[str, pathlib.Path],
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    data = records.write(trainer_env / "long.jsonl", half_too_long(20))
    spec = spec_doc(s3, model=tiny["causal-lm"], data=data, task="CAUSAL_LM", fields={"text": "text"})
    spec = merge(spec, {"dataset": {"preflight": {"maxTruncatedFraction": 0.2}}})

    rc = entry.main(["--config", str(write_config(spec))])

    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "DatasetPreflightFailed"
    assert "10 of 20 training records (50%) are longer than spec.dataset.maxLength (48 tokens" in message["message"]
    assert "dataset-report.json" in message["message"]
    assert "step" not in message
    runs = [key for key in s3.keys("") if key.endswith("/dataset-report.json")]
    assert len(runs) == 1
    report = json.loads(s3.read(runs[0]))
    assert report["result"] == "Failed" and report["train"]["tokenLengths"]["truncated"] == 10
    assert not any("/checkpoints/" in key for key in s3.keys(""))


def test_default_thresholds_warn_and_train_on(s3: S3, tiny: dict[str, pathlib.Path], trainer_env: pathlib.Path) -> None:
    data = records.write(trainer_env / "long.jsonl", half_too_long(20))
    spec = spec_doc(s3, model=tiny["causal-lm"], data=data, task="CAUSAL_LM", fields={"text": "text"})
    cfg = config.parse({"spec": spec}, environ=os.environ)

    result = pipeline.run(cfg)

    assert result.outcome.step == 3
    report = json.loads(cfg.dataset_report_path.read_text())
    assert report["result"] == "Warning" and "50% of the training records are truncated" in report["warnings"][0]
