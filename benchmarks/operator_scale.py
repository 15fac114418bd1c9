"""Operator scale: N FineTuneJobs applied at once on the local control plane; latency, memory, CPU, API writes.

For each N a fresh private cluster (``hack/cluster.sh up`` in its own state directory and ports,
so a developer's cluster is never touched) gets the CRD, one operator
(``python -m kubeft_operator --standalone``, admin credentials, ``hack/fake_trainer.py`` as the
trainer command) and then N FineTuneJobs, POSTed by 16 client threads as fast as the API server
takes them. The private cluster has no node (``KUBEFT_WITH_NODE=0``: the control plane alone, in a
network namespace of its own), so trainer pods stay Pending: this measures the operator, not training.

Watches on Jobs and FineTuneJobs timestamp when each Job appears and when each status first
reaches Pending or Queued; latency is measured from the moment the create call returned. After
the burst drains, a trickle of further jobs, one every half second, gives the latency of a single
apply on a cluster that already holds N jobs. Memory is the operator's RSS (psutil, sampled),
CPU its user+system seconds over the burst, and API writes come from the API server's own
``apiserver_request_total`` (diffed around the burst, attributed by resource), cross-checked
against the operator's ``kubeft_api_writes_total``.

At the largest N the same burst also runs against a baseline operator, an earlier commit's
(``--baseline-ref``, by default the last one on lightkube; :mod:`benchmarks.operator_baseline`
prepares it), each run on a fresh cluster, interleaved with this checkout's runs
(baseline, current, current, baseline, … for ``--repeats``). :mod:`benchmarks.operator_goals`
turns the runs into the goals table: medians before and after, their ratio, every run.

Called by :mod:`benchmarks.run`; ``python -m benchmarks.operator_scale --help`` runs it alone.
``KUBEFT_BENCH_PROFILE=1`` runs the operator under cProfile and leaves
``operator-N-RUN-SIDE.prof`` (beside its ``.log``) in the work directory (``--workdir``), for
``python -m pstats``. ``KUBEFT_BENCH_MEMORY_PROFILE=1`` leaves ``operator-N-RUN-SIDE.memory.txt``
there: the operator's own memory report (``KUBEFT_MEMORY_PROFILE``, kubeft_operator.metrics) as of
its RSS peak (``KUBEFT_BENCH_MEMORY_PROFILE=FRAMES`` above 1 adds tracemalloc with that many frames).
An operator too old to know the variable ignores it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks import measures, operator_baseline, operator_goals, workdirs

ROOT = pathlib.Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "kubeft.io", "v1alpha1", "finetunejobs"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})
# Writes to these (group, resource, subresource) in the benchmark namespace come only from the
# operator (and, for finetunejobs, from the harness's own creates, which are subtracted). Job
# status and ServiceAccount tokens are written by the controller-manager, so they are not here.
OPERATOR_RESOURCES = frozenset(
    {
        ("kubeft.io", "finetunejobs", ""),
        ("kubeft.io", "finetunejobs", "status"),
        ("", "configmaps", ""),
        ("", "serviceaccounts", ""),
        ("rbac.authorization.k8s.io", "roles", ""),
        ("rbac.authorization.k8s.io", "rolebindings", ""),
        ("batch", "jobs", ""),
    }
)
OPERATOR_EVENT_COMPONENT = "kubeft-operator"
REPORTED_PHASES = frozenset({"Pending", "Queued"})
READY_LINE = "kubeft operator started"
CLIENT_THREADS = 16
_METRIC_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def sizes_for(*, quick: bool) -> list[int]:
    return [50, 200] if quick else [100, 500, 1000]


def repeats_for(*, quick: bool) -> int:
    """Runs per side at the compared N: one pair in quick mode (its time budget), two otherwise."""
    return 1 if quick else 2


# --------------------------------------------------------------------------------- API server


def parse_request_totals(text: str) -> dict[tuple[str, str, str, str], float]:
    """`apiserver_request_total` summed over codes, keyed by (group, resource, subresource, verb)."""
    totals: dict[tuple[str, str, str, str], float] = collections.defaultdict(float)
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        key = (
            labels.get("group", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
            labels.get("verb", ""),
        )
        totals[key] += float(match["value"])
    return dict(totals)


def write_breakdown(
    before: dict[tuple[str, str, str, str], float], after: dict[tuple[str, str, str, str], float]
) -> dict[tuple[str, str, str, str], float]:
    """Write requests between two snapshots, by (group, resource, subresource, verb); zeros left out."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in sorted(after)
        if key[3] in WRITE_VERBS and after[key] - before.get(key, 0.0) > 0
    }


