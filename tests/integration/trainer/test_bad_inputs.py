"""Bad inputs fail fast with exit 64 and a termination message that names the problem and the fix.

Each case runs the real entry point (`kubeft_trainer.__main__.main`) in-process on a config file.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from kubeft_trainer import __main__ as entry
from tests.fixtures.s3 import S3
from tests.integration.trainer import records
from tests.integration.trainer.conftest import merge, spec_doc, termination


def run(write_config: Callable[..., pathlib.Path], spec: dict[str, Any]) -> int:
    return entry.main(["--config", str(write_config(spec))])


@pytest.fixture
def text_spec(s3: S3, tiny: dict[str, pathlib.Path], matrix_data: pathlib.Path) -> dict[str, Any]:
    return spec_doc(s3, model=tiny["causal-lm"], data=matrix_data, task="CAUSAL_LM", fields={"text": "text"})


def test_missing_dataset_field_names_the_field_and_the_fields_present(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    rc = run(write_config, merge(text_spec, {"dataset": {"fields": {"text": "body"}}}))
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "DatasetInvalid"
    assert "`body`" in message["message"]
    assert "completion" in message["message"] and "messages" in message["message"]


def test_wrong_target_modules_lists_the_modules_that_exist(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    spec = merge(text_spec, {"method": {"lora": {"targetModules": ["q_proj", "query_key_value"]}}})
    rc = run(write_config, spec)
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "TargetModulesNotFound"
    assert "query_key_value" in message["message"]
    for existing in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"):
        assert existing in message["message"]


def test_empty_dataset_is_refused(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    empty = trainer_env / "empty.jsonl"
    empty.write_text("")
    rc = run(write_config, merge(text_spec, {"dataset": {"source": str(empty)}}))
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "DatasetInvalid"
    assert "no records" in message["message"]


def test_corrupt_parquet_is_refused(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    good = records.write(trainer_env / "good.parquet", records.all_shapes(8, seed=0), fmt="parquet")
    corrupt = trainer_env / "corrupt.parquet"
    corrupt.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    rc = run(write_config, merge(text_spec, {"dataset": {"source": str(corrupt), "format": "parquet"}}))
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "DatasetInvalid"
    assert "corrupt.parquet" in message["message"]


def test_chat_data_with_a_tokenizer_without_template_is_refused(
    text_spec: dict[str, Any],
    tiny: dict[str, pathlib.Path],
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    model = shutil.copytree(tiny["causal-lm"], trainer_env / "no-template")
    (model / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    spec = merge(text_spec, {"model": {"source": str(model)}, "dataset": {"fields": {"messages": "messages"}}})
    spec["dataset"]["fields"] = {"messages": "messages"}
    rc = run(write_config, spec)
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "ChatTemplateMissing"


def test_missing_dataset_file_is_not_found(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    rc = run(write_config, merge(text_spec, {"dataset": {"source": str(trainer_env / "nope.jsonl")}}))
    assert rc == 64
    assert termination(trainer_env)["reason"] == "DatasetNotFound"


def test_missing_s3_dataset_is_not_found(
    text_spec: dict[str, Any], s3: S3, write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    rc = run(write_config, merge(text_spec, {"dataset": {"source": s3.uri("data/nope.jsonl")}}))
    assert rc == 64
    assert termination(trainer_env)["reason"] == "DatasetNotFound"


def test_qlora_without_a_gpu_is_quantization_unavailable(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    spec = merge(text_spec, {"method": {"type": "qlora"}, "model": {"quantization": {"bits": 4}}})
    rc = run(write_config, spec)
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "QuantizationUnavailable"
    assert "GPU" in message["message"]


def test_unknown_spec_field_is_invalid_config(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    rc = run(write_config, merge(text_spec, {"training": {"learningRat": 0.1}}))
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "InvalidConfig"
    assert "learningRat" in message["message"]


def test_hub_model_that_cannot_be_fetched_is_model_not_found(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    rc = run(write_config, merge(text_spec, {"model": {"source": "kubeft-tests/does-not-exist"}}))
    assert rc == 64
    assert termination(trainer_env)["reason"] == "ModelNotFound"


def test_prefix_tuning_classification_on_a_model_without_past_key_values_is_refused(
    s3: S3,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    spec = spec_doc(
        s3,
        model=tiny["encoder"],
        data=matrix_data,
        task="SEQ_CLS",
        fields={"text": "text", "label": "label"},
        method="prefixTuning",
    )
    rc = run(write_config, spec)
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "InvalidConfig"
    assert "promptTuning" in message["message"]


def test_unreachable_output_bucket_fails_before_training(
    text_spec: dict[str, Any], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    rc = run(write_config, merge(text_spec, {"output": {"s3": {"uri": "s3://kubeft-no-such-bucket/out"}}}))
    message = termination(trainer_env)
    assert rc == 64
    assert message["reason"] == "OutputFailed"
    assert not (trainer_env / "work" / "runs").exists()
