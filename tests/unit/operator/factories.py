"""Small builders of FineTuneJob specs and of observed Job/pod bodies for the operator's unit tests."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import defaults, meta

OWNER = meta.Owner(name="demo", namespace="team-a", uid="uid-1")
NOW = "2026-01-01T00:10:00Z"
EARLIER = "2026-01-01T00:00:00Z"

MINIMAL = {
    "model": {"source": "org/model"},
    "dataset": {"source": "/data/train.jsonl", "fields": {"text": "text"}},
    "task": "CAUSAL_LM",
    "method": {"type": "lora"},
    "training": {"maxSteps": 5},
    "output": {"s3": {"uri": "s3://bucket/prefix"}},
    "resources": {"gpus": 1, "cpu": "4", "memory": "32Gi"},
}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def spec(settings: config.Settings | None = None, **patch: Any) -> spec_models.FineTuneJobSpec:
    parsed = spec_models.FineTuneJobSpec.model_validate(merge(MINIMAL, patch))
    return defaults.apply(parsed, settings or config.Settings())


def job(
    *,
    suspend: bool = False,
    conditions: list[dict[str, Any]] | None = None,
    failed: int = 0,
    uid: str = "job-uid",
    owner_uid: str = OWNER.uid,
    rv: str = "10",
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": meta.job_name(OWNER.name),
            "uid": uid,
            "resourceVersion": rv,
            "ownerReferences": [meta.owner_reference(meta.Owner(OWNER.name, OWNER.namespace, owner_uid))],
        },
        "spec": {"suspend": suspend},
        "status": {
            **({"conditions": conditions} if conditions else {}),
            **({"failed": failed} if failed else {}),
            **status,
        },
    }


def job_condition(type_: str, reason: str = "", message: str = "", at: str = EARLIER) -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message, "lastTransitionTime": at}


def pod(
    phase: str,
    *,
    name: str = "demo-train-abcde",
    waiting: dict[str, str] | None = None,
    terminated: dict[str, Any] | None = None,
    unschedulable: str | None = None,
    job_uid: str = "job-uid",
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if waiting is not None:
        state["waiting"] = waiting
    if terminated is not None:
        state["terminated"] = terminated
    if phase == "Running":
        state["running"] = {"startedAt": EARLIER}
    conditions = []
    if unschedulable is not None:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        )
    return {
        "metadata": {"name": name, "uid": f"{name}-uid", "creationTimestamp": EARLIER, "controllerUid": job_uid},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [{"name": meta.CONTAINER, "state": state}] if state else [],
        },
    }


def terminated(exit_code: int, message: Any = None, *, reason: str = "Error", at: str = EARLIER) -> dict[str, Any]:
    text = message if isinstance(message, str) or message is None else json.dumps(message)
    out: dict[str, Any] = {"exitCode": exit_code, "reason": reason, "finishedAt": at}
    if text is not None:
        out["message"] = text
    return out
