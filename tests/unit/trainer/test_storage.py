"""S3 helpers: URIs, and uploads that put the marker file last."""

from __future__ import annotations

import pathlib
from typing import Any

from kubeft_trainer import storage


class RecordingClient:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def upload_file(self, filename: str, bucket: str, key: str, **kwargs: Any) -> None:
        self.keys.append(key)


def test_uri_parsing_and_joining() -> None:
    uri = storage.S3Uri.parse("s3://bucket/a/b/")
    assert (uri.bucket, uri.key) == ("bucket", "a/b")
    assert str(uri.join("checkpoints", "checkpoint-5/")) == "s3://bucket/a/b/checkpoints/checkpoint-5"


def test_upload_dir_puts_the_named_files_last(tmp_path: pathlib.Path) -> None:
    for name in ("manifest.json", "README.md", "adapter_model.safetensors", "z.json"):
        (tmp_path / name).write_text(name)
    client = RecordingClient()
    order = storage.upload_dir(client, tmp_path, storage.S3Uri("b", "out"), last=("manifest.json",))
    assert order[-1] == "manifest.json"
    assert client.keys == [f"out/{name}" for name in order]
    assert sorted(order) == sorted(["manifest.json", "README.md", "adapter_model.safetensors", "z.json"])
