"""Operator settings, read once from the environment into one frozen object.

The Helm chart sets these variables on the operator Deployment; tests set them on the operator
subprocess. :func:`Settings.from_env` is called by the startup handler in
:mod:`kubeft_operator.handlers`; the builders receive the resulting object.

| variable | meaning | default |
|---|---|---|
| ``KUBEFT_TRAINER_IMAGE`` | trainer image when ``spec.image`` is left out | ``ghcr.io/kubeft/trainer:0.1.0`` |
| ``KUBEFT_TRAINER_IMAGE_PULL_POLICY`` | pull policy of trainer pods | ``IfNotPresent`` |
| ``KUBEFT_TRAINER_COMMAND`` | JSON list replacing the ``accelerate launch`` launcher | unset |
| ``KUBEFT_TRAINER_ENV`` | JSON object of extra plain env vars for trainer pods | ``{}`` |
| ``KUBEFT_TRAINER_IMAGE_PULL_SECRETS`` | JSON list of Secret names trainer pods pull with | ``[]`` |
| ``KUBEFT_TRAINER_SERVICE_ACCOUNT_ANNOTATIONS`` | JSON object of annotations on each trainer SA | ``{}`` |
| ``KUBEFT_TRAINER_DEFAULT_GPUS``, ``_CPU``, ``_MEMORY`` | resources ``spec.resources`` leaves out | 1, 4, 32Gi |
| ``KUBEFT_TRAINER_DEFAULT_NODE_SELECTOR`` | JSON object of node labels; a job's nodeSelector is laid over it | ``{}`` |
| ``KUBEFT_TRAINER_DEFAULT_TOLERATIONS`` | JSON list of tolerations for jobs that set none | ``[]`` |
| ``KUBEFT_TRAINER_DEFAULT_PRIORITY_CLASS`` | PriorityClass of jobs that name none | unset |
| ``KUBEFT_TRAINER_DEFAULT_QUEUE`` | Kueue LocalQueue of jobs that name none | unset |
| ``KUBEFT_HF_CACHE_CLAIM`` | PersistentVolumeClaim mounted at ``HF_HOME`` instead of an emptyDir | unset |
| ``KUBEFT_TRAINER_EPHEMERAL_STORAGE`` | ``ephemeral-storage`` request of the trainer container | unset |
| ``KUBEFT_TRAINER_WORKDIR_SIZE_LIMIT`` | ``sizeLimit`` of the work directory; empty: none | 50Gi |
| ``KUBEFT_TRAINER_HF_CACHE_SIZE_LIMIT`` | ``sizeLimit`` of the model cache emptyDir; empty: none | 200Gi |
| ``KUBEFT_TRAINER_SHM_SIZE`` | size of the memory-backed ``/dev/shm``; empty: the runtime's 64Mi | 2Gi |
| ``KUBEFT_TRAINER_TERMINATION_GRACE_SECONDS`` | SIGTERM to SIGKILL for trainer pods (to checkpoint) | 300 |
| ``KUBEFT_TRAINER_PROGRESS_INTERVAL_SECONDS`` | least seconds between two progress patches of a trainer | 30 |
| ``KUBEFT_METRICS_PORT`` | Prometheus ``/metrics`` port; 0 turns it off | 9090 |
| ``KUBEFT_PEERING_PRIORITY`` | kopf peering priority; unset: random, so replicas never tie | random |
| ``KUBEFT_ALLOW_PRIVATE_ENDPOINTS`` | allow S3/Hub endpoints on loopback and private addresses | ``false`` |
| ``KUBEFT_ALLOWED_IMAGES`` | JSON list of globs that ``spec.image`` must match | only the trainer image |
| ``KUBEFT_VERIFIER_IMAGE`` | image of the ``NAME-verify`` Job (builders/verify.py) | the trainer image |
| ``KUBEFT_GPU_MEMORY_GIB`` | JSON object: GiB of one GPU by node ``label=value`` or resource name | ``{}`` |
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from typing import Any, overload

import pydantic

from kubeft_operator.api import contract
from kubeft_operator.api import spec as spec_models

DEFAULT_TRAINER_IMAGE = "ghcr.io/kubeft/trainer:0.1.0"
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(k|Ki|M|Mi|G|Gi|T|Ti)?")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the operator can be configured with. Immutable once the operator runs."""

    trainer_image: str = DEFAULT_TRAINER_IMAGE
    trainer_image_pull_policy: str = "IfNotPresent"
    # None: `python -m kubeft_trainer.launch [--multi_gpu] --num_processes N -m kubeft_trainer` (accelerate launch).
    trainer_command: tuple[str, ...] | None = None
    trainer_env: tuple[tuple[str, str], ...] = ()
    # Secrets (in each job's namespace) that trainer and verify pods pull their image with.
    trainer_image_pull_secrets: tuple[str, ...] = ()
    # On each job's NAME-trainer ServiceAccount: workload identity (IRSA, GKE, Azure), so the
    # trainer reaches object storage without keys in a Secret.
    trainer_service_account_annotations: tuple[tuple[str, str], ...] = ()
    default_gpus: int = 1
    default_cpu: str = "4"
    default_memory: str = "32Gi"
    # What spec.scheduling leaves out (builders/defaults.py folds it in): where trainers run on this
    # cluster, at which priority, and the Kueue queue every job goes through unless it names its own.
    default_scheduling: spec_models.SchedulingSpec = dataclasses.field(default_factory=spec_models.SchedulingSpec)
    hf_cache_claim: str | None = None
    # Local disk: a request, so the scheduler only picks nodes with room for the model cache and
    # checkpoints, and a sizeLimit per scratch emptyDir, so a runaway job cannot fill the node's disk.
    # No request by default: Kueue refuses to admit a workload that requests a resource its
    # ClusterQueue does not cover, and ClusterQueues rarely cover ephemeral-storage.
    ephemeral_storage: str | None = None
    workdir_size_limit: str | None = "50Gi"
    hf_cache_size_limit: str | None = "200Gi"
    # NCCL and PyTorch's data loader workers exchange tensors through /dev/shm; the container
    # runtime's default of 64Mi makes multi-GPU runs fail. Memory-backed: it counts as pod memory.
    shm_size: str | None = "2Gi"
    # SIGTERM (preemption, eviction, drain, suspend) to SIGKILL: the trainer saves and uploads a
    # checkpoint in that time, which takes longer than Kubernetes' default 30 s for large adapters.
    termination_grace_seconds: int = 300
    # The trainer's status.progress patches (contract.PROGRESS_INTERVAL_ENV); also on every
    # checkpoint and at the end. Each patch is a write and a watch event for every watcher.
    progress_interval_seconds: float = contract.DEFAULT_PROGRESS_INTERVAL_SECONDS
    metrics_port: int = 9090
    peering_priority: int | None = None
    allow_private_endpoints: bool = False
    # Globs a FineTuneJob's spec.image must match; empty: only trainer_image (builders/images.py).
    allowed_images: tuple[str, ...] = ()
    # Runs `python -m kubeft_trainer.export.verify`; None: trainer_image (never spec.image).
    verifier_image: str | None = None
    # GiB of one GPU, keyed by a node label `key=value` (nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3)
    # or by an extended resource name (nvidia.com/gpu): what the fit estimate compares with (builders/fit.py).
    gpu_memory_gib: tuple[tuple[str, float], ...] = ()

    @property
    def verifier(self) -> str:
        return self.verifier_image or self.trainer_image

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``KUBEFT_*`` variables; raise ``ValueError`` naming a variable that is malformed."""
        env = os.environ if environ is None else environ
        base = cls()
        pull_policy = env.get("KUBEFT_TRAINER_IMAGE_PULL_POLICY", base.trainer_image_pull_policy)
        if pull_policy not in PULL_POLICIES:
            raise ValueError(f"`KUBEFT_TRAINER_IMAGE_PULL_POLICY` must be one of {', '.join(PULL_POLICIES)}")
        settings = cls(
            trainer_image=env.get("KUBEFT_TRAINER_IMAGE") or base.trainer_image,
            trainer_image_pull_policy=pull_policy,
            trainer_command=_command(env.get("KUBEFT_TRAINER_COMMAND")),
            trainer_env=_string_map(env, "KUBEFT_TRAINER_ENV", '{"HF_HUB_OFFLINE": "1"}'),
            trainer_image_pull_secrets=_names(env, "KUBEFT_TRAINER_IMAGE_PULL_SECRETS"),
            trainer_service_account_annotations=_string_map(
                env, "KUBEFT_TRAINER_SERVICE_ACCOUNT_ANNOTATIONS", '{"eks.amazonaws.com/role-arn": "arn:aws:iam::..."}'
            ),
            default_gpus=_int(env, "KUBEFT_TRAINER_DEFAULT_GPUS", base.default_gpus),
            default_cpu=env.get("KUBEFT_TRAINER_DEFAULT_CPU") or base.default_cpu,
            default_memory=env.get("KUBEFT_TRAINER_DEFAULT_MEMORY") or base.default_memory,
            default_scheduling=_scheduling(env),
            hf_cache_claim=env.get("KUBEFT_HF_CACHE_CLAIM") or None,
            ephemeral_storage=_quantity(env, "KUBEFT_TRAINER_EPHEMERAL_STORAGE", base.ephemeral_storage),
            workdir_size_limit=_quantity(env, "KUBEFT_TRAINER_WORKDIR_SIZE_LIMIT", base.workdir_size_limit),
            hf_cache_size_limit=_quantity(env, "KUBEFT_TRAINER_HF_CACHE_SIZE_LIMIT", base.hf_cache_size_limit),
            shm_size=_quantity(env, "KUBEFT_TRAINER_SHM_SIZE", base.shm_size),
            termination_grace_seconds=_int(
                env, "KUBEFT_TRAINER_TERMINATION_GRACE_SECONDS", base.termination_grace_seconds
            ),
            progress_interval_seconds=_seconds(
                env, "KUBEFT_TRAINER_PROGRESS_INTERVAL_SECONDS", base.progress_interval_seconds
            ),
            metrics_port=_int(env, "KUBEFT_METRICS_PORT", base.metrics_port),
            peering_priority=_int(env, "KUBEFT_PEERING_PRIORITY", None),
            allow_private_endpoints=_bool(env, "KUBEFT_ALLOW_PRIVATE_ENDPOINTS"),
            allowed_images=_patterns(env.get("KUBEFT_ALLOWED_IMAGES")),
            verifier_image=env.get("KUBEFT_VERIFIER_IMAGE") or None,
            gpu_memory_gib=_gpu_memory(env.get("KUBEFT_GPU_MEMORY_GIB")),
        )
        try:
            spec_models.ResourcesSpec(
                gpus=settings.default_gpus, cpu=settings.default_cpu, memory=settings.default_memory
            )
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            raise ValueError(f"`KUBEFT_TRAINER_DEFAULT_{str(first['loc'][0]).upper()}`: {first['msg']}") from None
        return settings


@overload
def _int(env: Mapping[str, str], name: str, default: int) -> int: ...


@overload
def _int(env: Mapping[str, str], name: str, default: None) -> int | None: ...


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"`{name}` must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"`{name}` must not be negative, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"`{name}` must be a number of seconds, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"`{name}` must be a finite number of seconds, not negative, got {raw!r}")
    return value


# Each variable's field of spec.scheduling, for error messages that name the variable.
_SCHEDULING_VARIABLES = {
    "nodeSelector": "KUBEFT_TRAINER_DEFAULT_NODE_SELECTOR",
    "tolerations": "KUBEFT_TRAINER_DEFAULT_TOLERATIONS",
    "priorityClassName": "KUBEFT_TRAINER_DEFAULT_PRIORITY_CLASS",
    "queueName": "KUBEFT_TRAINER_DEFAULT_QUEUE",
}


def _scheduling(env: Mapping[str, str]) -> spec_models.SchedulingSpec:
    """The default scheduling, checked as strictly as a FineTuneJob's own ``spec.scheduling``."""
    raw: dict[str, Any] = {}
    for field, name in _SCHEDULING_VARIABLES.items():
        value = env.get(name)
        if not value:
            continue
        if field in ("nodeSelector", "tolerations"):
            parsed = _json(value)
            if not isinstance(parsed, dict if field == "nodeSelector" else list):
                kind = "object of node labels" if field == "nodeSelector" else "list of tolerations"
                raise ValueError(f"`{name}` must be a JSON {kind}")
            raw[field] = parsed
        else:
            raw[field] = value
    try:
        return spec_models.SchedulingSpec.model_validate(raw)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        name = _SCHEDULING_VARIABLES[str(first["loc"][0])]
        raise ValueError(f"`{name}`{where and ' at ' + where}: {first['msg']}") from None


