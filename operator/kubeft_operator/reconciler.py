"""Level-triggered reconciliation of one FineTuneJob: observe, create what is missing, report.

:mod:`kubeft_operator.handlers` calls :meth:`Reconciler.reconcile` on every watch event of a
FineTuneJob, of its Job and of its pods. Each call reads the freshest known state (kopf's
in-memory indices, or what this process itself last wrote), then:

1. stops if the FineTuneJob is Succeeded or Failed (and deletes it once its TTL is over);
2. creates the missing children with deterministic names (AlreadyExists: adopt ours, refuse
   others'), or aligns the Job's ``spec.suspend`` with ``spec.suspend``;
3. computes the status (:func:`kubeft_operator.status.compute`) and merge-patches only what changed;
4. posts the Events of the transition, then arms one timer if something must be looked at later
   (a retry after an error, a settling Job, a TTL).

Nothing is remembered across restarts, and nothing needs to be: names are deterministic, the
status is recomputed from what exists, and "finished" is read from the FineTuneJob's own status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import pydantic

from kubeft_operator import config, metrics, status
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import children, defaults, endpoints, event, fit, images, kueue, meta, resume, verify
from kubeft_operator.builders import job as job_builder
from kubeft_operator.k8s import errors

Key = tuple[str, str]
MAX_BACKOFF_SECONDS = 300.0
# How soon to look again for the Workload Kueue has not created yet, when it must be deactivated,
# or has not decided about yet, when the status is to say why Kueue holds the Job.
WORKLOAD_POLL_SECONDS = 2.0
# At most this many looks per state of a held Job while Kueue says nothing (a Kueue that does not
# manage batch/v1 Jobs never will).
WORKLOAD_LOOKS = 5

logger = logging.getLogger(__name__)


class Api(Protocol):
    """What the reconciler needs from the API server; :class:`kubeft_operator.k8s.client.Api`."""

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def read(self, obj: dict[str, Any]) -> dict[str, Any] | None: ...

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]: ...

    async def get_finetunejob(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def delete_finetunejob(self, namespace: str, name: str) -> None: ...

    async def post_event(self, event: dict[str, Any]) -> None: ...

    async def list_workloads(self, namespace: str, job_uid: str) -> tuple[str, list[dict[str, Any]]] | None: ...

    async def patch_workload(
        self, api_version: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...


class View(Protocol):
    """The watched state, kept current by kopf's indices; see :mod:`kubeft_operator.handlers`."""

    def finetunejob(self, key: Key) -> Mapping[str, Any] | None: ...

    def jobs(self, key: Key) -> Sequence[Mapping[str, Any]]: ...

    def pods(self, key: Key) -> Sequence[Mapping[str, Any]]: ...


class _Gone(Exception):
    """The FineTuneJob was deleted or finished while the watch had not told us yet."""


