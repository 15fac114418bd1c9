"""Upload the staged adapter directory to `spec.output.s3.uri`, atomically for readers; check write access first.

Multipart and retries come from :mod:`kubeft_trainer.storage`. Called by :mod:`kubeft_trainer.export`.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import Any

from kubeft_trainer import errors, storage
from kubeft_trainer.export import manifest

log = logging.getLogger(__name__)


PROBE = ".kubeft-write-probe"
PREFLIGHT_BUDGET = 60.0


def refused(exc: BaseException) -> bool:
    """The store answered the write probe with a refusal, not a hiccup."""
    return storage.is_permanent(exc) or storage.error_code(exc) in ("404", "403")


def preflight(s3: Any, *uris: str) -> None:
    """Fail in seconds, not after hours of training, when a prefix cannot be written.

    A `head_bucket` passes with read-only keys, so this writes and deletes a small probe object
    under each prefix (the output, and the run's own prefix for checkpoints).
    """
    for uri in uris:
        probe = storage.S3Uri.parse(uri).join(PROBE)

        def check(probe: storage.S3Uri = probe) -> None:
            s3.put_object(Bucket=probe.bucket, Key=probe.key, Body=b"kubeft write check\n")
            s3.delete_object(Bucket=probe.bucket, Key=probe.key)

        try:
            # A store that is briefly away at start-up costs a minute here, not one of the Job's retries.
            storage.retrying(
                f"checking write access to {uri}",
                check,
                budget=min(PREFLIGHT_BUDGET, storage.retry_budget()),
                permanent=refused,
            )
        except Exception as exc:
            code = storage.error_code(exc)
            permanent = refused(exc)
            raise errors.OutputFailed(
                f"cannot write to {uri}: {code or exc}; check that bucket {probe.bucket} exists and that the "
                "credentials in spec.storage.credentialsSecretRef may put and delete objects under that prefix",
                permanent=permanent,
            ) from exc
        log.info("write access to %s checked", uri)


def upload(s3: Any, directory: pathlib.Path, uri: str) -> None:
    """Upload the adapter so that a reader never sees a manifest that does not match the files.

    An earlier export's manifest.json is deleted first and the new one uploaded last; files the
    earlier manifest listed that this export no longer has are deleted after it.
    """
    target = storage.S3Uri.parse(uri)

    def once() -> list[str]:
        # Each attempt starts over: a manifest is at the output only after all its files are.
        previous = _previous_files(s3, target)
        if previous is not None:
            s3.delete_object(Bucket=target.bucket, Key=target.join(manifest.NAME).key)
            log.info("replacing the adapter exported earlier to %s", uri)
        uploaded = storage.upload_dir(s3, directory, target, last=(manifest.NAME,))
        for rel in sorted((previous or set()) - set(uploaded)):
            s3.delete_object(Bucket=target.bucket, Key=target.join(rel).key)
        return uploaded

    budget = storage.retry_budget()
    try:
        uploaded = storage.retrying(f"uploading the adapter to {uri}", once, budget=budget)
    except Exception as exc:
        permanent = storage.is_permanent(exc)
        raise errors.OutputFailed(
            f"uploading the adapter to {uri} failed: {storage.describe(exc)}"
            + (
                ""
                if permanent
                else f" (still failing after the {budget:.0f} s retry budget, {storage.RETRY_BUDGET_ENV})"
            ),
            permanent=permanent,
        ) from exc
    log.info("adapter uploaded to %s (%d files; %s)", uri, len(uploaded), storage.STATS.summary())


def _previous_files(s3: Any, target: storage.S3Uri) -> set[str] | None:
    """Paths listed by the manifest already at `target`, or None when there is none."""
    key = target.join(manifest.NAME)
    try:
        body = s3.get_object(Bucket=key.bucket, Key=key.key)["Body"].read()
    except Exception as exc:
        if storage.error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    try:
        doc = json.loads(body)
        return {str(f["path"]) for f in doc.get("files", [])}
    except (ValueError, TypeError, KeyError):
        return set()
