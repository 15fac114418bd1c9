"""kubeft's trainer as its pod runs it, replayed on this machine: the operator's own rendering, no cluster.

For a FineTuneJob spec, :func:`render` asks the operator's pure builders what they would create
(``builders.defaults.apply``, then ``builders.config_map.render`` for the config file and
``builders.job.command`` / ``builders.job.env`` for the container) and turns that into a local
command: the same launcher argv (``python -m kubeft_trainer.launch --num_processes N -m
kubeft_trainer --config FILE``) and the same environment, with what the kubelet would supply filled
in here: the pod's volumes become directories under the run's own, downward-API fields get this
job's namespace and a pod name, and Secret references take the values the caller passes (the
benchmark's S3 keys). The process also keeps this machine's environment (PATH, the venv), as a
container keeps its image's. Used by :mod:`benchmarks.trainer_throughput` and :mod:`benchmarks.gpu_check`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from kubeft_operator import config as operator_config
from kubeft_operator.api import spec as api_spec
from kubeft_operator.builders import config_map, defaults, job, meta

NAMESPACE = "benchmarks"
# The kubelet writes the termination message to this file in a pod; here it goes to the run directory.
TERMINATION_LOG_ENV = "KUBEFT_TERMINATION_LOG"


@dataclasses.dataclass(frozen=True)
class Pod:
    """A rendered trainer pod: what to run, with which environment, and where its files go."""

    argv: list[str]
    env: dict[str, str]
    config_file: pathlib.Path
    workdir: pathlib.Path
    termination_log: pathlib.Path
    spec: api_spec.FineTuneJobSpec


def settings() -> operator_config.Settings:
    """The operator's defaults, with private endpoints allowed: the benchmark's S3 and Hub listen on loopback,
    as a cluster's in-cluster object store does (chart value ``operator.allowPrivateEndpoints``)."""
    return operator_config.Settings(allow_private_endpoints=True)


def render(
    spec_doc: Mapping[str, Any],
    *,
    name: str,
    run_dir: pathlib.Path,
    secrets: Mapping[tuple[str, str], str] | None = None,
) -> Pod:
    """Write the config file under `run_dir` and return the pod's command and environment.

    `secrets` maps (Secret name, key) to the value a ``secretKeyRef`` of the pod's env resolves to.
    """
    ops = settings()
    spec = defaults.apply(api_spec.FineTuneJobSpec.model_validate(dict(spec_doc)), ops)
    owner = meta.Owner(name=name, namespace=NAMESPACE, uid=str(uuid.uuid4()))
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / meta.CONFIG_KEY
    config_file.write_text(config_map.render(owner, spec))
    volumes = {job.WORKDIR: run_dir / "workdir", job.HF_HOME: run_dir / "hf-cache"}
    for path in volumes.values():
        path.mkdir(parents=True, exist_ok=True)
    argv = [_local(arg, config_file=config_file) for arg in job.command(owner.name, spec, ops)]
    env = resolve_env(job.env(owner, spec, ops), owner=owner, volumes=volumes, secrets=secrets or {})
    termination_log = run_dir / "termination-log"
    env[TERMINATION_LOG_ENV] = str(termination_log)
    return Pod(
        argv=argv,
        env=env,
        config_file=config_file,
        workdir=volumes[job.WORKDIR],
        termination_log=termination_log,
        spec=spec,
    )


def _local(arg: str, *, config_file: pathlib.Path) -> str:
    """The container's `python` is this interpreter; its mounted config file is the one written here."""
    if arg == "python":
        return sys.executable
    return str(config_file) if arg == meta.CONFIG_PATH else arg


def resolve_env(
    entries: list[dict[str, Any]],
    *,
    owner: meta.Owner,
    volumes: Mapping[str, pathlib.Path],
    secrets: Mapping[tuple[str, str], str],
) -> dict[str, str]:
    """The pod's env entries as the kubelet would resolve them, laid over this process's environment."""
    fields = {"metadata.namespace": owner.namespace, "metadata.name": f"{meta.job_name(owner.name)}-local"}
    env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "RANK", "LOCAL_RANK")}
    for entry in entries:
        name = entry["name"]
        if "value" in entry:
            value = str(entry["value"])
            env[name] = str(volumes.get(value, value))
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            env[name] = fields[source["fieldRef"]["fieldPath"]]
            continue
        ref = source["secretKeyRef"]
        key = (ref["name"], ref["key"])
        if key in secrets:
            env[name] = secrets[key]
        elif not ref.get("optional"):
            raise KeyError(f"the pod's env {name} needs Secret {ref['name']} key {ref['key']}, which was not given")
    return env
