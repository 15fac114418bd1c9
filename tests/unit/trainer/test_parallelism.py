"""Which parallelism a run uses (config.parallelism), and the FSDP settings built from its model."""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

import peft
import pytest
import torch
import transformers

from kubeft_operator.api import contract
from kubeft_operator.api import spec as api_spec
from kubeft_trainer import config, errors
from kubeft_trainer.model import base
from kubeft_trainer.train import arguments


def training(**fields: Any) -> api_spec.TrainingSpec:
    return api_spec.TrainingSpec.model_validate({"maxSteps": 3, **fields})


@pytest.mark.parametrize(
    ("spec_value", "env_value", "world_size", "want"),
    [
        ("auto", None, "2", "ddp"),  # only the operator can resolve auto (fit estimate vs GPU memory)
        ("fsdp", None, "2", "fsdp"),
        ("ddp", None, "2", "ddp"),
        ("ddp", "fsdp", "2", "fsdp"),  # the operator's resolution wins over the spec
        ("fsdp", "ddp", "2", "ddp"),
        ("auto", "fsdp", "8", "fsdp"),
        ("fsdp", None, "1", "ddp"),  # one process: nothing to shard
        ("fsdp", None, None, "ddp"),  # no WORLD_SIZE: not under a launcher, one process
    ],
)
def test_parallelism_is_the_operators_choice_then_the_spec_then_ddp(
    spec_value: str, env_value: str | None, world_size: str | None, want: str
) -> None:
    environ = {}
    if env_value is not None:
        environ[contract.PARALLELISM_ENV] = env_value
    if world_size is not None:
        environ["WORLD_SIZE"] = world_size
    assert config.parallelism(training(parallelism=spec_value), environ=environ) == want


def test_an_unknown_parallelism_from_the_operator_is_an_invalid_config_naming_the_variable() -> None:
    with pytest.raises(errors.InvalidConfig, match=contract.PARALLELISM_ENV):
        config.parallelism(training(), environ={contract.PARALLELISM_ENV: "zero3", "WORLD_SIZE": "2"})


def test_fsdp_with_one_process_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="kubeft_trainer.config")
    config.parallelism(training(parallelism="fsdp"), environ={"WORLD_SIZE": "1"})
    assert [r.message for r in caplog.records].count(
        "parallelism fsdp with one process: nothing to shard, training the whole model in it"
    ) == 1


def tiny_llama() -> transformers.PreTrainedModel:
    cfg = transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2
    )
    return transformers.LlamaForCausalLM(cfg)


def test_fsdp_wraps_each_transformer_block_of_the_base_model_under_its_adapter() -> None:
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(task_type="CAUSAL_LM", target_modules=["q_proj"]))
    settings = arguments.fsdp_config(model, training=training())
    assert settings["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert settings["version"] == 2
    assert settings["reshard_after_forward"] is True  # full shard
    assert settings["cpu_ram_efficient_loading"] is True
    assert settings["state_dict_type"] == "FULL_STATE_DICT"


def test_block_classes_the_model_does_not_contain_are_left_out() -> None:
    model = tiny_llama()
    model._no_split_modules = ["LlamaDecoderLayer", "LlamaVisionBlock"]
    assert arguments.wrapped_layers(model) == ["LlamaDecoderLayer"]


def test_a_model_without_blocks_is_sharded_as_one_unit() -> None:
    assert arguments.wrapped_layers(torch.nn.Linear(2, 2)) == []


def build(tmp_path: pathlib.Path, spec: api_spec.TrainingSpec, fsdp: dict[str, Any] | None) -> Any:
    return arguments.build(spec, output_dir=tmp_path, has_validation=False, label_names=["labels"], fsdp=fsdp)


def test_training_arguments_carry_the_fsdp_settings_to_accelerate(tmp_path: pathlib.Path) -> None:
    spec = training()
    args = build(tmp_path, spec, arguments.fsdp_config(tiny_llama(), training=spec))
    plugin = args.fsdp_plugin_args
    assert args.fsdp
    assert plugin["fsdp_version"] == 2
    assert plugin["transformer_cls_names_to_wrap"] == "LlamaDecoderLayer"
    assert plugin["state_dict_type"] == "FULL_STATE_DICT"
    assert plugin["cpu_ram_efficient_loading"] is True


def test_without_fsdp_the_training_arguments_shard_nothing(tmp_path: pathlib.Path) -> None:
    assert build(tmp_path, training(), None).fsdp_plugin_args is None


def test_under_fsdp_activations_are_checkpointed_by_fsdp_not_the_trainer(tmp_path: pathlib.Path) -> None:
    spec = training(gradientCheckpointing=True)
    args = build(tmp_path, spec, arguments.fsdp_config(tiny_llama(), training=spec))
    assert args.fsdp_plugin_args["activation_checkpointing"] is True
    assert not getattr(args, "activation_checkpointing", getattr(args, "gradient_checkpointing", None))


@pytest.fixture
def gpu_with_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """quantization_kwargs as on a bf16 GPU with bitsandbytes installed (no GPU needed to build the config)."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(base.devices, "bf16_supported", lambda: True)
    monkeypatch.setattr(base.devices, "local_rank", lambda: 0)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: True if name == "bitsandbytes" else find_spec(name))


@pytest.mark.usefixtures("gpu_with_bitsandbytes")
def test_qlora_under_fsdp_stores_4bit_weights_in_the_compute_dtype() -> None:
    quantization = api_spec.Quantization(bits=4)
    kwargs = base.quantization_kwargs(quantization, fsdp=True)
    assert kwargs["quantization_config"].bnb_4bit_quant_storage == torch.bfloat16
    assert kwargs["quantization_config"].bnb_4bit_compute_dtype == torch.bfloat16
    assert kwargs["dtype"] == torch.bfloat16


@pytest.mark.usefixtures("gpu_with_bitsandbytes")
def test_qlora_without_fsdp_keeps_the_packed_uint8_storage() -> None:
    kwargs = base.quantization_kwargs(api_spec.Quantization(bits=4))
    assert kwargs["quantization_config"].bnb_4bit_quant_storage == torch.uint8
    assert "dtype" not in kwargs
