"""Upload the staged adapter directory to `spec.output.s3.uri`, manifest.json last.

Multipart and retries come from :mod:`kubeft_trainer.storage`. Called by :mod:`kubeft_trainer.export`.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from kubeft_trainer import errors, storage
from kubeft_trainer.export import manifest

log = logging.getLogger(__name__)


def preflight(s3: Any, uri: str) -> None:
    """Fail in seconds, not after hours of training, when the output bucket cannot be reached."""
    target = storage.S3Uri.parse(uri)
    try:
        s3.head_bucket(Bucket=target.bucket)
    except Exception as exc:
        code = storage.error_code(exc)
        permanent = storage.is_permanent(exc) or code in ("404", "403")
        raise errors.OutputFailed(
            f"cannot write to {uri}: {code or exc}; check the bucket, spec.storage and the credentials",
            permanent=permanent,
        ) from exc


def upload(s3: Any, directory: pathlib.Path, uri: str) -> None:
    target = storage.S3Uri.parse(uri)
    try:
        uploaded = storage.upload_dir(s3, directory, target, last=(manifest.NAME,))
    except Exception as exc:
        raise errors.OutputFailed(
            f"uploading the adapter to {uri} failed: {storage.error_code(exc) or exc}",
            permanent=storage.is_permanent(exc),
        ) from exc
    log.info("adapter uploaded to %s (%d files)", uri, len(uploaded))
