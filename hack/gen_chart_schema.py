"""Generate charts/kubeft/values.schema.json from charts/kubeft/values.yaml.

Run ``python hack/gen_chart_schema.py`` after editing values.yaml; ``--check`` exits 1 when the
schema on disk is stale. The unit test ``tests/unit/chart/test_values_schema.py`` calls
:func:`render` and fails on drift.

Each key's schema is inferred from its default value (string, boolean, integer, number, or an
object of such keys), and every object the chart defines gets ``additionalProperties: false``, so a
mistyped key fails ``helm install`` instead of being ignored. Defaults that say nothing about their
type (empty maps and lists) must carry a ``# @schema`` line in their comment: inline JSON, or
``k8s:<Type>`` for one of :data:`KUBERNETES_TYPES`. Every key needs a ``# --`` comment; it becomes
the key's description, and a key without one is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = REPO_ROOT / "charts" / "kubeft"
VALUES = CHART_DIR / "values.yaml"
SCHEMA = CHART_DIR / "values.schema.json"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s|$)")
_DOC_START = "# --"
_SCHEMA_MARK = "# @schema "

_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}
_STRINGS = {"type": "array", "items": _STRING}
_QUANTITY_MAP = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
# Deep Kubernetes structures (node affinity terms, env valueFrom, ...) are left to the API server.
_API_VALIDATED = {"type": "object", "additionalProperties": True}


def _closed(properties: dict[str, Any], *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_SECCOMP = _closed({"type": _STRING, "localhostProfile": _STRING}, required=("type",))
_SELINUX = _closed({"user": _STRING, "role": _STRING, "type": _STRING, "level": _STRING})

KUBERNETES_TYPES: dict[str, dict[str, Any]] = {
    "LocalObjectReferenceList": _list_of(_closed({"name": _STRING}, required=("name",))),
    "ResourceRequirements": _closed(
        {"requests": _QUANTITY_MAP, "limits": _QUANTITY_MAP, "claims": _list_of(_API_VALIDATED)}
    ),
    "EnvVarList": _list_of(
        _closed({"name": _STRING, "value": _STRING, "valueFrom": _API_VALIDATED}, required=("name",))
    ),
    "PodSecurityContext": _closed(
        {
            "runAsNonRoot": _BOOLEAN,
            "runAsUser": _INTEGER,
            "runAsGroup": _INTEGER,
            "fsGroup": _INTEGER,
            "fsGroupChangePolicy": _STRING,
            "supplementalGroups": _list_of(_INTEGER),
            "supplementalGroupsPolicy": _STRING,
            "seccompProfile": _SECCOMP,
            "appArmorProfile": _SECCOMP,
            "seLinuxOptions": _SELINUX,
            "seLinuxChangePolicy": _STRING,
            "sysctls": _list_of(_closed({"name": _STRING, "value": _STRING}, required=("name", "value"))),
            "windowsOptions": _API_VALIDATED,
        }
    ),
    "SecurityContext": _closed(
        {
            "allowPrivilegeEscalation": _BOOLEAN,
            "privileged": _BOOLEAN,
            "readOnlyRootFilesystem": _BOOLEAN,
            "runAsNonRoot": _BOOLEAN,
            "runAsUser": _INTEGER,
            "runAsGroup": _INTEGER,
            "capabilities": _closed({"add": _STRINGS, "drop": _STRINGS}),
            "seccompProfile": _SECCOMP,
            "appArmorProfile": _SECCOMP,
            "seLinuxOptions": _SELINUX,
            "procMount": _STRING,
            "windowsOptions": _API_VALIDATED,
        }
    ),
    "TolerationList": _list_of(
        _closed(
            {
                "key": _STRING,
                "operator": {"type": "string", "enum": ["Exists", "Equal"]},
                "value": _STRING,
                "effect": {"type": "string", "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
                "tolerationSeconds": _INTEGER,
            }
        )
    ),
    "Affinity": _closed(
        {"nodeAffinity": _API_VALIDATED, "podAffinity": _API_VALIDATED, "podAntiAffinity": _API_VALIDATED}
    ),
}


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    """What the comment block above one values.yaml key says."""

    description: str
    schema: dict[str, Any] | None


class ValuesError(ValueError):
    """values.yaml breaks one of the conventions the generator relies on."""


def _parse_comment(lines: list[str], *, path: str) -> KeyDoc:
    texts = [line.strip() for line in lines]
    starts = [i for i, text in enumerate(texts) if text.startswith(_DOC_START)]
    if not starts:
        raise ValuesError(f"`{path}` has no `# --` comment")
    description: list[str] = []
    schema_parts: list[str] = []
    for text in texts[starts[-1] :]:
        if text.startswith(_SCHEMA_MARK):
            schema_parts.append(text.removeprefix(_SCHEMA_MARK).strip())
        else:
            description.append(text.removeprefix(_DOC_START).removeprefix("#").strip())
    text = " ".join(d for d in description if d)
    if not text:
        raise ValuesError(f"`{path}` has an empty `# --` comment")
    return KeyDoc(description=text, schema=_explicit_schema(schema_parts, path=path))


def _explicit_schema(parts: list[str], *, path: str) -> dict[str, Any] | None:
    if not parts:
        return None
    text = " ".join(parts)
    if text.startswith("k8s:"):
        name = text.removeprefix("k8s:")
        if name not in KUBERNETES_TYPES:
            raise ValuesError(f"`{path}`: unknown Kubernetes type {name!r}; known: {sorted(KUBERNETES_TYPES)}")
        return dict(KUBERNETES_TYPES[name])
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValuesError(f"`{path}`: `# @schema` is neither JSON nor k8s:<Type>: {err}") from err
    if not isinstance(schema, dict):
        raise ValuesError(f"`{path}`: `# @schema` must be a JSON object")
    return schema


def parse_docs(text: str) -> dict[tuple[str, ...], KeyDoc]:
    """Map each key path of values.yaml to its comment; keys under an explicit schema are not visited."""
    docs: dict[tuple[str, ...], KeyDoc] = {}
    stack: list[tuple[int, tuple[str, ...], bool]] = []  # (indent, path, has explicit schema)
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(line)
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            pending = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent_path, inside_explicit = (stack[-1][1], stack[-1][2]) if stack else ((), False)
        path = (*parent_path, match["key"])
        if not inside_explicit:
            docs[path] = _parse_comment(pending, path=".".join(path))
        stack.append((indent, path, inside_explicit or docs[path].schema is not None))
        pending = []
    return docs


def _infer(value: Any, *, path: tuple[str, ...], docs: dict[tuple[str, ...], KeyDoc]) -> dict[str, Any]:
    name = ".".join(path)
    if path not in docs:
        raise ValuesError(f"`{name}` is not a plain block-style key of values.yaml")
    doc = docs[path]
    if doc.schema is not None:
        schema = doc.schema
    elif isinstance(value, dict) and value:
        schema = _closed({key: _infer(sub, path=(*path, key), docs=docs) for key, sub in value.items()})
    elif isinstance(value, bool):
        schema = dict(_BOOLEAN)
    elif isinstance(value, int):
        schema = dict(_INTEGER)
    elif isinstance(value, float):
        schema = {"type": "number"}
    elif isinstance(value, str):
        schema = dict(_STRING)
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        schema = dict(_STRINGS)
    else:
        raise ValuesError(f"`{name}`: cannot infer a schema from {value!r}; add a `# @schema` line")
    return {"description": doc.description, **schema}


def build_schema(text: str) -> dict[str, Any]:
    """The JSON schema of a values.yaml document."""
    values = yaml.safe_load(text)
    docs = parse_docs(text)
    properties = {key: _infer(value, path=(key,), docs=docs) for key, value in values.items()}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Values of the kubeft Helm chart",
        "description": "Generated by hack/gen_chart_schema.py from values.yaml. Do not edit.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def render(values_path: Path = VALUES) -> str:
    """values.schema.json's expected content for the given values.yaml."""
    return json.dumps(build_schema(values_path.read_text()), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if values.schema.json is stale; write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not SCHEMA.exists() or SCHEMA.read_text() != text:
            print(f"{SCHEMA.relative_to(REPO_ROOT)} is stale: run python hack/gen_chart_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(text)
    print(f"wrote {SCHEMA.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
