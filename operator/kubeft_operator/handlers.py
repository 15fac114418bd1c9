"""kopf wiring, and nothing else: every handler hands over to the reconciler or the k8s client.

Run with ``kopf run --module=kubeft_operator.handlers`` (the chart does) or ``kubeft-operator``.

- Three in-memory indices (FineTuneJobs, their Jobs, their pods) are the reconciler's view of
  the cluster. kopf fills them from its watches and starts no handler before all three are
  listed, so a restarted operator sees the Jobs it made before it decides anything.
- Watch events of any of the three reconcile the owning FineTuneJob. They are ``on.event``
  handlers, so kopf keeps no per-object state: no finalizer, no last-handled-configuration
  annotation, no ``status.kopf`` progress, and no write per event.
- A handler only puts the FineTuneJob's key on a :class:`WorkQueue` and returns, so kopf drops
  the watch event at once instead of holding it (the whole object) while the reconcile waits.
- Jobs and pods are watched with a server-side label selector: only what kubeft created.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import kopf

from kubeft_operator import config, metrics, reconciler, status
from kubeft_operator.api import crd
from kubeft_operator.builders import meta
from kubeft_operator.k8s import client

# Reconciles running at once, 4 per connection of the client (k8s.client.CONNECTIONS; a reconcile
# makes up to three calls at once). A waiting reconcile holds only the children it is creating,
# not the watch event that woke it. 256 measured no faster at N=1,000, and 8 MiB heavier.
RECONCILE_WORKERS = 4 * client.CONNECTIONS
# How long kopf keeps an idle per-object worker, which holds the last watch event it handled
# (the whole object): 5 s by default, while a burst brings hundreds of events a second.
WORKER_IDLE_SECONDS = 0.5

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


class WorkQueue:
    """FineTuneJob keys waiting for a reconcile, reconciled by :data:`RECONCILE_WORKERS` tasks, each
    key by one task at a time (the reconcile is level-triggered: it reads the indices when it runs).

    An event for a key already waiting adds nothing; one for a key being reconciled queues it once
    more, after the running reconcile. Keys of new FineTuneJobs go first, in the order they came,
    then the rest in theirs: under a burst, every new job gets its children before the status of
    an older one follows its pods."""

    def __init__(self, reconcile: Callable[[reconciler.Key], Awaitable[None]], *, workers: int) -> None:
        self._reconcile = reconcile
        self._keys: asyncio.PriorityQueue[tuple[bool, int, reconciler.Key]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._waiting: set[reconciler.Key] = set()
        self._running: set[reconciler.Key] = set()
        self._again: set[reconciler.Key] = set()
        self._workers = [asyncio.create_task(self._work()) for _ in range(workers)]

    def add(self, key: reconciler.Key, *, new: bool = False) -> None:
        if key in self._running:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._keys.put_nowait((not new, next(self._order), key))

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            _, _, key = await self._keys.get()
            self._waiting.discard(key)
            self._running.add(key)
            try:
                await self._reconcile(key)
            except Exception:  # the reconciler retries its own failures; this keeps the worker alive
                logging.getLogger(__name__).exception("reconciling FineTuneJob %s/%s failed", *key)
            finally:
                self._running.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self.add(key)


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
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
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
    memo.queue = WorkQueue(memo.reconciler.reconcile, workers=RECONCILE_WORKERS)
    memo.reconciler.wake_through(memo.queue.add)
    metrics.track_phases(memo.reconciler.phases)
    metrics.track_jobs(memo.reconciler.samples)
    metrics.serve(cfg.metrics_port)
    logger.info("kubeft operator started (trainer image %s)", cfg.trainer_image)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.queue.close()
    memo.reconciler.close()
    await memo.api.close()


@kopf.on.event(crd.GROUP, crd.VERSION, crd.PLURAL)
async def finetunejob_event(event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    key = (namespace or "", name)
    if event["type"] == "DELETED":
        memo.reconciler.forget(key)
        return
    memo.queue.add(key, new=event["type"] == "ADDED")


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_FILTER)
async def job_event(
    event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, uid: str, memo: kopf.Memo, **_: Any
) -> None:
    key = (namespace or "", labels[meta.LABEL_JOB])
    if event["type"] == "DELETED":
        memo.reconciler.forget_job(key, uid)
    memo.queue.add(key)


@kopf.on.event("", "v1", "pods", labels=CHILD_FILTER)
async def pod_event(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    memo.queue.add((namespace or "", labels[meta.LABEL_JOB]))
