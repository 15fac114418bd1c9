"""Pure status computation: observed FineTuneJob + Job + pods (+ Kueue's Workload) -> phase, conditions, artifact.

:func:`compute` is the single place that decides a FineTuneJob's phase; the reconciler calls it
after every observation and patches the status subresource only with what :func:`changes`
returns. :func:`transitions` turns an old/new status pair into the Events to post. Nothing here
performs I/O: the same observations always give the same status, apart from ``now`` stamped on
new transitions, which is what makes the reconciler safe to re-run after a crash.

Rules:
- Succeeded and Failed are final. Once there, the status never changes again, whatever happens
  to the Job (TTL, manual delete): "done" comes from the FineTuneJob's own status, never from
  whether the Job exists.
- The operator owns the fields in :data:`OWNED`; ``progress`` belongs to the trainer and is
  never written here. ``metrics`` is written once, from the successful pod's termination message.
- A condition's ``lastTransitionTime`` only moves when its ``status`` changes.
- Nothing here follows the trainer's progress: conditions and their messages change with the
  phase and with what Kueue says, so a watcher of conditions (Argo CD's health message) sees a
  stable job while it trains.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubeft_operator.api import contract, layout, promotion, redaction
from kubeft_operator.api import spec as spec_models
from kubeft_operator.api import status as status_models
from kubeft_operator.builders import fit, meta, rendezvous

Phase = status_models.Phase

OWNED = (
    "phase",
    "conditions",
    "observedGeneration",
    "startTime",
    "completionTime",
    "artifact",
    "metrics",
    "tensorboardUri",
    "runUri",
    "resumedFrom",
    "children",
    "retries",
    "estimate",
)
CONDITION_ORDER = ("Fits", "Created", "Queued", "Suspended", "Running", "Verified", "Promoted", "Succeeded", "Failed")
# Waiting reasons of the trainer container that need a human (or a Secret) rather than time.
BLOCKING_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"}
)
# The Job's Complete/Failed condition can be seen before the pod that carries the termination
# message; wait this long for the pod before finishing without it.
POD_GRACE_SECONDS = 10.0
# How often a job whose spec.resumeFrom names an unfinished run looks at it again.
RESUME_POLL_SECONDS = 10.0
CONTROLLER_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
UNCOUNTED = frozenset(contract.UNCOUNTED_EXIT_CODES)
# The conditions of Kueue's Workload that say why it holds a Job, and the eviction that is the
# user's own doing (spec.suspend through the Workload's spec.active), not Kueue's.
WORKLOAD_CONDITIONS = ("QuotaReserved", "Admitted", "Evicted", "Preempted")
KUEUE_DEACTIVATED = "Deactivated"


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the reconciler saw. ``spec`` is None exactly when ``spec_error`` says why."""

    name: str
    generation: int
    status: Mapping[str, Any]
    spec: spec_models.FineTuneJobSpec | None
    spec_error: str | None = None
    job: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    create_error: str | None = None
    uid: str = ""
    # The adapter or checkpoint spec.resumeFrom resolved to, when the children were created now.
    resumed_from: str | None = None
    # Why the children are not created yet: the run spec.resumeFrom names has not finished.
    waiting: str | None = None
    # Why the operator must verify the exported adapter itself (builders/verify.py), and its Job.
    verify_reason: str | None = None
    verify_job: Mapping[str, Any] | None = None
    # Kueue's Workload of the Job (:func:`workload_view`) while Kueue holds or admits it, when looked up.
    workload: Mapping[str, Any] | None = None
    # status.estimate (builders/fit.py), computed from the spec before any child exists.
    estimate: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Result:
    """The operator-owned status fields, and when to look again if something is still settling."""

    status: dict[str, Any]
    requeue_after: float | None = None


@dataclasses.dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


# ------------------------------------------------------------------------------ compact views


