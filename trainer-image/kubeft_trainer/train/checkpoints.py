"""Durable checkpoints in S3: `<output.s3.uri>/checkpoints/checkpoint-<step>/`, `COMPLETE` written last.

Only prefixes holding `COMPLETE` are resumed from, so an upload cut short by preemption is
never used. The same marker is written in the local checkpoint directory, for runs without S3.
Used by the checkpoint callback (upload) and the pipeline (resume).
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
import time
from collections.abc import Iterable
from typing import Any

from kubeft_trainer import storage

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
KEEP = 2
_DIR = re.compile(r"^checkpoint-(\d+)$")


def step_of(name: str) -> int | None:
    match = _DIR.match(name)
    return int(match.group(1)) if match else None


def complete_steps(relative_keys: Iterable[str]) -> list[int]:
    """Steps whose `checkpoint-<step>/COMPLETE` is among the keys (relative to checkpoints/), ascending."""
    steps = set()
    for key in relative_keys:
        head, _, tail = key.partition("/")
        step = step_of(head)
        if step is not None and tail == MARKER:
            steps.add(step)
    return sorted(steps)


def latest_local(directory: pathlib.Path) -> pathlib.Path | None:
    """The newest local checkpoint directory that holds the marker."""
    if not directory.is_dir():
        return None
    keys = [p.relative_to(directory).as_posix() for p in directory.glob(f"checkpoint-*/{MARKER}")]
    steps = complete_steps(keys)
    return directory / f"checkpoint-{steps[-1]}" if steps else None


def mark_complete(checkpoint: pathlib.Path, *, step: int) -> None:
    files = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file())
    body = {"step": step, "files": [f for f in files if f != MARKER], "time": time.time()}
    (checkpoint / MARKER).write_text(json.dumps(body))


class Remote:
    """The checkpoints prefix of one run in S3."""

    def __init__(self, s3: Any, output_uri: str) -> None:
        self.s3 = s3
        self.root = storage.S3Uri.parse(output_uri).join("checkpoints")

    def steps(self) -> list[int]:
        prefix = self.root.key + "/"
        return complete_steps(key[len(prefix) :] for key, _ in storage.list_keys(self.s3, self.root))

    def upload(self, checkpoint: pathlib.Path, *, step: int) -> None:
        """Upload the directory, marker last, then drop all but the newest KEEP complete checkpoints."""
        started = time.monotonic()
        storage.upload_dir(self.s3, checkpoint, self.root.join(f"checkpoint-{step}"), last=(MARKER,))
        log.info("checkpoint %d uploaded to %s in %.1fs", step, self.root, time.monotonic() - started)
        for old in self.steps()[:-KEEP]:
            self.delete(old)

    def download(self, step: int, dest_root: pathlib.Path) -> pathlib.Path:
        dest = dest_root / f"checkpoint-{step}"
        storage.download_prefix(self.s3, self.root.join(f"checkpoint-{step}"), dest)
        return dest

    def delete(self, step: int) -> None:
        # The marker goes first, so a half-deleted checkpoint is never taken for a complete one.
        prefix = self.root.join(f"checkpoint-{step}")
        keys = sorted((k for k, _ in storage.list_keys(self.s3, prefix)), key=lambda k: not k.endswith(MARKER))
        for key in keys:
            self.s3.delete_object(Bucket=prefix.bucket, Key=key)
