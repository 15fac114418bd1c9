"""Stage 5: export only the adapter, with a model card, metrics and a checksummed manifest.

The staging directory holds `adapter_config.json`, `adapter_model.safetensors`, `README.md`,
`metrics.json`, then `manifest.json` (every file's sha256 and size, and the run that produced
them: job, uid, spec hash, resumedFrom), written last and uploaded last, after any earlier
manifest at the output was deleted. It goes to `spec.output.s3.uri`, the Hub repository, or
both. The artifact's sha256 is the manifest's. Called by :mod:`kubeft_trainer.pipeline`.

With `spec.promotion`, the adapter goes to the run's own prefix (`<run prefix>/adapter`) first and is
kept there; the gate (:mod:`kubeft_operator.api.promotion`) is evaluated on the final metrics, and
only when it passes is that upload verified against its manifest and the adapter copied to the
outputs, manifest last as above. A failed gate leaves `spec.output` untouched.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from kubeft_operator.api import promotion
from kubeft_operator.api import status as api_status
from kubeft_trainer import config as trainer_config
from kubeft_trainer import errors
from kubeft_trainer.export import card, hub, manifest, s3, verify

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def stage(
    cfg: trainer_config.TrainerConfig,
    model: Any,
    *,
    metrics: Mapping[str, float],
    labels: Sequence[str] | None,
    step: int,
) -> tuple[dict[str, Any], str]:
    """Write the export directory; returns the manifest and its sha256."""
    directory = cfg.export_dir
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    model.save_pretrained(str(directory))
    for path in directory.iterdir():
        if path.name not in ADAPTER_FILES:
            # PEFT also writes its own README (a template card) and nothing else we ship.
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    spec = cfg.spec
    (directory / "README.md").write_text(card.render(spec, name=cfg.name, metrics=metrics, labels=labels, step=step))
    (directory / "metrics.json").write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")
    path, doc = manifest.write(
        directory,
        baseModel=spec.model.source,
        method=spec.method.type,
        task=spec.task,
        step=step,
        # Provenance: which run produced these files, from which spec, from which weights.
        run={
            k: v
            for k, v in {
                "job": cfg.name,
                "namespace": cfg.namespace,
                "uid": cfg.run_id,
                "specHash": cfg.spec_hash,
                "resumedFrom": cfg.resume_from,
            }.items()
            if v is not None
        },
        exportedAt=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return doc, manifest.sha256_file(path)


@dataclasses.dataclass(frozen=True)
class Exported:
    artifact: api_status.Artifact
    # The promotion gate's decision, in the termination message's form; None without spec.promotion.
    promotion: dict[str, Any] | None = None


def export(
    cfg: trainer_config.TrainerConfig,
    model: Any,
    *,
    metrics: Mapping[str, float],
    labels: Sequence[str] | None,
    step: int,
    s3_client: Any,
) -> Exported:
    doc, digest = stage(cfg, model, metrics=metrics, labels=labels, step=step)
    gate = cfg.spec.promotion
    if gate is None:
        return Exported(artifact=publish(cfg, doc, digest, step=step, s3_client=s3_client))
    location = cfg.run_adapter_uri
    if location is None:
        raise errors.InvalidConfig("`spec.promotion` needs `spec.output.s3`")
    s3.upload(s3_client, cfg.export_dir, location)
    decision = promotion.evaluate(gate.thresholds, metrics)
    if not decision.passed:
        report = decision.wire(location=location)
        log.warning("promotion gate: %s", report["message"])
        return Exported(
            artifact=api_status.Artifact(uri=location, size_bytes=doc["totalSize"], sha256=digest), promotion=report
        )
    try:
        # What is promoted is what the run prefix holds, checked file by file against the manifest.
        verify.verify_s3(s3_client, location, claimed_sha256=digest)
    except verify.Unverified as exc:
        raise errors.OutputFailed(f"not promoting: {exc.message}") from exc
    artifact = publish(cfg, doc, digest, step=step, s3_client=s3_client)
    report = decision.wire(target=artifact.uri)
    log.info("promotion gate: %s", report["message"])
    return Exported(artifact=artifact, promotion=report)


def publish(
    cfg: trainer_config.TrainerConfig, doc: Mapping[str, Any], digest: str, *, step: int, s3_client: Any
) -> api_status.Artifact:
    """Upload the staged directory to spec.output (Hub, then S3 with the manifest last)."""
    output = cfg.spec.output
    hub_uri = None
    if output.hub is not None:
        hub_uri = hub.push(cfg.export_dir, output.hub, commit_message=f"kubeft: {cfg.name} at step {step}")
    if cfg.output_s3_uri is not None:
        s3.upload(s3_client, cfg.export_dir, cfg.output_s3_uri)
    uri = cfg.output_s3_uri or hub_uri
    assert uri is not None
    return api_status.Artifact(
        uri=uri,
        size_bytes=doc["totalSize"],
        sha256=digest,
        hub_uri=hub_uri if cfg.output_s3_uri is not None else None,
    )