def describe(breakdown: dict[tuple[str, str, str, str], float]) -> dict[str, float]:
    """{"group/resource[/subresource] VERB": count}, core resources under "core"."""
    return {
        f"{'/'.join(p for p in (group or 'core', resource, sub) if p)} {verb}": count
        for (group, resource, sub, verb), count in breakdown.items()
    }


def operator_writes(
    breakdown: dict[tuple[str, str, str, str], float], *, harness_creates: int, operator_events: float
) -> float:
    """Writes attributable to the operator: its resources minus the harness's creates, plus its Events."""
    own = sum(
        count
        for (group, resource, sub, _verb), count in breakdown.items()
        if (group, resource, sub) in OPERATOR_RESOURCES
    )
    return own - harness_creates + operator_events


@dataclasses.dataclass
class Cluster:
    """A private local control plane started with hack/cluster.sh in its own directory and ports."""

    directory: pathlib.Path
    port_base: int

    @property
    def env(self) -> dict[str, str]:
        cache = pathlib.Path(os.environ.get("KUBEFT_CACHE", pathlib.Path.home() / ".cache" / "kubeft"))
        path = f"{cache / 'bin'}:{cache / 'k8s-v1.35.4' / 'bin'}:{pathlib.Path(sys.executable).parent}"
        return {
            **os.environ,
            "KUBEFT_CLUSTER_DIR": str(self.directory),
            "KUBEFT_PORT_BASE": str(self.port_base),
            # The control plane alone, beside the developer's cluster: trainer pods stay Pending.
            "KUBEFT_WITH_NODE": "0",
            "KUBEFT_NETNS": f"kubeft-bench-{self.port_base}",
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{path}:{os.environ.get('PATH', '')}",
        }

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.directory / "admin.kubeconfig"

    @property
    def api(self) -> str:
        return f"https://127.0.0.1:{self.port_base + 3}"

    def session(self) -> Any:
        import requests

        s = requests.Session()
        s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment replaces the cluster's CA
        pki = self.directory / "pki"
        s.cert = (str(pki / "admin.crt"), str(pki / "admin.key"))
        s.verify = str(pki / "ca.crt")
        return s

    def script(self, action: str) -> None:
        subprocess.run(
            [str(ROOT / "hack" / "cluster.sh"), action],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kubectl(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "--request-timeout=30s", *args],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()[-1000:]}")
        return proc.stdout

    def request_totals(self, session: Any) -> dict[tuple[str, str, str, str], float]:
        response = session.get(f"{self.api}/metrics", timeout=30)
        response.raise_for_status()
        return parse_request_totals(response.text)


def _ports_free(base: int) -> bool:
    for port in range(base, base + 7):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@contextlib.contextmanager
def private_cluster(directory: pathlib.Path, *, crd: pathlib.Path) -> Iterator[Cluster]:
    base = next(b for b in range(17440, 27440, 100) if _ports_free(b))
    cluster = Cluster(directory=directory, port_base=base)
    try:
        try:
            cluster.script("up")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"hack/cluster.sh up failed:\n{exc.stderr[-3000:]}") from None
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
        established = '{.status.conditions[?(@.type=="Established")].status}'
        if not _wait(
            lambda: (
                cluster.kubectl("get", f"crd/{PLURAL}.{GROUP}", "-o", f"jsonpath={established}", check=False) == "True"
            ),
            timeout=60,
        ):
            raise RuntimeError(f"the CRD {PLURAL}.{GROUP} was not Established within 60 s")
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.script("down")


