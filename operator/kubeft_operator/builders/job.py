"""The batch/v1 Job ``NAME-train`` that runs the trainer, and the one change ever made to it.

The Job follows the operator -> trainer contract of docs/DESIGN.md: container ``trainer``
launched by ``accelerate`` (through ``kubeft_trainer.launch``), config file mounted from
``NAME-config``, credentials only as ``secretKeyRef``, exit codes 64/65 fail the Job at once
through ``podFailurePolicy``, a disrupted pod (preempted, evicted, drained) is retried without
counting, anything else counts toward ``backoffLimit = spec.retryLimit``.
The pod meets the "restricted" Pod Security Standard. Besides the config file it has scratch
emptyDirs with a ``sizeLimit`` (the work directory, and the model cache unless the operator shares a
claim), a memory-backed ``/dev/shm`` for NCCL, and the spec's own PersistentVolumeClaims and
ConfigMaps (``spec.volumes``) where ``spec.volumeMounts`` puts them. Once created, the pod template is never
rewritten (Kueue may have injected node selectors into it); only ``spec.suspend`` is patched, by
:func:`suspend_patch`.
"""

from __future__ import annotations

from typing import Any

from kubeft_operator import config
from kubeft_operator.api import base as api_base
from kubeft_operator.api import contract
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import fit, kueue, meta, rendezvous

WORKDIR = "/var/lib/kubeft"
HF_HOME = "/var/cache/huggingface"
SHM = "/dev/shm"
# The exit codes that fail the Job at once: a retry cannot help (api/contract.py).
NO_RETRY_EXIT_CODES = list(contract.NO_RETRY_EXIT_CODES)
# A pod of a multi-node group that stopped because another did: replaced without counting.
UNCOUNTED_EXIT_CODES = list(contract.UNCOUNTED_EXIT_CODES)
TRAINER_UID = 10001  # the trainer image's user (trainer-image/Dockerfile); tests/e2e/test_images.py checks they agree


