"""Dataset preflight on the real node: bad data fails in seconds with the histogram in status; good data is reported.

Both jobs are the demo example (tests/e2e/conftest.py `job_manifest`) run by the trainer image.
"""

from __future__ import annotations

import copy
import datetime
import json
import pathlib
from typing import Any

import pytest
from tensorboard.backend.event_processing import event_accumulator

from tests.fixtures.cluster import REPO, Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TIMEOUT = 300
# From the trainer pod running to the Job failed: start-up (imports, the tiny model from S3) and
# tokenizing 90 records. Training would add minutes; this is the "fails in seconds" promise.
FAIL_FAST_SECONDS = 60


def _seconds(start: str, end: str) -> float:
    parse = lambda t: datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _half_too_long() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (REPO / "examples" / "data" / "chat.jsonl").read_text().splitlines()]
    for row in rows[::2]:
        row["messages"] = copy.deepcopy(row["messages"])
        row["messages"][-1]["content"] = " ".join([row["messages"][-1]["content"]] * 20)
    return rows


def test_half_over_long_records_fail_preflight_in_seconds_with_the_histogram_in_status(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    body = "".join(json.dumps(row) + "\n" for row in _half_too_long())
    s3.client.put_object(Bucket=s3.bucket, Key="data/long.jsonl", Body=body.encode())
    doc = job_manifest(
        "toolong",
        dataset={"source": s3.uri("data/long.jsonl"), "preflight": {"maxTruncatedFraction": 0.2}},
    )
    cluster.apply(doc, namespace=namespace)

    status = watch.wait_phase("toolong", "Failed", timeout=TIMEOUT)

    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DatasetPreflightFailed", failed
    assert "spec.dataset.maxLength (64 tokens" in failed["message"]
    assert "maxTruncatedFraction" in failed["message"]
    assert _seconds(status["startTime"], status["completionTime"]) < FAIL_FAST_SECONDS, status
    assert (status.get("progress") or {}).get("step", 0) == 0, "no training step ran"
    dataset = status["dataset"]
    assert dataset["result"] == "Failed"
    lengths = dataset["tokenLengths"]
    assert lengths["maxLength"] == 64
    assert 0.4 <= lengths["truncatedFraction"] <= 0.6, lengths
    assert sum(b["count"] for b in lengths["histogram"]) == dataset["recordsUsed"]
    assert any(b.get("upTo", 1 << 30) > 64 and b["count"] for b in lengths["histogram"])
    # The full report is in the run's prefix, written before the run failed.
    uid = watch.ftj("toolong")["metadata"]["uid"]
    key = f"adapters/.kubeft-runs/toolong/{uid}/dataset-report.json"
    assert dataset["reportUri"] == s3.uri(key)
    assert json.loads(s3.read(key))["result"] == "Failed"
    assert s3.keys("adapters/toolong/") == []


def test_a_good_dataset_shows_status_dataset_and_the_tensorboard_text(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher, tmp_path: pathlib.Path
):
    training = {"maxSteps": 2, "evaluation": {"strategy": "no"}}
    cluster.apply(job_manifest("gooddata", training=training), namespace=namespace)

    status = watch.wait_phase("gooddata", "Succeeded", timeout=TIMEOUT)

    dataset = status["dataset"]
    assert dataset["result"] in ("Passed", "Warning"), dataset
    assert dataset["recordsUsed"] == dataset["recordsRead"] > 0
    assert dataset["validationRecords"] > 0
    assert dataset["tokenLengths"]["histogram"]
    uid = watch.ftj("gooddata")["metadata"]["uid"]
    report = json.loads(s3.read(f"adapters/.kubeft-runs/gooddata/{uid}/dataset-report.json"))
    assert report["shape"] == "chat" and "capital" in report["chatSample"]
    events = [k for k in s3.keys(f"tensorboard/gooddata/gooddata/{uid}/") if "tfevents" in k]
    for key in events:
        (tmp_path / pathlib.PurePosixPath(key).name).write_bytes(s3.read(key))
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    (text,) = acc.Tensors("dataset/preflight/text_summary")
    assert text.tensor_proto.string_val[0].decode().startswith("**Dataset preflight:")
