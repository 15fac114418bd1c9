"""A run of unvetted code (here `trustRemoteCode`) succeeds only after the operator verified its adapter.

The real trainer on the real node exports the adapter; then the operator's NAME-verify Job (the
operator's own trainer image, no Kubernetes token) checks it in S3 against its manifest, and the
artifact in status is what that Job measured.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher
from tests.fixtures.s3 import S3

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_an_unvetted_run_is_verified_by_the_operator_before_it_succeeds(
    cluster: Cluster, namespace: str, s3: S3, e2e_operator, job_manifest, watch: Watcher
):
    doc = job_manifest("vetted", resources={"gpus": 0})
    doc["spec"]["model"]["trustRemoteCode"] = True
    cluster.apply(doc, namespace=namespace)

    status = watch.wait_phase("vetted", "Succeeded", timeout=300)
    verified = watch.condition("vetted", "Verified")
    assert (verified["status"], verified["reason"]) == ("True", "ArtifactVerified"), verified
    manifest_bytes = s3.read("adapters/vetted/manifest.json")
    assert status["artifact"]["sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert status["artifact"]["uri"] == s3.uri("adapters/vetted")
    jobs = {j["metadata"]["name"]: j for j in watch.items("jobs", "vetted")}
    assert set(jobs) == {"vetted-train", "vetted-verify"}
    pod = jobs["vetted-verify"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["image"] == "ghcr.io/kubeft/trainer:0.1.0"
