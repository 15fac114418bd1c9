"""The progress reporter merge-patches the FineTuneJob status over HTTPS with the service-account token."""

from __future__ import annotations

import http.server
import json
import pathlib
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubeft_trainer import progress


class Recorder(http.server.BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.calls.append(
            {
                "path": self.path,
                "auth": self.headers["Authorization"],
                "type": self.headers["Content-Type"],
                "body": json.loads(body),
            }
        )
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def api_server(tmp_path: pathlib.Path) -> Iterator[tuple[int, pathlib.Path]]:
    """An HTTPS server with a self-signed cert for 127.0.0.1, and a service-account dir trusting it."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(tmp_path / "key.pem"), "-out", str(sa / "ca.crt"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (sa / "token").write_text("sa-token\n")
    (sa / "namespace").write_text("team-a")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sa / "ca.crt", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Recorder.calls = []
    yield server.server_address[1], sa
    server.shutdown()


def reporter(port: int, sa: pathlib.Path, *, interval: str = "5") -> progress.Reporter:
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBEFT_PROGRESS_INTERVAL": interval,
    }
    return progress.Reporter(name="job-1", namespace=None, environ=env, service_account_dir=sa)


def test_status_is_merge_patched_with_the_service_account_token(api_server: tuple[int, pathlib.Path]) -> None:
    port, sa = api_server
    r = reporter(port, sa).start()
    r.report(progress=progress.progress_body(step=5, total_steps=10, loss=1.5), metrics={"loss": 1.5}, force=True)
    r.close()
    (call,) = Recorder.calls
    assert call["path"] == (
        "/apis/kubeft.io/v1alpha1/namespaces/team-a/finetunejobs/job-1/status?fieldManager=kubeft-trainer"
    )
    assert call["auth"] == "Bearer sa-token"
    assert call["type"] == "application/merge-patch+json"
    status = call["body"]["status"]
    assert status["progress"]["step"] == 5
    assert status["progress"]["summary"] == "5/10 (50%)"
    assert status["metrics"] == {"loss": 1.5}
    assert set(status) == {"progress", "metrics"}


def test_reports_are_rate_limited_to_the_interval(api_server: tuple[int, pathlib.Path]) -> None:
    port, sa = api_server
    r = reporter(port, sa, interval="30").start()
    r.report(progress=progress.progress_body(step=1, total_steps=100), force=True)
    time.sleep(0.5)
    for step in range(2, 50):
        r.report(progress=progress.progress_body(step=step, total_steps=100))
    time.sleep(0.5)
    assert len(Recorder.calls) == 1
    r.close()
    assert len(Recorder.calls) == 2
    assert Recorder.calls[-1]["body"]["status"]["progress"]["step"] == 49


def test_without_the_operators_interval_the_reporter_patches_every_30_seconds(tmp_path: pathlib.Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBEFT_NAMESPACE": "team-a"}
    assert progress.Reporter(name="job-1", namespace="team-a", environ=env, service_account_dir=tmp_path).interval == 30


def test_outside_kubernetes_the_reporter_only_logs(tmp_path: pathlib.Path) -> None:
    r = progress.Reporter(name="job", namespace="ns", environ={}, service_account_dir=tmp_path)
    assert not r.enabled
    r.start()
    r.report(progress=progress.progress_body(step=1, total_steps=2), force=True)
    r.close()
    assert r.sent == 0


def test_progress_body_matches_the_status_schema() -> None:
    body = progress.progress_body(
        step=30, total_steps=120, epoch=0.5, loss=2.0, eta_seconds=3725, last_checkpoint_step=20
    )
    assert body["percent"] == 25
    assert body["eta"] == "1h02m"
    assert body["etaSeconds"] == 3725
    assert body["lastCheckpointStep"] == 20
    assert body["totalSteps"] == 120