def rfc3339(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _resource_version(obj: Mapping[str, Any] | None) -> int:
    """resourceVersion as a number, to tell which of two copies is newer (etcd revisions are)."""
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _newer(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if a is None or b is None:
        return a if b is None else b
    return a if _resource_version(a) >= _resource_version(b) else b


class Reconciler:
    """One per operator process; holds per-FineTuneJob locks, timers and what it last wrote."""

    def __init__(
        self,
        api: Api,
        view: View,
        settings: config.Settings,
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._view = view
        self._settings = settings
        self._instance = instance
        self._clock = clock
        self._locks: dict[Key, asyncio.Lock] = {}
        # Our own writes, newer than the watch until it catches up (compared by resourceVersion);
        # dropped once it has (_finetunejob, _job), so a job's view is held once, in kopf's index.
        self._written: dict[Key, Mapping[str, Any]] = {}
        self._jobs: dict[Key, Mapping[str, Any]] = {}
        self._verify_jobs: dict[Key, Mapping[str, Any]] = {}
        self._parsed: dict[Key, tuple[tuple[str, int], tuple[spec_models.FineTuneJobSpec | None, str | None]]] = {}
        self._checkpoints: dict[Key, tuple[str, int | None]] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._phases: dict[Key, str] = {}
        # (Job uid, active) that Kueue's Workload of a queued job was last seen or made to say.
        self._workloads: dict[Key, tuple[str, bool]] = {}
        # Kueue's word on a held queued Job, for its status: ((Job uid, resourceVersion), looks, Workload view).
        self._kueue_words: dict[Key, tuple[tuple[str, str], int, Mapping[str, Any] | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Where timer wake-ups go (see wake_through); None: each reconciles in a task of its own.
        self._requeue: Callable[[Key], None] | None = None

    # ------------------------------------------------------------------------- entry points

    async def reconcile(self, key: Key) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            started = time.perf_counter()
            try:
                wake_after = await self._reconcile(key)
            except _Gone:
                wake_after = None
            except Exception:
                metrics.RECONCILE_ERRORS.inc()
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                wake_after = min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS)
                logger.exception("reconciling FineTuneJob %s/%s failed; retrying in %.0fs", *key, wake_after)
            finally:
                metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
            self._wake(key, wake_after)

    def wake_through(self, requeue: Callable[[Key], None]) -> None:
        """Hand timer wake-ups (requeue-after, backoff, TTL) to ``requeue``, the handlers' work queue,
        rather than reconciling each in a task of its own: then they coalesce with the watch events
        of the same job and count against the queue's bound on reconciles running at once."""
        self._requeue = requeue

    def forget(self, key: Key) -> None:
        """The FineTuneJob is gone: drop everything kept for it."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._written.pop(key, None)
        self._jobs.pop(key, None)
        self._verify_jobs.pop(key, None)
        self._parsed.pop(key, None)
        self._checkpoints.pop(key, None)
        self._failures.pop(key, None)
        self._phases.pop(key, None)
        self._workloads.pop(key, None)
        self._kueue_words.pop(key, None)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    def forget_job(self, key: Key, uid: str) -> None:
        """The Job with ``uid`` was deleted: stop trusting our copy of it."""
        for cache in (self._jobs, self._verify_jobs):
            job = cache.get(key)
            if job is not None and job.get("metadata", {}).get("uid") == uid:
                del cache[key]

    def phases(self) -> Iterable[str]:
        return list(self._phases.values())

    def samples(self) -> list[metrics.JobSample]:
        """Each FineTuneJob :meth:`phases` counts, with its status as last seen: the source of the per-job
        gauges. Read at scrape time from the metrics thread, so it only reads (never prunes) the caches."""
        found = []
        for key, phase in list(self._phases.items()):
            seen = self._view.finetunejob(key)
            written = self._written.get(key)
            if (
                seen is not None
                and written is not None
                and written["metadata"].get("uid") != seen["metadata"].get("uid")
            ):
                written = None
            body = _newer(seen, written) or {}
            found.append(metrics.JobSample(namespace=key[0], name=key[1], phase=phase, status=body.get("status") or {}))
        return found

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    # --------------------------------------------------------------------------- internals

    def _now(self) -> str:
        return rfc3339(self._clock())

    def _wake(self, key: Key, delay: float | None) -> None:
        """Arm the one timer of ``key`` (replacing an earlier one), or disarm it."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(delay, 0.0), self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        if self._requeue is not None:
            self._requeue(key)
            return
        task = asyncio.get_running_loop().create_task(self.reconcile(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finetunejob(self, key: Key) -> Mapping[str, Any] | None:
        seen = self._view.finetunejob(key)
        written = self._written.get(key)
        if seen is None:
            return None
        if written is not None and (
            written["metadata"].get("uid") != seen["metadata"].get("uid")
            or _resource_version(seen) >= _resource_version(written)
        ):
            # Another object of the same name, or the watch has caught up with our write: keep one
            # view per job, the index's, not two.
            del self._written[key]
            written = None
        return _newer(seen, written)

    def _job(
        self, key: Key, uid: str, *, name: str | None = None, cache: dict[Key, Mapping[str, Any]] | None = None
    ) -> Mapping[str, Any] | None:
        """Our Job named ``name`` (default: the trainer Job) as the watch or our own last write shows it."""
        name = name or meta.job_name(key[1])
        cache = self._jobs if cache is None else cache
        seen = None
        for candidate in self._view.jobs(key):
            if candidate.get("metadata", {}).get("name") == name and meta.is_owned_by(dict(candidate), uid):
                seen = _newer(seen, candidate)
        ours = cache.get(key)
        if ours is not None and not meta.is_owned_by(dict(ours), uid):
            ours = None
        if ours is not None and seen is not None and _resource_version(seen) >= _resource_version(ours):
            del cache[key]  # the watch has caught up with our own copy: the index's view suffices
            ours = None
        return _newer(seen, ours)

    def _parse_cached(self, key: Key, body: Mapping[str, Any]) -> tuple[spec_models.FineTuneJobSpec | None, str | None]:
        """:meth:`_parse`, once per spec generation: the spec is immutable but for suspend and TTL,
        and every reconcile of a job would otherwise validate the same document again."""
        md = body["metadata"]
        stamp = (str(md.get("uid")), int(md.get("generation") or 0))
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        result = self._parse(body)
        self._parsed[key] = (stamp, result)
        return result

    def _parse(self, body: Mapping[str, Any]) -> tuple[spec_models.FineTuneJobSpec | None, str | None]:
        try:
            parsed = spec_models.FineTuneJobSpec.model_validate(body.get("spec") or {})
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            return None, f"spec.{where}: {first['msg']}"
        refused = endpoints.problem(parsed, self._settings) or images.problem(parsed, self._settings)
        if refused is not None:
            return None, refused
        return defaults.apply(parsed, self._settings), None

    async def _reconcile(self, key: Key) -> float | None:
        body = self._finetunejob(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        md = body["metadata"]
        owner = meta.Owner(name=md["name"], namespace=md["namespace"], uid=md["uid"])
        current: Mapping[str, Any] = body.get("status") or {}
        now = self._now()
        await self._post_checkpoint(key, owner, current, now=now)
        if status.is_terminal(current):
            self._phases[key] = current["phase"]
            self._failures.pop(key, None)
            return await self._expire(owner, body, now=now)

        spec, spec_error = self._parse_cached(key, body)
        job = self._job(key, owner.uid)
        create_error = waiting = resumed_from = wake = None
        # Pure arithmetic on the spec (no fetch): with failIfNotFits, an estimate over the GPU's memory
        # stops the job here, before any child exists; status.compute says why.
        estimate = fit.assess(spec, self._settings) if spec is not None else None
        if spec is not None and job is None and fit.refusal(spec, estimate) is None:
            resolution = await self._resolve_resume(owner, spec)
            if resolution.refused is not None:
                spec, spec_error = None, resolution.refused
            elif resolution.wait is not None:
                waiting = resolution.wait
            else:
                resumed_from = resolution.uri
                try:
                    job, create_error = await self._create_children(key, owner, spec, current, resume_uri=resumed_from)
                except errors.Invalid as err:
                    # The API server refuses an object built from this spec (a field its schema
                    # could not check, such as a label): retrying cannot help, so the run fails.
                    spec, spec_error = None, f"the API server refused it: {err}"
        elif spec is not None and job is not None:
            job, wake = await self._sync_suspend(key, owner, spec, job)
        elif job is not None:
            # The spec is refused now (an operator upgrade, a policy made stricter) while its trainer
            # may be running: stop it in this reconcile; the Failed condition says why.
            job, wake = await self._stop(key, owner, job, queued=self._queued(key))
        workload = look_again = None
        if spec is not None and job is not None:
            workload, look_again = await self._kueue_word(key, owner, spec, job, current)
        pods = self._view.pods(key) if job is not None else ()
        verify_reason = verify.reason(spec, self._settings) if spec is not None else None
        verify_job = None
        if verify_reason is not None and job is not None:
            verify_job = self._job(key, owner.uid, name=meta.verify_job_name(owner.name), cache=self._verify_jobs)
        observed = status.Observed(
            name=owner.name,
            generation=int(md.get("generation") or 0),
            status=current,
            spec=spec,
            spec_error=spec_error,
            job=job,
            pods=pods,
            create_error=create_error,
            uid=owner.uid,
            resumed_from=resumed_from,
            waiting=waiting,
            verify_reason=verify_reason,
            verify_job=verify_job,
            workload=workload,
            estimate=estimate,
        )
        target = status.verify_target(observed)
        if spec is not None and target is not None and verify_job is None:
            verify_job = await self._create_verify_job(key, owner, spec, target)
            observed = dataclasses.replace(observed, verify_job=verify_job)
        result = status.compute(observed, now=now)
        patch = status.changes(current, result.status)
        new = {**current, **result.status}
        if patch:
            try:
                updated = await self._api.patch_status(owner.namespace, owner.name, patch)
            except errors.NotFound:
                raise _Gone from None
            self._written[key] = status.finetunejob_view(updated)
            new = dict(updated.get("status") or new)
            logger.info("FineTuneJob %s/%s is %s", owner.namespace, owner.name, new.get("phase"))
        self._phases[key] = str(new.get("phase") or "Pending")
        for item in status.transitions(current, new):
            await self._post(owner, item, now=now)

        if create_error is not None:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            return min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS)
        self._failures.pop(key, None)
        if status.is_terminal(new):
            return await self._expire(owner, {**body, "status": new}, now=now)
        waits = [w for w in (result.requeue_after, wake, look_again) if w is not None]
        return min(waits) if waits else None

    async def _resolve_resume(self, owner: meta.Owner, spec: spec_models.FineTuneJobSpec) -> resume.Resolution:
        """Read the FineTuneJob that spec.resumeFrom.job names (one GET), then decide; see builders.resume."""
        source = source_spec = source_error = None
        wanted = spec.resume_from
        if wanted is not None and wanted.job is not None and wanted.job != owner.name:
            source = await self._api.get_finetunejob(owner.namespace, wanted.job)
            if source is not None:
                source_spec, source_error = self._parse(source)
        return resume.resolve(
            owner.name, owner.namespace, spec, source=source, source_spec=source_spec, source_error=source_error
        )

    async def _create_children(
        self,
        key: Key,
        owner: meta.Owner,
        spec: spec_models.FineTuneJobSpec,
        current: Mapping[str, Any],
        *,
        resume_uri: str | None = None,
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        """Create (or adopt) every child; returns the Job, or why a child could not be created."""
        if current.get("children"):
            # We made children before and the Job is missing now: make sure the watch is not
            # simply behind a deletion of the FineTuneJob itself before making a new Job.
            fresh = await self._api.get_finetunejob(owner.namespace, owner.name)
            if fresh is None or fresh["metadata"].get("uid") != owner.uid or fresh["metadata"].get("deletionTimestamp"):
                raise _Gone
            if status.is_terminal(fresh.get("status") or {}):
                raise _Gone
        created: dict[str, Any] | None = None
        # Each stage's objects go up in parallel (three round trips, not five), the Job last, so
        # that "Job observed" still means "all children created".
        for stage in children.stages(owner, spec, settings=self._settings, resume_uri=resume_uri):
            outcomes = await asyncio.gather(*(self._create_or_adopt(owner, obj) for obj in stage))
            problem = next((error for _, error in outcomes if error is not None), None)
            if problem is not None:
                return None, problem
            created = outcomes[-1][0]
        assert created is not None
        job = status.job_view(created)
        self._jobs[key] = job
        return job, None

    async def _create_or_adopt(
        self, owner: meta.Owner, obj: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Create ``obj``; if it exists already, adopt it when it is ours. The object, or why not."""
        what = f"{obj['kind']} {obj['metadata']['name']}"
        try:
            return await self._api.create(obj), None
        except errors.AlreadyExists:
            existing = await self._api.read(obj)
            if existing is None:
                return None, f"{what} was being deleted; retrying"
            if not meta.is_owned_by(existing, owner.uid):
                return None, (
                    f"{what} already exists and does not belong to this FineTuneJob; "
                    "delete it or give the FineTuneJob another name"
                )
            return existing, None
        except errors.Invalid:
            raise
        except errors.ApiFailure as err:
            return None, str(err)

    async def _create_verify_job(
        self, key: Key, owner: meta.Owner, spec: spec_models.FineTuneJobSpec, target: tuple[str, str | None]
    ) -> Mapping[str, Any]:
        """Create (or adopt) NAME-verify; an API error propagates, and the reconcile retries with backoff."""
        obj = verify.build(owner, spec, settings=self._settings, uri=target[0], sha256=target[1])
        try:
            created = await self._api.create(obj)
        except errors.AlreadyExists:
            existing = await self._api.read(obj)
            if existing is None or not meta.is_owned_by(existing, owner.uid):
                raise
            created = existing
        logger.info("FineTuneJob %s/%s: verifying %s with Job %s", *key, target[0], obj["metadata"]["name"])
        job = status.job_view(created)
        self._verify_jobs[key] = job
        return job

    async def _sync_suspend(
        self, key: Key, owner: meta.Owner, spec: spec_models.FineTuneJobSpec, job: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], float | None]:
        """Bring the run in line with ``spec.suspend``: through Kueue's Workload when Kueue admits the
        Job (builders/kueue.py says why), else on the Job itself. Returns the Job and when to look again."""
        if kueue.queued(spec):
            done = await self._sync_workload(key, owner, job, active=not spec.suspend)
            if done is not None:
                return job, done or None
        patch = job_builder.suspend_patch(spec, dict(job))
        return (job if patch is None else await self._patch_job(key, owner, patch)), None

    async def _stop(
        self, key: Key, owner: meta.Owner, job: Mapping[str, Any], *, queued: bool
    ) -> tuple[Mapping[str, Any], float | None]:
        if queued and not job_builder.finished(dict(job)):
            # Even a Job still waiting in the queue: Kueue must not admit it later.
            done = await self._sync_workload(key, owner, job, active=False)
            if done is not None:
                return job, done or None
        patch = job_builder.stop_patch(dict(job))
        if patch is None:
            return job, None
        logger.warning("FineTuneJob %s/%s: its spec is refused now; suspending its Job", owner.namespace, owner.name)
        return await self._patch_job(key, owner, patch), None

    async def _sync_workload(
        self, key: Key, owner: meta.Owner, job: Mapping[str, Any], *, active: bool
    ) -> float | None:
        """Make Kueue's Workload of ``job`` active or not. None: the cluster has no Kueue (the caller
        acts on the Job, which nothing else then writes); 0: done; else seconds until the next look,
        while Kueue has not created the Workload of a Job that must not run."""
        job_uid = str(job.get("metadata", {}).get("uid") or "")
        if self._workloads.get(key) == (job_uid, active):
            return 0.0
        if active and not job.get("spec", {}).get("suspend"):
            return 0.0  # running, so admitted and active; only a suspended Job may wait on us
        found = await self._api.list_workloads(owner.namespace, job_uid)
        if found is None:
            return None
        api_version, items = found
        workload = kueue.workload_of(items, job_uid)
        if workload is None:
            if active:  # Kueue creates it active
                self._workloads[key] = (job_uid, True)
                return 0.0
            return WORKLOAD_POLL_SECONDS
        patch = kueue.active_patch(workload, active=active)
        if patch is not None:
            name = workload["metadata"]["name"]
            await self._api.patch_workload(api_version, owner.namespace, name, patch)
            logger.info("FineTuneJob %s/%s: Kueue Workload %s set active=%s", owner.namespace, owner.name, name, active)
        self._workloads[key] = (job_uid, active)
        return 0.0

    async def _kueue_word(
        self,
        key: Key,
        owner: meta.Owner,
        spec: spec_models.FineTuneJobSpec,
        job: Mapping[str, Any],
        current: Mapping[str, Any],
    ) -> tuple[Mapping[str, Any] | None, float | None]:
        """Kueue's Workload of a queued Job, for the status to say why Kueue holds the Job (no quota
        yet, preempted) and in which ClusterQueue it admits it. Looked up only while Kueue holds the
        Job and when it admits it, once per change of the Job, plus up to WORKLOAD_LOOKS looks while
        Kueue has not decided yet; a running job costs no lookup. Returns the Workload's view (None
        when there is none, or no Kueue) and when to look again."""
        if not kueue.queued(spec) or spec.suspend or job_builder.finished(dict(job)):
            return None, None
        held = bool(job.get("spec", {}).get("suspend"))
        if not held and not status.waiting_for_kueue(current):
            return None, None
        md = job.get("metadata", {})
        stamp = (str(md.get("uid") or ""), str(md.get("resourceVersion") or ""))
        seen = self._kueue_words.get(key)
        looks = 1
        if seen is not None and seen[0] == stamp:
            if status.kueue_has_spoken(seen[2]) or seen[1] >= WORKLOAD_LOOKS:
                return seen[2], None
            looks = seen[1] + 1
        found = await self._api.list_workloads(owner.namespace, stamp[0])
        if found is None:  # no Kueue: nothing will say more
            self._kueue_words[key] = (stamp, WORKLOAD_LOOKS, None)
            return None, None
        workload = kueue.workload_of(found[1], stamp[0])
        view = status.workload_view(workload) if workload is not None else None
        self._kueue_words[key] = (stamp, looks, view)
        if not held or status.kueue_has_spoken(view) or looks >= WORKLOAD_LOOKS:
            return view, None
        return view, WORKLOAD_POLL_SECONDS

    def _queued(self, key: Key) -> bool:
        """Whether the refused spec of this job named a Kueue queue or took the operator's default one
        (builders/defaults.py), as its Job was built; read from the raw spec: it does not parse."""
        body = self._finetunejob(key) or {}
        own = ((body.get("spec") or {}).get("scheduling") or {}).get("queueName")
        return bool(own or self._settings.default_scheduling.queue_name)

    async def _patch_job(self, key: Key, owner: meta.Owner, patch: dict[str, Any]) -> Mapping[str, Any]:
        updated = status.job_view(await self._api.patch_job(owner.namespace, meta.job_name(owner.name), patch))
        self._jobs[key] = updated
        return updated

    async def _expire(self, owner: meta.Owner, body: Mapping[str, Any], *, now: str) -> float | None:
        """Delete a finished FineTuneJob whose TTL is over; else say when to look again."""
        remaining = status.ttl_remaining(body.get("status") or {}, body.get("spec") or {}, now=now)
        if remaining is None or remaining > 0:
            return remaining
        logger.info("FineTuneJob %s/%s: ttlSecondsAfterFinished is over, deleting it", owner.namespace, owner.name)
        await self._api.delete_finetunejob(owner.namespace, owner.name)
        return None

    async def _post_checkpoint(self, key: Key, owner: meta.Owner, current: Mapping[str, Any], *, now: str) -> None:
        step = status.checkpoint_step(current)
        seen_uid, previous = self._checkpoints.get(key, (owner.uid, None))
        self._checkpoints[key] = (owner.uid, step)
        item = status.checkpointed(previous if seen_uid == owner.uid else None, step)
        if item is not None:
            await self._post(owner, item, now=now)

    async def _post(self, owner: meta.Owner, item: status.Event, *, now: str) -> None:
        """Post an Event; best effort, as in Kubernetes itself: a lost Event never fails a reconcile."""
        body = event.build(
            owner,
            type=item.type,
            reason=item.reason,
            message=item.message,
            now=now,
            suffix=f"{time.time_ns():x}",
            instance=self._instance,
        )
        try:
            await self._api.post_event(body)
        except errors.ApiFailure as err:
            logger.warning("could not post Event %s for %s/%s: %s", item.reason, owner.namespace, owner.name, err)