def command(owner_name: str, spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> list[str]:
    """The trainer's argv: ``accelerate launch`` through the trainer's wrapper, or the operator's override.

    ``python -m kubeft_trainer.launch ARGS`` is ``accelerate launch ARGS`` that keeps the trainer's
    exit code (accelerate turns every failure into 1, which would hide 64/65 from the
    ``podFailurePolicy``) and passes SIGTERM on, so the trainer can checkpoint before it stops.
    """
    if settings.trainer_command is not None:
        launcher = list(settings.trainer_command)
    else:
        total = rendezvous.processes(spec)
        # accelerate 1.15 starts several processes only through torchrun, which `--multi_gpu` selects
        # (on CPU pods too); with one process it refuses the flag. One process per GPU, and
        # `--num_processes` counts the processes of all machines.
        multi = ["--multi_gpu"] if total > 1 else []
        processes = ["--num_processes", str(total), *rendezvous.launch_args(owner_name, spec)]
        launcher = ["python", "-m", "kubeft_trainer.launch", *multi, *processes, "-m", "kubeft_trainer"]
    return [*launcher, "--config", meta.CONFIG_PATH]


def _secret_env(name: str, ref: api_base.SecretKeyRef | None, *, key: str | None = None) -> list[dict[str, Any]]:
    if ref is None:
        return []
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": key or ref.key}}}]


def _field(path: str) -> dict[str, Any]:
    return {"fieldRef": {"fieldPath": path}}


def env(owner: meta.Owner, spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> list[dict[str, Any]]:
    """Environment of the trainer container. Secrets are referenced, never read or inlined."""
    out: list[dict[str, Any]] = [
        {"name": "KUBEFT_JOB_NAME", "value": owner.name},
        {"name": "KUBEFT_NAMESPACE", "valueFrom": _field("metadata.namespace")},
        {"name": "KUBEFT_POD_NAME", "valueFrom": _field("metadata.name")},
        {"name": "HF_HOME", "value": HF_HOME},
        {"name": "KUBEFT_WORKDIR", "value": WORKDIR},
        # The trainer judges its endpoints again at connect time (kubeft_trainer/egress.py).
        {"name": "KUBEFT_ALLOW_PRIVATE_ENDPOINTS", "value": str(settings.allow_private_endpoints).lower()},
        {"name": contract.PROGRESS_INTERVAL_ENV, "value": f"{settings.progress_interval_seconds:g}"},
        # spec.training.parallelism with `auto` decided (builders/fit.py: the fit estimate of one replica).
        {"name": contract.PARALLELISM_ENV, "value": fit.parallelism(spec, settings)},
        *rendezvous.env(spec),
    ]
    credentials = spec.storage.credentials_secret_ref if spec.storage else None
    out += storage_credentials(credentials)
    out += _secret_env("HF_TOKEN", spec.model.token_secret_ref)
    out += _secret_env("KUBEFT_HUB_TOKEN", spec.output.hub.token_secret_ref if spec.output.hub else None)
    taken = {item["name"] for item in out}
    out += [{"name": name, "value": value} for name, value in settings.trainer_env if name not in taken]
    return out


def storage_credentials(ref: api_base.SecretKeyRef | None) -> list[dict[str, Any]]:
    """The S3 keys from the credentials Secret, and its session token when it has one (temporary
    STS credentials). Without a Secret, boto3's default chain applies: workload identity, for one."""
    if ref is None:
        return []
    keys = _secret_env("AWS_ACCESS_KEY_ID", ref, key="AWS_ACCESS_KEY_ID")
    keys += _secret_env("AWS_SECRET_ACCESS_KEY", ref, key="AWS_SECRET_ACCESS_KEY")
    token = {"name": ref.name, "key": "AWS_SESSION_TOKEN", "optional": True}
    return [*keys, {"name": "AWS_SESSION_TOKEN", "valueFrom": {"secretKeyRef": token}}]


def pull_secrets(settings: config.Settings) -> dict[str, Any]:
    """``imagePullSecrets`` for a pod of the trainer image, when the operator has any."""
    names = settings.trainer_image_pull_secrets
    return {"imagePullSecrets": [{"name": name} for name in names]} if names else {}


def resources(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> dict[str, Any]:
    """CPU and memory as requests and limits; GPUs as a limit (the scheduler copies it to requests);
    local disk as a request only: a limit would evict the pod, and an eviction is retried without
    counting toward retryLimit (the ``podFailurePolicy``), so a job over it would loop."""
    cpu_memory = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    limits: dict[str, Any] = dict(cpu_memory)
    if spec.resources.gpus > 0:
        limits[spec.resources.gpu_resource_name] = str(spec.resources.gpus)
    requests: dict[str, Any] = dict(cpu_memory)
    if settings.ephemeral_storage:
        requests["ephemeral-storage"] = settings.ephemeral_storage
    return {"requests": requests, "limits": limits}


def _empty_dir(size_limit: str | None, **extra: str) -> dict[str, Any]:
    return {"emptyDir": {**extra, **({"sizeLimit": size_limit} if size_limit else {})}}


def volumes(owner: meta.Owner, spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> list[dict[str, Any]]:
    """Config file, scratch space, the model cache (a shared PVC when the operator has one), /dev/shm,
    then the spec's own volumes. The names of the first four are ``spec_models.TRAINER_VOLUME_NAMES``."""
    claim = settings.hf_cache_claim
    cache = {"persistentVolumeClaim": {"claimName": claim}} if claim else _empty_dir(settings.hf_cache_size_limit)
    out: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": meta.config_map_name(owner.name)}},
        {"name": "workdir", **_empty_dir(settings.workdir_size_limit)},
        {"name": "hf-cache", **cache},
    ]
    if settings.shm_size:
        out.append({"name": "shm", **_empty_dir(settings.shm_size, medium="Memory")})
    return out + [volume.wire() for volume in spec.volumes or ()]


def volume_mounts(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> list[dict[str, Any]]:
    """The trainer's own mounts, then the spec's (under ``spec_models.MOUNT_ROOTS``, so they never overlap)."""
    out: list[dict[str, Any]] = [
        {"name": "config", "mountPath": meta.CONFIG_DIR, "readOnly": True},
        {"name": "workdir", "mountPath": WORKDIR},
        {"name": "hf-cache", "mountPath": HF_HOME},
    ]
    if settings.shm_size:
        out.append({"name": "shm", "mountPath": SHM})
    return out + [_spec_mount(mount, spec) for mount in spec.volume_mounts or ()]


def _spec_mount(mount: spec_models.VolumeMount, spec: spec_models.FineTuneJobSpec) -> dict[str, Any]:
    """A mount of a read-only source (a ConfigMap, a claim with readOnly) says so too: the kubelet
    mounts it read-only either way, and `kubectl get pod -o yaml` should not suggest otherwise."""
    wire = mount.wire()
    volume = next((v for v in spec.volumes or () if v.name == mount.name), None)
    if volume is not None and (
        volume.config_map is not None
        or (volume.persistent_volume_claim is not None and volume.persistent_volume_claim.read_only)
    ):
        wire["readOnly"] = True
    return wire


def container_security() -> dict[str, Any]:
    """What the "restricted" Pod Security Standard asks of a container (also the verifier's, builders/verify.py)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_spec(owner: meta.Owner, spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> dict[str, Any]:
    container = {
        "name": meta.CONTAINER,
        "image": spec.image or settings.trainer_image,
        "imagePullPolicy": settings.trainer_image_pull_policy,
        "command": command(owner.name, spec, settings),
        "env": env(owner, spec, settings),
        "resources": resources(spec, settings),
        "volumeMounts": volume_mounts(spec, settings),
        "securityContext": container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "serviceAccountName": meta.trainer_name(owner.name),
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "fsGroup": TRAINER_UID,
            # The kubelet changes a volume's group only when its root does not have it yet, instead
            # of walking every file on each pod start: a shared model cache holds hundreds of GB.
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes(owner, spec, settings),
        **pull_secrets(settings),
    }
    if rendezvous.multi_node(spec):
        pod["subdomain"] = rendezvous.service_name(owner.name)
    scheduling = spec.scheduling
    if scheduling is not None:
        if scheduling.node_selector:
            pod["nodeSelector"] = dict(scheduling.node_selector)
        if scheduling.tolerations:
            pod["tolerations"] = [toleration.wire() for toleration in scheduling.tolerations]
        if scheduling.priority_class_name:
            pod["priorityClassName"] = scheduling.priority_class_name
    return pod


def build(owner: meta.Owner, spec: spec_models.FineTuneJobSpec, *, settings: config.Settings) -> dict[str, Any]:
    queue = spec.scheduling.queue_name if spec.scheduling else None
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.retry_limit,
        "completions": 1,
        "parallelism": 1,
        # With a queue, Kueue admits the Job by unsuspending it; without one, only the user suspends.
        "suspend": spec.suspend or queue is not None,
        "podFailurePolicy": {
            "rules": [
                # Preemption, eviction and node drain are the normal life of a job on a shared
                # cluster: the pod checkpointed on SIGTERM, and its retry must not use up retryLimit.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": meta.CONTAINER,
                        "operator": "In",
                        "values": list(NO_RETRY_EXIT_CODES),
                    },
                },
            ]
        },
        "template": {
            "metadata": {"labels": meta.labels(owner)},
            "spec": pod_spec(owner, spec, settings),
        },
    }
    if rendezvous.multi_node(spec):
        _group(job_spec, spec.resources.nodes)
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta.metadata(
            owner, meta.job_name(owner.name), extra_labels={meta.LABEL_QUEUE: queue} if queue else None
        ),
        "spec": job_spec,
    }


def _group(job_spec: dict[str, Any], nodes: int) -> None:
    """Make ``job_spec`` the Indexed Job of a multi-node group (builders/rendezvous.py).

    All pods start together (Kueue admits them as one workload of ``nodes`` pods) and the group
    succeeds when pod 0, the one that exports, succeeds. When a pod stops, the others stop at the
    same step and exit 67 (contract.EXIT_PEER_STOPPED); the Job replaces every pod and the group
    meets again, resuming from the checkpoint it saved. Only the pod that stopped first counts
    toward backoffLimit (retryLimit): 67 is ignored.
    """
    job_spec.update(completionMode="Indexed", completions=nodes, parallelism=nodes)
    job_spec["successPolicy"] = {"rules": [{"succeededIndexes": "0"}]}
    ignored = {
        "action": "Ignore",
        "onExitCodes": {"containerName": meta.CONTAINER, "operator": "In", "values": list(UNCOUNTED_EXIT_CODES)},
    }
    job_spec["podFailurePolicy"]["rules"].insert(1, ignored)


def suspend_patch(spec: spec_models.FineTuneJobSpec, job: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings the Job's ``spec.suspend`` in line with the FineTuneJob, if any.

    ``spec.suspend: true`` always suspends. Resuming is ours only without a queue: with
    ``queueName`` the Job stays suspended until Kueue admits it, and Kueue unsuspends it itself.
    """
    suspended = bool(job.get("spec", {}).get("suspend"))
    queued = kueue.queued(spec)
    if spec.suspend and not suspended:
        return {"spec": {"suspend": True}}
    if not spec.suspend and suspended and not queued:
        return {"spec": {"suspend": False}}
    return None


def stop_patch(job: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that stops a Job whose FineTuneJob the operator now refuses, if it still runs.

    Suspending deletes its pods (SIGTERM: the trainer checkpoints) and keeps the Job for inspection;
    a finished or already suspended Job needs nothing.
    """
    if finished(job) or job.get("spec", {}).get("suspend"):
        return None
    return {"spec": {"suspend": True}}


def finished(job: dict[str, Any]) -> bool:
    """Whether the Job is Complete or Failed."""
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions") or []
    )
