"""The operator's /metrics carries a running FineTuneJob's training series, and drops them when it is deleted.

Scraped through the API server's pod proxy from the chart-installed operator, as Prometheus would
scrape the pod; the trainer is the real trainer image on the real node, training on the CPU.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import parser

from tests.e2e.conftest import long_run, wait_progress
from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

METRICS_PORT = 9090  # the chart's metrics.port


def _job_series(cluster: Cluster, operator: dict[str, Any], namespace: str, name: str) -> dict[str, float]:
    """{series name (with phase for kubeft_finetunejob_info): value} of one scrape, for one FineTuneJob."""
    pod = operator["metadata"]
    text = cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{pod['namespace']}/pods/{pod['name']}:{METRICS_PORT}/proxy/metrics"
    ).stdout
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("namespace") == namespace and sample.labels.get("name") == name:
                assert set(sample.labels) <= {"namespace", "name", "phase"}, sample
                phase = sample.labels.get("phase")
                found[f"{sample.name}{{{phase}}}" if phase else sample.name] = sample.value
    return found


def test_job_series_are_scraped_while_it_trains_and_vanish_after_deletion(
    cluster: Cluster, namespace: str, e2e_operator, job_manifest, watch: Watcher
):
    cluster.apply(long_run(job_manifest, "metered", steps=400, checkpoint_steps=200), namespace=namespace)
    wait_progress(cluster, watch, "metered", lambda p: p.get("step", 0) >= 3 and p.get("loss"), what="a logged loss")

    def scraped_with_progress() -> dict[str, float] | None:
        series = _job_series(cluster, e2e_operator, namespace, "metered")
        return series if series.get("kubeft_finetunejob_step", 0) >= 3 else None

    series = cluster.wait_for(scraped_with_progress, timeout=60, what="the job's step on /metrics")
    print(f"scraped during the run: {series}")
    assert series["kubeft_finetunejob_info{Running}"] == 1
    assert series["kubeft_finetunejob_total_steps"] == 400
    assert series["kubeft_finetunejob_step"] < 400, "training finished before the scrape; make it longer"
    assert series["kubeft_finetunejob_loss"] > 0
    assert series["kubeft_finetunejob_eta_seconds"] >= 0

    cluster.kubectl("delete", "finetunejob", "metered", "-n", namespace, "--wait=true", timeout=120)

    cluster.wait_for(
        lambda: _job_series(cluster, e2e_operator, namespace, "metered") == {},
        timeout=60,
        what="the deleted job's series to vanish from /metrics",
    )