# ------------------------------------------------------------------------------------ watches


class Watch:
    """A watch on one collection in a namespace; calls `on_event(type, object, monotonic_time)` per event.

    Reconnects every few seconds from the last resourceVersion, so that :meth:`stop` only has to
    set a flag (closing a streamed response from another thread can block).
    """

    def __init__(self, cluster: Cluster, path: str, on_event: Callable[[str, dict[str, Any], float], None]) -> None:
        self.cluster = cluster
        self.path = path
        self.on_event = on_event
        self._version = ""
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()

    def start(self) -> Watch:
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"could not list {self.path}: {self._error}")
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        session = self.cluster.session()
        try:
            listing = session.get(f"{self.cluster.api}{self.path}", timeout=30)
            listing.raise_for_status()
            self._version = listing.json()["metadata"]["resourceVersion"]
        except Exception as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        while not self._stopped.is_set():
            try:
                self._watch(session)
            except Exception:
                time.sleep(0.5)

    def _watch(self, session: Any) -> None:
        params = {
            "watch": "true",
            "resourceVersion": self._version,
            "timeoutSeconds": "5",
            "allowWatchBookmarks": "true",
        }
        with session.get(f"{self.cluster.api}{self.path}", params=params, stream=True, timeout=(30, 60)) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise RuntimeError(event["object"].get("message"))
                self._version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self.on_event(event["type"], event["object"], time.monotonic())


class Stopwatch:
    """First time each job's Job appeared, and first time its status reached a reported phase."""

    def __init__(self) -> None:
        self.job_seen: dict[str, float] = {}
        self.phase_seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def on_job(self, kind: str, obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"].get("labels", {}).get("kubeft.io/job")
        if kind == "ADDED" and name:
            with self.lock:
                self.job_seen.setdefault(name, at)

    def on_finetunejob(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if (obj.get("status") or {}).get("phase") in REPORTED_PHASES:
            with self.lock:
                self.phase_seen.setdefault(obj["metadata"]["name"], at)


# ---------------------------------------------------------------------------------- operator


class Operator:
    """The operator subprocess, run by `tree`'s interpreter from its code, watching one namespace;
    and a sampler of its RSS."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        log_path: pathlib.Path,
        *,
        tree: operator_baseline.OperatorTree,
        profile: pathlib.Path | None = None,
        memory_profile: pathlib.Path | None = None,
    ) -> None:
        self.metrics_port = _free_port()
        self.log_path = log_path
        self.profile = profile
        env = {
            **cluster.env,
            "KUBEFT_TRAINER_COMMAND": json.dumps([sys.executable, str(ROOT / "hack" / "fake_trainer.py")]),
            "KUBEFT_METRICS_PORT": str(self.metrics_port),
            "PYTHONUNBUFFERED": "1",
            # Only the tree's own operator package: never this checkout's under a baseline's interpreter.
            "PYTHONPATH": str(tree.pythonpath),
        }
        if memory_profile is not None:
            frames = int(os.environ.get("KUBEFT_BENCH_MEMORY_PROFILE") or 0)
            env |= {
                "KUBEFT_MEMORY_PROFILE": str(memory_profile),
                "KUBEFT_MEMORY_PROFILE_FRAMES": str(frames if frames > 1 else 0),
            }
        with log_path.open("wb") as log:
            # With a profile path, the operator runs under cProfile (its event loop: kopf and the
            # reconciler; the API client's worker threads are not sampled) and writes it on exit.
            profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
            self.proc = subprocess.Popen(
                [str(tree.python), *profiler, "-m", "kubeft_operator", "--standalone", f"--namespace={namespace}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tree.root,
            )
        self.peak_rss = 0
        self._sampling = threading.Event()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def process(self) -> Any:
        import psutil

        return psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.process().memory_info().rss)

    def cpu_seconds(self) -> float:
        times = self.process().cpu_times()
        return float(times.user + times.system)

    def start_sampling(self) -> None:
        self._sampling.set()
        threading.Thread(target=self._sample, daemon=True).start()

    def stop_sampling(self) -> None:
        self._sampling.clear()

    def _sample(self) -> None:
        while self._sampling.is_set():
            with contextlib.suppress(Exception):
                self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.2)

    def writes(self) -> float:
        """The operator's own count of its API writes (kubeft_api_writes_total, all labels)."""
        import requests

        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        return sum(
            float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith("kubeft_api_writes_total{")
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------ one size


def finetunejob(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"source": "bench/tiny-llama"},
            "dataset": {"source": "/datasets/chat.jsonl", "fields": {"messages": "messages"}},
            "task": "CAUSAL_LM",
            "method": {"type": "lora"},
            "training": {"maxSteps": 10},
            "output": {"s3": {"uri": f"s3://bench/{name}"}},
            "resources": {"gpus": 1, "cpu": "1", "memory": "1Gi"},
        },
    }


def _create_all(cluster: Cluster, namespace: str, names: list[str]) -> dict[str, float]:
    """POST every FineTuneJob from CLIENT_THREADS threads; returns when each create call returned."""
    local = threading.local()
    url = f"{cluster.api}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"

    def create(name: str) -> tuple[str, float]:
        if not hasattr(local, "session"):
            local.session = cluster.session()
        for attempt in range(5):
            response = local.session.post(url, json=finetunejob(name, namespace), timeout=60)
            if response.status_code == 201:
                return name, time.monotonic()
            if response.status_code != 429 and response.status_code < 500:
                break
            time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"creating {name}: HTTP {response.status_code} {response.text[:300]}")

    with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return dict(pool.map(create, names))


