"""Prometheus instruments of the operator, served on ``/metrics`` (port from ``KUBEFT_METRICS_PORT``).

- ``kubeft_finetunejobs{phase}``: FineTuneJobs this operator knows, by phase (read at scrape time).
- ``kubeft_reconcile_duration_seconds``: time per reconciliation of one FineTuneJob.
- ``kubeft_reconcile_errors_total``: reconciliations that raised and were retried.
- ``kubeft_api_writes_total{verb,kind}``: writes to the API server (the per-job write budget).

The reconciler and :mod:`kubeft_operator.k8s` update the instruments; the startup handler calls
:func:`serve`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import prometheus_client
from prometheus_client import core, registry

RECONCILE_SECONDS = prometheus_client.Histogram(
    "kubeft_reconcile_duration_seconds",
    "Time spent reconciling one FineTuneJob.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "kubeft_reconcile_errors_total", "Reconciliations that failed and were scheduled for a retry."
)
API_WRITES = prometheus_client.Counter(
    "kubeft_api_writes_total", "Writes the operator sent to the API server.", ["verb", "kind"]
)
PHASES = ("Pending", "Queued", "Running", "Suspended", "Succeeded", "Failed")


class PhaseCollector(registry.Collector):
    """Counts FineTuneJobs by phase from a live source, so no gauge bookkeeping can drift."""

    def __init__(self, source: Callable[[], Iterable[str]]) -> None:
        self._source = source

    def collect(self) -> Iterator[core.Metric]:
        counts = dict.fromkeys(PHASES, 0)
        for phase in self._source():
            counts[phase] = counts.get(phase, 0) + 1
        family = core.GaugeMetricFamily("kubeft_finetunejobs", "FineTuneJobs by phase.", labels=["phase"])
        for phase, count in counts.items():
            family.add_metric([phase], count)
        yield family


_phase_collector: PhaseCollector | None = None


def track_phases(source: Callable[[], Iterable[str]]) -> None:
    """Report ``kubeft_finetunejobs`` from ``source``; a later call replaces the earlier source."""
    global _phase_collector
    if _phase_collector is not None:
        prometheus_client.REGISTRY.unregister(_phase_collector)
    _phase_collector = PhaseCollector(source)
    prometheus_client.REGISTRY.register(_phase_collector)


def serve(port: int) -> None:
    """Serve ``/metrics`` from a background thread; port 0 turns the endpoint off."""
    if port:
        prometheus_client.start_http_server(port)
