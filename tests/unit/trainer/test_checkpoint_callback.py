"""The checkpoint callback: no COMPLETE while the loss is out of bound; a refused upload stops the run."""

from __future__ import annotations

import math
import pathlib
import types
from typing import Any

import botocore.exceptions
import pytest

from kubeft_trainer import errors, progress
from kubeft_trainer.train import callbacks, checkpoints, divergence

RUN = checkpoints.Identity(uid="u", spec_hash="h")


class RefusingRemote:
    root = "s3://bucket/.kubeft-runs/x/u/checkpoints"

    def __init__(self, code: str) -> None:
        self.code = code

    def upload(self, directory: pathlib.Path, *, step: int) -> None:
        raise botocore.exceptions.ClientError({"Error": {"Code": self.code, "Message": "no"}}, "PutObject")


def saver(tmp_path: pathlib.Path, *, remote: Any = None, guard: divergence.Guard | None = None) -> Any:
    reporter = progress.Reporter(name="job", namespace=None)
    reporter.enabled = False
    cb = callbacks.Checkpoints(remote, callbacks.Progress(reporter), identity=RUN, guard=guard)
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"w")
    args = types.SimpleNamespace(output_dir=str(tmp_path))
    state = types.SimpleNamespace(global_step=4, is_world_process_zero=True)
    return cb, args, state


def test_checkpoint_is_not_marked_complete_while_the_loss_is_out_of_bound(tmp_path: pathlib.Path) -> None:
    guard = divergence.Guard(max_loss_factor=4.0, patience_steps=3)
    guard.observe(2.0, step=1)
    guard.observe(math.nan, step=2)
    cb, args, state = saver(tmp_path, guard=guard)
    cb.on_save(args, state, None)
    assert not (tmp_path / "checkpoint-4" / checkpoints.MARKER).exists()
    assert cb.progress_cb.last_checkpoint_step is None

    guard.observe(1.9, step=3)  # back within bound: the next save counts
    cb.on_save(args, state, None)
    assert checkpoints.latest_local(tmp_path, RUN) == tmp_path / "checkpoint-4"
    assert cb.progress_cb.last_checkpoint_step == 4


def test_access_denied_on_a_checkpoint_upload_stops_the_run(tmp_path: pathlib.Path) -> None:
    cb, args, state = saver(tmp_path, remote=RefusingRemote("AccessDenied"))
    with pytest.raises(errors.OutputFailed) as refused:
        cb.on_save(args, state, None)
    assert refused.value.exit_code == errors.EXIT_USER_ERROR
    assert "AccessDenied" in refused.value.message


def test_a_transient_upload_error_is_survived(tmp_path: pathlib.Path) -> None:
    cb, args, state = saver(tmp_path, remote=RefusingRemote("SlowDown"))
    cb.on_save(args, state, None)
    assert cb.progress_cb.last_checkpoint_step is None
