"""Every example manifest is a valid FineTuneJobSpec for the shared model (the trainer's view)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeft_operator.api import spec as spec_models

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


def test_there_are_at_least_five_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses_and_round_trips(path: Path):
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "kubeft.io/v1alpha1" and doc["kind"] == "FineTuneJob"
    parsed = spec_models.FineTuneJobSpec.model_validate(doc["spec"])
    assert spec_models.FineTuneJobSpec.model_validate(parsed.wire()) == parsed


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_documented_at_its_top(path: Path):
    assert path.read_text().startswith("# ")
