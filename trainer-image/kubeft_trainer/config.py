"""Stage 1: read the rendered trainer config file and the environment into one `TrainerConfig`.

The operator renders `{apiVersion, kind: TrainerConfig, metadata, spec}` into a ConfigMap
(docs/DESIGN.md); the spec is validated with the same `FineTuneJobSpec` model the operator used,
so a file written by hand for a run outside Kubernetes gets the same checks and defaults. Every
problem becomes :class:`~kubeft_trainer.errors.InvalidConfig` (exit 64) with the field named.
Called by :mod:`kubeft_trainer.pipeline`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
import yaml

from kubeft_operator.api import contract, layout, methods, promotion
from kubeft_operator.api import spec as api_spec
from kubeft_trainer import errors, launch

log = logging.getLogger(__name__)

KIND = contract.TRAINER_CONFIG_KIND
Parallelism = Literal["ddp", "fsdp"]


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Everything the pipeline needs to know: the validated spec, the job identity, local paths."""

    spec: api_spec.FineTuneJobSpec
    name: str
    namespace: str | None
    uid: str | None
    workdir: pathlib.Path
    rank: int = 0
    # The adapter or checkpoint to start from: the operator's resolution of spec.resumeFrom.
    resume_from: str | None = None
    # How the ranks share the model (:func:`parallelism`); ddp with one process is plain training.
    parallelism: Parallelism = "ddp"

    @property
    def is_main_process(self) -> bool:
        """Rank 0 of an `accelerate launch` run: the one that logs, uploads and exports."""
        return self.rank == 0

    @functools.cached_property
    def spec_hash(self) -> str:
        return layout.spec_hash(self.spec.wire())

    @property
    def run_id(self) -> str:
        """The FineTuneJob's uid; outside Kubernetes (no uid), `local-` and the spec's hash."""
        return self.uid or f"local-{self.spec_hash[:16]}"

    @property
    def run_dir(self) -> pathlib.Path:
        """This run's local files: never shared with another run, even on a shared work volume."""
        return self.workdir / "runs" / self.run_id

    @property
    def checkpoint_dir(self) -> pathlib.Path:
        return self.run_dir / "checkpoints"

    @property
    def run_uri(self) -> str | None:
        """This run's own prefix beside the S3 output (kubeft_operator.api.layout); None without one."""
        return layout.run_uri(self.output_s3_uri, self.run_id) if self.output_s3_uri else None

    @property
    def checkpoints_uri(self) -> str | None:
        """`<run prefix>/checkpoints`; None without an S3 output."""
        return f"{self.run_uri}/{layout.CHECKPOINTS}" if self.run_uri else None

    @property
    def dataset_report_path(self) -> pathlib.Path:
        return self.run_dir / layout.DATASET_REPORT

    @property
    def dataset_report_uri(self) -> str | None:
        """`<run prefix>/dataset-report.json`; None without an S3 output."""
        return f"{self.run_uri}/{layout.DATASET_REPORT}" if self.run_uri else None

    @property
    def run_adapter_uri(self) -> str | None:
        """`<run prefix>/adapter`, where a run with `spec.promotion` exports first; None without an S3 output."""
        return f"{self.run_uri}/{layout.ADAPTER}" if self.run_uri else None

    @property
    def tensorboard_dir(self) -> pathlib.Path:
        return self.run_dir / "tensorboard"

    @property
    def export_dir(self) -> pathlib.Path:
        return self.run_dir / "export"

    @property
    def cache_dir(self) -> pathlib.Path:
        """Where s3:// models and datasets are downloaded: under HF_HOME when set, so a shared volume caches them."""
        hf_home = os.environ.get("HF_HOME")
        return pathlib.Path(hf_home) / "kubeft" if hf_home else self.workdir / "cache"

    @property
    def output_s3_uri(self) -> str | None:
        return self.spec.output.s3.uri.rstrip("/") if self.spec.output.s3 else None

    @property
    def tensorboard_uri(self) -> str | None:
        """Where this run's event files go (kubeft_operator.api.layout); None without S3 output or tensorboard."""
        return layout.tensorboard_uri(
            output_uri=self.output_s3_uri,
            tensorboard=self.spec.tensorboard.uri if self.spec.tensorboard is not None else None,
            name=self.name,
            run_id=self.run_id,
        )


