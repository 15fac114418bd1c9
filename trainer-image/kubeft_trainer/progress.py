"""Live progress into the FineTuneJob status, and the termination message on exit.

:class:`Reporter` merge-patches `{"status": {"progress": ..., "metrics": ..., "dataset": ...}}` onto the job's
status subresource with the pod's service-account token (docs/DESIGN.md), from a background
thread so a slow API server never stalls a training step, at most every
KUBEFT_PROGRESS_INTERVAL seconds (``api.contract``: the operator sets it, default 30) and always
on checkpoints and at the end. Outside
Kubernetes (no KUBERNETES_SERVICE_HOST) it only logs. Plain `http.client`: the trainer carries
no Kubernetes client library. :func:`write_termination_message` writes the final JSON.
"""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import os
import pathlib
import ssl
import threading
import time
from typing import Any

from kubeft_operator.api import contract, redaction
from kubeft_operator.api import status as api_status

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096
FIELD_MANAGER = "kubeft-trainer"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_body(
    *,
    step: int,
    total_steps: int | None,
    epoch: float | None = None,
    loss: float | None = None,
    eta_seconds: float | None = None,
    last_checkpoint_step: int | None = None,
    start_step: int | None = None,
) -> dict[str, Any]:
    """The `status.progress` object, shaped by the API's Progress model."""
    percent = int(100 * step / total_steps) if total_steps else None
    summary = f"{step}/{total_steps} ({percent}%)" if total_steps else f"{step}"
    progress = api_status.Progress(
        step=step,
        total_steps=total_steps,
        epoch=round(epoch, 4) if epoch is not None else None,
        percent=percent,
        loss=round(loss, 6) if loss is not None and loss == loss and abs(loss) != float("inf") else None,
        eta_seconds=int(eta_seconds) if eta_seconds is not None else None,
        eta=human_duration(eta_seconds) if eta_seconds is not None else None,
        summary=summary,
        last_checkpoint_step=last_checkpoint_step,
        start_step=start_step,
        updated_at=now_rfc3339(),
    )
    return progress.wire()


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric, finite metrics only: JSON and the status schema take no NaN."""
    out = {}
    for key, value in metrics.items():
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and value == value
            and abs(value) != float("inf")
        ):
            out[key] = float(value)
    return out


class Reporter:
    """Rate-limited status patches for one FineTuneJob; a no-op sink outside Kubernetes."""

    def __init__(
        self,
        *,
        name: str,
        namespace: str | None,
        environ: dict[str, str] | os._Environ[str] | None = None,
        service_account_dir: pathlib.Path = SERVICE_ACCOUNT_DIR,
    ) -> None:
        env = os.environ if environ is None else environ
        self.name = name
        self.namespace = namespace or _read(service_account_dir / "namespace")
        self.host = env.get("KUBERNETES_SERVICE_HOST")
        self.port = int(env.get("KUBERNETES_SERVICE_PORT", "443"))
        self.interval = float(env.get(contract.PROGRESS_INTERVAL_ENV, contract.DEFAULT_PROGRESS_INTERVAL_SECONDS))
        self.sa_dir = service_account_dir
        self.enabled = bool(self.host and self.namespace)
        self._pending: dict[str, Any] | None = None
        self._last_sent = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self.sent = 0

    @property
    def path(self) -> str:
        base = f"/apis/kubeft.io/v1alpha1/namespaces/{self.namespace}/finetunejobs/{self.name}/status"
        return f"{base}?fieldManager={FIELD_MANAGER}"

    def start(self) -> Reporter:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kubeft-progress", daemon=True)
            self._thread.start()
        return self

    def report(
        self,
        *,
        progress: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        dataset: dict[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        """Queue an update; it is sent when the interval allows, or at once with `force`."""
        status: dict[str, Any] = {}
        if progress is not None:
            status["progress"] = progress
        if dataset is not None:
            status["dataset"] = dataset
        if metrics:
            status["metrics"] = finite_metrics(metrics)
        if not status:
            return
        with self._lock:
            pending = self._pending or {}
            pending.update(status)
            self._pending = pending
        if force or time.monotonic() - self._last_sent >= self.interval:
            self._wake.set()

    def close(self, *, timeout: float = 10.0) -> None:
        """Send what is pending and stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            self._wake.wait(timeout=self.interval)
            self._wake.clear()
            self._flush()
            if self._stop.is_set():
                self._flush()
                return

    def _flush(self) -> None:
        with self._lock:
            body, self._pending = self._pending, None
        if body is None:
            return
        self._last_sent = time.monotonic()
        try:
            self.patch({"status": body})
            self.sent += 1
        except (OSError, http.client.HTTPException, RuntimeError) as exc:
            self._failures += 1
            if self._failures <= 3 or self._failures % 50 == 0:
                log.warning("progress report to the API server failed (%d so far): %s", self._failures, exc)

    def patch(self, body: dict[str, Any]) -> None:
        """One merge-patch of the status subresource; raises on any non-2xx answer."""
        assert self.host is not None
        context = ssl.create_default_context(cafile=str(self.sa_dir / "ca.crt"))
        conn = http.client.HTTPSConnection(self.host, self.port, context=context, timeout=10)
        try:
            conn.request(
                "PATCH",
                self.path,
                body=json.dumps(body),
                headers={
                    "Authorization": f"Bearer {_read(self.sa_dir / 'token')}",
                    "Content-Type": "application/merge-patch+json",
                    "Accept": "application/json",
                },
            )
            response = conn.getresponse()
            payload = response.read()
            if not 200 <= response.status < 300:
                raise RuntimeError(f"HTTP {response.status}: {payload[:300].decode(errors='replace')}")
        finally:
            conn.close()