def _latencies(created: dict[str, float], seen: dict[str, float]) -> list[float]:
    return [seen[n] - t for n, t in created.items() if n in seen]


def _latency_summary(values: list[float], *, expected: int) -> dict[str, Any]:
    if not values:
        return {"count": 0, "expected": expected}
    return {
        "count": len(values),
        "expected": expected,
        "p50": measures.percentile(values, 50),
        "p99": measures.percentile(values, 99),
        "max": max(values),
    }


def _wait(condition: Callable[[], bool], *, timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def _operator_events(cluster: Cluster, namespace: str) -> float:
    """Event writes by the operator: one create per Event object, plus one patch per repeat count."""
    items = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    return float(sum(e.get("count") or 1 for e in items if e.get("reportingComponent") == OPERATOR_EVENT_COMPONENT))


def measure(
    cluster: Cluster,
    n: int,
    *,
    trickle: int,
    workdir: pathlib.Path,
    log: Any,
    tree: operator_baseline.OperatorTree,
    name: str = "",
) -> dict[str, Any]:
    """One burst of `n` jobs and its trickle against `tree`'s operator; `name` tells its files apart."""
    namespace = f"scale-{n}"
    cluster.kubectl("create", "namespace", namespace)
    # The namespace's own bootstrap writes (default ServiceAccount, root CA ConfigMap) happen before the snapshot.
    _wait(lambda: "kube-root-ca.crt" in cluster.kubectl("get", "configmaps", "-n", namespace), timeout=60)
    _wait(lambda: "default" in cluster.kubectl("get", "serviceaccounts", "-n", namespace), timeout=60)
    stem = f"operator-{n}{name}"
    profile = workdir / f"{stem}.prof" if os.environ.get("KUBEFT_BENCH_PROFILE") else None
    memory = workdir / f"{stem}.memory.txt" if os.environ.get("KUBEFT_BENCH_MEMORY_PROFILE") else None
    operator = Operator(cluster, namespace, workdir / f"{stem}.log", tree=tree, profile=profile, memory_profile=memory)
    session = cluster.session()
    stopwatch = Stopwatch()
    watches: list[Watch] = []
    try:
        operator.wait_ready()
        time.sleep(2)
        rss_idle = operator.rss()
        watches = [
            Watch(cluster, f"/apis/batch/v1/namespaces/{namespace}/jobs", stopwatch.on_job).start(),
            Watch(
                cluster, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}", stopwatch.on_finetunejob
            ).start(),
        ]
        before = cluster.request_totals(session)
        writes_before = operator.writes()
        cpu_before = operator.cpu_seconds()
        operator.start_sampling()

        names = [f"job-{i:04d}" for i in range(n)]
        burst_start = time.monotonic()
        created = _create_all(cluster, namespace, names)
        apply_seconds = time.monotonic() - burst_start
        drain_timeout = 120 + 1.0 * n
        drained = _wait(lambda: len(stopwatch.job_seen) >= n and len(stopwatch.phase_seen) >= n, timeout=drain_timeout)
        drain_seconds = max([*stopwatch.job_seen.values(), *stopwatch.phase_seen.values(), burst_start]) - burst_start
        # Trailing writes (pod events reconciled into status) belong to the burst: wait until they stop.
        last = [operator.writes(), time.monotonic()]

        def settled() -> bool:
            now = operator.writes()
            if now != last[0]:
                last[:] = [now, time.monotonic()]
            return time.monotonic() - last[1] > 5

        _wait(settled, timeout=60, poll=0.5)
        after = cluster.request_totals(session)
        writes_after = operator.writes()
        cpu_burst = operator.cpu_seconds() - cpu_before
        breakdown = write_breakdown(before, after)
        events = _operator_events(cluster, namespace)
        rss_after_burst = operator.rss()

        # A trickle on the loaded cluster: the latency of one apply once the backlog has drained.
        trickle_names = [f"late-{i:03d}" for i in range(trickle)]
        trickle_created: dict[str, float] = {}
        for name in trickle_names:
            trickle_created |= _create_all(cluster, namespace, [name])
            time.sleep(0.5)
        _wait(lambda: all(n in stopwatch.job_seen and n in stopwatch.phase_seen for n in trickle_names), timeout=60)
        operator.stop_sampling()

        all_writes = sum(breakdown.values())
        op_writes = operator_writes(breakdown, harness_creates=n, operator_events=events)
        result: dict[str, Any] = {
            "n": n,
            "drained": drained,
            "apply_seconds": apply_seconds,
            "drain_seconds": drain_seconds,
            "apply_to_job": _latency_summary(_latencies(created, stopwatch.job_seen), expected=n),
            "apply_to_status": _latency_summary(_latencies(created, stopwatch.phase_seen), expected=n),
            "after_drain_apply_to_job": _latency_summary(
                _latencies(trickle_created, stopwatch.job_seen), expected=trickle
            ),
            "after_drain_apply_to_status": _latency_summary(
                _latencies(trickle_created, stopwatch.phase_seen), expected=trickle
            ),
            "rss_idle_bytes": rss_idle,
            "rss_peak_bytes": operator.peak_rss,
            "rss_after_burst_bytes": rss_after_burst,
            "cpu_seconds_per_job": cpu_burst / n,
            "operator_writes_per_job": op_writes / n,
            "operator_self_reported_writes_per_job": (writes_after - writes_before) / n,
            "cluster_writes_per_job": (all_writes - n) / n,
            "operator_event_writes": events,
            "write_breakdown": describe(breakdown),
        }
        log(
            f"  N={n:5d} {tree.label}: job p50 {result['apply_to_job'].get('p50', float('nan')):.2f}s "
            f"p99 {result['apply_to_job'].get('p99', float('nan')):.2f}s, after drain p99 "
            f"{result['after_drain_apply_to_job'].get('p99', float('nan')):.2f}s, "
            f"RSS peak {operator.peak_rss / 2**20:.0f} MiB, {result['cpu_seconds_per_job'] * 1000:.1f} ms CPU/job, "
            f"{result['operator_writes_per_job']:.2f} writes/job, drained in {drain_seconds:.1f}s"
        )
        return result
    finally:
        operator.stop_sampling()
        for watch in watches:
            watch.stop()
        operator.stop()


