"""hack/lib/daemon.sh's daemon_alive, which the local cluster's scripts use to tell a daemon that
died during start-up from one still starting: a process mid-execve shows an empty command line,
and reading that as "exited" once stopped `make test` at "etcd exited while waiting for etcd"."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

LIB = pathlib.Path(__file__).resolve().parents[3] / "hack" / "lib" / "daemon.sh"


def alive(pid: int, word: str) -> bool:
    script = f'. "{LIB}"; daemon_alive {pid} {word}'
    return subprocess.run(["bash", "-c", script], timeout=30).returncode == 0


def proc_is_ours() -> bool:
    return pathlib.Path("/proc/self/stat").read_text().split()[0] == str(os.getpid())


def state(pid: int) -> str:
    """The one-letter state in /proc/PID/stat (R, S, D, Z, ...)."""
    return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_a_running_daemon_is_alive_only_under_its_own_name(sleeper: subprocess.Popen) -> None:
    assert alive(sleeper.pid, "sleep")
    if proc_is_ours():
        # A pid reused by another program is not the daemon.
        assert not alive(sleeper.pid, "etcd")


def test_an_exited_and_reaped_daemon_is_dead() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    assert not alive(process.pid, "true")


def test_a_zombie_is_dead_although_its_pid_still_answers_signals() -> None:
    if not proc_is_ours():
        pytest.skip("/proc shows another pid namespace: daemon_alive trusts kill -0 alone there")
    # Not reaped: kill -0 succeeds and the command line reads empty, as during an execve. Wait for
    # the state to read Z, not for an empty command line: the line is empty for a moment just
    # after Popen returns too (the new image is mapped before its arguments are), and a check
    # made then found the child already running under its name (a CI run failed so).
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while state(process.pid) != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.02)
    assert pathlib.Path(f"/proc/{process.pid}/cmdline").read_bytes() == b""
    try:
        os.kill(process.pid, 0)
        assert not alive(process.pid, "python")
    finally:
        process.wait()


def kernel_thread() -> int | None:
    """A process with an empty command line that is not a zombie: what a daemon mid-execve looks like."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        flags = int(stat.rsplit(")", 1)[1].split()[6])
        if not cmdline and flags & 0x00200000 and stat.rsplit(")", 1)[1].split()[0] != "Z":  # PF_KTHREAD
            return int(entry.name)
    return None


def test_an_empty_command_line_that_is_not_a_zombie_is_still_starting() -> None:
    if not proc_is_ours():
        pytest.skip("/proc shows another pid namespace: daemon_alive trusts kill -0 alone there")
    pid = kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread visible in this pid namespace")
    started = time.monotonic()
    assert alive(pid, "etcd")
    # It looked again (five times 0.1 s) before deciding.
    assert time.monotonic() - started >= 0.4
