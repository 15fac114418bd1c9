"""Acceptance tests of the local cluster (hack/cluster.sh) and its real node.

Everything is real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and a kubelet
with containerd, runc and the CNI bridge running containers of images built by hack/images.sh.
The one stand-in is the node's nvidia.com/gpu capacity, which is advertised on its status (the
node has no GPU), so GPU requests are scheduled and counted but no device is attached.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import pathlib
import ssl
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from tests.fixtures import cluster as cluster_fixture

pytestmark = pytest.mark.cluster

Cluster = cluster_fixture.Cluster
REPO = pathlib.Path(__file__).resolve().parents[2]
IMAGE = cluster_fixture.BASE_IMAGE  # Debian bookworm with python3, built by hack/images.sh
POD_CIDR = ipaddress.ip_network(os.environ.get("KUBEFT_POD_CIDR", "10.244.0.0/24"))


def job(name: str, script: str, *, backoff_limit: int = 0, **pod_spec: Any) -> dict[str, Any]:
    """A batch/v1 Job running ``python3 -c SCRIPT`` once."""
    container = {"name": "main", "image": IMAGE, "command": ["python3", "-c", textwrap.dedent(script)]}
    container.update(pod_spec.pop("container", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **pod_spec}},
        },
    }


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    """A bare Pod running ``python3 -c SCRIPT``."""
    container = {"name": "main", "image": IMAGE, "command": ["python3", "-c", textwrap.dedent(script)]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 10, "containers": [container], **spec},
    }


def job_condition(cluster: Cluster, namespace: str, name: str) -> str | None:
    conditions = cluster.get("job", name, "-n", namespace).get("status", {}).get("conditions") or []
    done = [c["type"] for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"]
    return done[0] if done else None


def job_pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return cluster.get("pods", "-n", namespace, "-l", f"job-name={name}")["items"]


def main_state(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    statuses = cluster.get("pod", name, "-n", namespace).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0].get("state") or {}


def test_apiserver_readyz_is_ok(cluster: Cluster) -> None:
    context = ssl.create_default_context()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context.load_verify_locations(
        cadata=base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    )
    user = config["users"][0]["user"]
    cert, key = cluster.dir / "pki" / "admin.crt", cluster.dir / "pki" / "admin.key"
    assert base64.b64decode(user["client-certificate-data"]) == cert.read_bytes()
    context.load_cert_chain(cert, key)
    with urllib.request.urlopen(f"{cluster.server}/readyz", context=context, timeout=10) as resp:
        assert resp.read() == b"ok"


def test_job_running_python_completes(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        job(
            "hello",
            "print('hello from', __import__('os').environ['KUBEFT_POD'])",
            container={"env": [{"name": "KUBEFT_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        ),
        namespace=namespace,
    )
    assert (
        cluster.wait_for(lambda: job_condition(cluster, namespace, "hello"), timeout=60, what="job done") == "Complete"
    )
    (p,) = job_pods(cluster, namespace, "hello")
    assert p["status"]["phase"] == "Succeeded"
    log = cluster.kubectl("logs", "-n", namespace, "job/hello").stdout
    assert log.strip() == f"hello from {p['metadata']['name']}"


def pod_phase(cluster: Cluster, namespace: str, name: str) -> str:
    return cluster.get("pod", name, "-n", namespace).get("status", {}).get("phase", "")


def pod_gone(cluster: Cluster, namespace: str, name: str) -> bool:
    return cluster.kubectl("get", "pod", name, "-n", namespace, check=False).returncode != 0


def wait_phase(cluster: Cluster, namespace: str, name: str, *phases: str, timeout: float = 60) -> str:
    return cluster.wait_for(
        lambda: (phase := pod_phase(cluster, namespace, name)) in phases and phase,
        timeout=timeout,
        what=f"pod {name} to reach {phases}",
    )


def wait_log(cluster: Cluster, namespace: str, name: str, text: str) -> None:
    cluster.wait_for(
        lambda: text in cluster.kubectl("logs", "-n", namespace, name, check=False).stdout,
        what=f"{text!r} in the log of {name}",
    )


def test_failing_command_fails_the_job_with_its_exit_code(cluster: Cluster, namespace: str) -> None:
    script = "open('/dev/termination-log', 'w').write('bad input'); raise SystemExit(3)"
    cluster.apply(job("fails", script), namespace=namespace)
    assert cluster.wait_for(lambda: job_condition(cluster, namespace, "fails"), what="job done") == "Failed"
    (p,) = job_pods(cluster, namespace, "fails")
    terminated = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (p["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 3, "Error")
    assert terminated["message"] == "bad input"


def test_container_env_comes_from_secret_and_configmap_volume_is_mounted(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "secret", "generic", "creds", "-n", namespace, "--from-literal=token=s3cr3t")
    cluster.kubectl("create", "configmap", "cfg", "-n", namespace, "--from-literal=config.yaml=lr: 0.1")
    script = """
        import os
        print("token=" + os.environ["TOKEN"])
        print("config=" + open("/etc/kubeft/config.yaml").read())
        print("node=" + os.environ["NODE"] + " ip=" + os.environ["POD_IP"])
    """
    spec = pod(
        "reader",
        script,
        container={
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/kubeft"}],
        },
        volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}],
    )
    cluster.apply(spec, namespace=namespace)
    assert wait_phase(cluster, namespace, "reader", "Succeeded", "Failed") == "Succeeded"
    status = cluster.get("pod", "reader", "-n", namespace)
    assert status["spec"]["nodeName"] == cluster_fixture.NODE_NAME
    ip = status["status"]["podIP"]
    assert ipaddress.ip_address(ip) in POD_CIDR, "a pod gets its own address on the CNI bridge"
    log = cluster.kubectl("logs", "-n", namespace, "reader").stdout
    assert log.splitlines() == ["token=s3cr3t", "config=lr: 0.1", f"node={cluster_fixture.NODE_NAME} ip={ip}"]


def test_missing_secret_is_a_config_error_until_the_secret_exists(cluster: Cluster, namespace: str) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    cluster.apply(pod("waits", "import os; print(os.environ['TOKEN'])", container={"env": env}), namespace=namespace)
    waiting = cluster.wait_for(
        lambda: (
            main_state(cluster, namespace, "waits").get("waiting", {}).get("reason") == "CreateContainerConfigError"
            and main_state(cluster, namespace, "waits")["waiting"]
        ),
        what="CreateContainerConfigError",
    )
    assert waiting["message"] == 'secret "late" not found'
    assert pod_phase(cluster, namespace, "waits") == "Pending"
    cluster.kubectl("create", "secret", "generic", "late", "-n", namespace, "--from-literal=token=arrived")
    assert wait_phase(cluster, namespace, "waits", "Succeeded", "Failed") == "Succeeded"
    assert cluster.kubectl("logs", "-n", namespace, "waits").stdout.strip() == "arrived"


def test_missing_configmap_volume_keeps_the_pod_creating_with_the_reason(cluster: Cluster, namespace: str) -> None:
    spec = pod(
        "mounts",
        "print(open('/etc/late/k').read())",
        container={"volumeMounts": [{"name": "late", "mountPath": "/etc/late"}]},
        volumes=[{"name": "late", "configMap": {"name": "late"}}],
    )
    cluster.apply(spec, namespace=namespace)
    event = cluster.wait_for(
        lambda: next(
            (
                e
                for e in cluster.get("events", "-n", namespace, "--field-selector=involvedObject.name=mounts")["items"]
                if e["reason"] == "FailedMount"
            ),
            None,
        ),
        what="the kubelet's FailedMount event",
    )
    assert event["message"] == 'MountVolume.SetUp failed for volume "late" : configmap "late" not found'
    # The kubelet may post the Event before it writes the pod's first container status.
    waiting = cluster.wait_for(
        lambda: main_state(cluster, namespace, "mounts").get("waiting"), what="the container's waiting state"
    )
    assert waiting["reason"] == "ContainerCreating"
    cluster.kubectl("create", "configmap", "late", "-n", namespace, "--from-literal=k=arrived")
    assert wait_phase(cluster, namespace, "mounts", "Succeeded", "Failed") == "Succeeded"
    assert cluster.kubectl("logs", "-n", namespace, "mounts").stdout.strip() == "arrived"


def follow_log(cluster: Cluster, namespace: str, name: str) -> subprocess.Popen[str]:
    """``kubectl logs -f``: the stream ends when the container does, so it outlives the pod's deletion."""
    return subprocess.Popen(
        ["kubectl", "logs", "-f", "-n", namespace, name], env=cluster.env, stdout=subprocess.PIPE, text=True
    )


