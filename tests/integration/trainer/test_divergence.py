"""A run whose loss blows up stops within a few steps with reason Diverged and exit 65, exporting nothing."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from hack import tiny_models
from kubeft_trainer import __main__ as entry
from tests.fixtures.s3 import S3
from tests.integration.trainer import records
from tests.integration.trainer.conftest import merge, spec_doc, termination


def test_runaway_learning_rate_stops_with_diverged(
    s3: S3, write_config: Callable[..., pathlib.Path], trainer_env: pathlib.Path
) -> None:
    data = records.write(trainer_env / "topics.jsonl", records.topic_sentences(64, seed=3))
    spec = spec_doc(
        s3,
        model=tiny_models.minilm_path(),
        data=data,
        task="SEQ_CLS",
        fields={"text": "text", "label": "label"},
    )
    # 1.0 is the highest learning rate the API accepts; on a pretrained encoder it blows up at once.
    spec = merge(spec, {"training": {"maxSteps": 40, "learningRate": 1.0, "batchSize": 8}})

    rc = entry.main(["--config", str(write_config(spec))])

    message = termination(trainer_env)
    assert rc == 65
    assert message["reason"] == "Diverged"
    assert message["step"] <= 12
    assert "learningRate" in message["message"]
    exported = set(s3.keys("out/"))
    assert "out/manifest.json" not in exported
    assert "out/adapter_model.safetensors" not in exported
