"""The PEFT method registry is the one declaration every other part derives from; these pin that it is whole."""

from __future__ import annotations

import pathlib
import typing

import pytest

from kubeft_operator.api import contract, layout, methods
from kubeft_operator.api import spec as spec_models
from kubeft_trainer import model as model_stage
from kubeft_trainer.config import parse

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_every_method_type_has_exactly_one_registry_entry() -> None:
    assert list(methods.METHODS) == [m.value for m in methods.MethodType]


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_each_entry_matches_the_schema_and_the_trainer(name: str) -> None:
    method = methods.METHODS[name]
    field = methods.MethodSpec.model_fields[method.attribute]
    assert field.alias == method.block
    assert method.params in typing.get_args(field.annotation)
    aliases = {info.alias or key for key, info in method.params.model_fields.items()}
    assert set(method.shape_fields) <= aliases, "shape fields name the block's wire fields"
    assert callable(model_stage.builder(name)), f"{method.builder} must exist in the trainer"
    assert method.tasks <= set(contract.TASK_FIELDS)


def test_the_method_table_in_the_readme_names_every_method() -> None:
    readme = (REPO / "README.md").read_text()
    for name in methods.METHODS:
        assert name in readme, name


@pytest.mark.parametrize("name", [n for n, m in methods.METHODS.items() if m.tasks != methods.ALL_TASKS])
def test_unsupported_tasks_are_refused_by_cel_and_by_the_trainer_alike(name: str) -> None:
    method = methods.METHODS[name]
    task = next(t for t in contract.TASK_FIELDS if t not in method.tasks)
    rules = [rule for rule, _, _ in methods.task_rules()]
    assert any(f"self.method.type != '{name}'" in rule and task not in rule for rule in rules)
    fields = {f: f for f in contract.TASK_FIELDS[task][0]}
    spec = {
        "model": {"source": "org/model"},
        "dataset": {"source": "/d.jsonl", "fields": fields},
        "task": task,
        "method": {"type": name},
        "training": {"maxSteps": 1},
        "output": {"s3": {"uri": "s3://bucket/x"}},
    }
    with pytest.raises(Exception, match=f"method {name} supports"):
        parse({"spec": spec}, environ={})


def test_warm_start_compares_the_registrys_shape_fields() -> None:
    source = spec_models.FineTuneJobSpec.model_validate(
        {
            "model": {"source": "org/model"},
            "dataset": {"source": "/d.jsonl", "fields": {"text": "t"}},
            "task": "CAUSAL_LM",
            "method": {"type": "pTuning", "pTuning": {"encoderHiddenSize": 64}},
            "training": {"maxSteps": 1},
            "output": {"s3": {"uri": "s3://bucket/x"}},
        }
    ).wire()
    target = {**source, "method": {"type": "pTuning", "pTuning": {"encoderHiddenSize": 128}}}
    assert "spec.method.pTuning.encoderHiddenSize" in str(layout.continuation_mismatch(source, target))


def test_an_eighth_lora_like_method_needs_only_a_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding peft's LoHa would take: a params model and an entry (here patched in, in the real
    file also a MethodType member and a MethodSpec block); the trainer builds it with no code of its own."""
    import peft
    import torch
    from pydantic import Field

    from kubeft_operator.api.base import ApiModel

    class LoHaParams(ApiModel):
        r: int = Field(default=4, ge=1)
        alpha: int = Field(default=8, ge=1)
        target_modules: list[str] | None = None

    entry = methods.Method(
        "loha", "Hadamard-product low-rank updates", "loha", LoHaParams,
        peft_config="LoHaConfig", peft_params=(("r", "r"), ("alpha", "alpha")),
    )  # fmt: skip
    monkeypatch.setitem(methods.METHODS, "loha", entry)

    class Spec:  # a MethodSpec with `type: loha` and its block left out
        type = "loha"

    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    config = model_stage.builder("loha")(Spec(), task_type="CAUSAL_LM", model=model, total_steps=1, location="")
    assert isinstance(config, peft.LoHaConfig)
    assert (config.r, config.alpha) == (4, 8)
