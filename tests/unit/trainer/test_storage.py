"""S3 helpers: URIs, uploads that put the marker file last, and retries within a budget."""

from __future__ import annotations

import pathlib
from typing import Any

import boto3.exceptions
import botocore.exceptions
import pytest

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


class Clock:
    """A fake clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "PutObject")


def failing(times: int, exc: Exception) -> Any:
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return "done"

    operation.calls = calls  # type: ignore[attr-defined]
    return operation


def test_retrying_backs_off_doubling_until_the_operation_succeeds() -> None:
    clock = Clock()
    operation = failing(4, client_error("SlowDown"))
    assert storage.retrying("x", operation, budget=100, sleep=clock.sleep, clock=lambda: clock.now) == "done"
    assert clock.sleeps == [1, 2, 4, 8]


def test_retrying_gives_up_with_the_last_error_when_the_budget_is_spent() -> None:
    clock = Clock()
    operation = failing(100, botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"))
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        storage.retrying("x", operation, budget=20, sleep=clock.sleep, clock=lambda: clock.now)
    # 1 + 2 + 4 + 8 = 15, then only the 5 s left of the budget, then no more.
    assert clock.sleeps == [1, 2, 4, 8, 5]
    assert clock.now == 20


def test_retrying_never_repeats_a_permanent_error() -> None:
    clock = Clock()
    operation = failing(1, client_error("AccessDenied"))
    with pytest.raises(botocore.exceptions.ClientError):
        storage.retrying("x", operation, budget=100, sleep=clock.sleep, clock=lambda: clock.now)
    assert clock.sleeps == []


def test_the_error_code_is_found_inside_the_error_a_transfer_wraps_it_in() -> None:
    try:
        try:
            raise client_error("AccessDenied")
        except botocore.exceptions.ClientError as exc:
            raise boto3.exceptions.S3UploadFailedError("Failed to upload x to b/k") from exc
    except boto3.exceptions.S3UploadFailedError as wrapped:
        assert storage.error_code(wrapped) == "AccessDenied"
        assert storage.is_permanent(wrapped)


def test_the_retry_budget_comes_from_the_environment() -> None:
    assert storage.retry_budget({}) == storage.DEFAULT_RETRY_BUDGET
    assert storage.retry_budget({storage.RETRY_BUDGET_ENV: "45"}) == 45
    assert storage.retry_budget({storage.RETRY_BUDGET_ENV: "soon"}) == storage.DEFAULT_RETRY_BUDGET
