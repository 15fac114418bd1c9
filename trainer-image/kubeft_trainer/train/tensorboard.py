"""Stream TensorBoard event files to S3 while training runs.

The Trainer's TensorBoard callback writes event files locally; :class:`Sync` uploads every file
that grew since the last pass, every `flushIntervalSeconds` from a background thread and once
more at the end. TensorBoard (without TensorFlow) then reads them straight from S3:
`S3_ENDPOINT=... tensorboard --logdir s3://bucket/prefix`. Started by :func:`kubeft_trainer.train.run`.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from typing import Any

from kubeft_trainer import storage

log = logging.getLogger(__name__)
# Seconds the final upload of the logs keeps retrying a store that is down.
FINAL_SYNC_BUDGET = 60.0


class Sync:
    """Upload new and grown files under `local_dir` to `remote` on an interval."""

    def __init__(self, s3: Any, local_dir: pathlib.Path, remote: storage.S3Uri, *, interval: float, writer: Any = None):
        self.s3 = s3
        self.local_dir = local_dir
        self.remote = remote
        self.interval = interval
        self.writer = writer
        self._sizes: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.passes = 0

    def start(self) -> Sync:
        self._thread = threading.Thread(target=self._loop, name="kubeft-tensorboard-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, budget: float = FINAL_SYNC_BUDGET) -> None:
        """Stop the thread and upload whatever is left, retrying for up to `budget` seconds.

        A store still down after that costs the last seconds of the logs, never the run.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        try:
            storage.retrying(f"the last TensorBoard upload to {self.remote}", self.sync, budget=budget)
        except Exception as exc:
            log.warning("the last TensorBoard upload to %s failed: %s", self.remote, storage.describe(exc))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception as exc:
                # Logs must never stop training; the next pass retries.
                log.warning("TensorBoard upload to %s failed: %s", self.remote, exc)

    def sync(self) -> list[str]:
        """One pass: flush the writer, upload what changed; returns the relative paths uploaded."""
        with self._lock:
            if self.writer is not None:
                self.writer.flush()
            uploaded = []
            for path in sorted(self.local_dir.rglob("*")) if self.local_dir.is_dir() else []:
                if not path.is_file():
                    continue
                rel = path.relative_to(self.local_dir).as_posix()
                size = path.stat().st_size
                if self._sizes.get(rel) == size:
                    continue
                storage.upload_file(self.s3, path, self.remote.join(rel))
                self._sizes[rel] = size
                uploaded.append(rel)
            self.passes += 1
            return uploaded
