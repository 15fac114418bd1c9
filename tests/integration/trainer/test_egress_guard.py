"""The trainer judges where its endpoints' names resolve, at connect time, by the endpoint policy.

The names are real to the system resolver: each run happens in a mount namespace of its own
(`unshare --mount`, root only, as the rest of the local cluster) whose /etc/hosts maps
the name of an in-cluster store to an address of the test's choosing. The operator cannot see this: it does not
resolve names when it admits a spec, so only the trainer's guard (kubeft_trainer/egress.py) can.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys
import urllib.parse
from collections.abc import Callable

import pytest

from tests.fixtures.s3 import S3
from tests.integration.trainer.conftest import spec_doc, termination

# An in-cluster store's kind of name (the local SeaweedFS also reads it as path-style).
NAME = "minio.storage.svc.cluster.local"


@pytest.fixture
def train_named(
    s3: S3,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the trainer on a spec whose S3 endpoint is NAME, with NAME resolving to ``address``."""

    def train(address: str, *, allow_private: bool) -> subprocess.CompletedProcess[str]:
        spec = spec_doc(s3, model=tiny["causal-lm"], data=matrix_data, task="CAUSAL_LM", fields={"text": "text"})
        spec["storage"]["endpoint"] = f"http://{NAME}:{urllib.parse.urlsplit(s3.endpoint).port}"
        config = write_config(spec)
        hosts = trainer_env / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n{address} {NAME}\n")
        script = f"mount --bind {shlex.quote(str(hosts))} /etc/hosts && exec {shlex.quote(sys.executable)} " + (
            f"-m kubeft_trainer --config {shlex.quote(str(config))}"
        )
        env = {**os.environ, **s3.env(), "KUBEFT_ALLOW_PRIVATE_ENDPOINTS": str(allow_private).lower()}
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    return train


def test_name_resolving_to_loopback_is_refused_before_training_unless_private_endpoints_are_allowed(
    s3: S3, train_named: Callable[..., subprocess.CompletedProcess[str]], trainer_env: pathlib.Path
) -> None:
    proc = train_named("127.0.0.1", allow_private=False)
    assert proc.returncode == 64, proc.stderr[-3000:]
    report = termination(trainer_env)
    assert report["reason"] == "EndpointRefused"
    assert f"{NAME} resolves to 127.0.0.1, which is a loopback address" in report["message"]
    assert "step" not in report, "refused before any training step"
    assert s3.keys("out/") == [], "nothing reached the store"


def test_name_resolving_to_the_metadata_address_is_refused_even_when_private_endpoints_are_allowed(
    train_named: Callable[..., subprocess.CompletedProcess[str]], trainer_env: pathlib.Path
) -> None:
    proc = train_named("169.254.169.254", allow_private=True)
    assert proc.returncode == 64, proc.stderr[-3000:]
    assert "resolves to 169.254.169.254, which is a link-local address" in termination(trainer_env)["message"]


def test_name_resolving_to_the_allowed_store_trains_and_uploads(
    s3: S3, train_named: Callable[..., subprocess.CompletedProcess[str]], trainer_env: pathlib.Path
) -> None:
    """The guard lets a named endpoint through when its addresses are allowed: the whole run works."""
    proc = train_named(urllib.parse.urlsplit(s3.endpoint).hostname or "", allow_private=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert termination(trainer_env)["result"] == "Succeeded"
    assert any(key.endswith("manifest.json") for key in s3.keys("out/"))