def finetunejob_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a FineTuneJob the reconciler reads, copied so later events cannot alter them."""
    md = body.get("metadata", {})
    keep = ("name", "namespace", "uid", "generation", "resourceVersion", "deletionTimestamp")
    return {
        "metadata": {k: md[k] for k in keep if md.get(k) is not None},
        "spec": copy.deepcopy(dict(body.get("spec") or {})),
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


def job_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Job that :func:`compute` reads; what the operator keeps in memory per Job."""
    md = body.get("metadata", {})
    return {
        "metadata": {
            "name": md.get("name"),
            "uid": md.get("uid"),
            "resourceVersion": md.get("resourceVersion"),
            "ownerReferences": md.get("ownerReferences") or [],
        },
        "spec": {"suspend": bool(body.get("spec", {}).get("suspend"))},
        "status": dict(body.get("status") or {}),
    }


def pod_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a trainer pod that :func:`compute` reads."""
    md = body.get("metadata", {})
    labels = md.get("labels") or {}
    status = body.get("status") or {}
    return {
        "metadata": {
            "name": md.get("name"),
            "uid": md.get("uid"),
            "creationTimestamp": md.get("creationTimestamp"),
            "controllerUid": next((labels[k] for k in CONTROLLER_UID_LABELS if k in labels), None),
            # The machine rank of a multi-node job's pod (builders/rendezvous.py); None for one pod.
            "index": (md.get("annotations") or {}).get(rendezvous.INDEX_ANNOTATION),
        },
        "status": {
            "phase": status.get("phase"),
            "conditions": status.get("conditions") or [],
            "containerStatuses": [
                s
                for s in status.get("containerStatuses") or []
                if s.get("name") in (meta.CONTAINER, meta.VERIFY_CONTAINER)
            ],
        },
    }


def workload_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of Kueue's Workload that :func:`compute` reads: the ClusterQueue that reserved quota
    for it (``status.admission``, only while it holds quota) and the conditions that say why not."""
    md = body.get("metadata", {})
    raw = body.get("status") or {}
    cluster_queue = (raw.get("admission") or {}).get("clusterQueue")
    conditions = [
        {k: c.get(k) for k in ("type", "status", "reason", "message")}
        for c in raw.get("conditions") or []
        if c.get("type") in WORKLOAD_CONDITIONS
    ]
    out: dict[str, Any] = {"conditions": conditions}
    if cluster_queue:
        out["admission"] = {"clusterQueue": cluster_queue}
    return {"metadata": {"name": md.get("name")}, "status": out}


def kueue_has_spoken(workload: Mapping[str, Any] | None) -> bool:
    """Whether Kueue has decided about the Workload yet: reserved quota for it, or said why not."""
    conditions = (workload or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == "QuotaReserved" for c in conditions)


def waiting_for_kueue(status: Mapping[str, Any]) -> bool:
    """Whether the status says the Job waits for Kueue (its Queued condition is True)."""
    return _conditions_by_type(status).get("Queued", {}).get("status") == "True"


# ---------------------------------------------------------------------------------- helpers


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _age(value: str | None, now: str) -> float:
    if not value:
        return float("inf")
    return (parse_time(now) - parse_time(value)).total_seconds()


def _job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _trainer_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The status of the pod's one kubeft container: the trainer's, or the verifier's in NAME-verify."""
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") in (meta.CONTAINER, meta.VERIFY_CONTAINER)), {})


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = _trainer_status(pod).get("state") or {}
    terminated = state.get("terminated")
    return dict(terminated) if terminated else None


def _latest(pods: Sequence[Mapping[str, Any]], phase: str) -> Mapping[str, Any] | None:
    """The most recently finished pod in ``phase``; of a multi-node group, the one that explains it:
    pod 0 for a success (it exported), and for a failure a pod that did not merely stop because
    another pod of its group did (exit 67), when there is one."""
    done = [p for p in pods if p.get("status", {}).get("phase") == phase]
    if phase == "Failed":
        done = [p for p in done if (_terminated(p) or {}).get("exitCode") not in UNCOUNTED] or done

    def rank(pod: Mapping[str, Any]) -> tuple[bool, str]:
        term = _terminated(pod) or {}
        first = phase == "Succeeded" and pod.get("metadata", {}).get("index") in (None, "0")
        return first, str(term.get("finishedAt") or pod.get("metadata", {}).get("creationTimestamp") or "")

    return max(done, key=rank) if done else None


