"""Where a run's files live in object storage, and which run a checkpoint belongs to.

One definition, read by the operator (the URIs it puts in status) and by the trainer (where it
writes). For `spec.output.s3.uri: s3://b/adapters/x`:

- ``s3://b/adapters/x/`` holds the adapter only: weights, config, card, metrics, manifest.json;
- ``s3://b/adapters/.kubeft-runs/x/<uid>/`` is the run's own space, a sibling that does not share
  the output's key prefix (so ``aws s3 ls --recursive s3://b/adapters/x`` lists the adapter alone):
  ``checkpoints/checkpoint-<step>/``, ``dataset-report.json`` (the dataset preflight), ``adapter/``
  (with `spec.promotion`: the adapter, promoted or not; the output gets a copy only when the gate
  passes) and, unless `spec.tensorboard.uri` is set, ``tensorboard/``.

A checkpoint belongs to the run whose FineTuneJob uid keys its prefix; its ``COMPLETE`` marker also
records that uid and :func:`spec_hash`, and the trainer resumes only from a checkpoint whose marker
matches both. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubeft_operator.api import methods

RUNS_DIR = ".kubeft-runs"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
# With spec.promotion, the adapter is exported here first, and copied to the output if the gate passes.
ADAPTER = "adapter"
# The dataset preflight's full report (JSON), written by the trainer before training starts.
DATASET_REPORT = "dataset-report.json"
# The spec fields that decide what a run trains. Others (resources, scheduling, output, suspend...)
# may differ between two runs that would produce the same weights.
TRAINING_FIELDS = ("model", "dataset", "task", "method", "training")


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key.strip("/")


def run_uri(output_uri: str, run_id: str) -> str:
    """The run's own prefix, beside the output prefix: ``<parent>/.kubeft-runs/<basename>/<run_id>``."""
    bucket, key = _split(output_uri)
    if not key:
        raise ValueError(f"the output {output_uri} has no prefix")
    parent, _, base = key.rpartition("/")
    parts = [p for p in (parent, RUNS_DIR, base, run_id) if p]
    return f"s3://{bucket}/" + "/".join(parts)


def checkpoints_uri(output_uri: str, run_id: str) -> str:
    return f"{run_uri(output_uri, run_id)}/{CHECKPOINTS}"


def tensorboard_uri(*, output_uri: str | None, tensorboard: str | None, name: str, run_id: str) -> str | None:
    """Where the run's event files go; None when there is neither an S3 output nor `spec.tensorboard`.

    An explicit `spec.tensorboard.uri` is a log directory shared by many runs: each run writes
    under ``<uri>/<name>/<run_id>``, so TensorBoard shows it as its own run and a re-created job
    of the same name never appends to an old run's curves.
    """
    if tensorboard is not None:
        return f"{tensorboard.rstrip('/')}/{name}/{run_id}"
    if output_uri is not None:
        return f"{run_uri(output_uri, run_id)}/{TENSORBOARD}"
    return None


def spec_hash(spec_wire: dict[str, Any]) -> str:
    """sha256 of the training-relevant part of a spec in wire form (defaults filled in)."""
    relevant = {k: spec_wire.get(k) for k in TRAINING_FIELDS}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _params(spec_wire: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The method type and its parameter block, with the defaults a left-out block trains with."""
    method = spec_wire.get("method") or {}
    kind = str(method.get("type"))
    entry = methods.METHODS.get(kind)
    if entry is None:
        return kind, {}
    return kind, entry.params.model_validate(method.get(entry.block) or {}).wire()


def continuation_mismatch(source: dict[str, Any], target: dict[str, Any]) -> str | None:
    """Why `target` (a spec in wire form) cannot start from weights trained with `source`; None if it can.

    The base model, task and method must be the same, and so must every parameter that shapes the
    adapter's tensors (rank, target modules, virtual tokens...). Hyperparameters may differ.
    """
    for path in (("model", "source"), ("task",)):
        old, new = _get(source, path), _get(target, path)
        if old != new:
            field = "spec." + ".".join(path)
            return f"{field} is {new!r} here but {old!r} in the run resumed from"
    old_kind, old_params = _params(source)
    new_kind, new_params = _params(target)
    if old_kind != new_kind:
        return f"spec.method.type is {new_kind!r} here but {old_kind!r} in the run resumed from"
    entry = methods.METHODS.get(new_kind)
    block = entry.block if entry is not None else new_kind
    for field in entry.shape_fields if entry is not None else ():
        old, new = _norm(old_params.get(field)), _norm(new_params.get(field))
        if old != new:
            return (
                f"spec.method.{block}.{field} is {_show(new)} here but {_show(old)} in the run resumed from; "
                "the adapter's tensors would not fit"
            )
    return None


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _norm(value: Any) -> Any:
    return sorted(value) if isinstance(value, list) else value


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)
