"""What `helm template` renders: the operator Deployment, its metrics Service and the optional ServiceMonitor."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from tests.unit.chart import helm

HA_VALUES = ("-f", str(helm.VALUES_DIR / "ha-monitoring.yaml"))
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterKopfPeering",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def _deployment(*options: str) -> dict[str, Any]:
    (deployment,) = helm.find(helm.render(*options), "Deployment")
    return deployment


def _container(*options: str) -> dict[str, Any]:
    (container,) = _deployment(*options)["spec"]["template"]["spec"]["containers"]
    return container


def _env(*options: str) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in _container(*options)["env"]}


def test_defaults_render_the_operator_deployment_and_metrics_service_only() -> None:
    kinds = sorted(obj["kind"] for obj in helm.render() if obj["kind"] in {"Deployment", "Service", "ServiceMonitor"})

    assert kinds == ["Deployment", "Service"]


def test_defaults_run_one_standalone_operator_replaced_not_rolled() -> None:
    deployment = _deployment()

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--standalone" in _container()["args"]


def test_operator_watches_all_namespaces_by_default() -> None:
    assert "--all-namespaces" in _container()["args"]


def test_watch_namespaces_become_namespace_flags() -> None:
    args = _container("--set", "operator.watchNamespaces={team-a,team-b}")["args"]

    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=team-a", "--namespace=team-b"]


def test_liveness_probe_hits_kopf_health_endpoint() -> None:
    container = _container("--set", "operator.healthPort=8181")

    assert "--liveness=http://0.0.0.0:8181/healthz" in container["args"]
    assert {"name": "health", "containerPort": 8181, "protocol": "TCP"} in container["ports"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_operator_runs_the_images_entry_point() -> None:
    """The image's `kubeft-operator` adds kopf's `run --module=...`; the args are kopf's options.
    That this command exists in the built image is checked by tests/e2e/test_images.py."""
    container = _container()

    assert container["command"] == ["kubeft-operator"]
    assert not any(arg.startswith("--module") or arg == "run" for arg in container["args"])
    assert "--standalone" in container["args"]


def test_image_tags_default_to_app_version() -> None:
    assert _container()["image"] == "ghcr.io/kubeft/operator:0.1.0"
    assert _env()["KUBEFT_TRAINER_IMAGE"] == "ghcr.io/kubeft/trainer:0.1.0"


def test_trainer_defaults_reach_the_operator_as_env() -> None:
    env = _env(
        "--set",
        "trainer.image.repository=registry.local/trainer,trainer.image.tag=dev,trainer.image.pullPolicy=Always",
        "--set",
        "trainer.defaultResources.gpus=2,trainer.defaultResources.cpu=8,trainer.defaultResources.memory=64Gi",
    )

    assert env["KUBEFT_TRAINER_IMAGE"] == "registry.local/trainer:dev"
    assert env["KUBEFT_TRAINER_IMAGE_PULL_POLICY"] == "Always"
    assert (env["KUBEFT_TRAINER_DEFAULT_GPUS"], env["KUBEFT_TRAINER_DEFAULT_CPU"]) == ("2", "8")
    assert env["KUBEFT_TRAINER_DEFAULT_MEMORY"] == "64Gi"


def test_trainer_env_reaches_the_operator_as_a_json_object_of_strings() -> None:
    env = _env("--set", "trainer.env.HF_HUB_OFFLINE=1", "--set-string", 'trainer.env.QUOTED=a"b')

    assert json.loads(env["KUBEFT_TRAINER_ENV"]) == {"HF_HUB_OFFLINE": "1", "QUOTED": 'a"b'}


def test_the_trainer_grace_period_reaches_the_operator() -> None:
    assert _env()["KUBEFT_TRAINER_TERMINATION_GRACE_SECONDS"] == "300"
    env = _env("--set", "trainer.terminationGracePeriodSeconds=900")
    assert env["KUBEFT_TRAINER_TERMINATION_GRACE_SECONDS"] == "900"


def test_the_trainer_progress_interval_reaches_the_operator_as_its_settings_read_it() -> None:
    assert _env()["KUBEFT_TRAINER_PROGRESS_INTERVAL_SECONDS"] == "30"
    env = _env("--set-json", "trainer.progressIntervalSeconds=0.5")
    assert config.Settings.from_env(env).progress_interval_seconds == 0.5


def test_trainer_pull_secrets_and_identity_reach_the_operator_as_its_settings_read_them() -> None:
    assert "KUBEFT_TRAINER_IMAGE_PULL_SECRETS" not in _env()
    assert "KUBEFT_TRAINER_SERVICE_ACCOUNT_ANNOTATIONS" not in _env()
    env = _env(
        "--set", "trainer.imagePullSecrets[0].name=registry-a",
        "--set", "trainer.imagePullSecrets[1].name=registry-b",
        "--set", "trainer.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/t",
    )  # fmt: skip
    settings = config.Settings.from_env(env)
    assert settings.trainer_image_pull_secrets == ("registry-a", "registry-b")
    assert settings.trainer_service_account_annotations == (("eks.amazonaws.com/role-arn", "arn:aws:iam::1:role/t"),)


def test_trainer_scheduling_defaults_reach_the_operator_only_when_set() -> None:
    env = _env()
    assert not [name for name in env if name.startswith("KUBEFT_TRAINER_DEFAULT_") and not name.endswith(
        ("_GPUS", "_CPU", "_MEMORY")
    )]  # fmt: skip
    assert config.Settings.from_env(env).default_scheduling == spec_models.SchedulingSpec()


def test_trainer_scheduling_defaults_reach_the_operator_as_its_settings_read_them() -> None:
    env = _env(
        "--set", "trainer.defaults.nodeSelector.node-pool=gpu",
        "--set", "trainer.defaults.nodeSelector.nvidia\\.com/gpu\\.product=NVIDIA-H100-80GB-HBM3",
        "--set", "trainer.defaults.tolerations[0].key=nvidia.com/gpu",
        "--set", "trainer.defaults.tolerations[0].operator=Exists",
        "--set", "trainer.defaults.tolerations[0].effect=NoSchedule",
        "--set", "trainer.defaults.tolerations[1].key=spot",
        "--set-string", "trainer.defaults.tolerations[1].value=true",
        "--set", "trainer.defaults.tolerations[1].effect=NoExecute",
        "--set", "trainer.defaults.tolerations[1].tolerationSeconds=60",
        "--set", "trainer.defaults.priorityClassName=batch-low",
        "--set", "trainer.defaults.queueName=team-nlp",
    )  # fmt: skip
    scheduling = config.Settings.from_env(env).default_scheduling
    assert scheduling.wire() == {
        "nodeSelector": {"node-pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute", "tolerationSeconds": 60},
        ],
        "priorityClassName": "batch-low",
        "queueName": "team-nlp",
    }


def test_trainer_disk_and_shm_defaults_reach_the_operator() -> None:
    settings = config.Settings.from_env(_env())
    assert settings.ephemeral_storage is None
    assert (settings.workdir_size_limit, settings.hf_cache_size_limit) == ("50Gi", "200Gi")
    assert settings.shm_size == "2Gi"


def test_trainer_disk_and_shm_values_reach_the_operator_and_blanking_one_turns_it_off() -> None:
    env = _env(
        "--set", "trainer.ephemeralStorage=50Gi,trainer.workdirSizeLimit=20Gi",
        "--set", "trainer.hfCacheSizeLimit=,trainer.shmSize=8Gi",
    )  # fmt: skip
    settings = config.Settings.from_env(env)
    assert (settings.ephemeral_storage, settings.workdir_size_limit) == ("50Gi", "20Gi")
    assert (settings.hf_cache_size_limit, settings.shm_size) == (None, "8Gi")


def test_hf_cache_claim_reaches_the_operator_only_when_set() -> None:
    assert "KUBEFT_HF_CACHE_CLAIM" not in _env()
    assert _env("--set", "trainer.hfCacheClaim=hf-cache")["KUBEFT_HF_CACHE_CLAIM"] == "hf-cache"


def test_defaults_leave_trainer_env_unset() -> None:
    assert "KUBEFT_TRAINER_ENV" not in _env()


@pytest.mark.parametrize("log_format", ["plain", "full", "json"])
def test_log_format_is_passed_to_kopf(log_format: str) -> None:
    assert f"--log-format={log_format}" in _container("--set", f"operator.logFormat={log_format}")["args"]


def test_metrics_port_is_exposed_passed_and_served() -> None:
    objects = helm.render("--set", "metrics.port=9100")
    (service,) = helm.find(objects, "Service")
    (deployment,) = helm.find(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]

    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]
    assert {"name": "KUBEFT_METRICS_PORT", "value": "9100"} in container["env"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_operator_runs_as_the_chart_service_account_name() -> None:
    assert _deployment()["spec"]["template"]["spec"]["serviceAccountName"] == "ft-kubeft-operator"


def test_service_account_name_can_be_overridden() -> None:
    pod = _deployment("--set", "serviceAccount.name=shared-sa")["spec"]["template"]["spec"]

    assert pod["serviceAccountName"] == "shared-sa"


def test_ha_values_run_two_peered_replicas_with_rolling_updates() -> None:
    deployment = _deployment(*HA_VALUES)

    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert "--peering=ft-kubeft" in _container(*HA_VALUES)["args"]
    assert "--standalone" not in _container(*HA_VALUES)["args"]


def test_ha_values_render_a_service_monitor_for_the_metrics_service() -> None:
    objects = helm.render(*HA_VALUES)
    (monitor,) = helm.find(objects, "ServiceMonitor")
    (service,) = helm.find(objects, "Service")

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]


def test_several_replicas_without_peering_are_refused() -> None:
    done = helm.run(*helm.template_args("--set", "operator.replicas=3"), check=False)

    assert done.returncode != 0
    assert "operator.replicas > 1 needs peering.enabled=true" in done.stderr


@pytest.mark.parametrize(
    ("log_level", "want_flag"), [("quiet", "--quiet"), ("verbose", "--verbose"), ("debug", "--debug")]
)
def test_log_level_becomes_a_kopf_flag(log_level: str, want_flag: str) -> None:
    assert want_flag in _container("--set", f"operator.logLevel={log_level}")["args"]


def test_common_labels_land_on_every_object() -> None:
    objects = helm.render("--set", "commonLabels.team=ml", *HA_VALUES)

    assert objects
    assert all(obj["metadata"]["labels"]["team"] == "ml" for obj in objects)


def test_every_namespaced_object_goes_to_the_release_namespace() -> None:
    objects = helm.render(*HA_VALUES)

    assert all(obj["metadata"]["namespace"] == helm.NAMESPACE for obj in objects if obj["kind"] not in CLUSTER_SCOPED)


def test_allowed_images_reach_the_operator_as_json_only_when_set() -> None:
    assert "KUBEFT_ALLOWED_IMAGES" not in _env()
    env = _env("--set", "operator.allowedImages[0]=registry.example.com/ml/*")
    assert env["KUBEFT_ALLOWED_IMAGES"] == '["registry.example.com/ml/*"]'


def test_trainer_network_policy_is_off_by_default_and_denies_metadata_per_namespace() -> None:
    assert helm.find(helm.render(), "NetworkPolicy") == []
    policies = helm.find(
        helm.render("--set", "trainer.networkPolicy.enabled=true", "--set", "operator.watchNamespaces={team-a,team-b}"),
        "NetworkPolicy",
    )
    assert [p["metadata"]["namespace"] for p in policies] == ["team-a", "team-b"]
    (rule,) = policies[0]["spec"]["egress"]
    excepted = [cidr for block in rule["to"] for cidr in block["ipBlock"]["except"]]
    assert "169.254.0.0/16" in excepted and "fe80::/10" in excepted
    assert policies[0]["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "kubeft"}


def test_trainer_network_policy_needs_namespaces() -> None:
    failed = helm.run(*helm.template_args("--set", "trainer.networkPolicy.enabled=true"), check=False)
    assert failed.returncode != 0
    assert "trainer.networkPolicy.namespaces" in failed.stderr
