"""ConfigMap, ServiceAccount, Role and RoleBinding of a FineTuneJob, and their creation order."""

from __future__ import annotations

import yaml

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import children, config_map, rbac
from tests.unit.operator import factories
from tests.unit.operator.test_trainer_job import LABELS, OWNER_REF

METADATA_TRAINER = {"name": "demo-trainer", "namespace": "team-a", "labels": LABELS, "ownerReferences": [OWNER_REF]}


def test_config_map_holds_the_trainer_config_document():
    spec = factories.spec()
    cm = config_map.build(factories.OWNER, spec)
    assert cm["metadata"] == {**METADATA_TRAINER, "name": "demo-config"}
    assert cm["immutable"] is True
    doc = yaml.safe_load(cm["data"]["config.yaml"])
    assert doc["apiVersion"] == "kubeft.io/v1alpha1"
    assert doc["kind"] == "TrainerConfig"
    assert doc["metadata"] == {"name": "demo", "namespace": "team-a", "uid": "uid-1"}
    assert doc["spec"] == spec.wire()


def test_trainer_config_round_trips_through_the_spec_model():
    spec = factories.spec()
    doc = yaml.safe_load(config_map.render(factories.OWNER, spec))
    assert spec_models.FineTuneJobSpec.model_validate(doc["spec"]) == spec


def test_service_account_is_named_after_the_job():
    assert rbac.service_account(factories.OWNER, config.Settings()) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": METADATA_TRAINER,
    }


def test_service_account_carries_the_operators_workload_identity_annotations():
    role_arn = "arn:aws:iam::123456789012:role/kubeft-trainer"
    settings = config.Settings(trainer_service_account_annotations=(("eks.amazonaws.com/role-arn", role_arn),))
    account = rbac.service_account(factories.OWNER, settings)
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role_arn}
    assert account["metadata"]["name"] == METADATA_TRAINER["name"]


def test_role_allows_only_get_and_patch_of_this_jobs_status():
    assert rbac.role(factories.OWNER) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": METADATA_TRAINER,
        "rules": [
            {
                "apiGroups": ["kubeft.io"],
                "resources": ["finetunejobs/status"],
                "resourceNames": ["demo"],
                "verbs": ["get", "patch"],
            }
        ],
    }


def test_role_binding_binds_the_role_to_the_trainer_service_account():
    assert rbac.role_binding(factories.OWNER) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": METADATA_TRAINER,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo-trainer"},
        "subjects": [{"kind": "ServiceAccount", "name": "demo-trainer", "namespace": "team-a"}],
    }


def test_job_is_created_last_so_its_existence_implies_every_child():
    kinds = [o["kind"] for o in children.build(factories.OWNER, factories.spec(), settings=config.Settings())]
    assert kinds == ["ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Job"]


def test_creation_stages_put_the_role_before_its_binding_and_the_job_last() -> None:
    stages = children.stages(factories.OWNER, factories.spec(), settings=config.Settings())
    kinds = [[o["kind"] for o in stage] for stage in stages]
    assert kinds == [["ConfigMap", "ServiceAccount", "Role"], ["RoleBinding"], ["Job"]]
    flat = [o for stage in stages for o in stage]
    assert flat == children.build(factories.OWNER, factories.spec(), settings=config.Settings())
