"""values.schema.json: generated from values.yaml, closed at every level, enforced by helm."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hack import gen_chart_schema as gen
from tests.unit.chart import helm


def _objects(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if schema.get("type") == "object":
        yield path or "<root>", schema
    for key, sub in schema.get("properties", {}).items():
        yield from _objects(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from _objects(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _objects(schema["additionalProperties"], f"{path}.*")


def test_schema_on_disk_matches_values_yaml() -> None:
    assert gen.SCHEMA.read_text() == gen.render(), "values.schema.json is stale: run python hack/gen_chart_schema.py"


def test_readme_values_table_matches_values_yaml() -> None:
    readme = gen.README.read_text()

    assert readme == gen.render_readme(readme), "README values table is stale: run python hack/gen_chart_schema.py"


def test_readme_values_table_lists_every_leaf_key_with_its_default() -> None:
    table = gen.values_table(gen.VALUES.read_text())

    assert '| `operator.image.repository` | `"ghcr.io/kubeft/operator"` | Operator image repository. |' in table
    assert '| `trainer.defaultResources.memory` | `"32Gi"` |' in table
    assert "| `operator.image` |" not in table


def test_every_object_in_the_schema_states_what_else_it_accepts() -> None:
    unstated = [
        path for path, node in _objects(gen.build_schema(gen.VALUES.read_text())) if "additionalProperties" not in node
    ]

    assert unstated == []


def test_every_chart_defined_object_is_closed() -> None:
    schema = gen.build_schema(gen.VALUES.read_text())
    open_with_properties = [
        path for path, node in _objects(schema) if "properties" in node and node["additionalProperties"] is not False
    ]

    assert open_with_properties == []


def test_key_without_doc_comment_is_an_error() -> None:
    with pytest.raises(gen.ValuesError, match=r"`operator.replicas` has no `# --` comment"):
        gen.build_schema("# -- The operator.\noperator:\n  # just a note\n  replicas: 1\n")


def test_empty_doc_comment_is_an_error() -> None:
    with pytest.raises(gen.ValuesError, match=r"`tag` has an empty `# --` comment"):
        gen.build_schema('# --\ntag: ""\n')


def test_empty_default_without_explicit_schema_is_an_error() -> None:
    with pytest.raises(gen.ValuesError, match=r"`podLabels`: cannot infer a schema"):
        gen.build_schema("# -- Labels.\npodLabels: {}\n")


def test_explicit_schema_line_overrides_inference_and_hides_children() -> None:
    text = "# -- Requests.\n# @schema k8s:ResourceRequirements\nresources:\n  requests:\n    cpu: 1\n"

    assert gen.build_schema(text)["properties"]["resources"]["properties"]["requests"] == gen._QUANTITY_MAP


@pytest.mark.parametrize(
    ("option", "want_error"),
    [
        ("foo=bar", "additional properties 'foo' not allowed"),
        ("operator.image.registry=x", "additional properties 'registry' not allowed"),
        ("metrics.serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("operator.tolerations[0].keey=gpu", "additional properties 'keey' not allowed"),
        ("operator.replicas=-1", "minimum"),
        ("operator.image.pullPolicy=Sometimes", "IfNotPresent"),
        ("operator.logLevel=trace", "debug"),
        ("trainer.defaults.queue=team-nlp", "additional properties 'queue' not allowed"),
        ("trainer.defaults.queueName=Team_NLP", "/trainer/defaults/queueName"),
        ("trainer.defaults.priorityClassName=Batch Low", "/trainer/defaults/priorityClassName"),
        ("trainer.defaults.tolerations[0].effect=Sometimes", "/trainer/defaults/tolerations/0/effect"),
        ("trainer.defaults.nodeSelector.pool[0]=gpu", "/trainer/defaults/nodeSelector/pool"),
        ("trainer.ephemeralStorage=lots", "/trainer/ephemeralStorage"),
        ("trainer.workdirSizeLimit=20 GB", "/trainer/workdirSizeLimit"),
        ("trainer.hfCacheSizeLimit=-1Gi", "/trainer/hfCacheSizeLimit"),
        ("trainer.shmSize=2GB", "/trainer/shmSize"),
        ("trainer.progressIntervalSeconds=-1", "/trainer/progressIntervalSeconds"),
    ],
    ids=[
        "unknown-top-level",
        "unknown-nested",
        "typo-in-flag",
        "typo-in-k8s-type",
        "negative",
        "enum",
        "log-level",
        "typo-in-trainer-defaults",
        "queue-not-a-name",
        "priority-class-not-a-name",
        "toleration-effect",
        "node-selector-value-not-a-string",
        "ephemeral-storage-not-a-quantity",
        "workdir-limit-not-a-quantity",
        "cache-limit-negative",
        "shm-size-not-a-quantity",
        "progress-interval-negative",
    ],
)
def test_helm_rejects_values_the_schema_forbids(option: str, want_error: str) -> None:
    done = helm.run(*helm.template_args("--set", option), check=False)

    assert done.returncode != 0
    assert want_error in done.stderr
