"""The CRD is generated from the API models and never edited by hand."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubeft_operator.api import crd


def _walk(schema: dict[str, Any], path: str = "spec"):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


def test_crd_files_match_the_models():
    assert crd.main(["--check"]) == 0, "crds/ drifted from the API models: run `make crds`"


def test_generation_is_idempotent():
    assert crd.render() == crd.render()


def test_chart_copy_equals_top_level_crd():
    top, chart = crd.OUTPUTS
    assert top.read_text() == chart.read_text()


def test_every_spec_field_has_a_description():
    # list items are described by their field; every named field must say what it is
    missing = [p for p, node in _walk(crd.spec_schema()) if not p.endswith("[]") and not node.get("description")]
    assert missing == []


def test_schema_is_structural():
    """No refs or unions survive, and every node has a type (a structural-schema requirement)."""
    text = crd.render()
    assert "$ref" not in text and "anyOf" not in text and "allOf" not in text
    untyped = [path for path, node in _walk(crd.spec_schema()) if "type" not in node]
    assert untyped == []


def test_strings_and_lists_are_bounded_for_cel_cost():
    spec = crd.spec_schema()
    unbounded = [
        path
        for path, node in _walk(spec)
        if (node.get("type") == "string" and "maxLength" not in node and "enum" not in node)
        or (node.get("type") == "array" and "maxItems" not in node)
    ]
    assert unbounded == []


def test_names_and_printer_columns():
    doc = yaml.safe_load(crd.render())
    names = doc["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "FineTuneJob",
        "finetunejobs",
        ["ftj"],
        ["kubeft"],
    )
    columns = [c["name"].upper() for c in doc["spec"]["versions"][0]["additionalPrinterColumns"]]
    for want in ("PHASE", "PROGRESS", "LOSS", "MODEL", "METHOD", "AGE"):
        assert want in columns


def test_status_keeps_room_for_kopf():
    status = crd.status_schema()
    assert status["properties"]["kopf"]["x-kubernetes-preserve-unknown-fields"] is True


def test_immutable_fields_carry_transition_rules():
    spec = crd.spec_schema()
    for field in ("model", "dataset", "method", "training", "output"):
        rules = [r["rule"] for r in spec["properties"][field]["x-kubernetes-validations"]]
        assert "self == oldSelf" in rules, field
    for field in ("suspend", "ttlSecondsAfterFinished"):
        assert "x-kubernetes-validations" not in spec["properties"][field]


def test_a_map_with_constrained_keys_keeps_its_values_schema_and_needs_a_cel_rule_for_its_keys():
    """Structural schemas have no patternProperties: the keys' rule must live in CEL, never be dropped."""
    from pydantic import BaseModel, Field

    from kubeft_operator.api.base import LABEL_KEY_MSG, LABEL_KEY_RULE, LabelKey, LabelValue, cel

    class Checked(BaseModel):
        labels: dict[LabelKey, LabelValue] = Field(json_schema_extra=cel((LABEL_KEY_RULE, LABEL_KEY_MSG)))

    class Unchecked(BaseModel):
        labels: dict[LabelKey, LabelValue]

    node = crd._schema_for(Checked)["properties"]["labels"]
    assert "patternProperties" not in node and "propertyNames" not in node
    assert node["additionalProperties"]["maxLength"] == 63 and "pattern" in node["additionalProperties"]
    assert node["x-kubernetes-validations"][0]["rule"] == LABEL_KEY_RULE
    with pytest.raises(ValueError, match="needs a CEL rule"):
        crd._schema_for(Unchecked)