def report(pod: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The trainer's JSON termination message (docs/DESIGN.md), or None if absent or not JSON."""
    term = _terminated(pod) if pod is not None else None
    if not term or not term.get("message"):
        return None
    try:
        doc = json.loads(term["message"])
    except (TypeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _artifact(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    raw = doc.get("artifact") if doc else None
    if not isinstance(raw, dict):
        return None
    known = {k: v for k, v in raw.items() if k in ("uri", "sizeBytes", "sha256", "hubUri")}
    try:
        return status_models.Artifact.model_validate(known).wire()
    except ValueError:
        return None


def _metrics(doc: Mapping[str, Any] | None) -> dict[str, float] | None:
    raw = doc.get("metrics") if doc else None
    if not isinstance(raw, dict):
        return None
    numbers = {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return numbers or None


def _promoted(
    spec: spec_models.FineTuneJobSpec, doc: Mapping[str, Any] | None, conditions: _Conditions, *, uri: str
) -> str:
    """Set the Promoted condition from the trainer's gate decision; returns the Succeeded message.

    Only with spec.promotion. The job is Succeeded whether or not the gate passed: training worked,
    and the adapter is at status.artifact.uri either way (spec.output, or the run's own prefix).
    """
    if spec.promotion is None:
        return f"adapter exported to {uri}"
    status, reason, message = promotion.condition(doc)
    output = spec.output.s3.uri.rstrip("/") if spec.output.s3 is not None else None
    if status and uri.rstrip("/") != output:
        # A trainer that says "promoted" must have reported the adapter at spec.output.
        status, reason = False, promotion.NOT_AT_OUTPUT
        message = f"the trainer reported a passed gate but the adapter at {uri}, not at spec.output ({output})"
    conditions.set("Promoted", status, reason, redaction.redact(message))
    if status:
        return f"adapter exported to {uri} and promoted"
    return f"adapter exported to {uri}, not promoted to spec.output (condition Promoted says why)"


def _blocked(pods: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Why a trainer pod cannot start (missing Secret, bad image, unschedulable), if it cannot."""
    for pod in pods:
        if pod.get("status", {}).get("phase") != "Pending":
            continue
        waiting = (_trainer_status(pod).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in BLOCKING_REASONS:
            return waiting["reason"], f"the trainer container cannot start: {waiting.get('message', '')}".rstrip(": ")
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
                return cond["reason"], f"the trainer pod cannot be scheduled: {cond.get('message', '')}".rstrip(": ")
    return None


def _workload_condition(workload: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    for cond in (workload or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _cluster_queue(workload: Mapping[str, Any] | None) -> str | None:
    cluster_queue = ((workload or {}).get("status", {}).get("admission") or {}).get("clusterQueue")
    return str(cluster_queue) if cluster_queue else None


def _held(job_name: str, queue: str, workload: Mapping[str, Any] | None) -> tuple[str, str, str, str]:
    """Why Kueue holds the Job, in Kueue's words when its Workload was looked up: the Queued
    condition's reason and message, then the Running condition's.

    The ClusterQueue is on the Workload only while it holds quota (``status.admission``), so a job
    that was never admitted names its LocalQueue alone; its place in the queue is in Kueue's
    visibility API, which kubeft does not query.
    """
    where = f"LocalQueue {queue}"
    cluster_queue = _cluster_queue(workload)
    if cluster_queue is not None:
        where += f" (ClusterQueue {cluster_queue})"
    evicted = _workload_condition(workload, "Evicted")
    if evicted is not None and evicted.get("status") == "True" and evicted.get("reason") != KUEUE_DEACTIVATED:
        reason = "Preempted" if evicted.get("reason") == "Preempted" else "Evicted"
        why = [str(evicted.get("reason") or reason)]
        preempted = _workload_condition(workload, "Preempted")
        if preempted is not None and preempted.get("status") == "True" and preempted.get("reason"):
            why.append(str(preempted["reason"]))
        told = f": {evicted['message']}" if evicted.get("message") else ""
        message = (
            f"Kueue {reason.lower()} Job {job_name} ({', '.join(why)}){told}; "
            f"it waits in {where} to be admitted again and resumes from its last checkpoint"
        )
        return reason, message, reason, "Kueue stopped the trainer; it resumes once Kueue admits the Job again"
    message = f"Job {job_name} waits for Kueue to admit it from {where}"
    pending = _workload_condition(workload, "QuotaReserved")
    if pending is not None and pending.get("status") == "False" and pending.get("message"):
        message += f": {pending['message']}"
    return "WaitingForAdmission", message, "Queued", "waiting for admission by Kueue"


def locations(spec: spec_models.FineTuneJobSpec, *, name: str, uid: str) -> dict[str, str]:
    """``tensorboardUri`` and ``runUri`` of this run, as :mod:`kubeft_operator.api.layout` places them."""
    output = spec.output.s3.uri if spec.output.s3 is not None else None
    tensorboard = spec.tensorboard.uri if spec.tensorboard is not None else None
    out = {}
    board = layout.tensorboard_uri(output_uri=output, tensorboard=tensorboard, name=name, run_id=uid)
    if board is not None:
        out["tensorboardUri"] = board
    if output is not None:
        out["runUri"] = layout.run_uri(output, uid)
    return out


def _failure(
    failed: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
    *,
    job: Mapping[str, Any],
    spec: spec_models.FineTuneJobSpec,
) -> tuple[str, str]:
    """Reason and message of a failed run: the trainer's own words first, then the exit code, then the Job's."""
    job_reason = failed.get("reason") or ""
    if job_reason == "DeadlineExceeded":
        return "DeadlineExceeded", (
            f"the run was active longer than activeDeadlineSeconds ({spec.active_deadline_seconds}s) and was stopped"
        )
    doc = report(pod)
    term = _terminated(pod) if pod is not None else None
    if doc and doc.get("result") == "Failed" and doc.get("reason"):
        reason, message = str(doc["reason"]), str(doc.get("message") or "")
    elif term is not None:
        code = term.get("exitCode")
        reason = "OOMKilled" if term.get("reason") == "OOMKilled" else contract.EXIT_REASONS.get(code or 0, "Error")
        message = f"the trainer exited with code {code}"
        if term.get("message"):
            message += f": {str(term['message']).strip()[-512:]}"
    else:
        reason, message = job_reason or "Error", failed.get("message") or "the trainer Job failed"
    if job_reason == "BackoffLimitExceeded":
        attempts = job.get("status", {}).get("failed", 0)
        message += f" (gave up after {attempts} failed attempts; retryLimit is {spec.retry_limit})"
    # The trainer's words and its log tail go into a condition and an Event: mask credentials.
    return reason, redaction.redact(message)


class _Conditions:
    """Builds the new condition list, keeping ``lastTransitionTime`` where ``status`` did not change."""

    def __init__(self, old: Sequence[Mapping[str, Any]], *, now: str, generation: int) -> None:
        self._old = {c["type"]: c for c in old if "type" in c}
        self._new: dict[str, dict[str, Any]] = {t: dict(c) for t, c in self._old.items()}
        self._now = now
        self._generation = generation

    def set(self, type_: str, status: bool, reason: str, message: str) -> None:
        value = "True" if status else "False"
        old = self._old.get(type_)
        since = old["lastTransitionTime"] if old and old.get("status") == value else self._now
        self._new[type_] = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": self._generation,
        }

    def clear_if_true(self, type_: str, reason: str, message: str) -> None:
        """Flip a condition that is True to False; leave it absent if it never applied."""
        if self._new.get(type_, {}).get("status") == "True":
            self.set(type_, False, reason, message)

    def list(self) -> list[dict[str, Any]]:
        rank = {t: i for i, t in enumerate(CONDITION_ORDER)}
        return sorted(self._new.values(), key=lambda c: (rank.get(c["type"], len(rank)), c["type"]))


# ---------------------------------------------------------------------------------- compute


def verify_target(observed: Observed) -> tuple[str, str | None] | None:
    """The (s3 uri, claimed manifest sha256) the operator must verify now, or None.

    Only once the trainer Job completed, only for a run that needs it (builders/verify.py), and
    only for an S3 artifact: the Hub is checked by its own commit hashes, not by kubeft.
    """
    job = observed.job
    if observed.verify_reason is None or job is None or _job_condition(job, "Complete") is None:
        return None
    uid = job["metadata"]["uid"]
    pods = [p for p in observed.pods if p.get("metadata", {}).get("controllerUid") in (None, uid)]
    artifact = _artifact(report(_latest(pods, "Succeeded")))
    if artifact is None or not str(artifact["uri"]).startswith("s3://"):
        return None
    return str(artifact["uri"]), artifact.get("sha256")


def _verifying(
    observed: Observed,
    out: dict[str, Any],
    conditions: _Conditions,
    target: tuple[str, str | None],
    trainer_doc: Mapping[str, Any] | None,
    *,
    now: str,
) -> Result:
    """Status while, and after, the operator's own Job checks the adapter the trainer reported."""
    uri = target[0]
    verify_job = observed.verify_job
    out["startTime"] = out.get("startTime") or now
    metrics = _metrics(trainer_doc)
    if metrics is not None:
        out["metrics"] = metrics
    done = _job_condition(verify_job, "Complete") if verify_job else None
    broken = _job_condition(verify_job, "Failed") if verify_job else None
    if verify_job is None or (done is None and broken is None):
        out["phase"] = Phase.RUNNING.value
        conditions.set("Running", False, "Completed", "the trainer finished")
        conditions.set("Verified", False, "Verifying", f"checking {uri} against its manifest: {observed.verify_reason}")
        out["conditions"] = conditions.list()
        return Result(status=out)
    uid = verify_job["metadata"]["uid"]
    pods = [p for p in observed.pods if p.get("metadata", {}).get("controllerUid") == uid]
    pod = _latest(pods, "Succeeded" if done is not None else "Failed")
    since = (done or broken or {}).get("lastTransitionTime")
    if pod is None and POD_GRACE_SECONDS - _age(since, now) > 0:
        return Result(status=owned(observed.status), requeue_after=POD_GRACE_SECONDS - _age(since, now))
    doc = report(pod)
    artifact = _artifact(doc) if done is not None else None
    if artifact is not None:
        out["phase"] = Phase.SUCCEEDED.value
        out["completionTime"] = verify_job.get("status", {}).get("completionTime") or now
        out["artifact"] = artifact
        conditions.set("Verified", True, "ArtifactVerified", f"the operator checked {uri} against its manifest")
        exported = f"adapter exported to {uri}"
        if observed.spec is not None and observed.spec.promotion is not None:
            exported = _promoted(observed.spec, trainer_doc, conditions, uri=uri)
        conditions.set("Succeeded", True, "AdapterExported", f"{exported} and verified")
    else:
        reason = str((doc or {}).get("reason") or "ArtifactUnverified")
        message = str((doc or {}).get("message") or f"the verify Job {meta.verify_job_name(observed.name)} failed")
        out["phase"] = Phase.FAILED.value
        out["completionTime"] = since or now
        conditions.set("Verified", False, reason, redaction.redact(message))
        if observed.spec is not None and observed.spec.promotion is not None:
            conditions.set("Promoted", False, reason, "the operator could not verify the adapter the trainer reported")
        conditions.set("Failed", True, reason, redaction.redact(f"the trainer's result was not accepted: {message}"))
    out["conditions"] = conditions.list()
    return Result(status=out)


def is_terminal(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in status_models.TERMINAL_PHASES


def owned(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: status[k] for k in OWNED if k in status}


def compute(observed: Observed, *, now: str) -> Result:
    """The operator-owned status for ``observed``, at time ``now`` (RFC 3339)."""
    current = observed.status
    if is_terminal(current):
        return Result(status=owned(current))
    out = {k: v for k, v in owned(current).items() if k != "metrics"}
    out["observedGeneration"] = observed.generation
    conditions = _Conditions(current.get("conditions") or [], now=now, generation=observed.generation)
    spec = observed.spec

    if spec is None:
        out["phase"] = Phase.FAILED.value
        out["completionTime"] = now
        conditions.set("Failed", True, "InvalidSpec", observed.spec_error or "the spec is invalid")
        out["conditions"] = conditions.list()
        return Result(status=out)

    if observed.estimate is not None:
        out["estimate"] = dict(observed.estimate)
    fits = fit.verdict(dict(observed.estimate) if observed.estimate is not None else None)
    if fits is not None:
        conditions.set("Fits", *fits)
    if observed.uid:
        out.update(locations(spec, name=observed.name, uid=observed.uid))
    if observed.resumed_from is not None:
        out["resumedFrom"] = observed.resumed_from
    job = observed.job
    refused = fit.refusal(spec, dict(observed.estimate) if observed.estimate is not None else None)
    if job is None and refused is not None:
        out["phase"] = Phase.FAILED.value
        out["completionTime"] = now
        conditions.set("Failed", True, fit.REASON_EXCEEDS, f"{refused} (spec.resources.failIfNotFits)")
        out["conditions"] = conditions.list()
        return Result(status=out)
    if job is None:
        out["phase"] = Phase.PENDING.value
        if observed.create_error is not None:
            conditions.set("Created", False, "CreateFailed", observed.create_error)
        if observed.waiting is not None:
            conditions.set("Created", False, "WaitingForResumeSource", observed.waiting)
            out["conditions"] = conditions.list()
            return Result(status=out, requeue_after=RESUME_POLL_SECONDS)
        out["conditions"] = conditions.list()
        return Result(status=out)

    name = observed.name
    job_name = meta.job_name(name)
    trainer = meta.trainer_name(name)
    conditions.set(
        "Created",
        True,
        "ChildrenCreated",
        f"created ConfigMap {meta.config_map_name(name)}, ServiceAccount/Role/RoleBinding {trainer} and Job {job_name}",
    )
    out["children"] = {"configMap": meta.config_map_name(name), "job": job_name, "serviceAccount": trainer}
    failures = job.get("status", {}).get("failed") or 0
    if failures:
        out["retries"] = failures
    queue = spec.scheduling.queue_name if spec.scheduling else None
    suspended = bool(job.get("spec", {}).get("suspend"))
    if queue is not None and not suspended:
        cluster_queue = _cluster_queue(observed.workload)
        admitted = f"Kueue admitted Job {job_name}" + (f" in ClusterQueue {cluster_queue}" if cluster_queue else "")
        conditions.clear_if_true("Queued", "Admitted", admitted)
    if not suspended:
        conditions.clear_if_true("Suspended", "Resumed", "spec.suspend was set to false")
    pods = [p for p in observed.pods if p.get("metadata", {}).get("controllerUid") in (None, job["metadata"]["uid"])]

    complete = _job_condition(job, "Complete")
    failed = _job_condition(job, "Failed")
    if complete is not None:
        pod = _latest(pods, "Succeeded")
        wait = POD_GRACE_SECONDS - _age(complete.get("lastTransitionTime"), now)
        if pod is None and wait > 0:
            return Result(status=owned(current), requeue_after=wait)
        doc = report(pod)
        artifact = _artifact(doc)
        target = verify_target(observed)
        if target is not None:
            return _verifying(observed, out, conditions, target, doc, now=now)
        out["phase"] = Phase.SUCCEEDED.value
        out["startTime"] = out.get("startTime") or job.get("status", {}).get("startTime") or now
        out["completionTime"] = job.get("status", {}).get("completionTime") or now
        if artifact is not None:
            out["artifact"] = artifact
        metrics = _metrics(doc)
        if metrics is not None:
            out["metrics"] = metrics
        conditions.set("Running", False, "Completed", "the trainer finished")
        if artifact is not None:
            message = _promoted(spec, doc, conditions, uri=str(artifact["uri"]))
            conditions.set("Succeeded", True, "AdapterExported", message)
        else:
            conditions.set("Succeeded", True, "TrainerSucceeded", "the trainer exited 0 but reported no artifact")
    elif failed is not None:
        pod = _latest(pods, "Failed")
        wait = POD_GRACE_SECONDS - _age(failed.get("lastTransitionTime"), now)
        if pod is None and failures and failed.get("reason") != "DeadlineExceeded" and wait > 0:
            return Result(status=owned(current), requeue_after=wait)
        reason, message = _failure(failed, pod, job=job, spec=spec)
        out["phase"] = Phase.FAILED.value
        out["completionTime"] = failed.get("lastTransitionTime") or now
        conditions.set("Running", False, "Failed", "the trainer failed")
        conditions.set("Failed", True, reason, message)
    elif suspended and spec.suspend:
        out["phase"] = Phase.SUSPENDED.value
        conditions.set("Suspended", True, "SuspendedByUser", "spec.suspend is true; set it to false to resume")
        conditions.set("Running", False, "Suspended", "the run is suspended")
    elif suspended and queue is not None:
        out["phase"] = Phase.QUEUED.value
        reason, message, running_reason, running_message = _held(job_name, queue, observed.workload)
        conditions.set("Queued", True, reason, message)
        conditions.set("Running", False, running_reason, running_message)
    elif suspended:
        out["phase"] = Phase.PENDING.value
        conditions.set("Running", False, "Resuming", f"resuming Job {job_name}")
    else:
        running = any(p.get("status", {}).get("phase") == "Running" for p in pods)
        blocked = _blocked(pods)
        if running or (blocked is None and out.get("startTime")):
            out["phase"] = Phase.RUNNING.value
            out["startTime"] = out.get("startTime") or now
            conditions.set("Running", True, "TrainerRunning", "the trainer is running")
        else:
            out["phase"] = Phase.PENDING.value
            reason, message = blocked or ("Starting", "waiting for the trainer pod to start")
            conditions.set("Running", False, reason, message)
    out["conditions"] = conditions.list()
    return Result(status=out)


def changes(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch of ``.status`` that turns ``current`` into ``new`` for the operator's fields."""
    return {k: v for k, v in new.items() if k in OWNED and current.get(k) != v}


# ----------------------------------------------------------------------------------- events


def _conditions_by_type(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in status.get("conditions") or []}


def transitions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    """The Events that moving from ``old`` to ``new`` warrants, in the order they happened."""
    before, after = _conditions_by_type(old), _conditions_by_type(new)

    def became(type_: str, value: str) -> Mapping[str, Any] | None:
        cond = after.get(type_)
        if cond is None or cond.get("status") != value or before.get(type_, {}).get("status") == value:
            return None
        return cond

    phase, old_phase = new.get("phase"), old.get("phase")
    events = []
    if created := became("Created", "True"):
        events.append(Event("Normal", "Created", str(created.get("message", ""))))
    if failed_create := became("Created", "False"):
        events.append(Event("Warning", "CreateFailed", str(failed_create.get("message", ""))))
    if phase == Phase.QUEUED.value and old_phase != phase:
        queued = after.get("Queued", {})
        # Back in the queue because Kueue preempted (or evicted) the run: the Event says so.
        reason = queued.get("reason") if queued.get("reason") in ("Preempted", "Evicted") else "Queued"
        events.append(Event("Normal", str(reason), str(queued.get("message", ""))))
    if phase == Phase.SUSPENDED.value and old_phase != phase:
        events.append(Event("Normal", "Suspended", "spec.suspend is true: the trainer Job is suspended"))
    if became("Running", "True"):
        events.append(Event("Normal", "Started", "the trainer is running"))
    if promoted := became("Promoted", "True"):
        events.append(Event("Normal", "Promoted", str(promoted.get("message", ""))))
    if not_promoted := became("Promoted", "False"):
        events.append(Event("Warning", "NotPromoted", str(not_promoted.get("message", ""))))
    if phase == Phase.SUCCEEDED.value and old_phase != phase:
        events.append(Event("Normal", "Succeeded", str(after.get("Succeeded", {}).get("message", ""))))
    if phase == Phase.FAILED.value and old_phase != phase:
        cond = after.get("Failed", {})
        events.append(Event("Warning", "Failed", f"{cond.get('reason', 'Error')}: {cond.get('message', '')}"))
    return events


def checkpoint_step(status: Mapping[str, Any]) -> int | None:
    step = (status.get("progress") or {}).get("lastCheckpointStep")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def checkpointed(previous: int | None, current: int | None) -> Event | None:
    """A Checkpointed event when the trainer's durable checkpoint advanced since we last looked."""
    if previous is None or current is None or current <= previous:
        return None
    return Event("Normal", "Checkpointed", f"durable checkpoint saved at step {current}")


def ttl_remaining(status: Mapping[str, Any], spec: Mapping[str, Any], *, now: str) -> float | None:
    """Seconds until a finished FineTuneJob is to be deleted (<= 0: now); None if it is not due ever."""
    ttl = spec.get("ttlSecondsAfterFinished")
    finished = status.get("completionTime")
    if not is_terminal(status) or ttl is None or not finished:
        return None
    return float(ttl) - _age(finished, now)
