"""Check an exported adapter in S3 against its manifest, as the operator's trusted verifier.

When the trainer ran code the platform did not vet (a custom `spec.image`, `trustRemoteCode`), the
operator does not take the trainer's word for the result: it runs this module in a Job of its own
image (``NAME-verify``) and reports the artifact this module measured:

    python -m kubeft_trainer.export.verify --config FILE --uri s3://bucket/prefix --sha256 CLAIMED

It reads manifest.json, checks its sha256 against what the trainer claimed, then streams every
listed file and checks its size and sha256, and that the prefix holds nothing the manifest does not
list. The termination message is ``{"result": "Succeeded", "artifact": {...}}`` with the measured
size and hash, or ``{"result": "Failed", "reason": "ArtifactUnverified", ...}`` (exit 64).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from typing import Any

from kubeft_operator.api import status as api_status
from kubeft_trainer import config, egress, errors, progress, storage
from kubeft_trainer.export import manifest

log = logging.getLogger(__name__)


class Unverified(errors.UserError):
    def __init__(self, message: str) -> None:
        super().__init__("ArtifactUnverified", message)


def _sha256_object(s3: Any, uri: storage.S3Uri) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    body = s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
    for block in iter(lambda: body.read(manifest.CHUNK), b""):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def verify_s3(s3: Any, uri: str, *, claimed_sha256: str | None) -> api_status.Artifact:
    """The artifact at `uri` as measured here; raises Unverified naming the first problem."""
    root = storage.S3Uri.parse(uri)
    present = dict(storage.list_keys(s3, root))
    manifest_key = root.join(manifest.NAME)
    if manifest_key.key not in present:
        raise Unverified(f"{uri} has no {manifest.NAME}: the trainer reported an export that is not there")
    raw = s3.get_object(Bucket=manifest_key.bucket, Key=manifest_key.key)["Body"].read()
    digest = hashlib.sha256(raw).hexdigest()
    if claimed_sha256 is not None and digest != claimed_sha256:
        raise Unverified(f"{manifest.NAME} at {uri} has sha256 {digest}, not the {claimed_sha256} the trainer reported")
    try:
        doc = json.loads(raw)
        files = [(str(f["path"]), str(f["sha256"]), int(f["size"])) for f in doc["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise Unverified(f"{manifest.NAME} at {uri} is not a kubeft manifest ({exc})") from exc
    listed = {root.join(path).key for path, _, _ in files} | {manifest_key.key}
    extra = sorted(key[len(root.key) + 1 :] for key in present if key not in listed)
    if extra:
        raise Unverified(f"{uri} holds files its manifest does not list: {', '.join(extra[:5])}")
    total = 0
    for path, want, size in files:
        key = root.join(path)
        if key.key not in present:
            raise Unverified(f"{path}, listed in the manifest at {uri}, is missing")
        got, got_size = _sha256_object(s3, key)
        if (got, got_size) != (want, size):
            raise Unverified(f"{path} at {uri} does not match its manifest (sha256 or size differs)")
        total += size
    log.info("verified %s: %d files, %d bytes, manifest sha256 %s", uri, len(files), total, digest)
    return api_status.Artifact(uri=uri, size_bytes=total, sha256=digest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeft_trainer.export.verify", description=__doc__)
    parser.add_argument("--config", required=True, help="the job's trainer config (for spec.storage)")
    parser.add_argument("--uri", required=True, help="the s3:// prefix the trainer reported")
    parser.add_argument("--sha256", help="the manifest sha256 the trainer reported")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        cfg = config.load(args.config)
        endpoint = cfg.spec.storage.endpoint if cfg.spec.storage else None
        egress.install([endpoint] if endpoint else [], private_allowed=egress.allow_private())
        artifact = verify_s3(storage.client(cfg.spec.storage), args.uri, claimed_sha256=args.sha256)
    except errors.TrainerError as exc:
        log.error("%s: %s", exc.reason, exc.message)
        _terminate(result="Failed", reason=exc.reason, message=exc.message)
        return exc.exit_code
    except Exception as exc:  # a flaky store: the verify Job retries
        refused = egress.refused_in(exc)
        reason, message = ("EndpointRefused", str(refused)) if refused else ("Error", f"{type(exc).__name__}: {exc}")
        log.error("%s: %s", reason, message)
        _terminate(result="Failed", reason=reason, message=message)
        return errors.EXIT_USER_ERROR if refused else errors.EXIT_INFRA
    _terminate(result="Succeeded", artifact=artifact.wire())
    return errors.EXIT_OK


def _terminate(**fields: object) -> None:
    text = progress.termination_message(**fields)  # type: ignore[arg-type]
    progress.write_termination_message(text)
    print(text, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
