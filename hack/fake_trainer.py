"""Stand-in trainer for operator tests: speaks the trainer's side of docs/DESIGN.md, trains nothing.

The operator runs it instead of ``accelerate launch ... -m kubeft_trainer`` when
``KUBEFT_TRAINER_COMMAND='["python", "<repo>/hack/fake_trainer.py"]'``. Like the real trainer it
reads ``--config``, merge-patches ``status.progress`` and ``status.metrics`` of its own
FineTuneJob with the pod's service-account token, writes the JSON termination message, and exits
with the contract's codes. What it does is chosen by ``spec.model.source``:

| model.source | behaviour |
|---|---|
| anything else | ``training.maxSteps`` steps (10 if ``epochs``), checkpoints every ``checkpointSteps``, exit 0 |
| ``fake/invalid-config`` | exit 64, reason ``InvalidConfig`` (never retried) |
| ``fake/diverge`` | a few steps, then exit 65, reason ``Diverged`` (never retried) |
| ``fake/crash`` | a step, then exit 1 (retried up to ``retryLimit``) |
| ``fake/crash-once`` | exit 1 on the first attempt; later attempts succeed (reads ``status.retries``) |

``KUBEFT_FAKE_STEP_SECONDS`` (default 0.2) is the time per step; ``KUBEFT_PROGRESS_INTERVAL``
(set by the operator, default 30) the least time between two progress patches. SIGTERM writes a ``Preempted`` report and
exits 143, as the real trainer does after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import signal
import ssl
import sys
import time
import urllib.request
from typing import Any, NoReturn

import yaml

from kubeft_operator.api import contract
from kubeft_operator.api import status as status_models

SA_DIR = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reporter:
    """Patches the FineTuneJob's status subresource, as the real progress reporter does."""

    def __init__(self, namespace: str, name: str) -> None:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        self.url = f"https://{host}:{port}/apis/kubeft.io/v1alpha1/namespaces/{namespace}/finetunejobs/{name}/status"
        self.enabled = bool(host and port and (SA_DIR / "token").exists())
        self.context = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt")) if self.enabled else None

    def _request(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {(SA_DIR / 'token').read_text().strip()}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
            return dict(json.load(response))

    def status(self) -> dict[str, Any]:
        return dict(self._request("GET").get("status") or {}) if self.enabled else {}

    def patch(self, progress: dict[str, Any], metrics: dict[str, float]) -> None:
        print(f"progress {json.dumps(progress)}", flush=True)
        if self.enabled:
            self._request("PATCH", {"status": {"progress": progress, "metrics": metrics}})


def failed(reason: str, message: str) -> dict[str, Any]:
    return {"result": "Failed", "reason": reason, "message": message}


def finish(code: int, report: dict[str, Any]) -> NoReturn:
    path = pathlib.Path(os.environ.get("KUBEFT_TERMINATION_LOG", "/dev/termination-log"))
    try:
        path.write_text(json.dumps(report))
    except OSError as err:
        print(f"cannot write the termination message to {path}: {err}", file=sys.stderr)
    print(json.dumps(report), flush=True)
    sys.exit(code)


def artifact_uri(spec: dict[str, Any]) -> str:
    output = spec["output"]
    return output["s3"]["uri"] if "s3" in output else f"hf://{output['hub']['repo']}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=pathlib.Path)
    args = parser.parse_args(argv)
    doc = yaml.safe_load(args.config.read_text())
    spec, md = doc["spec"], doc["metadata"]
    reporter = Reporter(md["namespace"], md["name"])
    source = spec["model"]["source"]
    signal.signal(
        signal.SIGTERM,
        lambda *_: finish(
            contract.EXIT_PREEMPTED, {"result": "Failed", "reason": "Preempted", "message": "SIGTERM: checkpoint saved"}
        ),
    )
    if source == "fake/invalid-config":
        finish(
            contract.EXIT_USER_ERROR,
            {"result": "Failed", "reason": "InvalidConfig", "message": "spec.training: fake invalid config"},
        )
    if source == "fake/crash-once" and not reporter.status().get("retries"):
        finish(contract.EXIT_INFRA, failed("Error", "fake infrastructure failure"))

    training = spec["training"]
    total = int(training.get("maxSteps") or 10)
    every = int(training.get("checkpointSteps") or 100)
    step_seconds = float(os.environ.get("KUBEFT_FAKE_STEP_SECONDS", "0.2"))
    interval = float(os.environ.get(contract.PROGRESS_INTERVAL_ENV, contract.DEFAULT_PROGRESS_INTERVAL_SECONDS))
    last_report, checkpoint, loss = 0.0, None, 2.0
    for step in range(1, total + 1):
        time.sleep(step_seconds)
        loss = round(2.0 / (1 + 0.1 * step), 4)
        if source == "fake/crash":
            finish(
                contract.EXIT_INFRA, {"result": "Failed", "reason": "Error", "message": "fake infrastructure failure"}
            )
        if source == "fake/diverge" and step == 3:
            finish(
                contract.EXIT_DIVERGED,
                {"result": "Failed", "reason": "Diverged", "message": "loss became NaN at step 3"},
            )
        saved = step % every == 0
        checkpoint = step if saved else checkpoint
        if saved or step == total or time.monotonic() - last_report >= interval:
            left = round((total - step) * step_seconds)
            # The report's shape is the contract's (api/status.py Progress), as the real trainer's is.
            progress = status_models.Progress(
                step=step,
                total_steps=total,
                percent=step * 100 // total,
                loss=loss,
                eta_seconds=left,
                eta=f"{left}s",
                summary=f"{step}/{total} ({step * 100 // total}%)",
                updated_at=now(),
                last_checkpoint_step=checkpoint,
            ).wire()
            reporter.patch(progress, {"train_loss": loss})
            last_report = time.monotonic()
    uri = artifact_uri(spec)
    finish(
        contract.EXIT_OK,
        {
            "result": "Succeeded",
            "step": total,
            "artifact": {"uri": uri, "sizeBytes": 1234, "sha256": hashlib.sha256(uri.encode()).hexdigest()},
            "metrics": {"train_loss": loss},
        },
    )


if __name__ == "__main__":
    main()
