"""Padding-free packing is exact: a packed batch gives the loss of the same records run one by one.

Pins the setting that makes it so (no KV cache while training: with one, transformers' mask
builder ignores packed position ids and lets records attend to each other).
"""

from __future__ import annotations

import os
import pathlib

import pytest
import torch

from kubeft_trainer import config
from kubeft_trainer.data import collate, encode
from kubeft_trainer.model import base
from tests.fixtures.s3 import S3
from tests.integration.trainer.conftest import spec_doc

TEXTS = ["the capital of france is paris", "hello", "we baked fresh bread with butter and honey today"]


def test_packed_batch_loss_equals_per_record_loss(
    s3: S3, tiny: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    spec = spec_doc(s3, model=tiny["causal-lm"], data=tmp_path / "unused.jsonl", task="CAUSAL_LM", fields={"text": "t"})
    cfg = config.parse({"spec": spec}, environ=os.environ)
    tokenizer = base.load_tokenizer(cfg.spec.model, str(tiny["causal-lm"]))
    model = base.load_model(cfg, str(tiny["causal-lm"]), labels=None, tokenizer=tokenizer).eval()
    encoded = encode.Encoder(tokenizer, {"text": "t"}, max_length=64).text({"t": TEXTS})
    records = [{k: encoded[k][i] for k in encoded} for i in range(len(TEXTS))]

    with torch.no_grad():
        packed = model(**collate.PackingCollator()(records))
        total, count = 0.0, 0
        for record in records:
            single = collate.PadCollator(pad_token_id=tokenizer.pad_token_id)([record])
            n = len(record["input_ids"]) - 1
            total += float(model(**single).loss) * n
            count += n

    assert model.config.use_cache is False
    assert float(packed.loss) == pytest.approx(total / count, rel=1e-5)
