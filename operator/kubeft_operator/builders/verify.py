"""The Job ``NAME-verify``: the operator checks an exported adapter itself when the trainer ran unvetted code.

A trainer pod running a custom ``spec.image``, or a model's own code (``trustRemoteCode``), could
report any result in its termination message. For those runs, once the trainer Job completes, the
operator runs ``python -m kubeft_trainer.export.verify`` in the operator's own trainer image
(``settings.verifier``, never ``spec.image``), with the job's storage credentials and no
Kubernetes token. It reads manifest.json at the reported s3:// prefix, checks its sha256 against the
trainer's claim and every file against the manifest; the FineTuneJob is ``Succeeded`` only then,
with the artifact the verifier measured (:func:`kubeft_operator.status.compute`). Runs of the
operator's own image are not re-checked: that trainer already uploads the manifest last and
reports its hash.
"""

from __future__ import annotations

from typing import Any

from kubeft_operator import config
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import job, meta

# Exit 64: the artifact does not match (or an endpoint is refused); retrying cannot help.
BACKOFF_LIMIT = 2
DEADLINE_SECONDS = 900


def reason(spec: spec_models.FineTuneJobSpec, settings: config.Settings) -> str | None:
    """Why this run's result must be verified by the operator, or None when its trainer is trusted."""
    if spec.image is not None and spec.image != settings.trainer_image:
        return f"the trainer ran the custom image {spec.image}"
    if spec.model.trust_remote_code:
        return "the trainer ran the model repository's own code (spec.model.trustRemoteCode)"
    return None


def build(
    owner: meta.Owner, spec: spec_models.FineTuneJobSpec, *, settings: config.Settings, uri: str, sha256: str | None
) -> dict[str, Any]:
    command = ["python", "-m", "kubeft_trainer.export.verify", "--config", meta.CONFIG_PATH, "--uri", uri]
    if sha256:
        command += ["--sha256", sha256]
    credentials = spec.storage.credentials_secret_ref if spec.storage else None
    env: list[dict[str, Any]] = [
        {"name": "KUBEFT_ALLOW_PRIVATE_ENDPOINTS", "value": str(settings.allow_private_endpoints).lower()},
        *[{"name": name, "value": value} for name, value in settings.trainer_env],
    ]
    env += job.storage_credentials(credentials)
    container = {
        "name": meta.VERIFY_CONTAINER,
        "image": settings.verifier,
        "imagePullPolicy": settings.trainer_image_pull_policy,
        "command": command,
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [{"name": "config", "mountPath": meta.CONFIG_DIR, "readOnly": True}],
        "securityContext": job.container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": job.TRAINER_UID,
            "runAsGroup": job.TRAINER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": meta.config_map_name(owner.name)}}],
        **job.pull_secrets(settings),
    }
    if spec.scheduling is not None and spec.scheduling.tolerations:
        pod["tolerations"] = [toleration.wire() for toleration in spec.scheduling.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta.metadata(owner, meta.verify_job_name(owner.name)),
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": meta.VERIFY_CONTAINER,
                            "operator": "In",
                            "values": list(job.NO_RETRY_EXIT_CODES),
                        },
                    }
                ]
            },
            "template": {"metadata": {"labels": meta.labels(owner)}, "spec": pod},
        },
    }
