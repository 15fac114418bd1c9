"""SIGKILL at random points while children are created and while trainers run: one Job each, right status."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from tests.fixtures.cluster import Cluster
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster

NAMES = ("kill-a", "kill-b", "kill-c")


def test_operator_killed_at_random_points_leaves_one_job_per_run_and_finishes_them(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator], watch: Watcher
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}")
    op = start_operator()
    cluster.apply([manifest(n, training={"maxSteps": 150, "checkpointSteps": 50}) for n in NAMES], namespace=namespace)

    kills = []
    # First kills land while the children of three runs are being created, later ones while they train.
    for delay in [rng.uniform(0.0, 0.3) for _ in range(3)] + [rng.uniform(0.3, 1.5) for _ in range(3)]:
        time.sleep(delay)
        op.kill()
        kills.append((round(delay, 2), {n: len(watch.items("job", n)) for n in NAMES}, watch.phase(NAMES[0])))
        op.start()
    print(f"kills (delay after ready, jobs per run, phase of {NAMES[0]}): {kills}")
    assert len(kills) >= 5

    for name in NAMES:
        status = watch.wait_phase(name, "Succeeded", timeout=120)
        assert status["artifact"]["uri"] == "s3://adapters/lora-demo"
        assert status["progress"]["step"] == 150
        assert len(watch.items("job", name)) == 1
        assert len(watch.items("configmap", name)) == 1
        assert len(watch.items("pod", name)) == 1
        reasons = watch.event_reasons(name)
        assert all(reasons.count(r) <= 1 for r in ("Created", "Started", "Succeeded")), reasons
