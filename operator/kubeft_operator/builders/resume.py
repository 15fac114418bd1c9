"""What ``spec.resumeFrom`` resolves to: a URI for the trainer, a reason to wait, or a refusal.

``resumeFrom.uri`` is passed through (the trainer checks the adapter's shape when it loads it).
``resumeFrom.job`` names a FineTuneJob in the same namespace: once it has succeeded, its exported
adapter (an s3:// artifact); once it has failed, its latest durable checkpoint; while it has not
finished, this job waits. The two specs must agree on everything that shapes the adapter
(:func:`kubeft_operator.api.layout.continuation_mismatch`), so a mismatch is refused before any pod
starts. Pure; called by :mod:`kubeft_operator.reconciler` before it creates the children.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubeft_operator.api import layout
from kubeft_operator.api import spec as spec_models
from kubeft_operator.api import status as status_models


@dataclasses.dataclass(frozen=True)
class Resolution:
    """Exactly one of the three is set, or none when the spec has no resumeFrom."""

    uri: str | None = None
    wait: str | None = None
    refused: str | None = None


def resolve(
    name: str,
    namespace: str,
    spec: spec_models.FineTuneJobSpec,
    *,
    source: Mapping[str, Any] | None,
    source_spec: spec_models.FineTuneJobSpec | None,
    source_error: str | None = None,
) -> Resolution:
    """``source``: the FineTuneJob ``spec.resumeFrom.job`` names (None if missing), with its parsed spec."""
    wanted = spec.resume_from
    if wanted is None:
        return Resolution()
    if wanted.uri is not None:
        return Resolution(uri=wanted.uri.rstrip("/"))
    job = str(wanted.job)
    field = f"spec.resumeFrom.job {job!r}"
    if job == name:
        return Resolution(refused=f"{field} names this FineTuneJob itself")
    if source is None:
        return Resolution(
            refused=f"{field}: no FineTuneJob of that name in namespace {namespace}; name one that exists, or set "
            "spec.resumeFrom.uri to the adapter or checkpoint of a deleted one"
        )
    if source_spec is None:
        return Resolution(refused=f"{field}: its spec is refused ({source_error})")
    mismatch = layout.continuation_mismatch(source_spec.wire(), spec.wire())
    if mismatch is not None:
        return Resolution(refused=f"cannot resume from FineTuneJob {job}: {mismatch}")
    status: Mapping[str, Any] = source.get("status") or {}
    phase = status.get("phase")
    if phase == status_models.Phase.SUCCEEDED.value:
        uri = str((status.get("artifact") or {}).get("uri") or "")
        if not uri.startswith("s3://"):
            return Resolution(
                refused=f"{field} exported its adapter to {uri or 'nowhere'}, not to S3; set spec.resumeFrom.uri "
                "to an s3:// copy of it"
            )
        return Resolution(uri=uri.rstrip("/"))
    if phase == status_models.Phase.FAILED.value:
        step = (status.get("progress") or {}).get("lastCheckpointStep")
        run = status.get("runUri")
        if not step or not run:
            return Resolution(refused=f"{field} failed without a durable checkpoint to resume from")
        return Resolution(uri=f"{run}/{layout.CHECKPOINTS}/checkpoint-{int(step)}")
    return Resolution(
        wait=f"waiting for FineTuneJob {job} (now {phase or 'Pending'}) to finish, to start from its adapter"
    )