def load(path: str | os.PathLike[str], *, environ: dict[str, str] | None = None) -> TrainerConfig:
    """Parse and validate the config file at `path`; raise InvalidConfig on any problem."""
    env = os.environ if environ is None else environ
    try:
        text = pathlib.Path(path).read_text()
    except OSError as exc:
        raise errors.InvalidConfig(f"cannot read the config file {path}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.InvalidConfig(f"the config file {path} is not valid YAML: {exc}") from exc
    return parse(doc, environ=env, source=str(path))


def parse(doc: Any, *, environ: dict[str, str] | os._Environ[str], source: str = "config") -> TrainerConfig:
    """Validate an already-loaded config document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict):
        raise errors.InvalidConfig(f"{source} must be a mapping with a `spec` mapping (kind: {KIND})")
    if doc.get("kind", KIND) != KIND:
        raise errors.InvalidConfig(f"{source} has kind {doc.get('kind')!r}; expected {KIND}")
    try:
        spec = api_spec.FineTuneJobSpec.model_validate(doc["spec"])
    except pydantic.ValidationError as exc:
        raise errors.InvalidConfig(f"{source}: invalid spec: {_describe(exc)}") from exc
    _check_cross_field_rules(spec)
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise errors.InvalidConfig(f"{source}: `metadata` must be a mapping")
    name = environ.get("KUBEFT_JOB_NAME") or metadata.get("name") or "kubeft"
    resume_from = doc.get("resumeFrom")
    if resume_from is None and spec.resume_from is not None:
        if spec.resume_from.job is not None:
            raise errors.InvalidConfig(
                f"{source}: spec.resumeFrom.job is resolved by the operator; outside Kubernetes set spec.resumeFrom.uri"
            )
        resume_from = spec.resume_from.uri
    return TrainerConfig(
        spec=spec,
        name=str(name),
        namespace=environ.get("KUBEFT_NAMESPACE") or metadata.get("namespace"),
        uid=metadata.get("uid"),
        workdir=pathlib.Path(environ.get("KUBEFT_WORKDIR") or launch.DEFAULT_WORKDIR),
        rank=int(environ.get("RANK", "0")),
        resume_from=str(resume_from).rstrip("/") if resume_from else None,
        parallelism=parallelism(spec.training, environ=environ),
    )


def parallelism(training: api_spec.TrainingSpec, *, environ: Mapping[str, str]) -> Parallelism:
    """ddp or fsdp: the operator's choice (contract.PARALLELISM_ENV), else `spec.training.parallelism`
    unless `auto` (which only the operator can resolve, from the fit estimate), else ddp.

    FSDP over a single process shards nothing: it falls back to plain training, said once.
    """
    chosen = environ.get(contract.PARALLELISM_ENV)
    if chosen is not None:
        if chosen not in ("ddp", "fsdp"):
            raise errors.InvalidConfig(f"{contract.PARALLELISM_ENV}={chosen!r} is not one of ddp, fsdp")
    else:
        chosen = "ddp" if training.parallelism == "auto" else training.parallelism
    if chosen == "fsdp" and int(environ.get("WORLD_SIZE") or 1) == 1:
        log.info("parallelism fsdp with one process: nothing to shard, training the whole model in it")
        return "ddp"
    return "fsdp" if chosen == "fsdp" else "ddp"


def _describe(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"`spec.{where}`: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _check_cross_field_rules(spec: api_spec.FineTuneJobSpec) -> None:
    """The CEL rules the API server enforces, re-checked for config files that never went through it."""
    fields = spec.dataset.fields
    if not any(all(getattr(fields, f) for f in option) for option in contract.TASK_FIELDS[spec.task]):
        raise errors.InvalidConfig(contract.task_fields_message(spec.task))
    if spec.training.epochs is None and spec.training.max_steps is None:
        raise errors.InvalidConfig("set exactly one of `spec.training.epochs` and `spec.training.maxSteps`")
    if spec.training.epochs is not None and spec.training.max_steps is not None:
        raise errors.InvalidConfig("set exactly one of `spec.training.epochs` and `spec.training.maxSteps`")
    method = methods.METHODS[spec.method.type]
    if method.needs_quantization and spec.model.quantization is None:
        raise errors.InvalidConfig(f"method {method.name} needs `spec.model.quantization` (bits: 4)")
    if spec.task not in method.tasks:
        supported = ", ".join(t for t in contract.TASK_FIELDS if t in method.tasks)
        raise errors.InvalidConfig(f"method {method.name} supports {supported}, not {spec.task}")
    if spec.model.quantization is not None and not method.quantizable:
        quantizable = ", ".join(m.name for m in methods.METHODS.values() if m.quantizable)
        raise errors.InvalidConfig(f"`spec.model.quantization` works with {quantizable} only")
    if spec.dataset.validation_source and spec.dataset.validation_fraction:
        raise errors.InvalidConfig("set at most one of `spec.dataset.validationSource` and `validationFraction`")
    if spec.output.s3 is None and spec.output.hub is None:
        raise errors.InvalidConfig("set at least one output: `spec.output.s3` or `spec.output.hub`")
    if spec.training.evaluation.strategy == "steps" and spec.training.evaluation.steps is None:
        raise errors.InvalidConfig("`spec.training.evaluation.strategy: steps` needs `steps`")
    problem = promotion.spec_problem(spec)
    if problem is not None:
        raise errors.InvalidConfig(problem)
