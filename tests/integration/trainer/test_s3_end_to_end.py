"""The production path against a real S3 server on loopback, through the container entry point.

Model and data come from s3://, the trainer runs under `python -m kubeft_trainer.launch`
(`accelerate launch`), TensorBoard event files stream to S3 while it trains, `tensorboard`
reads the scalars back from s3://, and the adapter's manifest checksums verify.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from kubeft_trainer import dataset_report
from tests.fixtures.s3 import S3
from tests.integration.trainer import records
from tests.integration.trainer.conftest import merge, spec_doc, termination

pytestmark = pytest.mark.slow

EXPORTED = {"adapter_config.json", "adapter_model.safetensors", "README.md", "metrics.json", "manifest.json"}


def upload_dir(s3: S3, directory: pathlib.Path, prefix: str) -> None:
    for path in directory.iterdir():
        s3.client.upload_file(str(path), s3.bucket, f"{prefix}/{path.name}")


def launch(config: pathlib.Path, *, log: pathlib.Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "kubeft_trainer.launch", "--num_processes", "1"]
    command += ["-m", "kubeft_trainer", "--config", str(config)]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def test_s3_sources_streamed_tensorboard_and_verified_manifest(
    s3: S3, tiny: dict[str, pathlib.Path], write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    upload_dir(s3, tiny["causal-lm"], "models/tiny-llama")
    data = records.write(trainer_env / "chat.jsonl", records.capital_chats(160, seed=5))
    s3.client.upload_file(str(data), s3.bucket, "data/chat.jsonl")
    spec = spec_doc(
        s3,
        model=s3.uri("models/tiny-llama"),
        data=s3.uri("data/chat.jsonl"),
        task="CAUSAL_LM",
        fields={"messages": "messages"},
        output="adapters/run",
    )
    spec = merge(
        spec,
        {
            "dataset": {"validationFraction": 0.1, "maxLength": 64},
            "method": {"lora": {"r": 8, "targetModules": ["q_proj", "v_proj"]}},
            "training": {
                "maxSteps": 150,
                "batchSize": 8,
                "learningRate": 5e-3,
                "checkpointSteps": 50,
                "evaluation": {"strategy": "steps", "steps": 50},
            },
            "tensorboard": {"uri": s3.uri("tb"), "flushIntervalSeconds": 1},
        },
    )
    env = {**os.environ, **s3.env()}
    proc = launch(write_config(spec, name="e2e"), log=trainer_env / "train.log", env=env)

    first_seen: dict[str, int] = {}
    while proc.poll() is None and not first_seen:
        # The training's event files: the dataset preflight's own file is written once, up front.
        events = {
            k: s
            for k, s in _sizes(s3, "tb/").items()
            if "tfevents" in k and not k.endswith(dataset_report.EVENTS_SUFFIX)
        }
        if events and proc.poll() is None:
            first_seen = events
        time.sleep(0.2)
    rc = proc.wait(timeout=600)
    log = (trainer_env / "train.log").read_text()

    assert rc == 0, log[-3000:]
    assert first_seen, "no TensorBoard event file reached S3 while the trainer ran"
    final_sizes = _sizes(s3, "tb/")
    assert any(final_sizes[k] > size for k, size in first_seen.items()), "event files did not grow after upload"

    message = termination(trainer_env)
    assert message["result"] == "Succeeded"
    assert message["step"] == 150
    manifest_bytes = s3.read("adapters/run/manifest.json")
    assert message["artifact"]["uri"] == s3.uri("adapters/run")
    assert message["artifact"]["sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    manifest = json.loads(manifest_bytes)
    top_level = {k.removeprefix("adapters/run/") for k in s3.keys("adapters/run/") if k.count("/") == 2}
    assert top_level == EXPORTED
    assert {f["path"] for f in manifest["files"]} == EXPORTED - {"manifest.json"}
    for entry in manifest["files"]:
        body = s3.read(f"adapters/run/{entry['path']}")
        assert len(body) == entry["size"]
        assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    assert message["artifact"]["sizeBytes"] == sum(f["size"] for f in manifest["files"])
    assert {"eval_loss", "eval_perplexity", "train_loss"} <= set(message["metrics"])

    # `aws s3 ls --recursive s3://bucket/adapters/run` lists the adapter alone; the run's checkpoints
    # went to its own prefix beside it and were deleted after the export.
    assert set(s3.keys("adapters/run")) == {f"adapters/run/{name}" for name in EXPORTED}
    assert "checkpoint 100 uploaded to" in log and "checkpoint 150 uploaded to" in log
    assert s3.keys("adapters/.kubeft-runs/run/0000/checkpoints/") == []
    assert "deleted this run's checkpoints under" in log
    assert (trainer_env / "hf-home" / "kubeft" / "models" / s3.bucket / "models/tiny-llama" / "config.json").is_file()

    inspect = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "tensorboard"), "--inspect", "--logdir", s3.uri("tb")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert inspect.returncode == 0, inspect.stderr[-2000:]
    assert f"{s3.uri('tb')}/e2e" in inspect.stdout
    for tag in ("train/loss", "train/learning_rate", "eval/loss", "eval/perplexity"):
        assert tag in inspect.stdout


def _sizes(s3: S3, prefix: str) -> dict[str, int]:
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return {obj["Key"]: obj["Size"] for page in pages for obj in page.get("Contents", [])}
