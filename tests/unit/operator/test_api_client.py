"""The client's pure parts: REST paths of the kinds it handles, and the API server's answers as exceptions."""

from __future__ import annotations

import json

import pytest

from kubeft_operator.k8s import client, errors


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (("v1", "ConfigMap", "team"), "/api/v1/namespaces/team/configmaps"),
        (("batch/v1", "Job", "team", "demo-train"), "/apis/batch/v1/namespaces/team/jobs/demo-train"),
        (
            ("kubeft.io/v1alpha1", "FineTuneJob", "team", "demo", "status"),
            "/apis/kubeft.io/v1alpha1/namespaces/team/finetunejobs/demo/status",
        ),
        (("kopf.dev/v1", "ClusterKopfPeering", None, "kubeft"), "/apis/kopf.dev/v1/clusterkopfpeerings/kubeft"),
        (
            ("rbac.authorization.k8s.io/v1", "RoleBinding", "t"),
            "/apis/rbac.authorization.k8s.io/v1/namespaces/t/rolebindings",
        ),
        (
            ("kueue.x-k8s.io/v1beta2", "Workload", "t", "job-demo-train-1a2b3"),
            "/apis/kueue.x-k8s.io/v1beta2/namespaces/t/workloads/job-demo-train-1a2b3",
        ),
        (("kueue.x-k8s.io/v1beta1", "Workload", "t"), "/apis/kueue.x-k8s.io/v1beta1/namespaces/t/workloads"),
    ],
)
def test_paths(args: tuple, want: str) -> None:
    assert client.path(*args) == want


def status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "code": code, "reason": reason, "message": message}).encode()


def test_already_exists_and_not_found_are_told_apart_from_other_failures() -> None:
    exists = client._failure(409, status(409, "AlreadyExists", 'jobs "x" already exists'), "creating Job t/x")
    assert isinstance(exists, errors.AlreadyExists) and "already exists" in str(exists)
    conflict = client._failure(409, status(409, "Conflict", "the object has been modified"), "patching")
    assert type(conflict) is errors.ApiFailure and conflict.code == 409
    gone = client._failure(404, status(404, "NotFound", "not found"), "reading")
    assert isinstance(gone, errors.NotFound)
    invalid = client._failure(422, status(422, "Invalid", "spec.template: Invalid value"), "creating Job t/x")
    assert str(invalid) == "creating Job t/x: spec.template: Invalid value" and invalid.code == 422


def test_a_body_that_is_not_a_status_still_gives_a_message() -> None:
    assert str(client._failure(502, b"<html>bad gateway</html>", "reading")) == "reading: HTTP 502"
