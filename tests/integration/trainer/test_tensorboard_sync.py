"""The TensorBoard sync uploads new and grown event files each pass, and nothing that did not change."""

from __future__ import annotations

import pathlib

from kubeft_trainer import storage
from kubeft_trainer.train import tensorboard
from tests.fixtures.s3 import S3


def test_only_new_or_grown_files_are_uploaded(s3: S3, tmp_path: pathlib.Path) -> None:
    local = tmp_path / "tb"
    local.mkdir()
    events = local / "events.out.tfevents.1"
    events.write_bytes(b"a" * 10)
    sync = tensorboard.Sync(s3.client, local, storage.S3Uri(s3.bucket, "tb/run"), interval=3600)

    assert sync.sync() == ["events.out.tfevents.1"]
    assert sync.sync() == []
    events.write_bytes(b"a" * 20)
    (local / "events.out.tfevents.2").write_bytes(b"b")
    assert sync.sync() == ["events.out.tfevents.1", "events.out.tfevents.2"]
    assert len(s3.read("tb/run/events.out.tfevents.1")) == 20


def test_stop_uploads_what_is_left(s3: S3, tmp_path: pathlib.Path) -> None:
    sync = tensorboard.Sync(s3.client, tmp_path, storage.S3Uri(s3.bucket, "tb"), interval=3600).start()
    (tmp_path / "events.out.tfevents.9").write_bytes(b"late")
    sync.stop()
    assert s3.keys("tb/") == ["tb/events.out.tfevents.9"]
