"""targetModules are checked against the model; a miss lists the modules that do exist."""

from __future__ import annotations

import pytest
import torch

from kubeft_trainer import errors
from kubeft_trainer.model import targets


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(4, 4)
        self.v_proj = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.layers = torch.nn.ModuleList([Block(), Block()])


def test_suffix_names_pass_through_unchanged() -> None:
    assert targets.resolve(Model(), ["q_proj", "layers.1.v_proj"], field="f") == ["q_proj", "layers.1.v_proj"]


def test_left_out_and_all_linear_are_peft_defaults() -> None:
    assert targets.resolve(Model(), None, field="f") is None
    assert targets.resolve(Model(), ["all-linear"], field="f") == "all-linear"


def test_globs_expand_to_the_modules_they_match() -> None:
    assert targets.resolve(Model(), ["layers.0.*_proj"], field="f") == ["layers.0.q_proj", "layers.0.v_proj"]


def test_unknown_module_error_names_it_the_field_and_what_exists() -> None:
    with pytest.raises(errors.TargetModulesNotFound) as caught:
        targets.resolve(Model(), ["q_proj", "query_key_value"], field="spec.method.lora.targetModules")
    message = caught.value.message
    assert "`spec.method.lora.targetModules`: query_key_value match no module" in message
    assert "embed, q_proj, v_proj" in message
    assert "norm" not in message.split("(e.g.")[0]


def test_all_linear_mixed_with_names_is_refused() -> None:
    with pytest.raises(errors.TargetModulesNotFound, match="must be the only entry"):
        targets.resolve(Model(), ["all-linear", "q_proj"], field="f")


def test_partial_names_do_not_match() -> None:
    with pytest.raises(errors.TargetModulesNotFound):
        targets.resolve(Model(), ["proj"], field="f")
