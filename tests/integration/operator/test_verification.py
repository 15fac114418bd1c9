"""A trainer that ran unvetted code cannot make its FineTuneJob Succeeded by claiming an artifact.

The operator under test runs hack/fake_trainer.py (the stand-in image), which reports an artifact it
never uploaded, as a hostile custom image would. The job sets `trustRemoteCode`, so the operator
checks the claim itself: a NAME-verify Job of the real trainer image (ghcr.io/kubeft/trainer, from
`make images`) reads the prefix in the real S3 store (SeaweedFS, tests/fixtures/s3.py) and refuses it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fixtures.cluster import Cluster
from tests.fixtures.s3 import S3
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster

TRAINER_IMAGE = "ghcr.io/kubeft/trainer:0.1.0"


def test_a_claimed_artifact_that_is_not_there_fails_verification(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator], watch: Watcher, s3: S3
) -> None:
    creds = s3.env()
    cluster.kubectl(
        "create", "secret", "generic", "s3", "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={creds['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={creds['AWS_SECRET_ACCESS_KEY']}",
    )  # fmt: skip
    start_operator(
        env={"KUBEFT_VERIFIER_IMAGE": "ghcr.io/kubeft/trainer:0.1.0", "KUBEFT_ALLOW_PRIVATE_ENDPOINTS": "true"}
    )
    doc = manifest(
        "forged",
        model={"trustRemoteCode": True},
        storage={"endpoint": s3.endpoint, "credentialsSecretRef": {"name": "s3"}},
        output={"s3": {"uri": s3.uri("adapters/forged")}},
    )
    cluster.apply(doc, namespace=namespace)

    def verifying() -> dict | None:
        condition = watch.condition("forged", "Verified")
        return condition if condition.get("reason") == "Verifying" else None

    verifying_condition = cluster.wait_for(verifying, timeout=120, what="the operator to start verifying")
    assert "trustRemoteCode" in verifying_condition["message"]
    assert watch.phase("forged") == "Running"

    status = watch.wait_phase("forged", "Failed", timeout=180)
    failed = watch.condition("forged", "Failed")
    assert failed["reason"] == "ArtifactUnverified", failed
    assert "no manifest.json" in failed["message"] and s3.uri("adapters/forged") in failed["message"]
    assert status.get("artifact") is None
    jobs = {j["metadata"]["name"]: j for j in watch.items("jobs", "forged")}
    assert set(jobs) == {"forged-train", "forged-verify"}
    (container,) = jobs["forged-verify"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == TRAINER_IMAGE
    assert jobs["forged-verify"]["status"].get("failed") == 1, "a refused artifact is not re-checked"
