"""How the pods of a multi-node FineTuneJob (``spec.resources.nodes > 1``) find each other.

The trainer Job of such a job is an Indexed Job of ``nodes`` pods; each pod's hostname is
``NAME-train-INDEX`` and its ``subdomain`` the headless Service built here (also ``NAME-train``), so
cluster DNS answers ``NAME-train-0.NAME-train`` (the pod's search path adds the namespace) with
the address of pod 0, where ``accelerate launch`` (torchrun's static rendezvous) listens on
:data:`PORT`. The Service publishes addresses before the pods are ready: the rendezvous is what
makes them ready. One process per GPU on each pod (one on a CPU pod); the completion index is the
machine rank. Used by builders/job.py (command, environment, pod template) and builders/children.py.
"""

from __future__ import annotations

from typing import Any

from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import meta

PORT = 29500
# The completion index the Job controller puts on each pod of an Indexed Job.
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
RANK_ENV = "KUBEFT_MACHINE_RANK"


def multi_node(spec: spec_models.FineTuneJobSpec) -> bool:
    return spec.resources.nodes > 1


def service_name(job: str) -> str:
    """The headless Service: the Job's own name, which is what its pods' ``subdomain`` says."""
    return meta.job_name(job)


def processes(spec: spec_models.FineTuneJobSpec) -> int:
    """Trainer processes across all pods: one per GPU, one per CPU pod."""
    return max(spec.resources.gpus, 1) * spec.resources.nodes


def main_host(job: str) -> str:
    """Pod 0's name under the headless Service; the pod's DNS search path completes it."""
    return f"{meta.job_name(job)}-0.{service_name(job)}"


def launch_args(job: str, spec: spec_models.FineTuneJobSpec) -> list[str]:
    """``accelerate launch`` arguments for the machines; ``$(VAR)`` is expanded by the kubelet."""
    if not multi_node(spec):
        return []
    return [
        "--num_machines",
        str(spec.resources.nodes),
        "--machine_rank",
        f"$({RANK_ENV})",
        "--main_process_ip",
        main_host(job),
        "--main_process_port",
        str(PORT),
    ]


def env(spec: spec_models.FineTuneJobSpec) -> list[dict[str, Any]]:
    if not multi_node(spec):
        return []
    index = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}
    return [{"name": RANK_ENV, "valueFrom": index}, {"name": "KUBEFT_NODES", "value": str(spec.resources.nodes)}]


def service(owner: meta.Owner) -> dict[str, Any]:
    """The headless Service that gives each trainer pod a DNS name (no load balancing, no cluster IP)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.metadata(owner, service_name(owner.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {meta.LABEL_JOB: owner.name, JOB_NAME_LABEL: meta.job_name(owner.name)},
            "ports": [{"name": "rendezvous", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }
