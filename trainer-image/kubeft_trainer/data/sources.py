"""Read the raw records of `spec.dataset` into `datasets.Dataset`s: local files, s3:// files or the Hub.

Local and s3:// files are read with pyarrow straight into memory (no cache, precise errors);
Hub datasets go through `datasets.load_dataset`. A missing file is DatasetNotFound, a file that
does not parse or holds no records is DatasetInvalid (both exit 64). Called by
:func:`kubeft_trainer.data.prepare`.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any

import datasets
import pyarrow
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors, storage

log = logging.getLogger(__name__)


def load_splits(
    spec: api_spec.DatasetSpec, *, cache_dir: pathlib.Path, storage_spec: api_spec.StorageSpec | None, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """The training records and the validation records (None when there is no validation data)."""
    if _is_hub(spec.source):
        train = _load_hub(spec.source, split=spec.split)
        validation = _load_hub(spec.source, split=spec.validation_source) if spec.validation_source else None
    else:
        train = load_file(_localise(spec.source, cache_dir=cache_dir, storage_spec=storage_spec), fmt=spec.format)
        validation = None
        if spec.validation_source:
            local = _localise(spec.validation_source, cache_dir=cache_dir, storage_spec=storage_spec)
            validation = load_file(local, fmt=spec.format)
    _require_records(train, spec.source)
    if validation is not None:
        _require_records(validation, spec.validation_source or "")
    if spec.validation_fraction:
        if len(train) < 2:
            raise errors.DatasetInvalid(
                f"dataset {spec.source} has {len(train)} record; validationFraction needs at least 2"
            )
        held_out = max(1, round(len(train) * spec.validation_fraction))
        parts = train.train_test_split(test_size=held_out, seed=seed, shuffle=True)
        train, validation = parts["train"], parts["test"]
    return train, validation


def fetch(spec: api_spec.DatasetSpec, *, cache_dir: pathlib.Path, storage_spec: api_spec.StorageSpec | None) -> None:
    """Bring the dataset's files into the local caches without reading them: s3:// files into
    `cache_dir`, Hub datasets into the datasets cache. The pipeline runs it on one process of each
    node before the others, which then find the copies where :func:`load_splits` looks."""
    if _is_hub(spec.source):
        _load_hub(spec.source, split=spec.split)
        if spec.validation_source:
            _load_hub(spec.source, split=spec.validation_source)
        return
    for source in (spec.source, spec.validation_source):
        if source and storage.is_s3(source):
            _localise(source, cache_dir=cache_dir, storage_spec=storage_spec)


def load_file(path: pathlib.Path, *, fmt: str) -> datasets.Dataset:
    """Read one local file in `fmt` (jsonl, json, csv, parquet) into an in-memory Dataset."""
    if not path.is_file():
        raise errors.DatasetNotFound(f"dataset file {path} does not exist; check spec.dataset.source")
    try:
        if fmt == "jsonl":
            table = _read_jsonl(path)
        elif fmt == "json":
            table = _read_json(path)
        elif fmt == "csv":
            table = pyarrow.csv.read_csv(path)
        elif fmt == "parquet":
            table = pyarrow.parquet.read_table(path)
        else:
            raise errors.InvalidConfig(f"unsupported spec.dataset.format {fmt!r}")
    except (pyarrow.ArrowException, ValueError, OSError, UnicodeDecodeError) as exc:
        raise errors.DatasetInvalid(f"cannot read {path.name} as {fmt}: {exc}") from exc
    return datasets.Dataset(table)


def _read_jsonl(path: pathlib.Path) -> pyarrow.Table:
    if path.stat().st_size == 0:
        return pyarrow.table({})
    return pyarrow.json.read_json(path)


def _read_json(path: pathlib.Path) -> pyarrow.Table:
    doc = json.loads(path.read_text())
    if isinstance(doc, dict):
        # {"data": [...]}: the one list-valued key holds the records, as in SQuAD-style dumps.
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ValueError("a JSON object must hold exactly one list of records")
        doc = lists[0]
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise ValueError("expected a list of records (objects)")
    return pyarrow.Table.from_pylist(doc)


def _require_records(ds: datasets.Dataset, source: str) -> None:
    if len(ds) == 0:
        raise errors.DatasetInvalid(f"dataset {source} has no records")


def _is_hub(source: str) -> bool:
    return not source.startswith("/") and not storage.is_s3(source)


def _localise(source: str, *, cache_dir: pathlib.Path, storage_spec: api_spec.StorageSpec | None) -> pathlib.Path:
    if not storage.is_s3(source):
        return pathlib.Path(source)
    uri = storage.S3Uri.parse(source)
    dest = cache_dir / "data" / uri.bucket / uri.key
    s3 = storage.client(storage_spec)
    try:
        fetched = storage.mirror_file(s3, uri, dest)
    except Exception as exc:
        code = storage.error_code(exc)
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise errors.DatasetNotFound(f"dataset {source} does not exist") from exc
        if storage.is_permanent(exc):
            raise errors.DatasetNotFound(f"cannot read dataset {source}: {code or exc}; check the credentials") from exc
        raise
    if fetched:
        log.info("downloaded %s (%d bytes)", source, dest.stat().st_size)
    else:
        log.info("%s is unchanged in the cache at %s", source, dest)
    return dest


def _load_hub(source: str, *, split: str) -> datasets.Dataset:
    token = os.environ.get("HF_TOKEN") or None
    try:
        ds: Any = datasets.load_dataset(source, split=split, token=token)
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise errors.DatasetNotFound(f"Hub dataset {source} not found (or gated without a token): {exc}") from exc
    except ValueError as exc:
        raise errors.DatasetNotFound(f"Hub dataset {source} has no split {split!r}: {exc}") from exc
    return ds
