"""Finished is final: a deleted Job is never recreated; ttlSecondsAfterFinished deletes the FineTuneJob."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.cluster import Cluster
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster


def test_deleting_the_job_of_a_finished_run_does_not_recreate_it(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("final", training={"maxSteps": 5}), namespace=namespace)
    before = watch.wait_phase("final", "Succeeded", timeout=60)

    cluster.kubectl("delete", "job", "final-train", "-n", namespace, "--cascade=background")
    cluster.wait_for(lambda: not watch.items("job", "final"), timeout=30, what="the Job to go")
    time.sleep(3)

    assert watch.items("job", "final") == []
    assert watch.status("final") == before


def test_finished_run_is_deleted_after_its_ttl_with_its_children(
    cluster: Cluster, namespace: str, operator: Operator, watch: Watcher
) -> None:
    cluster.apply(manifest("shortlived", training={"maxSteps": 5}, ttlSecondsAfterFinished=3), namespace=namespace)
    watch.wait_phase("shortlived", "Succeeded", timeout=60)
    assert watch.ftj("shortlived") is not None

    cluster.wait_for(lambda: watch.ftj("shortlived") is None, timeout=30, what="TTL deletion")
    cluster.wait_for(lambda: not watch.items("job", "shortlived"), timeout=60, what="garbage collection of the Job")
    assert watch.items("configmap", "shortlived") == []
