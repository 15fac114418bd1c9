"""Generate the FineTuneJob CustomResourceDefinition from the pydantic models.

``make crds`` runs ``python -m kubeft_operator.api.crd`` which writes ``crds/finetunejob.yaml``,
its copy in the Helm chart, and the chart's trainer status policy (status_policy.py). The unit
test ``test_crd_generation`` fails when any of them drifts from the models.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema. This
module inlines ``$ref``s, turns ``Optional[X]`` (``anyOf [X, null]``) into plain ``X``,
translates numeric exclusive bounds, drops titles, and carries over descriptions, defaults and
the CEL rules declared with :func:`kubeft_operator.api.base.cel`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubeft_operator.api import contract, status_policy
from kubeft_operator.api import spec as spec_models
from kubeft_operator.api import status as status_models

GROUP = contract.GROUP
VERSION = contract.VERSION
KIND = "FineTuneJob"
PLURAL = "finetunejobs"
SHORT_NAME = "ftj"
CATEGORY = "kubeft"
CRD_NAME = f"{PLURAL}.{GROUP}"
# Child names add at most "-trainer"/"-config"/"-train" and Job pods add a suffix; label values cap at 63.
MAX_NAME_LENGTH = 52

REPO_ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = (REPO_ROOT / "crds" / "finetunejob.yaml", REPO_ROOT / "charts" / "kubeft" / "crds" / "finetunejob.yaml")
# The ValidatingAdmissionPolicy that keeps trainers to their own status fields (status_policy.py).
STATUS_POLICY = REPO_ROOT / "charts" / "kubeft" / "templates" / "trainer-status-policy.yaml"

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Computed phase."},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress.summary", "description": "step/total (%)."},
    {"name": "Loss", "type": "number", "jsonPath": ".status.progress.loss", "description": "Latest training loss."},
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.source", "description": "Base model."},
    {"name": "Method", "type": "string", "jsonPath": ".spec.method.type", "description": "PEFT method."},
    {
        "name": "ETA",
        "type": "string",
        "jsonPath": ".status.progress.eta",
        "priority": 1,
        "description": "Estimated time left.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "format",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Return ``node`` as a structural schema: refs inlined, nullables flattened."""
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        outer_rules = node.pop("x-kubernetes-validations", [])
        target.update({k: v for k, v in node.items() if k != "title"})
        if outer_rules:
            target["x-kubernetes-validations"] = target.get("x-kubernetes-validations", []) + outer_rules
        node = target
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {variants}")
        # The field's own rules go down with it, so the variant is resolved knowing them.
        variant = dict(variants[0])
        outer_rules = node.pop("x-kubernetes-validations", [])
        if outer_rules:
            variant["x-kubernetes-validations"] = variant.get("x-kubernetes-validations", []) + outer_rules
        inner = _resolve(variant, defs)
        inner.update({k: v for k, v in node.items() if k != "title"})
        node = inner
    if "patternProperties" in node:
        # A map with constrained keys. Structural schemas have neither patternProperties nor
        # propertyNames: the values' schema becomes additionalProperties, and the keys are left to
        # a CEL rule that the model must carry (so a constraint is never dropped in silence).
        (values,) = node.pop("patternProperties").values()
        node.pop("propertyNames", None)
        if not node.get("x-kubernetes-validations"):
            raise ValueError("a map with constrained keys needs a CEL rule that checks them: structural schemas cannot")
        node.setdefault("additionalProperties", values)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "enum" in node and "type" not in node:
        node["type"] = "integer" if all(isinstance(v, int) for v in node["enum"]) else "string"
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _resolve(value, defs)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "default" and value is None:
            continue
        else:
            out[key] = value
    if "properties" in out and out.get("additionalProperties") is False:
        # Pydantic's extra="forbid" emits additionalProperties: false; structural schemas reject
        # it next to properties, and pruning already drops unknown fields (kubectl strict-fails).
        del out["additionalProperties"]
    return out


def _schema_for(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _resolve(raw, defs)
    return schema


def spec_schema() -> dict[str, Any]:
    """Structural schema of ``.spec``, with the immutability rules attached per field."""
    schema = _schema_for(spec_models.FineTuneJobSpec)
    for field, message in spec_models.immutable_field_rules().items():
        prop = schema["properties"][field]
        prop.setdefault("x-kubernetes-validations", []).append({"rule": "self == oldSelf", "message": message})
    return schema


def status_schema() -> dict[str, Any]:
    """Structural schema of ``.status``; ``kopf`` is left open for the framework's own bookkeeping."""
    schema = _schema_for(status_models.FineTuneJobStatus)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    schema["properties"]["kopf"] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "Bookkeeping of the kopf framework; not part of the API.",
    }
    return schema


def build() -> dict[str, Any]:
    """The CRD as a dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/part-of": "kubeft"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "FineTuneJob trains a parameter-efficient adapter (LoRA, QLoRA, IA3, "
                            "AdaLoRA, prefix, prompt or P-tuning) on a base model and exports only the adapter "
                            "to S3 or the Hugging Face Hub.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [
                                {
                                    "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                                    "message": f"metadata.name must be at most {MAX_NAME_LENGTH} characters, so that "
                                    "the names of the objects kubeft creates for it stay valid",
                                },
                                {
                                    "rule": "!has(self.spec.resources) || !has(self.spec.resources.nodes) || "
                                    "self.spec.resources.nodes == 1 || "
                                    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                                    "message": "a FineTuneJob with spec.resources.nodes > 1 needs a name that is a DNS "
                                    "label (lowercase letters, digits and '-', starting with a letter): its pods find "
                                    "each other through a headless Service of that name",
                                },
                            ],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion of this object."},
                                "kind": {"type": "string", "description": "Kind of this object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `make crds` from operator/kubeft_operator/api. Do not edit.\n"
    return header + yaml.safe_dump(build(), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files on disk differ")
    args = parser.parse_args(argv)
    crd = render()
    wanted = {path: crd for path in OUTPUTS}
    wanted[STATUS_POLICY] = status_policy.render()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPO_ROOT)} is out of date; run `make crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
    return 0


if __name__ == "__main__":
    sys.exit(main())
