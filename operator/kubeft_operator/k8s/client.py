"""The operator's client of the API server: the official ``kubernetes`` package, used lean.

Created by the startup handler in :mod:`kubeft_operator.handlers`; used by
:class:`kubeft_operator.reconciler.Reconciler`. It speaks plain dicts: requests go through
``kubernetes.client.ApiClient.call_api`` with ``_preload_content=False``, and the JSON body is
parsed straight into dicts, so no generated model object is ever built for a ConfigMap, Job or
FineTuneJob. The client is synchronous (urllib3): each call runs on a pool of
:data:`CONNECTIONS` threads, so kopf's event loop never blocks, over a urllib3 pool of as many
connections. (The package's asyncio variant, ``kubernetes.aio``, imports every generated model at
once: 32 MiB more RSS. kopf imports ``kubernetes.client`` itself whenever it is installed, so
this module adds no import of its own weight.) Every write is counted in
``kubeft_api_writes_total`` so the per-job write budget can be measured. The operator never reads
Secrets: it has no RBAC for them and no method here touches them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import os
from typing import Any

import kubernetes.client as k8s
import kubernetes.config as k8s_config
import urllib3

from kubeft_operator import metrics
from kubeft_operator.api import contract, crd
from kubeft_operator.builders import kueue
from kubeft_operator.k8s import errors

CONNECTIONS = 8
TIMEOUT_SECONDS = 30
MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "kubeft-operator"
# (apiVersion, kind) -> (URL prefix, plural, namespaced): the kinds the operator creates or reads.
RESOURCES: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "Event"): ("/api/v1", "events", True),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs", True),
    (contract.API_VERSION, crd.KIND): (f"/apis/{contract.API_VERSION}", crd.PLURAL, True),
    ("kopf.dev/v1", "KopfPeering"): ("/apis/kopf.dev/v1", "kopfpeerings", True),
    ("kueue.x-k8s.io/v1beta2", "Workload"): ("/apis/kueue.x-k8s.io/v1beta2", "workloads", True),
    ("kueue.x-k8s.io/v1beta1", "Workload"): ("/apis/kueue.x-k8s.io/v1beta1", "workloads", True),
    ("kopf.dev/v1", "ClusterKopfPeering"): ("/apis/kopf.dev/v1", "clusterkopfpeerings", False),
}


def path(api_version: str, kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
    """The REST path of a kind's collection, or of one object (and one of its subresources)."""
    prefix, plural, namespaced = RESOURCES[api_version, kind]
    parts = [prefix, *(["namespaces", str(namespace)] if namespaced else []), plural]
    parts += [p for p in (name, sub) if p]
    return "/".join(parts)


def _describe(obj: dict[str, Any]) -> str:
    md = obj.get("metadata", {})
    return f"{obj.get('kind')} {md.get('namespace', '')}/{md.get('name', '')}".replace(" /", " ")


def _failure(code: int, body: bytes, what: str) -> errors.ApiFailure:
    """The API server's Status (or whatever came back) as one of our exceptions."""
    try:
        status = json.loads(body) if body else {}
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    message = f"{what}: {status.get('message') or status.get('reason') or f'HTTP {code}'}"
    if code == 409 and status.get("reason") == "AlreadyExists":
        return errors.AlreadyExists(message, code=code)
    if code == 404:
        return errors.NotFound(message, code=code)
    if code == 422:
        return errors.Invalid(message, code=code)
    return errors.ApiFailure(message, code=code)