def run(
    *,
    quick: bool,
    workdir: pathlib.Path,
    sizes: list[int] | None = None,
    baseline_ref: str | None = operator_baseline.DEFAULT_REF,
    repeats: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Every size against this checkout's operator; at the largest, `repeats` runs per side against
    the baseline too (none when `baseline_ref` is None), interleaved, and the goals table."""
    sizes = sorted(sizes or sizes_for(quick=quick))
    repeats = repeats or repeats_for(quick=quick)
    trickle = 10 if quick else 20
    compared = sizes[-1]
    current = operator_baseline.current()
    # Before any cluster starts: a missing ref or a failed install ends the run in seconds, not minutes.
    baseline = operator_baseline.prepare(baseline_ref, log=log) if baseline_ref else None
    order = operator_goals.interleave(repeats, baseline=baseline is not None)
    log(
        f"operator scale: N = {', '.join(map(str, sizes))} (+{trickle} applies after each burst drains); "
        f"at N={compared}: {', '.join(order)}"
        + (f" (baseline {baseline_ref} = {baseline.commit[:12] if baseline.commit else '?'})" if baseline else "")
    )

    trees = {operator_goals.CURRENT: current, **({operator_goals.BASELINE: baseline} if baseline else {})}

    def one(n: int, side: str, index: int) -> dict[str, Any]:
        # A fresh cluster per run: no leftovers, no garbage collection of the last run's objects running.
        tree = trees[side]
        with private_cluster(workdir / f"cluster-{n}-{index}", crd=tree.crd) as cluster:
            return measure(cluster, n, trickle=trickle, workdir=workdir, log=log, tree=tree, name=f"-{index}-{side}")

    results = [one(n, operator_goals.CURRENT, 0) for n in sizes[:-1]]
    runs: list[dict[str, Any]] = [{"side": side, "result": one(compared, side, i)} for i, side in enumerate(order)]
    # The per-N table shows one run per N: at the compared N, this checkout's first.
    results.append(next(r["result"] for r in runs if r["side"] == operator_goals.CURRENT))
    comparison: dict[str, Any] = {
        "n": compared,
        "baseline": baseline.describe() if baseline else None,
        "current": current.describe(),
        "runs": runs,
        "figures": operator_goals.compare(runs),
    }
    for line in operator_goals.table(comparison):
        log(line)
    return {
        "sizes": sizes,
        "trickle": trickle,
        "client_threads": CLIENT_THREADS,
        "results": results,
        "comparison": comparison,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 50, 200 instead of 100, 500, 1000")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], help="comma-separated N values")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep cluster state and operator logs here")
    parser.add_argument("--json", type=pathlib.Path, help="write the results here")
    parser.add_argument(
        "--baseline-ref",
        default=operator_baseline.DEFAULT_REF,
        help="commit whose operator is the baseline at the largest N (default: %(default)s, the last on lightkube)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="measure this checkout's operator alone")
    parser.add_argument(
        "--repeats", type=int, help="runs per side at the largest N, interleaved (default: 1 with --quick, else 2)"
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("`--repeats` must be at least 1")
    # A short path: the cluster's unix sockets and pod directories live under it.
    with workdirs.workdir(args.workdir, prefix="kb-", parent="/tmp") as workdir:
        summary = run(
            quick=args.quick,
            workdir=workdir,
            sizes=args.sizes,
            baseline_ref=None if args.no_baseline else args.baseline_ref,
            repeats=args.repeats,
        )
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
