"""The pydantic spec model: wire names, defaults and field-level validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubeft_operator.api import spec as spec_models

MINIMAL = {
    "model": {"source": "org/model"},
    "dataset": {"source": "/data/train.jsonl", "fields": {"text": "text"}},
    "task": "CAUSAL_LM",
    "method": {"type": "lora"},
    "training": {"maxSteps": 5},
    "output": {"s3": {"uri": "s3://bucket/prefix"}},
}


def test_minimal_spec_gets_defaults():
    spec = spec_models.FineTuneJobSpec.model_validate(MINIMAL)
    assert spec.model.revision == "main"
    assert spec.model.trust_remote_code is False
    assert spec.training.learning_rate == 2e-4
    assert spec.resources.gpus == 1
    assert spec.retry_limit == 3


def test_wire_form_is_camel_case():
    wire = spec_models.FineTuneJobSpec.model_validate(MINIMAL).wire()
    assert wire["training"]["maxSteps"] == 5
    assert "max_steps" not in wire["training"]
    assert wire["model"]["trustRemoteCode"] is False


@pytest.mark.parametrize(
    ("patch", "want_field"),
    [
        ({"method": {"type": "lora", "lora": {"r": 0}}}, "r"),
        ({"training": {"maxSteps": 5, "learningRate": 0}}, "learningRate"),
        ({"task": "TRANSLATION"}, "task"),
        ({"method": {"type": "fancy"}}, "type"),
        ({"training": {"maxSteps": 5, "unknownKnob": 1}}, "unknownKnob"),
    ],
)
def test_invalid_field_is_named(patch, want_field):
    with pytest.raises(ValidationError) as err:
        spec_models.FineTuneJobSpec.model_validate({**MINIMAL, **patch})
    assert want_field in str(err.value)
