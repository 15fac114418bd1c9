"""Prometheus instruments of the operator, served on ``/metrics`` (port from ``KUBEFT_METRICS_PORT``).

- ``kubeft_finetunejobs{phase}``: FineTuneJobs this operator knows, by phase (read at scrape time).
- ``kubeft_finetunejob_*{namespace,name}``: one series per FineTuneJob this operator knows, read at scrape
  time from its status (:data:`JOB_GAUGES`, plus ``kubeft_finetunejob_info{namespace,name,phase}``).
- ``kubeft_reconcile_duration_seconds``: time per reconciliation of one FineTuneJob.
- ``kubeft_reconcile_errors_total``: reconciliations that raised and were retried.
- ``kubeft_api_writes_total{verb,kind}``: writes to the API server (the per-job write budget).

The reconciler and :mod:`kubeft_operator.k8s` update the instruments; the startup handler calls
:func:`track_phases`, :func:`track_jobs` and :func:`serve`. The chart's Grafana dashboard and
PrometheusRule query only the names :func:`exported_names` lists, and a unit test holds them to it.

:func:`profile_memory` is not an instrument but a diagnosis, started by ``__main__`` when
``KUBEFT_MEMORY_PROFILE`` names a file: where the RSS goes at its peak (docs/performance.md).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import prometheus_client
from prometheus_client import core, registry

from kubeft_operator.api import base
from kubeft_operator.api import status as status_models

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


@dataclasses.dataclass(frozen=True)
class JobSample:
    """One FineTuneJob as the per-job gauges see it: its key, its phase and its status as last seen."""

    namespace: str
    name: str
    phase: str
    status: Mapping[str, Any]


def _wire(model: type[base.ApiModel], field: str) -> str:
    """The camelCase key of ``field`` in the status, from the model that declares it."""
    return model.model_fields[field].alias or field


_PROGRESS = _wire(status_models.FineTuneJobStatus, "progress")
_METRICS = _wire(status_models.FineTuneJobStatus, "metrics")


def _progress(field: str) -> Callable[[Mapping[str, Any]], Any]:
    key = _wire(status_models.Progress, field)
    return lambda status: (status.get(_PROGRESS) or {}).get(key)


def _metric(key: str) -> Callable[[Mapping[str, Any]], Any]:
    """A key of status.metrics: the trainer's log keys (transformers' names), e.g. ``eval_loss``."""
    return lambda status: (status.get(_METRICS) or {}).get(key)


# name -> (help, how to read it from a FineTuneJob's status). A job without the value has no
# series of that name: a gauge that is absent is not a gauge at 0.
JOB_GAUGES: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {
    "kubeft_finetunejob_step": ("Optimizer steps done (status.progress.step).", _progress("step")),
    "kubeft_finetunejob_total_steps": (
        "Optimizer steps planned (status.progress.totalSteps).",
        _progress("total_steps"),
    ),
    "kubeft_finetunejob_loss": ("Latest training loss (status.progress.loss).", _progress("loss")),
    "kubeft_finetunejob_eta_seconds": (
        "Estimated seconds left (status.progress.etaSeconds).",
        _progress("eta_seconds"),
    ),
    "kubeft_finetunejob_eval_loss": ("Latest evaluation loss (status.metrics.eval_loss).", _metric("eval_loss")),
    "kubeft_finetunejob_eval_perplexity": (
        "Latest evaluation perplexity (status.metrics.eval_perplexity).",
        _metric("eval_perplexity"),
    ),
    "kubeft_finetunejob_eval_accuracy": (
        "Latest evaluation accuracy (status.metrics.eval_accuracy).",
        _metric("eval_accuracy"),
    ),
    "kubeft_finetunejob_eval_f1": ("Latest evaluation macro F1 (status.metrics.eval_f1).", _metric("eval_f1")),
    "kubeft_finetunejob_samples_per_second": (
        "Training throughput over the whole run, reported when training ends "
        "(status.metrics.train_samples_per_second); while it runs, use rate(kubeft_finetunejob_step[5m]).",
        _metric("train_samples_per_second"),
    ),
}
JOB_INFO = "kubeft_finetunejob_info"
JOB_LABELS = ("namespace", "name")


def _number(value: Any) -> float | None:
    """A finite number, or None: the trainer writes the status, and a scrape must not fail on it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class JobCollector(registry.Collector):
    """Per-FineTuneJob gauges from a live source: a job the source no longer lists has no series."""

    def __init__(self, source: Callable[[], Iterable[JobSample]]) -> None:
        self._source = source

    def collect(self) -> Iterator[core.Metric]:
        samples = list(self._source())
        info = core.GaugeMetricFamily(
            JOB_INFO, "1 per FineTuneJob this operator knows, labelled with its phase.", labels=[*JOB_LABELS, "phase"]
        )
        for sample in samples:
            info.add_metric([sample.namespace, sample.name, sample.phase], 1)
        yield info
        for name, (text, read) in JOB_GAUGES.items():
            family = core.GaugeMetricFamily(name, text, labels=list(JOB_LABELS))
            for sample in samples:
                value = _number(read(sample.status))
                if value is not None:
                    family.add_metric([sample.namespace, sample.name], value)
            yield family


