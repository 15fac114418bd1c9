"""The trainer config file: parsed with the API model, defaults filled, every mistake an InvalidConfig."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from kubeft_trainer import config, errors

SPEC = {
    "model": {"source": "org/model"},
    "dataset": {"source": "/data/train.jsonl", "fields": {"text": "text"}},
    "task": "CAUSAL_LM",
    "method": {"type": "lora"},
    "training": {"maxSteps": 10},
    "output": {"s3": {"uri": "s3://bucket/adapters/run"}},
}


def write(tmp_path: pathlib.Path, doc: object) -> pathlib.Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_config_file_is_parsed_with_defaults(tmp_path: pathlib.Path) -> None:
    doc = {"kind": "TrainerConfig", "metadata": {"name": "job", "namespace": "ns", "uid": "u"}, "spec": SPEC}
    cfg = config.load(write(tmp_path, doc), environ={"KUBEFT_WORKDIR": str(tmp_path)})
    assert (cfg.name, cfg.namespace, cfg.uid) == ("job", "ns", "u")
    assert cfg.spec.training.learning_rate == 2e-4
    assert cfg.spec.dataset.packing is True
    assert cfg.checkpoint_dir == tmp_path / "runs" / "u" / "checkpoints"
    assert cfg.checkpoints_uri == "s3://bucket/adapters/.kubeft-runs/run/u/checkpoints"


def test_job_identity_comes_from_the_environment_first(tmp_path: pathlib.Path) -> None:
    doc = {"metadata": {"name": "file-name", "namespace": "file-ns"}, "spec": SPEC}
    cfg = config.load(write(tmp_path, doc), environ={"KUBEFT_JOB_NAME": "env-name", "KUBEFT_NAMESPACE": "env-ns"})
    assert (cfg.name, cfg.namespace) == ("env-name", "env-ns")


def test_tensorboard_defaults_to_the_runs_own_prefix_beside_the_output() -> None:
    cfg = config.parse({"metadata": {"name": "job", "uid": "u1"}, "spec": SPEC}, environ={})
    assert cfg.tensorboard_uri == "s3://bucket/adapters/.kubeft-runs/run/u1/tensorboard"


def test_tensorboard_uri_wins_over_the_default_with_a_directory_per_run() -> None:
    spec = {**SPEC, "tensorboard": {"uri": "s3://logs/team/"}}
    cfg = config.parse({"metadata": {"name": "job", "uid": "u1"}, "spec": spec}, environ={})
    assert cfg.tensorboard_uri == "s3://logs/team/job/u1"


def test_without_a_uid_the_run_is_keyed_by_its_spec(tmp_path: pathlib.Path) -> None:
    one = config.parse({"spec": SPEC}, environ={"KUBEFT_WORKDIR": str(tmp_path)})
    same = config.parse({"spec": SPEC}, environ={"KUBEFT_WORKDIR": str(tmp_path)})
    other = config.parse({"spec": {**SPEC, "training": {"maxSteps": 11}}}, environ={"KUBEFT_WORKDIR": str(tmp_path)})
    assert one.run_id.startswith("local-") and one.run_id == same.run_id != other.run_id
    assert one.checkpoint_dir != other.checkpoint_dir


def test_resume_from_resolved_by_the_operator_wins(tmp_path: pathlib.Path) -> None:
    spec = {**SPEC, "resumeFrom": {"job": "earlier"}}
    doc = {"metadata": {"uid": "u"}, "spec": spec, "resumeFrom": "s3://bucket/adapters/earlier/"}
    assert config.parse(doc, environ={}).resume_from == "s3://bucket/adapters/earlier"


def test_resume_from_a_job_name_needs_the_operator() -> None:
    spec = {**SPEC, "resumeFrom": {"job": "earlier"}}
    with pytest.raises(errors.InvalidConfig, match=r"set spec\.resumeFrom\.uri"):
        config.parse({"spec": spec}, environ={})
    uri = {**SPEC, "resumeFrom": {"uri": "/models/adapter"}}
    assert config.parse({"spec": uri}, environ={}).resume_from == "/models/adapter"


def test_unreadable_file_is_invalid_config(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.InvalidConfig, match="cannot read"):
        config.load(tmp_path / "missing.yaml", environ={})


def test_broken_yaml_is_invalid_config(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("spec: [unclosed")
    with pytest.raises(errors.InvalidConfig, match="not valid YAML"):
        config.load(path, environ={})


def test_wrong_kind_is_invalid_config() -> None:
    with pytest.raises(errors.InvalidConfig, match="kind"):
        config.parse({"kind": "FineTuneJob", "spec": SPEC}, environ={})


def test_validation_errors_name_the_field() -> None:
    spec = {**SPEC, "training": {"maxSteps": 0}}
    with pytest.raises(errors.InvalidConfig, match=r"`spec\.training\.maxSteps`"):
        config.parse({"spec": spec}, environ={})


@pytest.mark.parametrize(
    ("override", "want_message"),
    [
        ({"task": "SEQ_CLS"}, "task SEQ_CLS needs"),
        ({"training": {"maxSteps": 5, "epochs": 1}}, "exactly one of"),
        ({"training": {}}, "exactly one of"),
        ({"method": {"type": "qlora"}}, "quantization"),
        ({"method": {"type": "prefixTuning"}, "task": "TOKEN_CLS"}, "not TOKEN_CLS"),
        ({"output": {}}, "at least one output"),
    ],
)
def test_cross_field_rules_are_checked_outside_the_api_server(override: dict[str, object], want_message: str) -> None:
    spec = {**SPEC, **override}
    if override.get("task") == "TOKEN_CLS":
        spec["dataset"] = {**SPEC["dataset"], "fields": {"tokens": "tokens", "tags": "tags"}}
    with pytest.raises(errors.InvalidConfig, match=want_message):
        config.parse({"spec": spec}, environ={})


def test_invalid_config_exits_64() -> None:
    assert errors.InvalidConfig("x").exit_code == 64
