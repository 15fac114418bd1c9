"""Which trainer images a FineTuneJob may run (spec.image): the operator's allowlist."""

from __future__ import annotations

import dataclasses

import pytest

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import images
from tests.unit.operator import factories

DEFAULT = config.Settings(trainer_image="ghcr.io/kubeft/trainer:0.1.0")
ALLOWLIST = dataclasses.replace(DEFAULT, allowed_images=("registry.example.com/ml/*", "ghcr.io/kubeft/trainer:*"))


def _spec(image: str | None) -> spec_models.FineTuneJobSpec:
    doc = factories.merge(factories.MINIMAL, {"image": image} if image else {})
    return spec_models.FineTuneJobSpec.model_validate(doc)


@pytest.mark.parametrize(
    ("image", "settings", "allowed"),
    [
        (None, DEFAULT, True),
        ("ghcr.io/kubeft/trainer:0.1.0", DEFAULT, True),
        ("ghcr.io/kubeft/trainer:0.2.0", DEFAULT, False),
        ("docker.io/library/alpine:3", DEFAULT, False),
        ("registry.example.com/ml/trainer:1", ALLOWLIST, True),
        ("registry.example.com/ml/team/trainer@sha256:" + "a" * 64, ALLOWLIST, True),
        ("ghcr.io/kubeft/trainer:0.2.0", ALLOWLIST, True),
        ("registry.example.com/other/trainer:1", ALLOWLIST, False),
        ("evil.example/registry.example.com/ml/x", ALLOWLIST, False),
    ],
)
def test_image_allowlist(image: str | None, settings: config.Settings, allowed: bool) -> None:
    got = images.problem(_spec(image), settings)
    assert (got is None) == allowed, got


def test_refusal_names_the_image_and_the_allowed_patterns() -> None:
    got = images.problem(_spec("docker.io/library/alpine:3"), DEFAULT)
    assert got == (
        "spec.image docker.io/library/alpine:3 is not an image this operator runs (allowed: "
        "ghcr.io/kubeft/trainer:0.1.0); leave spec.image out for the default trainer, or ask the platform team "
        "to add it to operator.allowedImages"
    )


@pytest.mark.parametrize(
    ("raw", "want"),
    [(None, ()), ("", ()), ('["a/*", "b:1"]', ("a/*", "b:1"))],
)
def test_allowed_images_from_env(raw: str | None, want: tuple[str, ...]) -> None:
    env = {} if raw is None else {"KUBEFT_ALLOWED_IMAGES": raw}
    assert config.Settings.from_env(env).allowed_images == want


@pytest.mark.parametrize("raw", ["a/*", '["a", ""]', '{"a": 1}'])
def test_malformed_allowed_images_are_named(raw: str) -> None:
    with pytest.raises(ValueError, match="KUBEFT_ALLOWED_IMAGES"):
        config.Settings.from_env({"KUBEFT_ALLOWED_IMAGES": raw})