class Api:
    """Async facade over ``kubernetes.client.ApiClient``; see the reconciler's ``Api`` protocol."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self._client = api_client
        self._threads = concurrent.futures.ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="kubeft-api")

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> Api:
        """In a pod: the service account (``KUBERNETES_SERVICE_HOST``, the mounted token, re-read as
        it rotates); elsewhere ``kubeconfig``, ``$KUBECONFIG`` or ``~/.kube/config``."""
        configuration = k8s.Configuration()
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = CONNECTIONS
        return cls(k8s.ApiClient(configuration))

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _request(
        self, method: str, resource: str, body: Any, headers: dict[str, str], query: list[tuple[str, str]]
    ) -> tuple[int, bytes]:
        """One blocking request, on a pool thread; the status and the raw body (errors included)."""
        try:
            response = self._client.call_api(
                resource,
                method,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=TIMEOUT_SECONDS,
            )
        except k8s.ApiException as err:
            if not err.status:  # no response at all: the request could not be made
                raise
            # The client raises for every non-2xx status; the body is the API server's Status.
            body = err.body or b""
            return int(err.status), body.encode() if isinstance(body, str) else bytes(body)
        try:
            return int(response.status), bytes(response.data)
        finally:
            response.release_conn()

    async def _call(
        self,
        method: str,
        resource: str,
        what: str,
        *,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        loop = asyncio.get_running_loop()
        call = functools.partial(self._request, method, resource, body, headers, query or [])
        try:
            code, data = await loop.run_in_executor(self._threads, call)
        except k8s.ApiException as err:  # raised before a response exists
            raise errors.ApiFailure(f"{what}: {err.reason}", code=int(err.status or 0)) from None
        except (OSError, urllib3.exceptions.HTTPError) as err:  # refused, reset, timed out
            raise errors.ApiFailure(f"{what}: {err}") from None
        if not 200 <= code <= 299:
            raise _failure(code, data, what)
        parsed = json.loads(data) if data else {}
        return parsed if isinstance(parsed, dict) else {}

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        metrics.API_WRITES.labels(verb="create", kind=obj["kind"]).inc()
        md = obj["metadata"]
        resource = path(obj["apiVersion"], obj["kind"], md.get("namespace"))
        query = [("fieldManager", FIELD_MANAGER)]
        return await self._call("POST", resource, f"creating {_describe(obj)}", body=obj, query=query)

    async def read(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The live object with ``obj``'s kind, namespace and name, or None."""
        md = obj["metadata"]
        try:
            return await self._call(
                "GET",
                path(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"]),
                f"reading {_describe(obj)}",
            )
        except errors.NotFound:
            return None

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        metrics.API_WRITES.labels(verb="patch", kind="Job").inc()
        resource = path("batch/v1", "Job", namespace, name)
        return await self._call(
            "PATCH",
            resource,
            f"patching Job {namespace}/{name}",
            body=patch,
            content_type=MERGE_PATCH,
            query=[("fieldManager", FIELD_MANAGER)],
        )

    async def list_workloads(self, namespace: str, job_uid: str) -> tuple[str, list[dict[str, Any]]] | None:
        """Kueue's Workloads labelled with a Job's uid, and the API version that served them; None when
        the cluster has no Kueue (no version of the Workload API is served)."""
        for api_version in kueue.WORKLOAD_VERSIONS:
            try:
                found = await self._call(
                    "GET",
                    path(api_version, "Workload", namespace),
                    f"listing Kueue Workloads in {namespace}",
                    query=[("labelSelector", f"{kueue.JOB_UID_LABEL}={job_uid}")],
                )
            except errors.NotFound:
                continue
            return api_version, list(found.get("items") or [])
        return None

    async def patch_workload(
        self, api_version: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        metrics.API_WRITES.labels(verb="patch", kind="Workload").inc()
        return await self._call(
            "PATCH",
            path(api_version, "Workload", namespace, name),
            f"patching Kueue Workload {namespace}/{name}",
            body=patch,
            content_type=MERGE_PATCH,
            query=[("fieldManager", FIELD_MANAGER)],
        )

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``.status`` of a FineTuneJob; returns the whole updated object."""
        metrics.API_WRITES.labels(verb="patch", kind="FineTuneJob/status").inc()
        resource = path(contract.API_VERSION, crd.KIND, namespace, name, "status")
        return await self._call(
            "PATCH",
            resource,
            f"patching the status of FineTuneJob {namespace}/{name}",
            body={"status": status},
            content_type=MERGE_PATCH,
            query=[("fieldManager", FIELD_MANAGER)],
        )

    async def get_finetunejob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call(
                "GET", path(contract.API_VERSION, crd.KIND, namespace, name), f"reading FineTuneJob {namespace}/{name}"
            )
        except errors.NotFound:
            return None

    async def delete_finetunejob(self, namespace: str, name: str) -> None:
        metrics.API_WRITES.labels(verb="delete", kind="FineTuneJob").inc()
        resource = path(contract.API_VERSION, crd.KIND, namespace, name)
        with contextlib.suppress(errors.NotFound):  # already gone: what we wanted
            await self._call("DELETE", resource, f"deleting FineTuneJob {namespace}/{name}")

    async def post_event(self, event: dict[str, Any]) -> None:
        metrics.API_WRITES.labels(verb="create", kind="Event").inc()
        resource = path("v1", "Event", event["metadata"].get("namespace"))
        await self._call("POST", resource, f"posting Event {event['reason']}", body=event)

    async def ensure_peering(self, name: str, *, namespace: str | None) -> bool:
        """Create kopf's peering object if it is missing; False if its CRD is not installed.

        kopf with ``--peering`` stays paused until it sees its peering object, and a chart cannot
        ship a custom resource together with its CRD, so the operator creates it itself.
        """
        kind = "KopfPeering" if namespace else "ClusterKopfPeering"
        md = {"name": name, "namespace": namespace} if namespace else {"name": name}
        obj = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": md}
        try:
            await self._call(
                "POST", path("kopf.dev/v1", kind, namespace), f"creating the kopf peering object {name}", body=obj
            )
        except errors.AlreadyExists:
            return True
        except errors.NotFound:
            return False
        return True
