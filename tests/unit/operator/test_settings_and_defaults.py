"""Operator settings from the environment, and the operator's resource defaults folded into a spec."""

from __future__ import annotations

import pytest

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import defaults
from tests.unit.operator import factories


def test_empty_environment_gives_the_documented_defaults():
    assert config.Settings.from_env({}) == config.Settings()


def test_environment_overrides_each_setting():
    settings = config.Settings.from_env(
        {
            "KUBEFT_TRAINER_IMAGE": "r/t:1",
            "KUBEFT_TRAINER_IMAGE_PULL_POLICY": "Always",
            "KUBEFT_TRAINER_COMMAND": '["python", "/x.py"]',
            "KUBEFT_TRAINER_ENV": '{"B": "2", "A": "1"}',
            "KUBEFT_TRAINER_IMAGE_PULL_SECRETS": '["registry"]',
            "KUBEFT_TRAINER_SERVICE_ACCOUNT_ANNOTATIONS": '{"iam.gke.io/gcp-service-account": "t@p.iam"}',
            "KUBEFT_TRAINER_DEFAULT_GPUS": "0",
            "KUBEFT_TRAINER_DEFAULT_CPU": "2",
            "KUBEFT_TRAINER_DEFAULT_MEMORY": "8Gi",
            "KUBEFT_TRAINER_DEFAULT_NODE_SELECTOR": '{"pool": "gpu"}',
            "KUBEFT_TRAINER_DEFAULT_TOLERATIONS": '[{"key": "nvidia.com/gpu", "operator": "Exists"}]',
            "KUBEFT_TRAINER_DEFAULT_PRIORITY_CLASS": "batch-low",
            "KUBEFT_TRAINER_DEFAULT_QUEUE": "shared",
            "KUBEFT_HF_CACHE_CLAIM": "hf",
            "KUBEFT_TRAINER_EPHEMERAL_STORAGE": "40Gi",
            "KUBEFT_TRAINER_WORKDIR_SIZE_LIMIT": "10Gi",
            "KUBEFT_TRAINER_HF_CACHE_SIZE_LIMIT": "80Gi",
            "KUBEFT_TRAINER_SHM_SIZE": "8Gi",
            "KUBEFT_TRAINER_TERMINATION_GRACE_SECONDS": "900",
            "KUBEFT_TRAINER_PROGRESS_INTERVAL_SECONDS": "2.5",
            "KUBEFT_METRICS_PORT": "0",
            "KUBEFT_PEERING_PRIORITY": "7",
        }
    )
    assert settings == config.Settings(
        trainer_image="r/t:1",
        trainer_image_pull_policy="Always",
        trainer_command=("python", "/x.py"),
        trainer_env=(("A", "1"), ("B", "2")),
        trainer_image_pull_secrets=("registry",),
        trainer_service_account_annotations=(("iam.gke.io/gcp-service-account", "t@p.iam"),),
        default_gpus=0,
        default_cpu="2",
        default_memory="8Gi",
        default_scheduling=spec_models.SchedulingSpec.model_validate(
            {
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "priorityClassName": "batch-low",
                "queueName": "shared",
            }
        ),
        hf_cache_claim="hf",
        ephemeral_storage="40Gi",
        workdir_size_limit="10Gi",
        hf_cache_size_limit="80Gi",
        shm_size="8Gi",
        termination_grace_seconds=900,
        progress_interval_seconds=2.5,
        metrics_port=0,
        peering_priority=7,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KUBEFT_TRAINER_COMMAND", "python x.py"),
        ("KUBEFT_TRAINER_COMMAND", "[]"),
        ("KUBEFT_TRAINER_ENV", '{"A": 1}'),
        ("KUBEFT_METRICS_PORT", "http"),
        ("KUBEFT_TRAINER_DEFAULT_GPUS", "-1"),
        ("KUBEFT_TRAINER_DEFAULT_MEMORY", "a lot"),
        ("KUBEFT_TRAINER_IMAGE_PULL_POLICY", "Sometimes"),
        ("KUBEFT_TRAINER_TERMINATION_GRACE_SECONDS", "5m"),
        ("KUBEFT_TRAINER_PROGRESS_INTERVAL_SECONDS", "30s"),
        ("KUBEFT_TRAINER_PROGRESS_INTERVAL_SECONDS", "-1"),
        ("KUBEFT_TRAINER_PROGRESS_INTERVAL_SECONDS", "nan"),
        ("KUBEFT_TRAINER_IMAGE_PULL_SECRETS", '"registry"'),
        ("KUBEFT_TRAINER_SERVICE_ACCOUNT_ANNOTATIONS", '["a"]'),
        ("KUBEFT_TRAINER_DEFAULT_NODE_SELECTOR", '["pool=gpu"]'),
        ("KUBEFT_TRAINER_DEFAULT_NODE_SELECTOR", '{"gpu type": "a100"}'),
        ("KUBEFT_TRAINER_DEFAULT_TOLERATIONS", '{"key": "gpu"}'),
        ("KUBEFT_TRAINER_DEFAULT_TOLERATIONS", '[{"key": "gpu", "operator": "Sometimes"}]'),
        ("KUBEFT_TRAINER_DEFAULT_PRIORITY_CLASS", "Batch_Low"),
        ("KUBEFT_TRAINER_DEFAULT_QUEUE", "q" * 64),
        ("KUBEFT_TRAINER_EPHEMERAL_STORAGE", "lots"),
        ("KUBEFT_TRAINER_SHM_SIZE", "2 GB"),
    ],
)
def test_malformed_variable_is_named_in_the_error(variable, value):
    with pytest.raises(ValueError, match=variable):
        config.Settings.from_env({variable: value})


