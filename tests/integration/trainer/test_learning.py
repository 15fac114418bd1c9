"""The adapters actually learn: LoRA on a pretrained MiniLM classifies, LoRA on a chat model lowers its loss."""

from __future__ import annotations

import os
import pathlib

import pytest
import torch

from hack import tiny_models
from kubeft_trainer import config, data, pipeline
from kubeft_trainer.model import base
from tests.fixtures.s3 import S3
from tests.integration.trainer import records
from tests.integration.trainer.conftest import merge, spec_doc

pytestmark = pytest.mark.slow


def test_lora_on_minilm_classifies_topics_above_90_percent(s3: S3, trainer_env: pathlib.Path) -> None:
    train = records.write(trainer_env / "train.jsonl", records.topic_sentences(320, seed=11))
    validation = records.write(trainer_env / "validation.jsonl", records.topic_sentences(80, seed=12))
    spec = spec_doc(
        s3, model=tiny_models.minilm_path(), data=train, task="SEQ_CLS", fields={"text": "text", "label": "label"}
    )
    spec = merge(
        spec,
        {
            "dataset": {"validationSource": str(validation), "maxLength": 32},
            "method": {"lora": {"r": 8, "alpha": 16, "targetModules": ["query", "value"]}},
            "training": {"maxSteps": 25, "batchSize": 16, "learningRate": 4e-3, "warmupRatio": 0.1},
        },
    )

    result = pipeline.run(config.parse({"spec": spec}, environ=os.environ))

    metrics = result.outcome.metrics
    assert metrics["eval_accuracy"] >= 0.9, metrics
    assert metrics["eval_f1"] >= 0.9
    assert result.labels == ["food", "sports", "technology", "weather"]


def test_lora_on_chat_data_lowers_validation_loss(
    s3: S3, tiny: dict[str, pathlib.Path], trainer_env: pathlib.Path
) -> None:
    chats = records.write(trainer_env / "chat.jsonl", records.capital_chats(240, seed=13))
    spec = spec_doc(s3, model=tiny["causal-lm"], data=chats, task="CAUSAL_LM", fields={"messages": "messages"})
    spec = merge(
        spec,
        {
            "dataset": {"validationFraction": 0.1, "maxLength": 64},
            # The tiny model's output projection is random, so it is adapted too.
            "method": {"lora": {"r": 16, "alpha": 32, "targetModules": ["q_proj", "v_proj", "lm_head"]}},
            "training": {"maxSteps": 40, "batchSize": 8, "learningRate": 1e-2},
        },
    )
    cfg = config.parse({"spec": spec}, environ=os.environ)
    before = untrained_validation_loss(cfg)

    result = pipeline.run(cfg)

    after = result.outcome.metrics["eval_loss"]
    assert after < 0.5 * before, (before, after)


def untrained_validation_loss(cfg: config.TrainerConfig) -> float:
    """Mean loss of the base model on the validation split the pipeline will evaluate on."""
    location = base.resolve(cfg)
    tokenizer = base.load_tokenizer(cfg.spec.model, location)
    prepared = data.prepare(cfg, tokenizer)
    model = base.load_model(cfg, location, labels=None, tokenizer=tokenizer).eval()
    assert prepared.validation is not None
    losses, tokens = 0.0, 0
    with torch.no_grad():
        for row in prepared.validation:
            batch = prepared.collator([row])
            count = int((batch["labels"][:, 1:] != -100).sum())
            losses += float(model(**batch).loss) * count
            tokens += count
    return losses / tokens
