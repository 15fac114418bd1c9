"""Runs the helm binary against charts/kubeft; shared by the chart unit and integration tests.

helm comes from PATH: `make` puts $KUBEFT_CACHE/bin there (hack/install-tools.sh installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "kubeft"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "ft"
NAMESPACE = "kubeft-system"


def binary() -> str:
    """Path of helm, or an AssertionError that says how to get it."""
    found = shutil.which("helm")
    assert found, "helm is not on PATH: run through `make` or add $KUBEFT_CACHE/bin (hack/install-tools.sh)"
    return found


def run(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`helm ARGS...` (in `env`, e.g. a cluster's); with check, fails the test with helm's stderr on a non-zero exit."""
    done = subprocess.run([binary(), *args], capture_output=True, text=True, timeout=120, check=False, env=env)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stderr}"
    return done


def template_args(*options: str, namespace: str = NAMESPACE) -> list[str]:
    return ["template", RELEASE, str(CHART), "--namespace", namespace, *options]


def render(*options: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The objects `helm template` renders with the given options (e.g. `--set`, `-f`)."""
    out = run(*template_args(*options, namespace=namespace)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def notes(*options: str) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` never renders NOTES; a client-side dry run does,
    without a cluster."""
    out = run("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *options).stdout
    _, sep, text = out.partition("\nNOTES:\n")
    assert sep, f"helm install --dry-run printed no NOTES:\n{out}"
    return text
