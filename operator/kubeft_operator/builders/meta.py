"""Names, labels and owner references shared by every object kubeft creates for a FineTuneJob.

Child names are derived from the FineTuneJob's name alone, so creating them again after a crash
finds the same objects (AlreadyExists) instead of making duplicates. Used by the other builders
and by the reconciler, which looks children up by these names and labels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kubeft_operator.api import contract, crd

API_VERSION = contract.API_VERSION
LABEL_JOB = "kubeft.io/job"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubeft"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
# Server-side filter for the operator's watches of Jobs and Pods: only what kubeft made.
CHILD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_JOB}"
CONTAINER = "trainer"
VERIFY_CONTAINER = "verify"
CONFIG_DIR = "/etc/kubeft"
CONFIG_KEY = "config.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"


@dataclasses.dataclass(frozen=True)
class Owner:
    """The FineTuneJob that owns the children: what owner references and labels need."""

    name: str
    namespace: str
    uid: str


def config_map_name(job: str) -> str:
    return f"{job}-config"


def trainer_name(job: str) -> str:
    """Name of the trainer's ServiceAccount, Role and RoleBinding."""
    return f"{job}-trainer"


def job_name(job: str) -> str:
    return f"{job}-train"


def verify_job_name(job: str) -> str:
    """The Job that checks the exported adapter when the trainer ran unvetted code (builders/verify.py)."""
    return f"{job}-verify"


def labels(owner: Owner) -> dict[str, str]:
    """Labels on every child and on the trainer pods; ``kubeft.io/job`` maps them back to the owner."""
    return {
        "app.kubernetes.io/name": "kubeft-trainer",
        "app.kubernetes.io/instance": owner.name,
        LABEL_MANAGED_BY: MANAGED_BY,
        "app.kubernetes.io/part-of": "kubeft",
        LABEL_JOB: owner.name,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    """A controller reference: deleting the FineTuneJob garbage-collects the child."""
    return {
        "apiVersion": API_VERSION,
        "kind": crd.KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(owner: Owner, name: str, *, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**labels(owner), **(extra_labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }


def is_owned_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether ``obj`` names the FineTuneJob with ``uid`` as its controller."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)
