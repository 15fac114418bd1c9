"""Per-FineTuneJob gauges on /metrics: read from a live source at scrape time, so a job's series
appear with it, follow its status, and vanish when the source stops listing it."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from kubeft_operator import config, metrics, reconciler
from tests.unit.operator import test_reconciliation as world_of

RUNNING_STATUS = {
    "phase": "Running",
    "progress": {"step": 12, "totalSteps": 40, "loss": 1.25, "etaSeconds": 90, "summary": "12/40 (30%)"},
    "metrics": {"loss": 1.25, "eval_loss": 1.5, "eval_perplexity": 4.48, "learning_rate": 0.0002},
}


def _sample(
    name: str = "demo", *, namespace: str = "team-a", phase: str = "Running", status: dict[str, Any] | None = None
) -> metrics.JobSample:
    return metrics.JobSample(
        namespace=namespace, name=name, phase=phase, status=RUNNING_STATUS if status is None else status
    )


def _scrape(source: list[metrics.JobSample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(series name, sorted labels): value} of one scrape of a registry holding only the job collector."""
    registry = CollectorRegistry()
    registry.register(metrics.JobCollector(lambda: source))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


def _labels(name: str = "demo", namespace: str = "team-a") -> tuple[tuple[str, str], ...]:
    return (("name", name), ("namespace", namespace))


def test_running_job_has_progress_loss_eval_eta_and_phase_series():
    scraped = _scrape([_sample()])

    assert scraped == {
        ("kubeft_finetunejob_info", (("name", "demo"), ("namespace", "team-a"), ("phase", "Running"))): 1.0,
        ("kubeft_finetunejob_step", _labels()): 12.0,
        ("kubeft_finetunejob_total_steps", _labels()): 40.0,
        ("kubeft_finetunejob_loss", _labels()): 1.25,
        ("kubeft_finetunejob_eta_seconds", _labels()): 90.0,
        ("kubeft_finetunejob_eval_loss", _labels()): 1.5,
        ("kubeft_finetunejob_eval_perplexity", _labels()): 4.48,
    }


def test_series_vanish_when_the_source_drops_the_job():
    source = [_sample("a"), _sample("b")]
    registry = CollectorRegistry()
    registry.register(metrics.JobCollector(lambda: source))
    assert b'name="a"' in generate_latest(registry)

    source.remove(source[0])
    text = generate_latest(registry).decode()

    assert 'name="a"' not in text
    assert 'kubeft_finetunejob_step{name="b",namespace="team-a"} 12.0' in text


def test_a_job_with_no_progress_yet_has_only_its_info_series():
    scraped = _scrape([_sample(phase="Pending", status={"phase": "Pending"})])

    assert [name for name, _ in scraped] == ["kubeft_finetunejob_info"]


@pytest.mark.parametrize(
    ("loss", "want_series"),
    [(1.0, True), (float("nan"), False), (float("inf"), False), ("1.0", False), (True, False), (None, False)],
)
def test_only_finite_numbers_become_samples(loss, want_series):
    status = copy.deepcopy(RUNNING_STATUS)
    status["progress"]["loss"] = loss

    scraped = _scrape([_sample(status=status)])

    assert (("kubeft_finetunejob_loss", _labels()) in scraped) is want_series


def test_labels_are_namespace_and_name_whatever_the_trainer_reports():
    status = copy.deepcopy(RUNNING_STATUS)
    status["metrics"].update({f"eval_custom_{i}": float(i) for i in range(50)})
    status["progress"]["epoch"] = 1.5

    scraped = _scrape([_sample(status=status)])

    label_names = {name: {key for key, _ in labels} for name, labels in scraped}
    assert label_names.pop(metrics.JOB_INFO) == {"namespace", "name", "phase"}
    assert all(names == {"namespace", "name"} for names in label_names.values())
    assert len(scraped) == 7


def test_series_per_job_are_bounded_by_the_gauges_declared():
    jobs = [_sample(f"job-{i}", namespace=f"team-{i % 3}") for i in range(30)]

    scraped = _scrape(jobs)

    assert len(scraped) == 30 * 7
    assert {name for name, _ in scraped} <= {metrics.JOB_INFO, *metrics.JOB_GAUGES}


def test_exported_names_list_every_series_a_scrape_shows():
    metrics.track_jobs(lambda: [_sample()])
    metrics.track_phases(lambda: ["Running"])
    metrics.RECONCILE_SECONDS.observe(0.01)
    metrics.RECONCILE_ERRORS.inc(0)
    metrics.API_WRITES.labels("patch", "FineTuneJob").inc(0)

    kubeft = {
        s.name
        for family in metrics.prometheus_client.REGISTRY.collect()
        for s in family.samples
        if s.name.startswith("kubeft_") and not s.name.endswith("_created")
    }

    assert kubeft <= metrics.exported_names()
    assert {"kubeft_finetunejob_step", "kubeft_finetunejob_info", "kubeft_finetunejobs"} <= kubeft


def test_reconciler_samples_follow_the_watched_status_and_forget():
    api, view = world_of.FakeApi(), world_of.FakeView()
    rec = reconciler.Reconciler(api, view, config.Settings(), instance="test", clock=world_of.Clock())
    api.finetunejob = view.ftj = world_of.finetunejob()

    async def go() -> None:
        await rec.reconcile(world_of.KEY)
        rec.close()

    asyncio.run(go())
    world_of.watch_catches_up(api, view)
    # The trainer's progress patch, as the watch shows it (a newer resourceVersion than our write).
    view.ftj["status"]["progress"] = {"step": 3, "totalSteps": 40}
    view.ftj["metadata"]["resourceVersion"] = "999"

    (sample,) = rec.samples()
    assert (sample.namespace, sample.name, sample.phase) == ("team-a", "demo", "Pending")
    assert sample.status["progress"]["step"] == 3

    rec.forget(world_of.KEY)
    assert rec.samples() == []
