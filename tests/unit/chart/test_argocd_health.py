"""The Argo CD health check for FineTuneJob (charts/kubeft/files/argocd-health.lua), run in Lua 5.1.

Argo CD evaluates health scripts with gopher-lua, a Lua 5.1 implementation, and gives scripts from
argocd-cm only the base, table and package libraries. The tests use lupa's Lua 5.1 runtime with the
other libraries removed, so a call to string.format or math.floor fails here as it would in Argo CD.
"""

from __future__ import annotations

import re
from typing import Any

import lupa.lua51
import pytest
import yaml

from tests.unit.chart import helm

SCRIPT_PATH = helm.CHART / "files" / "argocd-health.lua"
SCRIPT = SCRIPT_PATH.read_text()
DOCS = helm.ROOT / "docs" / "argocd.md"


ABSENT_IN_ARGOCD = ("string", "math", "io", "os", "debug", "coroutine")


def _health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.lua51.LuaRuntime()
    for library in ABSENT_IN_ARGOCD:
        lua.globals()[library] = None
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPT)
    return hs["status"], hs["message"]


def _ftj(status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "kubeft.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "run", "namespace": "ml", "generation": 1},
        "spec": {"suspend": False},
    }
    if status is not None:
        obj["status"] = status
    return obj


def _cond(type_: str, reason: str, message: str = "", status: str = "True") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


CASES: list[tuple[str, dict[str, Any] | None, str, str]] = [
    # (id, status, want_status, want_message)
    ("no-status", None, "Progressing", "Waiting for the operator"),
    ("status-without-phase", {"conditions": []}, "Progressing", "Waiting for the operator"),
    (
        "pending",
        {"phase": "Pending", "conditions": [_cond("Created", "ChildrenCreated", "Trainer Job created")]},
        "Progressing",
        "Pending",
    ),
    (
        "queued",
        {"phase": "Queued", "conditions": [_cond("Queued", "WaitingForQuota", "Kueue queue team-a is full")]},
        "Progressing",
        "Kueue queue team-a is full",
    ),
    (
        "running-with-progress-keeps-the-condition-message",
        {
            "phase": "Running",
            "conditions": [_cond("Running", "TrainerRunning", "the trainer is running")],
            "progress": {"step": 20, "totalSteps": 50, "summary": "20/50 (40%)", "loss": 1.234567, "eta": "3m10s"},
        },
        "Progressing",
        "the trainer is running",
    ),
    (
        "running-progress-only",
        {"phase": "Running", "progress": {"summary": "5/50 (10%)", "loss": 2}},
        "Progressing",
        "Running",
    ),
    (
        "queued-after-preemption",
        {
            "phase": "Queued",
            "conditions": [_cond("Queued", "Preempted", "Kueue preempted Job run-train: Preempted to accommodate")],
        },
        "Progressing",
        "Kueue preempted Job run-train: Preempted to accommodate",
    ),
    (
        "running-before-first-report",
        {"phase": "Running", "conditions": [_cond("Running", "TrainerRunning", "Trainer pod started")]},
        "Progressing",
        "Trainer pod started",
    ),
    (
        "succeeded",
        {
            "phase": "Succeeded",
            "conditions": [
                _cond("Running", "TrainerRunning", "old news", status="False"),
                _cond("Succeeded", "AdapterExported", "Adapter exported to s3://adapters/run"),
            ],
            "artifact": {"uri": "s3://adapters/run"},
        },
        "Healthy",
        "Adapter exported to s3://adapters/run",
    ),
    (
        "succeeded-without-condition",
        {"phase": "Succeeded", "artifact": {"uri": "hf://org/adapter"}},
        "Healthy",
        "Adapter exported to hf://org/adapter",
    ),
    (
        "failed",
        {
            "phase": "Failed",
            "conditions": [_cond("Failed", "DatasetNotFound", "s3://data/train.jsonl does not exist")],
        },
        "Degraded",
        "DatasetNotFound: s3://data/train.jsonl does not exist",
    ),
    (
        "failed-reason-only",
        {"phase": "Failed", "conditions": [_cond("Failed", "Diverged")]},
        "Degraded",
        "Diverged",
    ),
    (
        "failed-condition-not-true",
        {"phase": "Failed", "conditions": [_cond("Failed", "Diverged", "loss is NaN", status="False")]},
        "Degraded",
        "Failed",
    ),
    (
        "suspended",
        {
            "phase": "Suspended",
            "conditions": [_cond("Suspended", "SuspendedByUser", "spec.suspend is true; set it false to resume")],
            "progress": {"summary": "20/50 (40%)"},
        },
        "Suspended",
        "spec.suspend is true; set it false to resume",
    ),
    ("unknown-phase", {"phase": "Exploded"}, "Unknown", "Unknown phase Exploded"),
]


@pytest.mark.parametrize(("status", "want_status", "want_message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_phase_maps_to_argocd_health(status: dict[str, Any] | None, want_status: str, want_message: str) -> None:
    assert _health(_ftj(status)) == (want_status, want_message)


def test_docs_argocd_cm_snippet_embeds_the_chart_script() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    configmaps = [doc for doc in map(yaml.safe_load, blocks) if doc.get("kind") == "ConfigMap"]
    (argocd_cm,) = configmaps

    assert argocd_cm["metadata"]["name"] == "argocd-cm"
    assert argocd_cm["data"]["resource.customizations.health.kubeft.io_FineTuneJob"] == SCRIPT