def _read(path: pathlib.Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def termination_message(
    *,
    result: str,
    reason: str | None = None,
    message: str | None = None,
    step: int | None = None,
    artifact: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    promotion: dict[str, Any] | None = None,
) -> str:
    """The JSON docs/DESIGN.md specifies, cut to fit the 4 KiB Kubernetes keeps."""
    doc: dict[str, Any] = {"result": result}
    if reason:
        doc["reason"] = reason
    if message:
        # The operator copies it into a condition and an Event: no secret may ride along.
        doc["message"] = redaction.redact(message, (os.environ.get(name, "") for name in redaction.SECRET_ENV))
    if step is not None:
        doc["step"] = step
    if artifact:
        doc["artifact"] = artifact
    if metrics:
        doc["metrics"] = finite_metrics(metrics)
    if promotion:
        # The promotion gate's decision (kubeft_operator.api.promotion): the Promoted condition.
        doc["promotion"] = promotion
    text = json.dumps(doc)
    if len(text.encode()) > TERMINATION_LIMIT and "metrics" in doc:
        doc["metrics"] = {k: v for k, v in doc["metrics"].items() if k in ("train_loss", "eval_loss")}
        text = json.dumps(doc)
    overflow = len(text.encode()) - TERMINATION_LIMIT
    if overflow > 0 and doc.get("message"):
        # json.dumps escapes non-ASCII, so one character may take 6 bytes: cut generously.
        keep = max(0, len(doc["message"]) - overflow - 16)
        doc["message"] = doc["message"][:keep] + "..."
        text = json.dumps(doc)
    if len(text.encode()) > TERMINATION_LIMIT:
        text = json.dumps({k: doc[k] for k in ("result", "reason", "step") if k in doc})
    return text


def write_termination_message(
    text: str, *, environ: dict[str, str] | os._Environ[str] | None = None
) -> pathlib.Path | None:
    """Write to KUBEFT_TERMINATION_LOG, or /dev/termination-log when Kubernetes mounted it."""
    env = os.environ if environ is None else environ
    target = env.get("KUBEFT_TERMINATION_LOG")
    path = pathlib.Path(target) if target else pathlib.Path(TERMINATION_LOG)
    if not target and not path.exists():
        return None
    try:
        path.write_text(text)
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)
        return None
    return path
