"""A platform makes its policy stricter while a job trains: the job is stopped in one reconcile.

The release's operator allows private endpoints (the tests' S3 listens on the node's private
address). Here a job trains against it; then `helm upgrade` turns operator.allowPrivateEndpoints
off, the operator Deployment rolls, and the new operator pod's first reconcile of the job both
suspends its Job (SIGTERM, checkpoint, GPUs freed) and reports Failed/InvalidSpec. The release is
put back afterwards, whatever happens.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e.conftest import long_run, wait_progress
from tests.fixtures.cluster import REPO, Cluster
from tests.fixtures.operator import Identity, Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def set_private_endpoints(cluster: Cluster, release: Identity, allowed: bool) -> None:
    helm = shutil.which("helm", path=cluster.env["PATH"])
    assert helm
    name = release.namespace.removesuffix("-system")
    subprocess.run(
        [helm, "upgrade", name, str(REPO / "charts" / "kubeft"), "-n", release.namespace, "--reuse-values",
         f"--set=operator.allowPrivateEndpoints={str(allowed).lower()}", "--wait", "--timeout=180s"],
        env=cluster.env, check=True, capture_output=True,
    )  # fmt: skip
    cluster.kubectl("rollout", "status", "deployment", "-n", release.namespace, "--timeout=120s", timeout=130)


def test_a_running_job_whose_endpoint_becomes_refused_is_stopped_in_one_reconcile(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher, release: Identity
):
    cluster.apply(long_run(job_manifest, "flip", steps=5000, checkpoint_steps=10000), namespace=namespace)
    wait_progress(cluster, watch, "flip", lambda p: p.get("step", 0) >= 3, what="training to start")
    try:
        set_private_endpoints(cluster, release, False)
        status = watch.wait_phase("flip", "Failed", timeout=120)
        # Read right after Failed shows: the same reconcile suspended the Job before it wrote status.
        (job,) = watch.items("jobs", "flip")
        assert job["spec"]["suspend"] is True, job["spec"]
        failed = watch.condition("flip", "Failed")
        assert failed["reason"] == "InvalidSpec", failed
        assert "spec.storage.endpoint" in failed["message"] and "private" in failed["message"], failed
        assert status.get("artifact") is None
        cluster.wait_for(lambda: not watch.items("pods", "flip") or None, timeout=120, what="the trainer pod to stop")
    finally:
        set_private_endpoints(cluster, release, True)