_job_collector: JobCollector | None = None


def track_jobs(source: Callable[[], Iterable[JobSample]]) -> None:
    """Report the per-job gauges from ``source``; a later call replaces the earlier source."""
    global _job_collector
    if _job_collector is not None:
        prometheus_client.REGISTRY.unregister(_job_collector)
    _job_collector = JobCollector(source)
    prometheus_client.REGISTRY.register(_job_collector)


# The names PromQL sees for each sample type: counters end in _total, histograms are three series.
_QUERY_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> frozenset[str]:
    """Every series name the kubeft instruments and collectors put on ``/metrics``, as PromQL names it."""
    families = [
        family for instrument in (RECONCILE_SECONDS, RECONCILE_ERRORS, API_WRITES) for family in instrument.describe()
    ]
    families += [*PhaseCollector(lambda: ()).collect(), *JobCollector(lambda: ()).collect()]
    return frozenset(family.name + suffix for family in families for suffix in _QUERY_SUFFIXES[family.type])


def serve(port: int) -> None:
    """Serve ``/metrics`` from a background thread; port 0 turns the endpoint off."""
    if port:
        prometheus_client.start_http_server(port)


# ------------------------------------------------------------------------- memory profile


def _mallinfo() -> str:
    """glibc's view of its heap (mallinfo2): RSS that no Python object accounts for shows here."""
    import ctypes

    names = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in names]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return "malloc: mallinfo2 not available"
    mallinfo2.restype = Info
    info = mallinfo2()
    return (
        f"malloc: heap {info.arena / 2**20:.1f} MiB (in use {info.uordblks / 2**20:.1f}, "
        f"free {info.fordblks / 2**20:.1f}), mmapped {info.hblkhd / 2**20:.1f} MiB"
    )


