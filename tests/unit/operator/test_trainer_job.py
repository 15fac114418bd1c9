"""The trainer Job built from a spec: the whole object for one spec, then one table row per knob."""

from __future__ import annotations

from typing import Any

import pytest

from kubeft_operator import config
from kubeft_operator.builders import job as job_builder
from tests.unit.operator import factories

# `accelerate launch`, through the trainer's wrapper that keeps exit codes and forwards SIGTERM.
LAUNCH = ["python", "-m", "kubeft_trainer.launch"]
LABELS = {
    "app.kubernetes.io/name": "kubeft-trainer",
    "app.kubernetes.io/instance": "demo",
    "app.kubernetes.io/managed-by": "kubeft",
    "app.kubernetes.io/part-of": "kubeft",
    "kubeft.io/job": "demo",
}
OWNER_REF = {
    "apiVersion": "kubeft.io/v1alpha1",
    "kind": "FineTuneJob",
    "name": "demo",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}

WANT_MINIMAL_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "demo-train", "namespace": "team-a", "labels": LABELS, "ownerReferences": [OWNER_REF]},
    "spec": {
        "backoffLimit": 3,
        "completions": 1,
        "parallelism": 1,
        "suspend": False,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [64, 65]},
                },
            ]
        },
        "template": {
            "metadata": {"labels": LABELS},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 300,
                "serviceAccountName": "demo-trainer",
                "automountServiceAccountToken": True,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "runAsGroup": 10001,
                    "fsGroup": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "trainer",
                        "image": "ghcr.io/kubeft/trainer:0.1.0",
                        "imagePullPolicy": "IfNotPresent",
                        "command": [
                            "python",
                            "-m",
                            "kubeft_trainer.launch",
                            "--num_processes",
                            "1",
                            "-m",
                            "kubeft_trainer",
                            "--config",
                            "/etc/kubeft/config.yaml",
                        ],
                        "env": [
                            {"name": "KUBEFT_JOB_NAME", "value": "demo"},
                            {
                                "name": "KUBEFT_NAMESPACE",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            },
                            {"name": "KUBEFT_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "HF_HOME", "value": "/var/cache/huggingface"},
                            {"name": "KUBEFT_WORKDIR", "value": "/var/lib/kubeft"},
                            {"name": "KUBEFT_ALLOW_PRIVATE_ENDPOINTS", "value": "false"},
                        ],
                        "resources": {
                            "requests": {"cpu": "4", "memory": "32Gi"},
                            "limits": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                        },
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/kubeft", "readOnly": True},
                            {"name": "workdir", "mountPath": "/var/lib/kubeft"},
                            {"name": "hf-cache", "mountPath": "/var/cache/huggingface"},
                        ],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }
                ],
                "volumes": [
                    {"name": "config", "configMap": {"name": "demo-config"}},
                    {"name": "workdir", "emptyDir": {}},
                    {"name": "hf-cache", "emptyDir": {}},
                ],
            },
        },
    },
}


def build(settings: config.Settings | None = None, **patch: Any) -> dict[str, Any]:
    settings = settings or config.Settings()
    return job_builder.build(factories.OWNER, factories.spec(settings, **patch), settings=settings)


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def container(job: dict[str, Any]) -> dict[str, Any]:
    return pod_spec(job)["containers"][0]


def test_minimal_spec_builds_the_contract_job():
    assert build() == WANT_MINIMAL_JOB


@pytest.mark.parametrize(
    ("patch", "want_command_head"),
    [
        ({"resources": {"gpus": 4}}, [*LAUNCH, "--num_processes", "4", "-m", "kubeft_trainer"]),
        ({"resources": {"gpus": 0}}, [*LAUNCH, "--num_processes", "1", "-m", "kubeft_trainer"]),
    ],
)
def test_accelerate_launches_one_process_per_gpu(patch, want_command_head):
    assert container(build(**patch))["command"] == [*want_command_head, "--config", "/etc/kubeft/config.yaml"]


def test_operator_command_override_replaces_the_launcher_and_keeps_the_config_flag():
    settings = config.Settings(trainer_command=("python", "/opt/fake_trainer.py"))
    want = ["python", "/opt/fake_trainer.py", "--config", "/etc/kubeft/config.yaml"]
    assert container(build(settings))["command"] == want


@pytest.mark.parametrize(
    ("patch", "want_limits"),
    [
        ({"resources": {"gpus": 0, "cpu": "2", "memory": "4Gi"}}, {"cpu": "2", "memory": "4Gi"}),
        (
            {"resources": {"gpus": 2, "gpuResourceName": "amd.com/gpu"}},
            {"cpu": "4", "memory": "32Gi", "amd.com/gpu": "2"},
        ),
    ],
)
def test_gpus_are_a_limit_of_the_gpu_resource_only_when_requested(patch, want_limits):
    resources = container(build(**patch))["resources"]
    assert resources["limits"] == want_limits
    assert resources["requests"] == {"cpu": want_limits["cpu"], "memory": want_limits["memory"]}


