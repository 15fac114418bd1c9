"""lightkube-backed implementation of the reconciler's API: plain dicts in, plain dicts out.

Created by the startup handler in :mod:`kubeft_operator.handlers`; used by
:class:`kubeft_operator.reconciler.Reconciler`. Every write is counted in
``kubeft_api_writes_total`` so the per-job write budget can be measured. The operator never
reads Secrets: it has no RBAC for them and no method here touches them.
"""

from __future__ import annotations

from typing import Any, cast

import httpx2
import lightkube
from lightkube import codecs, generic_resource
from lightkube.core import resource_registry
from lightkube.resources import batch_v1
from lightkube.types import PatchType

from kubeft_operator import metrics
from kubeft_operator.api import crd
from kubeft_operator.k8s import errors

FIELD_MANAGER = "kubeft-operator"
FineTuneJob = generic_resource.create_namespaced_resource(crd.GROUP, crd.VERSION, crd.KIND, crd.PLURAL)
# Registered so that codecs.from_dict() knows kopf's peering kinds.
generic_resource.create_global_resource("kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings")
generic_resource.create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")


def _translate(err: lightkube.ApiError, what: str) -> errors.ApiFailure:
    status = err.status
    code = int(status.code or 0)
    message = f"{what}: {status.message or status.reason or 'request failed'}"
    if code == 409 and status.reason == "AlreadyExists":
        return errors.AlreadyExists(message, code=code)
    if code == 404:
        return errors.NotFound(message, code=code)
    return errors.ApiFailure(message, code=code)


def _describe(obj: dict[str, Any]) -> str:
    md = obj.get("metadata", {})
    return f"{obj.get('kind')} {md.get('namespace', '')}/{md.get('name', '')}".replace(" /", " ")


def _as_dict(obj: Any) -> dict[str, Any]:
    return cast(dict[str, Any], obj.to_dict())


class Api:
    """Thin async facade over ``lightkube.AsyncClient``; see the reconciler's ``Api`` protocol."""

    def __init__(self, client: lightkube.AsyncClient) -> None:
        self._client = client

    @classmethod
    def connect(cls) -> Api:
        """In-cluster config, else ``$KUBECONFIG``, else ``~/.kube/config`` (lightkube's order)."""
        return cls(lightkube.AsyncClient(field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(30.0)))

    async def close(self) -> None:
        await self._client.close()

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        metrics.API_WRITES.labels(verb="create", kind=obj["kind"]).inc()
        try:
            created = await self._client.create(codecs.from_dict(obj))
        except lightkube.ApiError as err:
            raise _translate(err, f"creating {_describe(obj)}") from None
        return _as_dict(created)

    async def read(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The live object with ``obj``'s kind, namespace and name, or None."""
        res: Any = resource_registry.resource_registry.load(obj["apiVersion"], obj["kind"])
        md = obj["metadata"]
        try:
            found = await self._client.get(res, md["name"], namespace=md.get("namespace"))
        except lightkube.ApiError as err:
            if err.status.code == 404:
                return None
            raise _translate(err, f"reading {_describe(obj)}") from None
        return _as_dict(found)

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        metrics.API_WRITES.labels(verb="patch", kind="Job").inc()
        try:
            job = await self._client.patch(batch_v1.Job, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        except lightkube.ApiError as err:
            raise _translate(err, f"patching Job {namespace}/{name}") from None
        return _as_dict(job)

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``.status`` of a FineTuneJob; returns the whole updated object."""
        metrics.API_WRITES.labels(verb="patch", kind="FineTuneJob/status").inc()
        try:
            updated = await self._client.patch(
                FineTuneJob.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
            )
        except lightkube.ApiError as err:
            raise _translate(err, f"patching the status of FineTuneJob {namespace}/{name}") from None
        return _as_dict(updated)

    async def get_finetunejob(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self._client.get(FineTuneJob, name, namespace=namespace)
        except lightkube.ApiError as err:
            if err.status.code == 404:
                return None
            raise _translate(err, f"reading FineTuneJob {namespace}/{name}") from None
        return _as_dict(found)

    async def delete_finetunejob(self, namespace: str, name: str) -> None:
        metrics.API_WRITES.labels(verb="delete", kind="FineTuneJob").inc()
        try:
            await self._client.delete(FineTuneJob, name, namespace=namespace)
        except lightkube.ApiError as err:
            if err.status.code != 404:
                raise _translate(err, f"deleting FineTuneJob {namespace}/{name}") from None

    async def post_event(self, event: dict[str, Any]) -> None:
        metrics.API_WRITES.labels(verb="create", kind="Event").inc()
        try:
            await self._client.create(codecs.from_dict(event))
        except lightkube.ApiError as err:
            raise _translate(err, f"posting Event {event['reason']}") from None

    async def ensure_peering(self, name: str, *, namespace: str | None) -> bool:
        """Create kopf's peering object if it is missing; False if its CRD is not installed.

        kopf with ``--peering`` stays paused until it sees its peering object, and a chart cannot
        ship a custom resource together with its CRD, so the operator creates it itself.
        """
        kind = "KopfPeering" if namespace else "ClusterKopfPeering"
        md = {"name": name, "namespace": namespace} if namespace else {"name": name}
        obj = codecs.from_dict({"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": md})
        try:
            await self._client.create(obj)
        except lightkube.ApiError as err:
            if err.status.code == 409:
                return True
            if err.status.code == 404:
                return False
            raise _translate(err, f"creating the kopf peering object {name}") from None
        return True
