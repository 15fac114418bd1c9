"""Where a run's files live, which run a checkpoint belongs to, and what a warm start must agree on."""

from __future__ import annotations

import pytest

from kubeft_operator.api import layout
from tests.unit.operator import factories


@pytest.mark.parametrize(
    ("output", "want"),
    [
        ("s3://b/adapters/x", "s3://b/adapters/.kubeft-runs/x/u1"),
        ("s3://b/adapters/x/", "s3://b/adapters/.kubeft-runs/x/u1"),
        ("s3://b/x", "s3://b/.kubeft-runs/x/u1"),
        ("s3://b/a/b/c", "s3://b/a/b/.kubeft-runs/c/u1"),
    ],
)
def test_run_prefix_is_a_sibling_that_does_not_share_the_outputs_key_prefix(output: str, want: str) -> None:
    run = layout.run_uri(output, "u1")
    assert run == want
    # `aws s3 ls --recursive <output>` is a plain key-prefix match: the run must not be under it.
    assert not run.startswith(output.rstrip("/"))


def test_checkpoints_and_tensorboard_default_under_the_run() -> None:
    assert layout.checkpoints_uri("s3://b/x", "u1") == "s3://b/.kubeft-runs/x/u1/checkpoints"
    board = layout.tensorboard_uri(output_uri="s3://b/x", tensorboard=None, name="job", run_id="u1")
    assert board == "s3://b/.kubeft-runs/x/u1/tensorboard"


def test_a_shared_tensorboard_logdir_gets_a_directory_per_run() -> None:
    first = layout.tensorboard_uri(output_uri="s3://b/x", tensorboard="s3://tb/team/", name="job", run_id="u1")
    again = layout.tensorboard_uri(output_uri="s3://b/x", tensorboard="s3://tb/team/", name="job", run_id="u2")
    assert first == "s3://tb/team/job/u1" and again == "s3://tb/team/job/u2"
    assert layout.tensorboard_uri(output_uri=None, tensorboard=None, name="job", run_id="u1") is None


def test_spec_hash_covers_what_is_trained_and_nothing_else() -> None:
    base = factories.spec().wire()
    assert layout.spec_hash(base) == layout.spec_hash(factories.spec().wire())
    assert layout.spec_hash(base) != layout.spec_hash(factories.spec(training={"maxSteps": 6}).wire())
    assert layout.spec_hash(base) != layout.spec_hash(factories.spec(method={"lora": {"r": 4}}).wire())
    elsewhere = factories.spec(output={"s3": {"uri": "s3://other/prefix"}}, resources={"gpus": 2}).wire()
    assert layout.spec_hash(base) == layout.spec_hash(elsewhere)


@pytest.mark.parametrize(
    ("source", "target", "names"),
    [
        ({"method": {"lora": {"r": 8}}}, {"method": {"lora": {"r": 16}}}, "spec.method.lora.r is 16 here but 8"),
        (
            {"method": {"lora": {"targetModules": ["q_proj"]}}},
            {"method": {"lora": {"targetModules": ["q_proj", "v_proj"]}}},
            "spec.method.lora.targetModules",
        ),
        ({}, {"model": {"source": "org/other"}}, "spec.model.source is 'org/other' here but 'org/model'"),
        ({}, {"method": {"type": "ia3"}}, "spec.method.type is 'ia3' here but 'lora'"),
        (
            {"method": {"type": "promptTuning", "promptTuning": {"numVirtualTokens": 10}}},
            {"method": {"type": "promptTuning", "promptTuning": {"numVirtualTokens": 20}}},
            "spec.method.promptTuning.numVirtualTokens",
        ),
    ],
)
def test_a_warm_start_refuses_what_changes_the_adapters_shape(source: dict, target: dict, names: str) -> None:
    problem = layout.continuation_mismatch(factories.spec(**source).wire(), factories.spec(**target).wire())
    assert problem is not None and names in problem


def test_a_warm_start_may_change_hyperparameters() -> None:
    source = factories.spec(method={"lora": {"r": 8, "targetModules": ["v_proj", "q_proj"]}})
    target = factories.spec(
        method={"lora": {"r": 8, "alpha": 64, "dropout": 0.1, "targetModules": ["q_proj", "v_proj"]}},
        training={"maxSteps": 50, "learningRate": 1e-5},
        output={"s3": {"uri": "s3://bucket/v2"}},
    )
    assert layout.continuation_mismatch(source.wire(), target.wire()) is None
