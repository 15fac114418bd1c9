"""Stage 2: records in, tokenized training/validation sets and a collator out.

:func:`prepare` reads `spec.dataset` (local, s3:// or Hub), checks the fields the task needs,
maps labels to ids, tokenizes every record with the encoder for its shape, measures each record's
untruncated token length and why any record is dropped (the dataset preflight report,
:mod:`kubeft_trainer.data.preflight`), and picks the collator: padding-free packing for causal LMs
when `spec.dataset.packing` allows it, padding otherwise. Called by :mod:`kubeft_trainer.pipeline`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import logging
from typing import Any

import datasets

from kubeft_trainer import config as trainer_config
from kubeft_trainer import cpus, errors
from kubeft_trainer.data import collate, encode, preflight, sources

log = logging.getLogger(__name__)

PROMPT_LEARNING = ("prefixTuning", "promptTuning", "pTuning")
# Below this many records tokenizing in worker processes costs more than it saves.
PARALLEL_MAP_MIN_RECORDS = 20_000
# Shapes whose records are dropped when truncation leaves no token to learn.
CAUSAL_SHAPES = ("text", "prompt_completion", "chat")


@dataclasses.dataclass(frozen=True)
class Prepared:
    train: datasets.Dataset
    validation: datasets.Dataset | None
    collator: Any
    labels: list[str] | None
    shape: str
    packed: bool
    report: preflight.Report | None = None


def label_values(ds: datasets.Dataset, *, column: str, per_token: bool) -> list[Any]:
    values = ds[column]
    return [v for row in values for v in row] if per_token else list(values)


def fetch(cfg: trainer_config.TrainerConfig) -> None:
    """Download `spec.dataset` into the caches, so that :func:`prepare` on every rank reads local copies."""
    sources.fetch(cfg.spec.dataset, cache_dir=cfg.cache_dir, storage_spec=cfg.spec.storage)


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
    raw_train = train
    train, train_split = _encode(train, encoder, shape=shape, source=ds_spec.source)
    validation_split = None
    if validation is not None:
        validation, validation_split = _encode(validation, encoder, shape=shape, source=ds_spec.validation_source or "")
        if len(validation) == 0:
            raise errors.DatasetInvalid(
                f"no record of {ds_spec.validation_source or ds_spec.source} is left to validate on after "
                "tokenization and truncation"
            )
    report = preflight.build(
        source=ds_spec.source,
        shape=shape,
        train=train_split,
        validation=validation_split,
        labels=_label_counts(train, labels=labels) if shape == "classification" and labels else None,
        chat_sample=encoder.render(raw_train[0][fields["messages"]]) if shape == "chat" and len(raw_train) else None,
        thresholds=ds_spec.preflight,
        checked_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )

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
    return Prepared(
        train=train, validation=validation, collator=collator, labels=labels, shape=shape, packed=packed, report=report
    )


def map_processes(records: int) -> int | None:
    """Tokenizer processes for `records` records: None (in-process) for small sets, else up to 8.

    Every rank of the pod tokenizes, so each takes its share of the pod's CPUs (the cgroup limit,
    not the node's count, which would start dozens of processes in a pod limited to a few CPUs).
    """
    return min(cpus.cpus_per_process(), 8) if records >= PARALLEL_MAP_MIN_RECORDS else None


def _encode(
    ds: datasets.Dataset, encoder: encode.Encoder, *, shape: str, source: str
) -> tuple[datasets.Dataset, preflight.Split]:
    """Tokenized records, less those left with no token to learn, and the facts the preflight reports."""
    num_proc = map_processes(len(ds))
    columns = ds.column_names
    try:
        out = ds.map(
            encoder.for_shape(shape),
            batched=True,
            remove_columns=columns,
            num_proc=num_proc,
            desc=f"tokenizing {shape}",
        )
        # A second, untruncated tokenization: the encoders cut at maxLength and cannot tell by how much.
        measured = ds.map(
            encoder.lengths_for_shape(shape),
            batched=True,
            remove_columns=columns,
            num_proc=num_proc,
            desc=f"measuring {shape}",
        )
    except errors.TrainerError:
        raise
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise errors.DatasetInvalid(f"records in {source} do not fit the {shape} shape: {exc}") from exc
    lengths = list(measured["length"])
    dropped: dict[str, int] = {}
    if "labels" in out.column_names and shape in CAUSAL_SHAPES:
        learnable = out.map(
            lambda batch: {"keep": [any(x != encode.IGNORE for x in row[1:]) for row in batch["labels"]]},
            batched=True,
            remove_columns=out.column_names,
            desc="finding records with no token to learn",
        )["keep"]
        kept = [i for i, keep in enumerate(learnable) if keep]
        if len(kept) < len(out):
            reasons = collections.Counter(
                "truncatedAway" if lengths[i] > encoder.max_length else "empty"
                for i, keep in enumerate(learnable)
                if not keep
            )
            dropped = dict(reasons)
            log.warning(
                "dropped %d records of %s with no tokens to learn after truncation", len(out) - len(kept), source
            )
            out = out.select(kept)
            lengths = [lengths[i] for i in kept]
    return out, preflight.Split(read=len(ds), lengths=lengths, dropped=dropped, max_length=encoder.max_length)


def _label_counts(encoded: datasets.Dataset, *, labels: list[str]) -> dict[str, int]:
    return preflight.label_counts(labels, list(encoded["labels"]))