def _quantity(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """A quantity such as ``20Gi``; an empty variable turns the setting off, an unset one keeps ``default``."""
    if name not in env:
        return default
    raw = env[name].strip()
    if not raw:
        return None
    if not _QUANTITY.fullmatch(raw):
        raise ValueError(f"`{name}` must be a quantity such as 20Gi, got {raw!r}")
    return raw


def _json(raw: str) -> Any:
    """``raw`` parsed as JSON, or None when it is not JSON (the caller names the variable)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def _command(raw: str | None) -> tuple[str, ...] | None:
    if not raw:
        return None
    value = _json(raw)
    if not isinstance(value, list) or not value or not all(isinstance(part, str) for part in value):
        raise ValueError('`KUBEFT_TRAINER_COMMAND` must be a non-empty JSON list of strings, e.g. ["python", "x.py"]')
    return tuple(value)


def _patterns(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    value = _json(raw)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        example = '["registry.example.com/ml/*"]'
        raise ValueError(f"`KUBEFT_ALLOWED_IMAGES` must be a JSON list of image patterns, e.g. {example}")
    return tuple(value)


def _gpu_memory(raw: str | None) -> tuple[tuple[str, float], ...]:
    if not raw:
        return ()
    value = _json(raw)
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value.values()
    ):
        example = '{"nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB": 80, "nvidia.com/gpu": 24}'
        raise ValueError(f"`KUBEFT_GPU_MEMORY_GIB` must be a JSON object of positive GiB, e.g. {example}")
    return tuple(sorted((str(k), float(v)) for k, v in value.items()))


def _string_map(env: Mapping[str, str], name: str, example: str) -> tuple[tuple[str, str], ...]:
    raw = env.get(name)
    if not raw:
        return ()
    value = _json(raw)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"`{name}` must be a JSON object of strings, e.g. {example}")
    return tuple(sorted(value.items()))


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name)
    if not raw:
        return ()
    value = _json(raw)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f'`{name}` must be a JSON list of names, e.g. ["my-registry"]')
    return tuple(value)


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"`{name}` must be true or false, not {raw!r}")


def in_cluster_server(env: Mapping[str, str]) -> str | None:
    """The API server's URL in a pod, from ``KUBERNETES_SERVICE_HOST``/``PORT`` (what client-go's
    in-cluster config reads); None outside a pod. kopf's own service-account login uses
    ``https://kubernetes.default.svc`` instead, which needs cluster DNS that not every cluster has."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
