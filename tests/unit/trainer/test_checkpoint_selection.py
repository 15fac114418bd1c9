"""Only checkpoints whose COMPLETE marker made it, and names this run, are resumed from; the newest wins."""

from __future__ import annotations

import json
import pathlib

import pytest

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


RUN = checkpoints.Identity(uid="uid-1", spec_hash="h1")


def test_latest_local_checkpoint_needs_the_marker(tmp_path: pathlib.Path) -> None:
    for step in (10, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"x")
    checkpoints.mark_complete(tmp_path / "checkpoint-10", step=10, identity=RUN)
    assert checkpoints.latest_local(tmp_path, RUN) == tmp_path / "checkpoint-10"


@pytest.mark.parametrize(
    "other",
    [
        checkpoints.Identity(uid="uid-2", spec_hash="h1"),  # another FineTuneJob of the same spec
        checkpoints.Identity(uid="uid-1", spec_hash="h2"),  # the same uid with another spec
    ],
)
def test_another_runs_checkpoint_is_never_resumed(tmp_path: pathlib.Path, other: checkpoints.Identity) -> None:
    for step, owner in ((10, RUN), (20, other)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        checkpoints.mark_complete(tmp_path / f"checkpoint-{step}", step=step, identity=owner)
    assert checkpoints.latest_local(tmp_path, RUN) == tmp_path / "checkpoint-10"
    assert checkpoints.latest_local(tmp_path, other) == tmp_path / "checkpoint-20"


def test_marker_without_identity_is_not_this_runs(tmp_path: pathlib.Path) -> None:
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "COMPLETE").write_text(json.dumps({"step": 5, "files": []}))
    assert checkpoints.latest_local(tmp_path, RUN) is None


def test_marker_lists_the_checkpoint_files_and_the_run(tmp_path: pathlib.Path) -> None:
    (tmp_path / "optimizer.pt").write_bytes(b"x")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"y")
    checkpoints.mark_complete(tmp_path, step=7, identity=RUN)
    body = json.loads((tmp_path / "COMPLETE").read_text())
    assert body["step"] == 7
    assert (body["uid"], body["specHash"]) == ("uid-1", "h1")
    assert body["files"] == ["adapter_model.safetensors", "optimizer.pt"]


def test_no_local_checkpoints_means_a_fresh_start(tmp_path: pathlib.Path) -> None:
    assert checkpoints.latest_local(tmp_path / "absent", RUN) is None