def test_deleting_a_running_pod_delivers_sigterm(cluster: Cluster, namespace: str) -> None:
    script = """
        import signal, sys, time
        def stop(signum, frame):
            print("got SIGTERM", flush=True)
            sys.exit(143)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        while True:
            time.sleep(0.1)
    """
    cluster.apply(pod("sleeper", script, terminationGracePeriodSeconds=20), namespace=namespace)
    wait_log(cluster, namespace, "sleeper", "ready")
    log = follow_log(cluster, namespace, "sleeper")
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "sleeper", "-n", namespace, "--wait=false")
    cluster.wait_for(lambda: pod_gone(cluster, namespace, "sleeper"), timeout=30, what="pod deleted")
    assert time.monotonic() - started < 10, "the pod outlived SIGTERM: it was killed only at the end of its grace"
    out, _ = log.communicate(timeout=30)
    assert out.splitlines() == ["ready", "got SIGTERM"]


def test_pod_ignoring_sigterm_is_killed_after_its_grace_period(cluster: Cluster, namespace: str) -> None:
    script = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(300)
        print("slept through", flush=True)
    """
    cluster.apply(pod("stubborn", script, terminationGracePeriodSeconds=2), namespace=namespace)
    wait_log(cluster, namespace, "stubborn", "ready")
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "stubborn", "-n", namespace, "--wait=false")
    cluster.wait_for(lambda: pod_gone(cluster, namespace, "stubborn"), timeout=30, what="pod deleted")
    assert 2 <= time.monotonic() - started < 15


def test_on_failure_pod_is_restarted_until_it_succeeds(cluster: Cluster, namespace: str) -> None:
    script = """
        import os
        marker = "/scratch/attempted"
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise SystemExit(1)
        print("second attempt")
    """
    spec = pod(
        "retry",
        script,
        restartPolicy="OnFailure",
        container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    cluster.apply(spec, namespace=namespace)
    assert wait_phase(cluster, namespace, "retry", "Succeeded", "Failed") == "Succeeded"
    status = cluster.get("pod", "retry", "-n", namespace)["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    # The kubelet removes a finished pod's dead containers, so lastState may be gone by now; the
    # log of the second run is what is left to check.
    assert cluster.kubectl("logs", "-n", namespace, "retry").stdout.strip() == "second attempt"


def test_pod_token_authenticates_as_its_service_account(cluster: Cluster, namespace: str) -> None:
    script = """
        import json, os, ssl, urllib.request
        sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        request = urllib.request.Request(
            f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
            headers={"Authorization": "Bearer " + open(sa + "/token").read(), "Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=sa + "/ca.crt")
        review = json.load(urllib.request.urlopen(request, context=context))
        print(review["status"]["userInfo"]["username"], open(sa + "/namespace").read())
    """
    cluster.apply(pod("whoami", script), namespace=namespace)
    assert wait_phase(cluster, namespace, "whoami", "Succeeded", "Failed") == "Succeeded"
    log = cluster.kubectl("logs", "-n", namespace, "whoami").stdout.strip()
    assert log == f"system:serviceaccount:{namespace}:default {namespace}"


def test_service_account_without_permissions_cannot_list_pods(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    user = f"system:serviceaccount:{namespace}:nobody"
    can_i = cluster.kubectl("auth", "can-i", "list", "pods", "-n", namespace, f"--as={user}", check=False)
    assert (can_i.returncode, can_i.stdout.strip()) == (1, "no")

    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    context = ssl.create_default_context(cafile=str(cluster.dir / "pki" / "ca.crt"))
    request = urllib.request.Request(
        f"{cluster.server}/api/v1/namespaces/{namespace}/pods", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(request, context=context, timeout=10)
    assert denied.value.code == 403
    assert f'User "{user}" cannot list resource "pods"' in json.load(denied.value)["message"]


def test_service_account_granted_a_role_can_list_pods(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "pod-reader",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    user = f"system:serviceaccount:{namespace}:reader"
    can_i = cluster.kubectl("auth", "can-i", "list", "pods", "-n", namespace, f"--as={user}", check=False)
    assert (can_i.returncode, can_i.stdout.strip()) == (0, "yes")


def gpu_pod(name: str, gpus: int, script: str) -> dict[str, Any]:
    return pod(
        name,
        script,
        container={"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}},
        terminationGracePeriodSeconds=2,
    )


def test_node_advertises_gpus_and_gpu_pods_wait_for_a_free_one(cluster: Cluster, namespace: str) -> None:
    node = cluster.get("node", cluster_fixture.NODE_NAME)
    gpus = int(node["status"]["allocatable"]["nvidia.com/gpu"])
    assert gpus >= 1
    holder = "import time; print('holding', flush=True); time.sleep(300)"
    cluster.apply(gpu_pod("holder", gpus, holder), namespace=namespace)
    wait_log(cluster, namespace, "holder", "holding")
    cluster.apply(gpu_pod("waiter", 1, "print('got one')"), namespace=namespace)
    scheduled = cluster.wait_for(
        lambda: next(
            (
                c
                for c in cluster.get("pod", "waiter", "-n", namespace).get("status", {}).get("conditions", [])
                if c["type"] == "PodScheduled"
            ),
            None,
        ),
        what="the scheduler's verdict on waiter",
    )
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]
    cluster.kubectl("delete", "pod", "holder", "-n", namespace, "--wait=false")
    assert wait_phase(cluster, namespace, "waiter", "Succeeded", "Failed", timeout=120) == "Succeeded"
    assert cluster.kubectl("logs", "-n", namespace, "waiter").stdout.strip() == "got one"


def test_kubectl_exec_runs_in_the_container(cluster: Cluster, namespace: str) -> None:
    cluster.apply(pod("target", "import time; print('up', flush=True); time.sleep(300)"), namespace=namespace)
    wait_log(cluster, namespace, "target", "up")
    out = cluster.kubectl("exec", "-n", namespace, "target", "--", "sh", "-c", "id -u; cat /etc/os-release").stdout
    assert out.splitlines()[0] == "0"
    assert "VERSION_CODENAME=bookworm" in out
    cluster.kubectl("delete", "pod", "target", "-n", namespace, "--wait=false")


def test_memory_limit_is_enforced_by_the_runtime(cluster: Cluster, namespace: str) -> None:
    script = """
        blocks = []
        print("allocating", flush=True)
        while True:
            blocks.append(bytearray(16 << 20))
    """
    limits = {"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}
    cluster.apply(pod("hog", script, container=limits), namespace=namespace)
    assert wait_phase(cluster, namespace, "hog", "Succeeded", "Failed") == "Failed"
    terminated = main_state(cluster, namespace, "hog")["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


def test_second_cluster_up_reuses_the_running_cluster(cluster: Cluster) -> None:
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "hack" / "cluster.sh"), "up"], env=cluster.env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "already up" in proc.stderr
    assert time.monotonic() - started < 10


def test_job_pod_failure_policy_matches_the_reported_exit_code(cluster: Cluster, namespace: str) -> None:
    spec = job("usererror", "raise SystemExit(64)", backoff_limit=3)
    spec["spec"]["podFailurePolicy"] = {
        "rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [64]}}]
    }
    cluster.apply(spec, namespace=namespace)
    assert cluster.wait_for(lambda: job_condition(cluster, namespace, "usererror"), what="job done") == "Failed"
    conditions = cluster.get("job", "usererror", "-n", namespace)["status"]["conditions"]
    failed = next(c for c in conditions if c["type"] == "Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert len(job_pods(cluster, namespace, "usererror")) == 1


def test_deleted_job_pod_counts_as_failed_and_is_replaced(cluster: Cluster, namespace: str) -> None:
    script = """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        print("training", flush=True)
        time.sleep(300)
    """
    cluster.apply(job("preempted", script, backoff_limit=1), namespace=namespace)
    (first,) = cluster.wait_for(lambda: job_pods(cluster, namespace, "preempted"), what="the job's pod")
    first_name = first["metadata"]["name"]
    wait_log(cluster, namespace, first_name, "training")
    cluster.kubectl("delete", "pod", first_name, "-n", namespace, "--wait=false")
    replacement = cluster.wait_for(
        lambda: [p for p in job_pods(cluster, namespace, "preempted") if p["metadata"]["name"] != first_name],
        what="a replacement pod",
    )
    assert len(replacement) == 1
    assert (
        cluster.wait_for(
            lambda: cluster.get("job", "preempted", "-n", namespace)["status"].get("failed"), what="failed count"
        )
        == 1
    )
