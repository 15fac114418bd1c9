"""The trainer's identity: ServiceAccount, Role and RoleBinding, all named ``NAME-trainer``.

The Role grants ``get`` and ``patch`` on ``finetunejobs/status`` for this one FineTuneJob
(``resourceNames``), which is all the trainer's progress reporter needs. Nothing else: no
Secrets, no other jobs.
"""

from __future__ import annotations

from typing import Any

from kubeft_operator import config
from kubeft_operator.api import crd
from kubeft_operator.builders import meta

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"


def service_account(owner: meta.Owner, settings: config.Settings) -> dict[str, Any]:
    """The trainer's ServiceAccount, with the operator's annotations (workload identity)."""
    metadata = meta.metadata(owner, meta.trainer_name(owner.name))
    if settings.trainer_service_account_annotations:
        metadata["annotations"] = dict(settings.trainer_service_account_annotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}


def role(owner: meta.Owner) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "Role",
        "metadata": meta.metadata(owner, meta.trainer_name(owner.name)),
        "rules": [
            {
                "apiGroups": [crd.GROUP],
                "resources": [f"{crd.PLURAL}/status"],
                "resourceNames": [owner.name],
                "verbs": ["get", "patch"],
            }
        ],
    }


def role_binding(owner: meta.Owner) -> dict[str, Any]:
    name = meta.trainer_name(owner.name)
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": meta.metadata(owner, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
    }
