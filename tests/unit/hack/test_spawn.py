"""hack/spawn.py, which starts the local cluster's daemons: the pid it records is the daemon's own,
and the daemon leads a session of its own, whoever starts it."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

SPAWN = pathlib.Path(__file__).resolve().parents[3] / "hack" / "spawn.py"


def wait_for_file(path: pathlib.Path) -> str:
    deadline = time.monotonic() + 10
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.02)
    return path.read_text().strip()


@pytest.mark.parametrize("caller_leads_its_group", [False, True], ids=["plain", "caller-is-group-leader"])
def test_the_recorded_pid_is_the_daemon_leading_its_own_session(
    tmp_path: pathlib.Path, caller_leads_its_group: bool
) -> None:
    # A caller that leads its process group is where `setsid cmd & echo $!` records the wrong pid.
    own = tmp_path / "own.pid"
    command = [sys.executable, str(SPAWN), "--log", str(tmp_path / "d.log"), "--pidfile", str(tmp_path / "d.pid")]
    command += ["--", "sh", "-c", f'echo $$ > "{own}"; echo started; exec sleep 60']
    subprocess.run(command, check=True, timeout=30, start_new_session=caller_leads_its_group)
    recorded = int((tmp_path / "d.pid").read_text())
    try:
        assert recorded == int(wait_for_file(own))
        assert os.getsid(recorded) == recorded
        assert os.getpgid(recorded) == recorded
        deadline = time.monotonic() + 10
        while "started" not in (tmp_path / "d.log").read_text():
            assert time.monotonic() < deadline, "the daemon's output never reached its log"
            time.sleep(0.02)
    finally:
        os.killpg(recorded, signal.SIGKILL)
    assert not (tmp_path / "d.pid.tmp").exists()


def test_a_command_that_cannot_start_fails_and_records_nothing(tmp_path: pathlib.Path) -> None:
    command = [sys.executable, str(SPAWN), "--log", str(tmp_path / "d.log"), "--pidfile", str(tmp_path / "d.pid")]
    result = subprocess.run([*command, "--", str(tmp_path / "missing")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 127
    assert "cannot start" in result.stderr
    assert not (tmp_path / "d.pid").exists()
