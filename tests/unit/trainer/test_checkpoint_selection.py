"""Only checkpoints whose COMPLETE marker made it are resumed from; the newest wins."""

from __future__ import annotations

import json
import pathlib

from kubeft_trainer.train import checkpoints


def test_newest_complete_checkpoint_is_selected() -> None:
    keys = [
        "checkpoint-100/adapter_model.safetensors",
        "checkpoint-100/COMPLETE",
        "checkpoint-300/adapter_model.safetensors",
        "checkpoint-300/COMPLETE",
        "checkpoint-200/COMPLETE",
    ]
    assert checkpoints.complete_steps(keys) == [100, 200, 300]


def test_checkpoint_without_marker_is_never_used() -> None:
    keys = ["checkpoint-100/COMPLETE", "checkpoint-500/optimizer.pt", "checkpoint-500/adapter_model.safetensors"]
    assert checkpoints.complete_steps(keys) == [100]


def test_marker_must_sit_directly_in_the_checkpoint() -> None:
    keys = ["checkpoint-100/nested/COMPLETE", "checkpoint-x/COMPLETE", "other-7/COMPLETE"]
    assert checkpoints.complete_steps(keys) == []


def test_latest_local_checkpoint_needs_the_marker(tmp_path: pathlib.Path) -> None:
    for step in (10, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"x")
    checkpoints.mark_complete(tmp_path / "checkpoint-10", step=10)
    assert checkpoints.latest_local(tmp_path) == tmp_path / "checkpoint-10"


def test_marker_lists_the_checkpoint_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "optimizer.pt").write_bytes(b"x")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"y")
    checkpoints.mark_complete(tmp_path, step=7)
    body = json.loads((tmp_path / "COMPLETE").read_text())
    assert body["step"] == 7
    assert body["files"] == ["adapter_model.safetensors", "optimizer.pt"]


def test_no_local_checkpoints_means_a_fresh_start(tmp_path: pathlib.Path) -> None:
    assert checkpoints.latest_local(tmp_path / "absent") is None
