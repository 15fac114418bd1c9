"""Reconciler against an in-memory API: what gets written, when, and what never does."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from kubeft_operator import config, reconciler, status
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import meta
from kubeft_operator.k8s import errors
from tests.unit.operator import factories

KEY = ("team-a", "demo")
T0 = 1767225600.0  # 2026-01-01T00:00:00Z


class FakeApi:
    """Objects by (kind, name), every write recorded as (verb, kind, name)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.events: list[dict[str, Any]] = []
        self.fail_create: dict[str, errors.ApiFailure] = {}
        self.finetunejob: dict[str, Any] | None = None
        # Other FineTuneJobs of the namespace, by name (what spec.resumeFrom.job may name).
        self.others: dict[str, dict[str, Any]] = {}
        # Kueue's Workloads; None: no Kueue in the cluster (the Workload API is not served).
        self.workloads: list[dict[str, Any]] | None = []
        self._rv = 100

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind, name = obj["kind"], obj["metadata"]["name"]
        self.writes.append(("create", kind, name))
        if kind in self.fail_create:
            raise self.fail_create[kind]
        if (kind, name) in self.objects:
            raise errors.AlreadyExists(f"{kind} {name} exists", code=409)
        stored = copy.deepcopy(obj)
        stored["metadata"].update(uid=f"{kind}-{name}-uid", resourceVersion=self._next_rv())
        self.objects[kind, name] = stored
        return copy.deepcopy(stored)

    async def read(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((obj["kind"], obj["metadata"]["name"])))

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("patch", "Job", name))
        job = self.objects["Job", name]
        job["spec"].update(patch["spec"])
        job["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(job)

    async def patch_status(self, namespace: str, name: str, status_patch: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("patch", "FineTuneJob/status", name))
        if self.finetunejob is None:
            raise errors.NotFound("gone", code=404)
        self.finetunejob.setdefault("status", {}).update(copy.deepcopy(status_patch))
        self.finetunejob["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(self.finetunejob)

    async def get_finetunejob(self, namespace: str, name: str) -> dict[str, Any] | None:
        if name in self.others:
            return copy.deepcopy(self.others[name])
        return copy.deepcopy(self.finetunejob)

    async def delete_finetunejob(self, namespace: str, name: str) -> None:
        self.writes.append(("delete", "FineTuneJob", name))
        self.finetunejob = None

    async def post_event(self, event: dict[str, Any]) -> None:
        self.writes.append(("create", "Event", event["reason"]))
        self.events.append(event)

    async def list_workloads(self, namespace: str, job_uid: str) -> tuple[str, list[dict[str, Any]]] | None:
        self.writes.append(("list", "Workload", job_uid))  # a read, recorded to count the lookups
        if self.workloads is None:
            return None
        label = "kueue.x-k8s.io/job-uid"
        return "kueue.x-k8s.io/v1beta2", [copy.deepcopy(w) for w in self.workloads if w["labels"][label] == job_uid]

    async def patch_workload(
        self, api_version: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(("patch", "Workload", name))
        (workload,) = [w for w in self.workloads or [] if w["metadata"]["name"] == name]
        workload.setdefault("spec", {}).update(patch["spec"])
        return copy.deepcopy(workload)

    def kueue_admits(self, job_name: str) -> dict[str, Any]:
        """What Kueue does for a queued Job: a Workload owned by it (active by default)."""
        job = self.objects["Job", job_name]
        uid = job["metadata"]["uid"]
        workload = {
            "metadata": {"name": f"job-{job_name}-1a2b3", "ownerReferences": [{"uid": uid, "controller": True}]},
            "labels": {"kueue.x-k8s.io/job-uid": uid},
            "spec": {},
        }
        self.workloads = [*(self.workloads or []), workload]
        return workload


class FakeView:
    """What the watches would show; tests decide how far behind they are."""

    def __init__(self) -> None:
        self.ftj: dict[str, Any] | None = None
        self.job_bodies: list[dict[str, Any]] = []
        self.pod_bodies: list[dict[str, Any]] = []

    def finetunejob(self, key: reconciler.Key) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.ftj)

    def jobs(self, key: reconciler.Key) -> Sequence[Mapping[str, Any]]:
        return [status.job_view(j) for j in self.job_bodies]

    def pods(self, key: reconciler.Key) -> Sequence[Mapping[str, Any]]:
        return list(self.pod_bodies)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def finetunejob(*, spec_patch: dict[str, Any] | None = None, **status_fields: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo", "namespace": "team-a", "uid": "uid-1", "generation": 1, "resourceVersion": "50"},
        "spec": factories.merge(factories.MINIMAL, spec_patch or {}),
        "status": status_fields,
    }


@pytest.fixture
def world():
    api, view, clock = FakeApi(), FakeView(), Clock()
    rec = reconciler.Reconciler(api, view, config.Settings(), instance="test", clock=clock)
    return api, view, clock, rec


def run(rec: reconciler.Reconciler, *, close: bool = True) -> None:
    async def go() -> None:
        await rec.reconcile(KEY)
        if close:
            rec.close()

    asyncio.run(go())


def watch_catches_up(api: FakeApi, view: FakeView) -> None:
    view.ftj = copy.deepcopy(api.finetunejob)
    view.job_bodies = [copy.deepcopy(o) for (kind, _), o in api.objects.items() if kind == "Job"]


def test_new_finetunejob_creates_children_and_reports_pending(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    assert api.writes == [
        ("create", "ConfigMap", "demo-config"),
        ("create", "ServiceAccount", "demo-trainer"),
        ("create", "Role", "demo-trainer"),
        ("create", "RoleBinding", "demo-trainer"),
        ("create", "Job", "demo-train"),
        ("patch", "FineTuneJob/status", "demo"),
        ("create", "Event", "Created"),
    ]
    assert api.finetunejob["status"]["phase"] == "Pending"


def test_unchanged_world_writes_nothing(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    watch_catches_up(api, view)
    before = len(api.writes)
    run(rec)
    assert api.writes[before:] == []


def test_own_status_write_counts_while_the_watch_is_behind(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    before = len(api.writes)
    run(rec)  # the view still shows no status and no Job
    assert api.writes[before:] == []


def test_own_copies_are_dropped_once_the_watch_has_caught_up(world):
    # One view per job at a thousand jobs, not two: the index's once it is as new as our write.
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    assert KEY in rec._written and KEY in rec._jobs  # the watch is behind: our copies count
    watch_catches_up(api, view)
    before = len(api.writes)
    run(rec)
    assert api.writes[before:] == []
    assert KEY not in rec._written and KEY not in rec._jobs


def test_restart_after_partial_creation_adopts_and_makes_one_job(world):
    api, view, _, _ = world
    api.finetunejob = view.ftj = finetunejob()
    first = reconciler.Reconciler(api, view, config.Settings(), instance="a")
    api.fail_create["Role"] = errors.ApiFailure("connection reset")
    run(first)
    del api.fail_create["Role"]
    restarted = reconciler.Reconciler(api, view, config.Settings(), instance="b")
    watch_catches_up(api, view)
    run(restarted)
    assert [k for k in api.objects if k[0] == "Job"] == [("Job", "demo-train")]
    assert api.finetunejob["status"]["conditions"][0]["type"] == "Created"
    assert api.finetunejob["status"]["conditions"][0]["status"] == "True"


def test_creation_failure_still_sets_initial_conditions_with_the_error(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    api.fail_create["Job"] = errors.ApiFailure('creating Job team-a/demo-train: admission webhook "x" denied it')
    run(rec)
    created = api.finetunejob["status"]["conditions"][0]
    assert api.finetunejob["status"]["phase"] == "Pending"
    assert (created["type"], created["status"], created["reason"]) == ("Created", "False", "CreateFailed")
    assert "denied" in created["message"]


def test_creation_failure_is_retried_with_backoff(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    api.fail_create["Job"] = errors.ApiFailure("boom")

    async def go() -> float:
        await rec.reconcile(KEY)
        when = rec._timers[KEY].when() - asyncio.get_running_loop().time()
        rec.close()
        return when

    assert 0 < asyncio.run(go()) <= 1.0


def test_a_timer_wake_up_goes_to_the_work_queue_when_there_is_one(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    api.fail_create["Job"] = errors.ApiFailure("boom")
    queued: list[reconciler.Key] = []
    rec.wake_through(queued.append)

    async def go() -> int:
        await rec.reconcile(KEY)
        creates = len(api.writes)
        rec._timers[KEY]._run()  # the backoff timer fires
        for _ in range(10):  # time for a task of its own to run, had it made one
            await asyncio.sleep(0)
        rec.close()
        return len(api.writes) - creates

    assert asyncio.run(go()) == 0, "the wake-up reconciled by itself, outside the queue"
    assert queued == [KEY]
    assert KEY not in rec._timers


def test_an_object_the_api_server_calls_invalid_fails_the_run_once_without_retrying(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    api.fail_create["Job"] = errors.Invalid(
        'creating Job team-a/demo-train: spec.template.spec.nodeSelector: Invalid value: "a b"', code=422
    )

    async def go() -> bool:
        await rec.reconcile(KEY)
        timer = KEY in rec._timers
        rec.close()
        return timer

    assert asyncio.run(go()) is False, "a 422 is retried"
    st = api.finetunejob["status"]
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert st["phase"] == "Failed" and failed["reason"] == "InvalidSpec"
    assert "nodeSelector" in failed["message"] and "refused" in failed["message"]
    watch_catches_up(api, view)
    before = len(api.writes)
    run(rec)
    assert api.writes[before:] == [], "a failed run is reconciled again"


def test_child_owned_by_someone_else_is_not_adopted(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    api.objects["ConfigMap", "demo-config"] = {"metadata": {"name": "demo-config", "ownerReferences": []}}
    run(rec)
    created = api.finetunejob["status"]["conditions"][0]
    assert created["status"] == "False"
    assert "does not belong to this FineTuneJob" in created["message"]
    assert ("Job", "demo-train") not in api.objects


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_finetunejob_never_gets_a_new_job(world, phase):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(phase=phase, completionTime="2026-01-01T00:00:00Z")
    run(rec)
    assert api.writes == []


def test_missing_job_is_not_recreated_when_the_finetunejob_is_actually_gone(world):
    api, view, _, rec = world
    view.ftj = finetunejob(phase="Running", children={"job": "demo-train"})
    api.finetunejob = None
    run(rec)
    assert api.writes == []


def test_suspend_patches_the_job_and_reports_suspended(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    watch_catches_up(api, view)
    api.finetunejob["spec"]["suspend"] = True
    api.finetunejob["metadata"]["generation"] = 2
    watch_catches_up(api, view)
    run(rec)
    assert api.objects["Job", "demo-train"]["spec"]["suspend"] is True
    assert api.finetunejob["status"]["phase"] == "Suspended"
    assert ("create", "Event", "Suspended") in api.writes


def test_a_running_job_whose_spec_is_refused_now_is_stopped_in_the_same_reconcile():
    """An operator restarted with a stricter policy (here: private endpoints no longer allowed)
    must not leave the refused run's trainer on the GPUs."""
    api, view, clock = FakeApi(), FakeView(), Clock()
    private = {"storage": {"endpoint": "http://10.0.3.7:9000"}}
    lenient = reconciler.Reconciler(
        api, view, config.Settings(allow_private_endpoints=True), instance="test", clock=clock
    )
    api.finetunejob = view.ftj = finetunejob(spec_patch=private)
    run(lenient)
    watch_catches_up(api, view)
    assert api.objects["Job", "demo-train"]["spec"].get("suspend") is not True

    strict = reconciler.Reconciler(api, view, config.Settings(), instance="test", clock=clock)
    run(strict)
    assert api.objects["Job", "demo-train"]["spec"]["suspend"] is True
    assert api.finetunejob["status"]["phase"] == "Failed"
    failed = next(c for c in api.finetunejob["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec" and "10.0.3.7" in failed["message"]


def test_kueue_queued_job_is_not_resumed_by_the_operator(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(spec_patch={"scheduling": {"queueName": "q"}})
    run(rec)
    watch_catches_up(api, view)
    run(rec)
    assert ("patch", "Job", "demo-train") not in api.writes
    assert api.finetunejob["status"]["phase"] == "Queued"


def _queued_and_admitted(world: Any) -> tuple[FakeApi, FakeView, reconciler.Reconciler, dict[str, Any]]:
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(spec_patch={"scheduling": {"queueName": "q"}})
    run(rec, close=False)
    workload = api.kueue_admits("demo-train")
    api.objects["Job", "demo-train"]["spec"]["suspend"] = False  # Kueue admitted it
    watch_catches_up(api, view)
    run(rec, close=False)
    return api, view, rec, workload


def test_user_suspend_of_an_admitted_queued_job_goes_through_kueues_workload_not_the_job(world):
    """Kueue owns a queued Job's spec.suspend; patching it would make the two take turns."""
    api, view, rec, workload = _queued_and_admitted(world)
    api.finetunejob["spec"]["suspend"] = True
    api.finetunejob["metadata"]["generation"] = 2
    watch_catches_up(api, view)
    run(rec, close=False)

    assert ("patch", "Job", "demo-train") not in api.writes
    assert ("patch", "Workload", workload["metadata"]["name"]) in api.writes
    assert api.workloads is not None and api.workloads[0]["spec"]["active"] is False

    # Kueue evicts the inactive Workload and suspends the Job; then nothing more is written.
    api.objects["Job", "demo-train"]["spec"]["suspend"] = True
    watch_catches_up(api, view)
    run(rec, close=False)
    assert api.finetunejob["status"]["phase"] == "Suspended"
    writes = len(api.writes)
    run(rec, close=False)
    assert api.writes[writes:] == [], "a settled suspended job writes (or looks up) nothing"

    # Resuming activates the Workload again; Kueue queues and admits it.
    api.finetunejob["spec"]["suspend"] = False
    api.finetunejob["metadata"]["generation"] = 3
    watch_catches_up(api, view)
    run(rec)
    assert api.workloads[0]["spec"]["active"] is True
    assert ("patch", "Job", "demo-train") not in api.writes


def _lookups(api: FakeApi) -> list[tuple[str, str, str]]:
    return [w for w in api.writes if w[:2] == ("list", "Workload")]


def _condition(api: FakeApi, type_: str) -> dict[str, Any]:
    assert api.finetunejob is not None
    return next(c for c in api.finetunejob["status"]["conditions"] if c["type"] == type_)


def test_a_queued_job_looks_at_its_workload_while_held_and_when_admitted_never_while_it_runs(world):
    api, view, rec, _ = _queued_and_admitted(world)
    assert len(_lookups(api)) == 2  # held at creation (Kueue had made no Workload yet), then admitted
    writes = len(api.writes)
    api.objects["Job", "demo-train"]["status"] = {"active": 1}
    api.objects["Job", "demo-train"]["metadata"]["resourceVersion"] = "900"
    watch_catches_up(api, view)
    run(rec)
    assert api.writes[writes:] == [], "a running queued job costs no lookup"


def test_admission_names_the_cluster_queue_kueue_admitted_the_job_in(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(spec_patch={"scheduling": {"queueName": "q"}})
    run(rec, close=False)
    workload = api.kueue_admits("demo-train")
    workload["status"] = {
        "admission": {"clusterQueue": "gpus"},
        "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved"}],
    }
    api.objects["Job", "demo-train"]["spec"]["suspend"] = False
    watch_catches_up(api, view)
    run(rec)
    assert _condition(api, "Queued")["message"] == "Kueue admitted Job demo-train in ClusterQueue gpus"


def test_a_job_kueue_preempts_is_queued_again_with_kueues_reason_and_an_event(world):
    api, view, rec, workload = _queued_and_admitted(world)
    told = "Preempted to accommodate a workload (UID: w2, JobUID: j2) due to prioritization in the ClusterQueue"
    workload["status"] = {
        "admission": {"clusterQueue": "gpus"},
        "conditions": [
            {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved"},
            {"type": "Evicted", "status": "True", "reason": "Preempted", "message": told},
            {"type": "Preempted", "status": "True", "reason": "InClusterQueue", "message": told},
        ],
    }
    api.objects["Job", "demo-train"]["spec"]["suspend"] = True  # what Kueue does to a preempted Workload's Job
    api.objects["Job", "demo-train"]["metadata"]["resourceVersion"] = "900"
    watch_catches_up(api, view)
    run(rec)
    assert api.finetunejob is not None and api.finetunejob["status"]["phase"] == "Queued"
    queued = _condition(api, "Queued")
    assert queued["reason"] == "Preempted"
    assert told in queued["message"] and "ClusterQueue gpus" in queued["message"]
    (event,) = [e for e in api.events if e["reason"] == "Preempted"]
    assert told in event["message"]
    assert ("patch", "Job", "demo-train") not in api.writes


def test_a_held_job_looks_again_until_kueue_decides_then_only_when_its_job_changes(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(spec_patch={"scheduling": {"queueName": "q"}})
    run(rec)
    watch_catches_up(api, view)
    workload = api.kueue_admits("demo-train")
    assert asyncio.run(rec._reconcile(KEY)) == reconciler.WORKLOAD_POLL_SECONDS  # Kueue has not decided yet
    workload["status"] = {
        "conditions": [
            {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": "insufficient unused quota"}
        ]
    }
    assert asyncio.run(rec._reconcile(KEY)) is None
    assert _condition(api, "Queued")["message"].endswith(": insufficient unused quota")
    lookups = len(_lookups(api))
    watch_catches_up(api, view)
    asyncio.run(rec._reconcile(KEY))
    assert len(_lookups(api)) == lookups


def test_a_held_job_stops_looking_when_kueue_never_decides(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(spec_patch={"scheduling": {"queueName": "q"}})
    run(rec)
    watch_catches_up(api, view)
    wakes = [asyncio.run(rec._reconcile(KEY)) for _ in range(reconciler.WORKLOAD_LOOKS)]
    assert wakes[-1] is None
    lookups = len(_lookups(api))
    asyncio.run(rec._reconcile(KEY))
    assert len(_lookups(api)) == lookups


def test_without_kueue_a_held_job_is_not_polled(world):
    api, view, _, rec = world
    api.workloads = None
    api.finetunejob = view.ftj = finetunejob(spec_patch={"scheduling": {"queueName": "q"}})
    run(rec)
    watch_catches_up(api, view)
    assert asyncio.run(rec._reconcile(KEY)) is None
    assert _condition(api, "Queued")["reason"] == "WaitingForAdmission"


def test_suspend_before_kueue_made_the_workload_waits_for_it_and_never_touches_the_job(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(spec_patch={"scheduling": {"queueName": "q"}, "suspend": True})

    async def go() -> float | None:
        await rec.reconcile(KEY)
        watch_catches_up(api, view)
        return await rec._reconcile(KEY)

    wake = asyncio.run(go())
    assert wake == reconciler.WORKLOAD_POLL_SECONDS
    workload = api.kueue_admits("demo-train")
    run(rec)
    assert api.workloads is not None and api.workloads[0]["spec"]["active"] is False
    assert ("patch", "Workload", workload["metadata"]["name"]) in api.writes
    assert ("patch", "Job", "demo-train") not in api.writes


def _queued_private_job_then_a_strict_operator(*, admitted: bool) -> tuple[FakeApi, dict[str, Any]]:
    """A queued job with a private endpoint, created by a lenient operator and given a Workload
    (admitted or still waiting), then reconciled by an operator that refuses private endpoints."""
    api, view, clock = FakeApi(), FakeView(), Clock()
    private = {"storage": {"endpoint": "http://10.0.3.7:9000"}, "scheduling": {"queueName": "q"}}
    lenient = reconciler.Reconciler(
        api, view, config.Settings(allow_private_endpoints=True), instance="test", clock=clock
    )
    api.finetunejob = view.ftj = finetunejob(spec_patch=private)
    run(lenient)
    workload = api.kueue_admits("demo-train")
    if admitted:
        api.objects["Job", "demo-train"]["spec"]["suspend"] = False
    watch_catches_up(api, view)
    run(reconciler.Reconciler(api, view, config.Settings(), instance="test", clock=clock))
    return api, workload


def test_a_queued_running_job_whose_spec_is_refused_now_is_stopped_through_its_workload():
    api, workload = _queued_private_job_then_a_strict_operator(admitted=True)
    assert api.workloads is not None and api.workloads[0]["spec"]["active"] is False
    assert ("patch", "Workload", workload["metadata"]["name"]) in api.writes
    assert ("patch", "Job", "demo-train") not in api.writes
    assert api.finetunejob is not None and api.finetunejob["status"]["phase"] == "Failed"


def test_a_refused_job_still_waiting_in_the_queue_is_deactivated_so_kueue_never_admits_it():
    api, _ = _queued_private_job_then_a_strict_operator(admitted=False)
    assert api.workloads is not None and api.workloads[0]["spec"]["active"] is False
    assert api.finetunejob is not None and api.finetunejob["status"]["phase"] == "Failed"


def test_a_job_in_the_operators_default_queue_is_queued_and_left_to_kueue():
    """The chart's trainer.defaults.queueName makes a job that names no queue a queued one, everywhere."""
    api, view, clock = FakeApi(), FakeView(), Clock()
    settings = config.Settings(default_scheduling=spec_models.SchedulingSpec(queue_name="shared"))
    rec = reconciler.Reconciler(api, view, settings, instance="test", clock=clock)
    api.finetunejob = view.ftj = finetunejob()
    run(rec, close=False)
    watch_catches_up(api, view)
    run(rec)
    job = api.objects["Job", "demo-train"]
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][meta.LABEL_QUEUE] == "shared"
    assert ("patch", "Job", "demo-train") not in api.writes
    assert api.finetunejob["status"]["phase"] == "Queued"


def test_a_refused_job_in_the_operators_default_queue_is_stopped_through_its_workload():
    """The refused spec does not parse, so the default queue must be remembered from the settings."""
    api, view, clock = FakeApi(), FakeView(), Clock()
    queue = spec_models.SchedulingSpec(queue_name="shared")
    lenient = config.Settings(allow_private_endpoints=True, default_scheduling=queue)
    api.finetunejob = view.ftj = finetunejob(spec_patch={"storage": {"endpoint": "http://10.0.3.7:9000"}})
    run(reconciler.Reconciler(api, view, lenient, instance="test", clock=clock))
    workload = api.kueue_admits("demo-train")
    api.objects["Job", "demo-train"]["spec"]["suspend"] = False
    watch_catches_up(api, view)
    strict = config.Settings(default_scheduling=queue)
    run(reconciler.Reconciler(api, view, strict, instance="test", clock=clock))
    assert api.workloads is not None and api.workloads[0]["spec"]["active"] is False
    assert ("patch", "Workload", workload["metadata"]["name"]) in api.writes
    assert ("patch", "Job", "demo-train") not in api.writes


def test_without_kueue_a_queued_job_is_suspended_on_the_job_itself(world):
    """No Workload API is served: nothing admits the Job, so nothing can race a suspend on it."""
    api, view, rec, _ = _queued_and_admitted(world)
    api.workloads = None
    api.finetunejob["spec"]["suspend"] = True
    api.finetunejob["metadata"]["generation"] = 2
    watch_catches_up(api, view)
    run(rec)
    assert api.objects["Job", "demo-train"]["spec"]["suspend"] is True


def test_finished_finetunejob_is_deleted_once_its_ttl_is_over(world):
    api, view, clock, rec = world
    api.finetunejob = view.ftj = finetunejob(
        spec_patch={"ttlSecondsAfterFinished": 30}, phase="Succeeded", completionTime="2026-01-01T00:00:00Z"
    )
    clock.now = T0 + 10
    run(rec)
    assert api.writes == []
    clock.now = T0 + 31
    run(rec)
    assert api.writes == [("delete", "FineTuneJob", "demo")]


def test_ttl_arms_a_timer_for_when_it_expires(world):
    api, view, clock, rec = world
    api.finetunejob = view.ftj = finetunejob(
        spec_patch={"ttlSecondsAfterFinished": 30}, phase="Failed", completionTime="2026-01-01T00:00:00Z"
    )
    clock.now = T0 + 10

    async def go() -> float:
        await rec.reconcile(KEY)
        when = rec._timers[KEY].when() - asyncio.get_running_loop().time()
        rec.close()
        return when

    assert asyncio.run(go()) == pytest.approx(20, abs=0.5)


def test_checkpoint_advance_posts_an_event(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    watch_catches_up(api, view)
    view.ftj["status"]["progress"] = {"step": 10, "lastCheckpointStep": 10}
    view.ftj["metadata"]["resourceVersion"] = "500"
    run(rec)
    view.ftj["status"]["progress"] = {"step": 20, "lastCheckpointStep": 20}
    view.ftj["metadata"]["resourceVersion"] = "501"
    run(rec)
    checkpoints = [e["message"] for e in api.events if e["reason"] == "Checkpointed"]
    assert checkpoints == ["durable checkpoint saved at step 20"]


def test_events_reference_the_finetunejob(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    (event,) = api.events
    assert event["involvedObject"] == {
        "apiVersion": "kubeft.io/v1alpha1",
        "kind": "FineTuneJob",
        "name": "demo",
        "namespace": "team-a",
        "uid": "uid-1",
    }
    assert event["metadata"]["namespace"] == "team-a"


def test_job_of_another_finetunejob_with_the_same_name_is_ignored(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob()
    stale = factories.job(owner_uid="old-uid")
    view.job_bodies = [{**stale, "metadata": {**stale["metadata"], "name": meta.job_name("demo")}}]
    run(rec)
    assert ("create", "Job", "demo-train") in api.writes


def test_writes_over_a_successful_life_stay_within_budget(world):
    api, view, clock, rec = world
    api.finetunejob = view.ftj = finetunejob()
    run(rec)
    watch_catches_up(api, view)
    job_uid = api.objects["Job", "demo-train"]["metadata"]["uid"]
    view.pod_bodies = [factories.pod("Pending", job_uid=job_uid)]
    run(rec)
    view.pod_bodies = [factories.pod("Running", job_uid=job_uid)]
    run(rec)
    watch_catches_up(api, view)
    clock.now = T0 + 600
    report = {"result": "Succeeded", "artifact": {"uri": "s3://bucket/prefix"}}
    api.objects["Job", "demo-train"]["status"] = {
        "conditions": [factories.job_condition("Complete")],
        "completionTime": "2026-01-01T00:09:00Z",
    }
    watch_catches_up(api, view)
    view.pod_bodies = [factories.pod("Succeeded", job_uid=job_uid, terminated=factories.terminated(0, report))]
    run(rec)
    watch_catches_up(api, view)
    run(rec)
    assert api.finetunejob["status"]["phase"] == "Succeeded"
    assert api.finetunejob["status"]["artifact"] == {"uri": "s3://bucket/prefix"}
    non_event_writes = [w for w in api.writes if w[1] != "Event"]
    assert len(non_event_writes) == 8
    assert [w[2] for w in api.writes if w[1] == "Event"] == ["Created", "Started", "Succeeded"]


def earlier_run(phase: str, **spec_patch: Any) -> dict[str, Any]:
    body = finetunejob(spec_patch=spec_patch, phase=phase, artifact={"uri": "s3://bucket/first"})
    body["metadata"].update(name="first", uid="uid-0")
    return body


def test_resume_from_a_finished_job_renders_its_adapter_into_the_trainer_config(world):
    api, view, _, rec = world
    api.others["first"] = earlier_run("Succeeded")
    api.finetunejob = view.ftj = finetunejob(spec_patch={"resumeFrom": {"job": "first"}})
    run(rec)
    config_text = api.objects["ConfigMap", "demo-config"]["data"][meta.CONFIG_KEY]
    assert "resumeFrom: s3://bucket/first" in config_text
    assert api.finetunejob["status"]["resumedFrom"] == "s3://bucket/first"
    assert ("create", "Job", "demo-train") in api.writes


def test_resume_from_a_running_job_waits_without_creating_anything(world):
    api, view, _, rec = world
    api.others["first"] = earlier_run("Running")
    api.finetunejob = view.ftj = finetunejob(spec_patch={"resumeFrom": {"job": "first"}})
    run(rec, close=False)
    assert [w for w in api.writes if w[1] not in ("FineTuneJob/status", "Event")] == []
    created = {c["type"]: c for c in api.finetunejob["status"]["conditions"]}["Created"]
    assert (created["status"], created["reason"]) == ("False", "WaitingForResumeSource")
    assert KEY in rec._timers  # looked at again later, without a watch event
    rec.close()


def test_resume_from_a_job_with_another_rank_fails_before_any_child(world):
    api, view, _, rec = world
    api.others["first"] = earlier_run("Succeeded", method={"type": "lora", "lora": {"r": 4}})
    api.finetunejob = view.ftj = finetunejob(spec_patch={"resumeFrom": {"job": "first"}})
    run(rec)
    assert api.objects == {}
    status_now = api.finetunejob["status"]
    assert status_now["phase"] == "Failed"
    failed = {c["type"]: c for c in status_now["conditions"]}["Failed"]
    assert failed["reason"] == "InvalidSpec" and "spec.method.lora.r is 16 here but 4" in failed["message"]


def test_a_custom_image_run_gets_a_verify_job_and_succeeds_only_on_its_measurement(world):
    api, view, _, rec = world
    api.finetunejob = view.ftj = finetunejob(spec_patch={"image": "ghcr.io/kubeft/trainer:0.1.0-custom"})
    rec._settings = config.Settings(allowed_images=("ghcr.io/kubeft/*",))
    run(rec)
    watch_catches_up(api, view)
    job_uid = api.objects["Job", "demo-train"]["metadata"]["uid"]
    api.objects["Job", "demo-train"]["status"] = {"conditions": [factories.job_condition("Complete")]}
    watch_catches_up(api, view)
    claim = {"result": "Succeeded", "artifact": {"uri": "s3://bucket/prefix", "sha256": "a" * 64}}
    view.pod_bodies = [factories.pod("Succeeded", job_uid=job_uid, terminated=factories.terminated(0, claim))]
    run(rec)
    verify_job = api.objects["Job", "demo-verify"]
    assert "--sha256" in verify_job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert api.finetunejob["status"]["phase"] == "Running"

    watch_catches_up(api, view)
    run(rec)
    assert [w for w in api.writes if w == ("create", "Job", "demo-verify")] == [("create", "Job", "demo-verify")]
    measured = {"result": "Succeeded", "artifact": {"uri": "s3://bucket/prefix", "sha256": "b" * 64}}
    verify_job["status"] = {"conditions": [factories.job_condition("Complete")]}
    pod = factories.pod(
        "Succeeded", name="demo-verify-x", job_uid="Job-demo-verify-uid", terminated=factories.terminated(0, measured)
    )
    pod["status"]["containerStatuses"][0]["name"] = meta.VERIFY_CONTAINER
    view.pod_bodies.append(pod)
    watch_catches_up(api, view)
    run(rec)
    assert api.finetunejob["status"]["phase"] == "Succeeded"
    assert api.finetunejob["status"]["artifact"]["sha256"] == "b" * 64
