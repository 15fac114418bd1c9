"""kopf wiring, and nothing else: every handler hands over to the reconciler or the k8s client.

Run with ``kopf run --module=kubeft_operator.handlers`` (the chart does) or ``kubeft-operator``.

- Three in-memory indices (FineTuneJobs, their Jobs, their pods) are the reconciler's view of
  the cluster. kopf fills them from its watches and starts no handler before all three are
  listed, so a restarted operator sees the Jobs it made before it decides anything.
- Watch events of any of the three reconcile the owning FineTuneJob. They are ``on.event``
  handlers, so kopf keeps no per-object state: no finalizer, no last-handled-configuration
  annotation, no ``status.kopf`` progress, and no write per event.
- Jobs and pods are watched with a server-side label selector: only what kubeft created.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
from collections.abc import Mapping, Sequence
from typing import Any, cast

import kopf

from kubeft_operator import config, metrics, reconciler, status
from kubeft_operator.api import crd
from kubeft_operator.builders import meta
from kubeft_operator.k8s import client

CHILD_FILTER: dict[str, Any] = {
    meta.LABEL_JOB: kopf.PRESENT,
    meta.LABEL_MANAGED_BY: meta.MANAGED_BY,
}


class IndexView:
    """Adapts kopf's indices to :class:`kubeft_operator.reconciler.View`."""

    def __init__(self, finetunejobs: kopf.Index[Any, Any], jobs: kopf.Index[Any, Any], pods: kopf.Index[Any, Any]):
        self._finetunejobs = finetunejobs
        self._jobs = jobs
        self._pods = pods

    def finetunejob(self, key: reconciler.Key) -> Mapping[str, Any] | None:
        found = list(self._finetunejobs.get(key, ()))
        return max(found, key=lambda b: int(b["metadata"].get("resourceVersion") or 0)) if found else None

    def jobs(self, key: reconciler.Key) -> Sequence[Mapping[str, Any]]:
        return list(self._jobs.get(key, ()))

    def pods(self, key: reconciler.Key) -> Sequence[Mapping[str, Any]]:
        return list(self._pods.get(key, ()))


@kopf.index(crd.GROUP, crd.VERSION, crd.PLURAL)
def finetunejob_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace or "", name): status.finetunejob_view(body)}


@kopf.index("batch", "v1", "jobs", labels=CHILD_FILTER)
def trainer_job_index(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace or "", labels[meta.LABEL_JOB]): status.job_view(body)}


@kopf.index("", "v1", "pods", labels=CHILD_FILTER)
def trainer_pod_index(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace or "", labels[meta.LABEL_JOB]): status.pod_view(body)}


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's "diff base" turned off: kubeft registers raw-event handlers only (level-triggered), no
    on.create/update/resume handler that a per-field diff would feed. kopf would otherwise deep-copy
    every object on every event to build it: 13 ms of the event loop per job at N=1,000 (cProfile,
    docs/performance.md)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account's token, sent to the API server the pod's environment names
    (config.in_cluster_server). Elsewhere: the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    account = kopf.login_with_service_account(**kwargs)
    server = config.in_cluster_server(os.environ)
    if account is not None and server is not None:
        return dataclasses.replace(account, server=server)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def start(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **indices: Any,
) -> None:
    cfg = config.Settings.from_env()
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # One line per API request and per handled watch event drowns the log at a thousand jobs.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Events are posted by the reconciler, for transitions only, not for every log line.
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.label_selectors["batch", "v1", "jobs"] = meta.CHILD_SELECTOR
    settings.watching.label_selectors["", "v1", "pods"] = meta.CHILD_SELECTOR
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    if settings.peering.priority == 0:
        # kopf pauses every operator that sees a peer of the same priority: never tie.
        settings.peering.priority = cfg.peering_priority or random.randint(1, 2**31 - 1)
    api = client.Api.connect()
    if settings.peering.mandatory and not settings.peering.standalone:
        if settings.peering.clusterwide:
            if not await api.ensure_peering(settings.peering.name, namespace=None):
                logger.warning("the ClusterKopfPeering CRD is missing; install the chart's peering.yaml")
        else:
            logger.warning("namespaced peering: the KopfPeering objects must exist in every watched namespace")
    view = IndexView(indices["finetunejob_index"], indices["trainer_job_index"], indices["trainer_pod_index"])
    memo.api = api
    memo.reconciler = reconciler.Reconciler(api, view, cfg, instance=socket.gethostname())
    metrics.track_phases(memo.reconciler.phases)
    metrics.track_jobs(memo.reconciler.samples)
    metrics.serve(cfg.metrics_port)
    logger.info("kubeft operator started (trainer image %s)", cfg.trainer_image)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.close()
    await memo.api.close()


@kopf.on.event(crd.GROUP, crd.VERSION, crd.PLURAL)
async def finetunejob_event(event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    key = (namespace or "", name)
    if event["type"] == "DELETED":
        memo.reconciler.forget(key)
        return
    await memo.reconciler.reconcile(key)


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_FILTER)
async def job_event(
    event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, uid: str, memo: kopf.Memo, **_: Any
) -> None:
    key = (namespace or "", labels[meta.LABEL_JOB])
    if event["type"] == "DELETED":
        memo.reconciler.forget_job(key, uid)
    await memo.reconciler.reconcile(key)


@kopf.on.event("", "v1", "pods", labels=CHILD_FILTER)
async def pod_event(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    await memo.reconciler.reconcile((namespace or "", labels[meta.LABEL_JOB]))