@pytest.mark.parametrize(
    ("patch", "want_env"),
    [
        (
            {"storage": {"credentialsSecretRef": {"name": "s3-creds"}}},
            [
                {
                    "name": "AWS_ACCESS_KEY_ID",
                    "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}},
                },
                {
                    "name": "AWS_SECRET_ACCESS_KEY",
                    "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}},
                },
                {
                    "name": "AWS_SESSION_TOKEN",  # temporary credentials, when the Secret has one
                    "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "AWS_SESSION_TOKEN", "optional": True}},
                },
            ],
        ),
        (
            {"model": {"tokenSecretRef": {"name": "hf", "key": "read"}}},
            [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "read"}}}],
        ),
        (
            {"output": {"hub": {"repo": "org/adapter", "tokenSecretRef": {"name": "hub"}}}},
            [{"name": "KUBEFT_HUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hub", "key": "token"}}}],
        ),
    ],
)
def test_credentials_are_secret_references_never_values(patch, want_env):
    assert container(build(**patch))["env"][6:] == want_env


def test_operator_extra_env_is_appended_but_cannot_override_the_contract():
    settings = config.Settings(trainer_env=(("HF_HOME", "/elsewhere"), ("HF_HUB_OFFLINE", "1")))
    env = container(build(settings))["env"]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in env
    assert [e["value"] for e in env if e["name"] == "HF_HOME"] == ["/var/cache/huggingface"]


def test_scheduling_goes_to_the_pod_spec():
    scheduling = {
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "batch-low",
    }
    pod = pod_spec(build(scheduling=scheduling))
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["priorityClassName"] == "batch-low"


@pytest.mark.parametrize(
    ("patch", "want_suspend", "want_queue_label"),
    [
        ({}, False, None),
        ({"suspend": True}, True, None),
        ({"scheduling": {"queueName": "team-nlp"}}, True, "team-nlp"),
    ],
)
def test_job_is_created_suspended_for_kueue_or_when_asked(patch, want_suspend, want_queue_label):
    job = build(**patch)
    assert job["spec"]["suspend"] is want_suspend
    assert job["metadata"]["labels"].get("kueue.x-k8s.io/queue-name") == want_queue_label


def test_retry_limit_and_deadline_map_to_the_job():
    job = build(retryLimit=0, activeDeadlineSeconds=600)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 600


def test_image_comes_from_the_spec_or_the_operator_default():
    settings = config.Settings(trainer_image="registry.local/trainer:dev", trainer_image_pull_policy="Never")
    assert container(build(settings))["image"] == "registry.local/trainer:dev"
    assert container(build(settings))["imagePullPolicy"] == "Never"
    assert container(build(settings, image="mine:1"))["image"] == "mine:1"


def test_the_grace_period_is_the_operators_setting():
    assert pod_spec(build(config.Settings(termination_grace_seconds=1200)))["terminationGracePeriodSeconds"] == 1200


def test_a_disrupted_pod_is_retried_without_counting_and_user_errors_fail_at_once():
    """Preemption, eviction and drain mark the pod DisruptionTarget; Ignore keeps them off retryLimit.
    The rule comes first: a disrupted pod's SIGTERM exit (143) must never count as a failure."""
    rules = build()["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [64, 65]


def test_trainer_pods_pull_with_the_operators_secrets_only_when_it_has_some():
    assert "imagePullSecrets" not in pod_spec(build())
    settings = config.Settings(trainer_image_pull_secrets=("registry-a", "registry-b"))
    assert pod_spec(build(settings))["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]


def test_model_cache_uses_the_operator_claim_when_configured():
    volumes = pod_spec(build(config.Settings(hf_cache_claim="hf-cache")))["volumes"]
    assert volumes[2] == {"name": "hf-cache", "persistentVolumeClaim": {"claimName": "hf-cache"}}


@pytest.mark.parametrize(
    ("patch", "job_suspended", "want_patch"),
    [
        ({"suspend": True}, False, {"spec": {"suspend": True}}),
        ({"suspend": True}, True, None),
        ({}, True, {"spec": {"suspend": False}}),
        ({}, False, None),
        ({"scheduling": {"queueName": "q"}}, True, None),
        ({"scheduling": {"queueName": "q"}, "suspend": True}, False, {"spec": {"suspend": True}}),
    ],
)
def test_suspend_patch_follows_the_spec_and_leaves_admission_to_kueue(patch, job_suspended, want_patch):
    spec = factories.spec(**patch)
    assert job_builder.suspend_patch(spec, {"spec": {"suspend": job_suspended}}) == want_patch


@pytest.mark.parametrize(
    ("job", "want"),
    [
        ({"spec": {"suspend": False}, "status": {"active": 1}}, {"spec": {"suspend": True}}),
        ({"spec": {"suspend": True}, "status": {}}, None),
        ({"spec": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}, None),
        ({"spec": {}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}, None),
        ({"spec": {}, "status": {"conditions": [{"type": "Failed", "status": "False"}]}}, {"spec": {"suspend": True}}),
    ],
)
def test_stop_patch_suspends_only_a_job_that_still_runs(job, want):
    assert job_builder.stop_patch(job) == want
