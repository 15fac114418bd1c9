"""A pod holding a trainer's ServiceAccount token cannot forge its FineTuneJob's result.

The chart's ValidatingAdmissionPolicy (installed by the e2e release) lets `*-trainer` accounts
change only status.progress, status.metrics and status.dataset. Here a pod of the trainer image, running as the
job's trainer ServiceAccount on the real node, calls the API server with the token the kubelet
mounted, exactly as code in a hostile trainer image would.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from tests.fixtures.cluster import Cluster
from tests.fixtures.operator import Watcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PROBE = textwrap.dedent(
    """
    import json, os, ssl, sys, urllib.error, urllib.request
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = open(f"{sa}/token").read()
    namespace, name = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    url = f"https://{host}:{port}/apis/kubeft.io/v1alpha1/namespaces/{namespace}/finetunejobs/{name}/status"
    def patch(status):
        body = json.dumps({"status": status}).encode()
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/merge-patch+json"}
        request = urllib.request.Request(url, data=body, method="PATCH", headers=headers)
        try:
            with urllib.request.urlopen(request, context=context, timeout=20) as response:
                return [response.status, ""]
        except urllib.error.HTTPError as err:
            return [err.code, err.read().decode(errors="replace")[:400]]
    print("RESULT " + json.dumps({
        "phase": patch({"phase": "Succeeded"}),
        "artifact": patch({"artifact": {"uri": "s3://attacker/adapter", "sha256": "0" * 64}}),
        "progress": patch({"progress": {"step": 7, "totalSteps": 40}}),
    }))
    """
)


def probe_pod(name: str, account: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceAccountName": account,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "probe",
                    "image": "ghcr.io/kubeft/trainer:0.1.0",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", PROBE, namespace, "forger"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


def test_the_trainer_token_may_report_progress_but_not_phase_or_artifact(
    cluster: Cluster, namespace: str, e2e_operator, job_manifest, watch: Watcher
):
    # Suspended from the start: the operator creates the trainer's ServiceAccount, Role and Job, no pod.
    cluster.apply(job_manifest("forger", resources={"gpus": 0}, suspend=True), namespace=namespace)
    watch.wait_phase("forger", "Suspended", timeout=60)
    cluster.apply(probe_pod("forger-probe", "forger-trainer", namespace), namespace=namespace)

    def finished() -> dict[str, Any] | None:
        pod = cluster.get("pod", "forger-probe", "-n", namespace)
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    pod = cluster.wait_for(finished, timeout=120, what="the probe pod to finish")
    log = cluster.logs(namespace, "forger-probe")
    assert pod["status"]["phase"] == "Succeeded", log[-2000:]
    result = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])

    for field in ("phase", "artifact"):
        code, body = result[field]
        assert code in (403, 422), result
        assert "may change only status.progress, status.metrics and status.dataset" in body, body
    assert result["progress"][0] == 200, result
    status = watch.status("forger")
    assert status["phase"] == "Suspended" and status.get("artifact") is None
    assert status["progress"]["step"] == 7
