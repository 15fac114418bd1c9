"""The trainer Job built from a spec: the whole object for one spec, then one table row per knob."""

from __future__ import annotations

from typing import Any

import pytest

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
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
                    "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [64, 65, 66]},
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
                    "fsGroupChangePolicy": "OnRootMismatch",
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
                            {"name": "KUBEFT_PROGRESS_INTERVAL", "value": "30"},
                            {"name": "KUBEFT_PARALLELISM", "value": "ddp"},
                        ],
                        "resources": {
                            "requests": {"cpu": "4", "memory": "32Gi"},
                            "limits": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                        },
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/kubeft", "readOnly": True},
                            {"name": "workdir", "mountPath": "/var/lib/kubeft"},
                            {"name": "hf-cache", "mountPath": "/var/cache/huggingface"},
                            {"name": "shm", "mountPath": "/dev/shm"},
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
                    {"name": "workdir", "emptyDir": {"sizeLimit": "50Gi"}},
                    {"name": "hf-cache", "emptyDir": {"sizeLimit": "200Gi"}},
                    {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
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
        ({"resources": {"gpus": 4}}, [*LAUNCH, "--multi_gpu", "--num_processes", "4", "-m", "kubeft_trainer"]),
        ({"resources": {"gpus": 1}}, [*LAUNCH, "--num_processes", "1", "-m", "kubeft_trainer"]),
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
    assert container(build(**patch))["env"][8:] == want_env


def test_operator_extra_env_is_appended_but_cannot_override_the_contract():
    settings = config.Settings(trainer_env=(("HF_HOME", "/elsewhere"), ("HF_HUB_OFFLINE", "1")))
    env = container(build(settings))["env"]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in env
    assert [e["value"] for e in env if e["name"] == "HF_HOME"] == ["/var/cache/huggingface"]


def test_the_progress_interval_reaches_the_trainer_and_extra_env_cannot_override_it():
    settings = config.Settings(progress_interval_seconds=0.5, trainer_env=(("KUBEFT_PROGRESS_INTERVAL", "1"),))
    env = container(build(settings))["env"]
    assert [e["value"] for e in env if e["name"] == "KUBEFT_PROGRESS_INTERVAL"] == ["0.5"]


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
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [64, 65, 66]


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


PLATFORM = config.Settings(
    default_scheduling=spec_models.SchedulingSpec.model_validate(
        {
            "nodeSelector": {"pool": "gpu", "zone": "a"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "batch-low",
            "queueName": "shared",
        }
    )
)
GPU_TAINT = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
SPOT_TAINT = [{"key": "spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]


@pytest.mark.parametrize(
    ("scheduling", "want_node_selector", "want_tolerations", "want_priority", "want_queue"),
    [
        (None, {"pool": "gpu", "zone": "a"}, GPU_TAINT, "batch-low", "shared"),
        ({"nodeSelector": {"zone": "b", "gpu": "a100"}}, {"pool": "gpu", "zone": "b", "gpu": "a100"}, GPU_TAINT,
         "batch-low", "shared"),
        ({"tolerations": SPOT_TAINT}, {"pool": "gpu", "zone": "a"}, SPOT_TAINT, "batch-low", "shared"),
        ({"priorityClassName": "urgent", "queueName": "team-nlp"}, {"pool": "gpu", "zone": "a"}, GPU_TAINT,
         "urgent", "team-nlp"),
    ],
    ids=["platform-only", "node-selector-merged-key-by-key", "tolerations-replaced", "priority-and-queue-win"],
)  # fmt: skip
def test_the_platforms_scheduling_defaults_fill_what_the_job_leaves_out(
    scheduling, want_node_selector, want_tolerations, want_priority, want_queue
):
    job = build(PLATFORM, **({"scheduling": scheduling} if scheduling else {}))
    pod = pod_spec(job)
    assert pod["nodeSelector"] == want_node_selector
    assert pod["tolerations"] == want_tolerations
    assert pod["priorityClassName"] == want_priority
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == want_queue


def test_the_default_queue_creates_the_job_suspended_like_a_queue_the_job_names():
    """The operator's default queue is the job's queue: created suspended, labelled, left to Kueue."""
    settings = config.Settings(default_scheduling=spec_models.SchedulingSpec(queue_name="shared"))
    job = build(settings)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "shared"
    assert job_builder.suspend_patch(factories.spec(settings), {"spec": {"suspend": True}}) is None


def test_without_platform_defaults_the_pod_has_no_scheduling_fields():
    pod = pod_spec(build())
    assert not {"nodeSelector", "tolerations", "priorityClassName"} & pod.keys()


@pytest.mark.parametrize(
    ("settings", "want_requests"),
    [
        (config.Settings(), {"cpu": "4", "memory": "32Gi"}),
        (config.Settings(ephemeral_storage="40Gi"), {"cpu": "4", "memory": "32Gi", "ephemeral-storage": "40Gi"}),
    ],
    ids=["none-by-default", "operator-request"],
)
def test_local_disk_is_requested_only_when_the_operator_asks_and_never_limited(settings, want_requests):
    resources = container(build(settings))["resources"]
    assert resources["requests"] == want_requests
    assert "ephemeral-storage" not in resources["limits"]


@pytest.mark.parametrize(
    ("settings", "want_workdir", "want_cache"),
    [
        (config.Settings(workdir_size_limit="10Gi", hf_cache_size_limit="80Gi"),
         {"emptyDir": {"sizeLimit": "10Gi"}}, {"emptyDir": {"sizeLimit": "80Gi"}}),
        (config.Settings(workdir_size_limit=None, hf_cache_size_limit=None), {"emptyDir": {}}, {"emptyDir": {}}),
        (config.Settings(hf_cache_claim="hf-cache"), {"emptyDir": {"sizeLimit": "50Gi"}},
         {"persistentVolumeClaim": {"claimName": "hf-cache"}}),
    ],
    ids=["limits", "no-limits", "shared-cache-claim-has-no-size-limit"],
)  # fmt: skip
def test_scratch_volumes_take_the_operators_size_limits(settings, want_workdir, want_cache):
    volumes = {v.pop("name"): v for v in pod_spec(build(settings))["volumes"]}
    assert volumes["workdir"] == want_workdir
    assert volumes["hf-cache"] == want_cache


def test_dev_shm_is_a_memory_volume_of_the_operators_size():
    job = build(config.Settings(shm_size="8Gi"))
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in pod_spec(job)["volumes"]
    assert {"name": "shm", "mountPath": "/dev/shm"} in container(job)["volumeMounts"]


def test_without_a_shm_size_the_runtimes_dev_shm_is_left_alone():
    job = build(config.Settings(shm_size=None))
    assert "shm" not in {v["name"] for v in pod_spec(job)["volumes"]}
    assert "/dev/shm" not in {m["mountPath"] for m in container(job)["volumeMounts"]}


def test_volume_ownership_is_changed_only_when_the_root_mismatches():
    """A shared cache claim holds hundreds of GB: a recursive chown on every pod start would stall it."""
    security = pod_spec(build(config.Settings(hf_cache_claim="hf-cache")))["securityContext"]
    assert security["fsGroup"] == 10001
    assert security["fsGroupChangePolicy"] == "OnRootMismatch"


SPEC_VOLUMES = {
    "volumes": [
        {"name": "datasets", "persistentVolumeClaim": {"claimName": "team-datasets"}},
        {"name": "scratch", "persistentVolumeClaim": {"claimName": "team-scratch", "readOnly": False}},
        {"name": "templates", "configMap": {"name": "chat-templates"}},
    ],
    "volumeMounts": [
        {"name": "datasets", "mountPath": "/datasets"},
        {"name": "scratch", "mountPath": "/mnt/scratch"},
        {"name": "templates", "mountPath": "/data/templates"},
    ],
}


def test_spec_volumes_follow_the_trainers_own_and_claims_are_read_only_unless_asked():
    """A read-only source makes its mount read-only too, whatever the mount says; a writable claim
    is mounted as the mount asks."""
    job = build(**SPEC_VOLUMES)
    assert pod_spec(job)["volumes"][-3:] == [
        {"name": "datasets", "persistentVolumeClaim": {"claimName": "team-datasets", "readOnly": True}},
        {"name": "scratch", "persistentVolumeClaim": {"claimName": "team-scratch", "readOnly": False}},
        {"name": "templates", "configMap": {"name": "chat-templates"}},
    ]
    assert container(job)["volumeMounts"][-3:] == [
        {"name": "datasets", "mountPath": "/datasets", "readOnly": True},
        {"name": "scratch", "mountPath": "/mnt/scratch", "readOnly": False},
        {"name": "templates", "mountPath": "/data/templates", "readOnly": True},
    ]


def test_the_trainers_own_volumes_are_the_names_the_api_reserves():
    """spec.volumes may not use these names (a CEL rule in the CRD): the pod would have two volumes of one name."""
    own = [v["name"] for v in pod_spec(build())["volumes"]]
    assert tuple(own) == spec_models.TRAINER_VOLUME_NAMES


def test_the_trainers_own_mounts_lie_outside_the_roots_spec_mounts_may_use():
    """spec.volumeMounts must be under MOUNT_ROOTS (a CEL rule), so it can never hide or replace these."""
    own = [m["mountPath"] for m in container(build(config.Settings(hf_cache_claim="c")))["volumeMounts"]]
    own += ["/opt/kubeft", "/src"]  # the trainer image's code (trainer-image/Dockerfile)
    for path in own:
        for root in spec_models.MOUNT_ROOTS:
            assert not (path == root or path.startswith(root + "/") or root.startswith(path + "/")), (path, root)
