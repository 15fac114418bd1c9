"""Two "machines" of one run on this host, through the container's launcher: the command the operator
builds for each pod of a multi-node FineTuneJob (builders/job.py, rendezvous.py), with the
rendezvous on loopback instead of the headless Service's name. Each machine has its own work
directory and termination log, as each pod has its own disk. A SIGTERM to machine 1 (its pod
deleted, preempted or drained) stops both at one step: machine 1 exits 143 (Preempted, counted
once), machine 0 exits 67 (PeerStopped, which the Job ignores), and the group's checkpoint is saved
by rank 0. The whole path on the real node is tests/e2e/test_multi_node.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kubeft_operator import config as operator_config
from kubeft_operator.api import contract
from kubeft_operator.api import spec as spec_models
from kubeft_operator.builders import job, meta, rendezvous
from tests.fixtures.hub import HubStandIn
from tests.integration.trainer.conftest import hub_spec, merge

pytestmark = pytest.mark.slow

REPO = "kubeft-tester/two-machines"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _machine(
    config: pathlib.Path, spec: dict[str, Any], root: pathlib.Path, rank: int, port: int
) -> subprocess.Popen[str]:
    """Pod `rank`'s command as the operator builds it (builders/job.py), with what the kubelet and
    cluster DNS would supply filled in: its rank for ``$(KUBEFT_MACHINE_RANK)``, loopback for pod 0's
    name, a free port for the rendezvous port."""
    parsed = spec_models.FineTuneJobSpec.model_validate(spec)
    local = {
        f"$({rendezvous.RANK_ENV})": str(rank),
        rendezvous.main_host("test-job"): "127.0.0.1",
        str(rendezvous.PORT): str(port),
        "python": sys.executable,
        meta.CONFIG_PATH: str(config),
    }
    command = [local.get(arg, arg) for arg in job.command("test-job", parsed, operator_config.Settings())]
    # Everything the pod's environment supplies was found in the operator's command and replaced.
    assert not [arg for arg in command if "$(" in arg or arg == rendezvous.main_host("test-job")], command
    assert str(port) in command and str(rank) in command, command
    env = {
        **os.environ,
        "KUBEFT_WORKDIR": str(root / f"m{rank}" / "work"),
        "KUBEFT_TERMINATION_LOG": str(root / f"m{rank}" / "termination-log"),
    }
    (root / f"m{rank}").mkdir()
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _collect(proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_a_sigterm_to_one_machine_stops_the_group_at_one_step_and_only_that_machine_counts(
    hub_output: HubStandIn,
    tiny: dict[str, pathlib.Path],
    matrix_data: pathlib.Path,
    write_config: Callable[..., pathlib.Path],
    trainer_env: pathlib.Path,
) -> None:
    spec = hub_spec(hub_output, model=tiny["causal-lm"], data=matrix_data, repo=REPO)
    spec = merge(spec, {"training": {"maxSteps": 100000, "batchSize": 2}, "resources": {"nodes": 2, "gpus": 0}})
    config = write_config(spec)
    port = _free_port()
    logs: list[list[str]] = [[], []]
    machines = [_machine(config, spec, trainer_env, rank, port) for rank in (0, 1)]
    readers = [_collect(proc, lines) for proc, lines in zip(machines, logs, strict=True)]
    try:
        deadline = time.monotonic() + 300
        while not any("kubeft_trainer.train.callbacks: step " in line for line in logs[0]):
            assert machines[0].poll() is None, "".join(logs[0])[-4000:]
            assert time.monotonic() < deadline, "".join(logs[0])[-4000:]
            time.sleep(0.2)
        machines[1].send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=300) for proc in machines]
    finally:
        for proc in machines:
            if proc.poll() is None:
                proc.kill()
    for reader in readers:
        reader.join(timeout=10)
    log0, log1 = ("".join(lines) for lines in logs)

    assert codes == [contract.EXIT_PEER_STOPPED, contract.EXIT_PREEMPTED], (codes, log0[-3000:], log1[-3000:])
    first = json.loads((trainer_env / "m0" / "termination-log").read_text())
    second = json.loads((trainer_env / "m1" / "termination-log").read_text())
    assert (first["reason"], second["reason"]) == ("PeerStopped", "Preempted"), (first, second)
    # One step for both: the group agreed on it, and rank 0 (machine 0) saved the checkpoint there.
    assert first["step"] == second["step"], (first, second)
    step = first["step"]
    checkpoint = trainer_env / "m0" / "work" / "runs" / "0000" / "checkpoints" / f"checkpoint-{step}"
    assert (checkpoint / "adapter_model.safetensors").exists(), sorted(checkpoint.parent.glob("*"))
    assert "process 1 of 2: trained to step" in log1, log1[-3000:]