def _deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of ``obj`` and of everything it holds that is not in ``seen`` already (then it is)."""
    size = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        size += sys.getsizeof(item)
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            stack += list(item)
        elif hasattr(item, "__dict__") and not callable(item):
            stack.append(vars(item))
        elif hasattr(item, "__slots__"):
            stack += [getattr(item, k) for k in item.__slots__ if hasattr(item, k)]
    return size


# Objects whose dicts hold per-object state: the reconciler's caches, kopf's indices and its
# per-object memories. Their deep sizes are what the operator keeps per FineTuneJob.
_HOLDERS = {("kubeft_operator.reconciler", "Reconciler"), ("kopf._core.engines.indexing", "Index")}
_HOLDERS |= {("kopf._core.reactor.inventory", "ResourceMemories")}


def memory_report(rss: int) -> list[str]:
    """Where the memory of this process is, as lines of text: RSS by kind, glibc's heap, live
    objects by type (shallow sizes), kopf's queued watch events, the deep size of each per-object
    cache, the commonest dict shapes, and the live allocations by traceback when tracemalloc runs."""
    import gc
    import threading
    import tracemalloc

    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    shapes: dict[str, int] = {}
    holders: list[Any] = []
    streams = queued = 0
    for obj in gc.get_objects():
        kind = type(obj)
        name = kind.__qualname__
        counts[name] = counts.get(name, 0) + 1
        sizes[name] = sizes.get(name, 0) + sys.getsizeof(obj)
        if kind is dict:
            # A dict's first keys tell a watch event from a built child, a view or managedFields.
            shape = ",".join(sorted(str(k) for k in list(obj)[:6]))[:90]
            shapes[shape] = shapes.get(shape, 0) + 1
        elif name == "Stream" and kind.__module__ == "kopf._core.reactor.queueing":
            streams += 1
            queued += obj.backlog.qsize()
        elif (kind.__module__, name) in _HOLDERS:
            holders.append(obj)
    lines = [f"RSS {rss / 2**20:.1f} MiB, threads {threading.active_count()}", _mallinfo()]
    with open("/proc/self/smaps_rollup") as smaps:
        lines += [line for line in smaps.read().splitlines() if line.split(":")[0] in ("Rss", "Anonymous", "Pss_File")]
    lines += ["", "gc-tracked objects by shallow size (the str and bytes they hold not included)"]
    lines += [
        f"{sizes[k] / 2**20:8.2f} MiB {counts[k]:8d}  {k}" for k in sorted(sizes, key=sizes.__getitem__)[-30:][::-1]
    ]
    lines += ["", f"kopf: {streams} per-object workers, {queued} watch events queued for them", ""]
    # Each object is counted once, by the first holder that reaches it: the indices and the
    # reconciler first, then kopf's per-object memories (whose memo reaches the reconciler too).
    holders.sort(key=lambda h: type(h).__name__ == "ResourceMemories")
    seen: set[int] = set()
    for holder in holders:
        for attr, value in sorted(vars(holder).items()):
            if isinstance(value, dict) and value:
                deep = _deep_size(value, seen) / 2**20
                lines.append(f"{deep:8.2f} MiB {len(value):8d}  {type(holder).__name__}.{attr}")
    lines += ["", "dicts by their first keys"]
    lines += [f"{n:8d}  {k}" for k, n in sorted(shapes.items(), key=lambda kv: -kv[1])[:40]]
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        traced = tracemalloc.get_traced_memory()[0] / 2**20
        lines += ["", f"traced {traced:.1f} MiB (tracemalloc's own {tracemalloc.get_tracemalloc_memory() / 2**20:.1f})"]
        for stat in snapshot.statistics("traceback")[:30]:
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} blocks")
            lines += [f"      {frame}" for frame in reversed(stat.traceback)]
    return lines


def profile_memory(path: str, *, frames: int = 0, every: float = 0.2, step: int = 4 << 20) -> Callable[[], None]:
    """Write :func:`memory_report` to ``path`` each time the RSS passes its peak by ``step`` bytes,
    from a thread of its own; with ``frames`` > 0 tracemalloc records that many frames per
    allocation (and slows the operator several times over). Started by ``KUBEFT_MEMORY_PROFILE=PATH``
    (``KUBEFT_MEMORY_PROFILE_FRAMES``); the profile behind docs/performance.md, not for production.
    Returns what stops it."""
    import threading
    import tracemalloc

    if frames:
        tracemalloc.start(frames)
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    stopped = threading.Event()

    def watch() -> None:
        peak = 0
        while not stopped.is_set():
            current = rss()
            if current > peak + step:
                report = memory_report(current)
                with open(path, "w") as out:
                    out.write("\n".join(report) + "\n")
                # The report's own allocations raise the RSS too: only growth beyond them is news.
                peak = max(current, rss())
            stopped.wait(every)

    threading.Thread(target=watch, name="kubeft-memory-profile", daemon=True).start()
    return stopped.set
