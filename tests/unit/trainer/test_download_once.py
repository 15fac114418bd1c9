"""One process per node downloads the s3:// dataset; the others, after it, find the unchanged copy.

The pipeline runs :func:`kubeft_trainer.data.fetch` on the node's main process first
(`local_main_process_first`); every rank's :func:`kubeft_trainer.data.prepare` then reads the
cache. An object store stand-in records what was downloaded.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import botocore.exceptions
import pytest

from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors, storage
from kubeft_trainer.data import sources


class Store:
    """head_object and download_file over a dict of keys; counts every download."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.downloads: list[str] = []

    def _etag(self, key: str) -> str:
        return f'"{abs(hash(self.objects[key]))}"'

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            raise botocore.exceptions.ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {"ContentLength": len(self.objects[Key]), "ETag": self._etag(Key)}

    def download_file(self, bucket: str, key: str, filename: str, **kwargs: Any) -> None:
        self.downloads.append(key)
        pathlib.Path(filename).write_bytes(self.objects[key])


RECORDS = b"".join(json.dumps({"text": f"record {i}"}).encode() + b"\n" for i in range(5))


def test_a_second_mirror_of_an_unchanged_object_downloads_nothing(tmp_path: pathlib.Path) -> None:
    store = Store({"data/train.jsonl": RECORDS})
    dest = tmp_path / "cache" / "train.jsonl"
    uri = storage.S3Uri("b", "data/train.jsonl")
    assert storage.mirror_file(store, uri, dest) is True
    assert storage.mirror_file(store, uri, dest) is False
    assert store.downloads == ["data/train.jsonl"]
    assert dest.read_bytes() == RECORDS


def test_a_reuploaded_object_of_the_same_size_is_fetched_again(tmp_path: pathlib.Path) -> None:
    store = Store({"data/train.jsonl": RECORDS})
    dest = tmp_path / "train.jsonl"
    uri = storage.S3Uri("b", "data/train.jsonl")
    storage.mirror_file(store, uri, dest)
    store.objects["data/train.jsonl"] = RECORDS.replace(b"record 0", b"record 9")
    assert storage.mirror_file(store, uri, dest) is True
    assert b"record 9" in dest.read_bytes()


def test_a_copy_this_mirror_did_not_fetch_is_replaced(tmp_path: pathlib.Path) -> None:
    store = Store({"data/train.jsonl": RECORDS})
    dest = tmp_path / "train.jsonl"
    dest.write_bytes(b"x" * len(RECORDS))
    assert storage.mirror_file(store, storage.S3Uri("b", "data/train.jsonl"), dest) is True
    assert dest.read_bytes() == RECORDS


def dataset(source: str, **fields: Any) -> api_spec.DatasetSpec:
    return api_spec.DatasetSpec.model_validate({"source": source, "fields": {"text": "text"}, **fields})


def test_ranks_after_the_first_read_the_copy_it_fetched(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store({"data/train.jsonl": RECORDS, "data/val.jsonl": RECORDS})
    monkeypatch.setattr(storage, "client", lambda spec: store)
    spec = dataset("s3://b/data/train.jsonl", validationSource="s3://b/data/val.jsonl")
    sources.fetch(spec, cache_dir=tmp_path, storage_spec=None)
    assert sorted(store.downloads) == ["data/train.jsonl", "data/val.jsonl"]
    for _rank in range(3):
        train, validation = sources.load_splits(spec, cache_dir=tmp_path, storage_spec=None, seed=0)
        assert train["text"] == [f"record {i}" for i in range(5)] and validation is not None
    assert sorted(store.downloads) == ["data/train.jsonl", "data/val.jsonl"]


def test_a_missing_object_is_still_dataset_not_found(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "client", lambda spec: Store({}))
    with pytest.raises(errors.DatasetNotFound, match="does not exist"):
        sources.fetch(dataset("s3://b/data/absent.jsonl"), cache_dir=tmp_path, storage_spec=None)


def test_local_files_need_no_fetch(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(spec: Any) -> Any:
        raise AssertionError("no S3 client for a local dataset")

    monkeypatch.setattr(storage, "client", no_client)
    sources.fetch(dataset(str(tmp_path / "train.jsonl")), cache_dir=tmp_path, storage_spec=None)