def test_operator_defaults_fill_resources_the_user_left_out():
    raw = {k: v for k, v in factories.MINIMAL.items() if k != "resources"}
    spec = spec_models.FineTuneJobSpec.model_validate(raw)
    applied = defaults.apply(spec, config.Settings(default_gpus=0, default_cpu="2", default_memory="8Gi"))
    assert (applied.resources.gpus, applied.resources.cpu, applied.resources.memory) == (0, "2", "8Gi")


def test_resources_the_user_set_win_over_operator_defaults():
    raw = {**factories.MINIMAL, "resources": {"gpus": 2}}
    spec = spec_models.FineTuneJobSpec.model_validate(raw)
    applied = defaults.apply(spec, config.Settings(default_gpus=0, default_cpu="2", default_memory="8Gi"))
    assert (applied.resources.gpus, applied.resources.cpu, applied.resources.memory) == (2, "2", "8Gi")


@pytest.mark.parametrize(("raw", "want"), [("", False), ("false", False), ("0", False), ("true", True), ("1", True)])
def test_private_endpoints_switch(raw, want):
    env = {"KUBEFT_ALLOW_PRIVATE_ENDPOINTS": raw} if raw else {}
    assert config.Settings.from_env(env).allow_private_endpoints is want


def test_malformed_private_endpoints_switch_is_named():
    with pytest.raises(ValueError, match="KUBEFT_ALLOW_PRIVATE_ENDPOINTS"):
        config.Settings.from_env({"KUBEFT_ALLOW_PRIVATE_ENDPOINTS": "maybe"})


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("KUBEFT_TRAINER_EPHEMERAL_STORAGE", "ephemeral_storage"),
        ("KUBEFT_TRAINER_WORKDIR_SIZE_LIMIT", "workdir_size_limit"),
        ("KUBEFT_TRAINER_HF_CACHE_SIZE_LIMIT", "hf_cache_size_limit"),
        ("KUBEFT_TRAINER_SHM_SIZE", "shm_size"),
    ],
)
def test_an_empty_size_variable_turns_the_setting_off(variable, field):
    """The chart always sets these, empty when a value is blanked: the operator's default must not come back."""
    assert getattr(config.Settings.from_env({variable: ""}), field) is None


def test_operator_defaults_fill_scheduling_the_user_left_out():
    platform = spec_models.SchedulingSpec.model_validate(
        {"nodeSelector": {"pool": "gpu"}, "priorityClassName": "batch-low", "queueName": "shared"}
    )
    spec = spec_models.FineTuneJobSpec.model_validate(factories.MINIMAL)
    applied = defaults.apply(spec, config.Settings(default_scheduling=platform))
    assert applied.scheduling == platform


@pytest.mark.parametrize(
    ("job", "want"),
    [
        ({"nodeSelector": {"zone": "b", "pool": "cpu"}}, {"nodeSelector": {"pool": "cpu", "zone": "b"}}),
        ({"tolerations": [{"operator": "Exists"}]}, {"tolerations": [{"operator": "Exists"}]}),
        ({"priorityClassName": "urgent"}, {"priorityClassName": "urgent"}),
        ({"queueName": "team-nlp"}, {"queueName": "team-nlp"}),
    ],
    ids=["node-selector-key-by-key", "tolerations-replace", "priority", "queue"],
)
def test_scheduling_the_user_set_wins_over_operator_defaults(job, want):
    platform = {
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        "priorityClassName": "batch-low",
        "queueName": "shared",
    }
    settings = config.Settings(default_scheduling=spec_models.SchedulingSpec.model_validate(platform))
    spec = spec_models.FineTuneJobSpec.model_validate({**factories.MINIMAL, "scheduling": job})
    applied = defaults.apply(spec, settings)
    assert applied.scheduling is not None
    assert applied.scheduling.wire() == {**spec_models.SchedulingSpec.model_validate(platform).wire(), **want}


def test_without_operator_scheduling_defaults_the_spec_is_left_as_written():
    spec = spec_models.FineTuneJobSpec.model_validate(factories.MINIMAL)
    assert defaults.apply(spec, config.Settings()).scheduling is None
