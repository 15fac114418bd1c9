"""Durable checkpoints of one run: `<run prefix>/checkpoints/checkpoint-<step>/`, `COMPLETE` written last.

The run prefix is keyed by the FineTuneJob's uid (:mod:`kubeft_operator.api.layout`), and the
`COMPLETE` marker records that uid and the spec's hash: a checkpoint is resumed from only when
both match this run, so no run ever continues another's. Only prefixes holding `COMPLETE` count,
so an upload cut short by preemption is never used. The same marker is written in the local
checkpoint directory, for runs without S3. Used by the checkpoint callback (upload), the
pipeline (resume) and the export (cleanup).
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Identity:
    """The run a checkpoint belongs to: the FineTuneJob's uid and the hash of its training-relevant spec."""

    uid: str
    spec_hash: str

    def owns(self, marker: dict[str, Any]) -> bool:
        return marker.get("uid") == self.uid and marker.get("specHash") == self.spec_hash


def _marker(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def latest_local(directory: pathlib.Path, identity: Identity) -> pathlib.Path | None:
    """The newest local checkpoint directory that holds a marker of this run."""
    if not directory.is_dir():
        return None
    keys = [p.relative_to(directory).as_posix() for p in directory.glob(f"checkpoint-*/{MARKER}")]
    for step in reversed(complete_steps(keys)):
        path = directory / f"checkpoint-{step}"
        if identity.owns(_marker((path / MARKER).read_text())):
            return path
        log.warning("ignoring %s: its %s marker names another run", path, MARKER)
    return None


def mark_complete(checkpoint: pathlib.Path, *, step: int, identity: Identity) -> None:
    files = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file())
    body = {
        "step": step,
        "uid": identity.uid,
        "specHash": identity.spec_hash,
        "files": [f for f in files if f != MARKER],
        "time": time.time(),
    }
    (checkpoint / MARKER).write_text(json.dumps(body))


class Remote:
    """The checkpoints prefix of one run in S3 (`TrainerConfig.checkpoints_uri`)."""

    def __init__(self, s3: Any, uri: str, identity: Identity) -> None:
        self.s3 = s3
        self.root = storage.S3Uri.parse(uri)
        self.identity = identity

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint here, ascending (whoever wrote them)."""
        prefix = self.root.key + "/"
        return complete_steps(key[len(prefix) :] for key, _ in storage.list_keys(self.s3, self.root))

    def latest(self) -> int | None:
        """The newest complete checkpoint whose marker names this run."""
        for step in reversed(self.steps()):
            marker = self.root.join(f"checkpoint-{step}", MARKER)
            body = self.s3.get_object(Bucket=marker.bucket, Key=marker.key)["Body"].read()
            if self.identity.owns(_marker(body.decode(errors="replace"))):
                return step
            log.warning("ignoring %s/checkpoint-%d: its %s marker names another run", self.root, step, MARKER)
        return None

    def upload(self, checkpoint: pathlib.Path, *, step: int) -> None:
        """Upload the directory, marker last, then drop all but the newest KEEP complete checkpoints."""
        started = time.monotonic()
        # Whole and again on failure (within the retry budget): the marker goes up only after every
        # other file did, so a checkpoint cut short by a store outage is never taken for complete.
        storage.retrying(
            f"uploading checkpoint {step}",
            lambda: storage.upload_dir(self.s3, checkpoint, self.root.join(f"checkpoint-{step}"), last=(MARKER,)),
        )
        log.info(
            "checkpoint %d uploaded to %s in %.1fs (%s so far)",
            step,
            self.root,
            time.monotonic() - started,
            storage.STATS.summary(),
        )
        for old in self.steps()[:-KEEP]:
            self.delete(old)

    def download(self, step: int, dest_root: pathlib.Path) -> pathlib.Path:
        dest = dest_root / f"checkpoint-{step}"
        storage.download_prefix(self.s3, self.root.join(f"checkpoint-{step}"), dest)
        return dest

    def delete_all(self) -> int:
        """Delete every checkpoint of this run (after a successful export); returns the objects deleted."""
        deleted = 0
        for step in self.steps():
            deleted += self.delete(step)
        # Objects of a checkpoint whose upload never finished (no marker) go too.
        leftovers = [key for key, _ in storage.list_keys(self.s3, self.root)]
        for key in leftovers:
            self.s3.delete_object(Bucket=self.root.bucket, Key=key)
        return deleted + len(leftovers)

    def delete(self, step: int) -> int:
        # The marker goes first, so a half-deleted checkpoint is never taken for a complete one.
        prefix = self.root.join(f"checkpoint-{step}")
        keys = sorted((k for k, _ in storage.list_keys(self.s3, prefix)), key=lambda k: not k.endswith(MARKER))
        for key in keys:
            self.s3.delete_object(Bucket=prefix.bucket, Key=key)
        return len(keys)
