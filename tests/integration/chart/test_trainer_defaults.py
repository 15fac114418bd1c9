"""The trainer Job built with the chart's platform values passes the API server's validation.

The operator reads its settings from the environment of the Deployment the chart renders; these
tests read them from the rendered Deployment the same way (``config.Settings.from_env``), build the
trainer Job of examples/06-kueue-shared-cluster.yaml (a dataset on a claim, a queue, scheduling)
with them, and create it with a server-side dry run in a namespace that warns on the "restricted"
Pod Security level: a value the chart's schema accepts but a Job or its pods would refuse fails here,
not in every FineTuneJob of the platform.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import defaults, meta
from kubeft_operator.builders import job as job_builder
from tests.fixtures.cluster import REPO, Cluster, fresh_namespace
from tests.unit.chart import helm

pytestmark = pytest.mark.cluster

EXAMPLE = REPO / "examples" / "06-kueue-shared-cluster.yaml"
WARN_RESTRICTED = {"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest"}


@pytest.fixture
def warned_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_namespace(cluster, request, "t", WARN_RESTRICTED)


def _settings(*options: str) -> config.Settings:
    (deployment,) = helm.find(helm.render(*options), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return config.Settings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e})


def _trainer_job(settings: config.Settings, namespace: str, **spec_patch: Any) -> dict[str, Any]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    spec = spec_models.FineTuneJobSpec.model_validate({**doc["spec"], **spec_patch})
    owner = meta.Owner(name=doc["metadata"]["name"], namespace=namespace, uid="00000000-0000-0000-0000-000000000006")
    job = job_builder.build(owner, defaults.apply(spec, settings), settings=settings)
    # A dry run cannot resolve an owner that does not exist; the reference is not what is checked here.
    del job["metadata"]["ownerReferences"]
    return job


@pytest.mark.parametrize(
    "options", [(), ("-f", str(helm.VALUES_DIR / "every-knob.yaml"))], ids=["defaults", "every-knob"]
)
def test_the_trainer_job_of_example_06_passes_server_side_validation_and_the_restricted_level(
    cluster: Cluster, warned_namespace: str, options: tuple[str, ...]
) -> None:
    job = _trainer_job(_settings(*options), warned_namespace)

    done = cluster.kubectl(
        "apply", "--dry-run=server", "-n", warned_namespace, "-f", "-", input=yaml.safe_dump(job), check=False
    )

    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_the_platform_queue_and_scheduling_reach_a_job_that_sets_none(cluster: Cluster, warned_namespace: str) -> None:
    settings = _settings("-f", str(helm.VALUES_DIR / "every-knob.yaml"))
    job = _trainer_job(settings, warned_namespace, scheduling=None)

    done = cluster.kubectl("apply", "--dry-run=server", "-n", warned_namespace, "-o", "yaml", "-f", "-",
                           input=yaml.safe_dump(job), check=False)  # fmt: skip

    assert done.returncode == 0, done.stderr
    created = yaml.safe_load(done.stdout)
    pod = created["spec"]["template"]["spec"]
    assert created["spec"]["suspend"] is True
    assert created["metadata"]["labels"][meta.LABEL_QUEUE] == "team-nlp"
    assert pod["priorityClassName"] == "batch-low"
    assert pod["nodeSelector"] == {"node-pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert [t["key"] for t in pod["tolerations"]] == ["nvidia.com/gpu", "spot"]
