"""Stage 2: records in, tokenized training/validation sets and a collator out.

:func:`prepare` reads `spec.dataset` (local, s3:// or Hub), checks the fields the task needs,
maps labels to ids, tokenizes every record with the encoder for its shape, and picks the
collator: padding-free packing for causal LMs when `spec.dataset.packing` allows it, padding
otherwise. Called by :mod:`kubeft_trainer.pipeline`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import datasets

from kubeft_trainer import config as trainer_config
from kubeft_trainer import errors
from kubeft_trainer.data import collate, encode, sources

log = logging.getLogger(__name__)

PROMPT_LEARNING = ("prefixTuning", "promptTuning", "pTuning")
# Below this many records tokenizing in worker processes costs more than it saves.
PARALLEL_MAP_MIN_RECORDS = 20_000


@dataclasses.dataclass(frozen=True)
class Prepared:
    train: datasets.Dataset
    validation: datasets.Dataset | None
    collator: Any
    labels: list[str] | None
    shape: str
    packed: bool


def label_values(ds: datasets.Dataset, *, column: str, per_token: bool) -> list[Any]:
    values = ds[column]
    return [v for row in values for v in row] if per_token else list(values)


def prepare(cfg: trainer_config.TrainerConfig, tokenizer: Any, *, flash_attention: bool = False) -> Prepared:
    """Load, check, label and tokenize `spec.dataset`; choose the collator."""
    spec = cfg.spec
    ds_spec = spec.dataset
    train, validation = sources.load_splits(
        ds_spec, cache_dir=cfg.cache_dir, storage_spec=spec.storage, seed=spec.training.seed
    )
    shape = encode.shape_of(spec)
    fields = encode.record_fields(spec)
    encode.check_columns(train.column_names, fields=fields, source=ds_spec.source)
    if validation is not None:
        encode.check_columns(validation.column_names, fields=fields, source=ds_spec.validation_source or "")
    if shape == "chat" and not getattr(tokenizer, "chat_template", None):
        raise errors.ChatTemplateMissing(
            f"the tokenizer of {spec.model.source} has no chat template, so `messages` cannot be formatted; "
            "use a model that ships one, or give the data as text or prompt + completion"
        )

    labels = None
    if shape in ("classification", "token_classification"):
        column = fields["label"] if shape == "classification" else fields["tags"]
        per_token = shape == "token_classification"
        values = label_values(train, column=column, per_token=per_token)
        if validation is not None:
            values += label_values(validation, column=column, per_token=per_token)
        labels = encode.label_names(values, declared=ds_spec.labels)
        log.info("%d labels: %s", len(labels), ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else ""))

    encoder = encode.Encoder(tokenizer, fields, max_length=ds_spec.max_length, labels=labels)
    train = _encode(train, encoder.for_shape(shape), shape=shape, source=ds_spec.source)
    if validation is not None:
        validation = _encode(validation, encoder.for_shape(shape), shape=shape, source=ds_spec.validation_source or "")

    packed = spec.task == "CAUSAL_LM" and ds_spec.packing and spec.method.type not in PROMPT_LEARNING
    collator: Any
    if packed:
        collator = collate.PackingCollator(flash_attention_kwargs=flash_attention)
    else:
        collator = collate.PadCollator(pad_token_id=tokenizer.pad_token_id)
    log.info(
        "dataset: %d training and %d validation records, shape %s, %s",
        len(train),
        len(validation) if validation is not None else 0,
        shape,
        "packed without padding" if packed else "padded per batch",
    )
    return Prepared(train=train, validation=validation, collator=collator, labels=labels, shape=shape, packed=packed)


def _encode(ds: datasets.Dataset, fn: Any, *, shape: str, source: str) -> datasets.Dataset:
    num_proc = min(os.cpu_count() or 1, 8) if len(ds) >= PARALLEL_MAP_MIN_RECORDS else None
    try:
        out = ds.map(fn, batched=True, remove_columns=ds.column_names, num_proc=num_proc, desc=f"tokenizing {shape}")
    except errors.TrainerError:
        raise
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise errors.DatasetInvalid(f"records in {source} do not fit the {shape} shape: {exc}") from exc
    if "labels" in out.column_names and shape in ("text", "prompt_completion", "chat"):
        before = len(out)
        out = out.filter(lambda row: any(x != encode.IGNORE for x in row["labels"][1:]), desc="dropping empty records")
        if len(out) < before:
            log.warning("dropped %d records of %s with no tokens to learn after truncation", before - len(out), source)
    if len(out) == 0:
        raise errors.DatasetInvalid(f"no record of {source} is left to train on after tokenization and truncation")
    return out
