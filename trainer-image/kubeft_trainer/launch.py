"""Container entry point: `python -m kubeft_trainer.launch <accelerate launch arguments>`.

Runs `accelerate launch` with the given arguments and fixes the two things it does not do for a
Kubernetes Job (docs/DESIGN.md). The trainer's side is :func:`mark_ready` and
:func:`record_exit_code`, called by :mod:`kubeft_trainer.__main__` in every rank; they meet the
launcher in a directory of its own (``$KUBEFT_LAUNCH_DIR``, made fresh under ``$KUBEFT_WORKDIR``
for each launch, so nothing an earlier attempt left in the work directory is ever read).

Exit codes. accelerate turns every failing exit of the trainer into 1, which would hide 64 (user
error), 65 (diverged) and the other codes the Job's podFailurePolicy acts on. Every rank records
its code, with whether the contract (``kubeft_operator.api.contract.EXIT_CODES``) retries it, and
the launcher exits with the worst rank's. Worst, most severe first:

1. a code the contract never retries (64, 65, ...): a retry cannot help, so it must reach the
   podFailurePolicy even when only one rank saw the problem;
2. any other failure (1, a code outside the contract, a rank that recorded nothing because it was
   killed, by the OOM killer for one): retried, counted toward the retry limit;
3. 143, preempted: the checkpoint is saved, the next attempt resumes;
4. a code the contract does not count (67: stopped because another pod of a multi-node group was
   stopped or lost): the pod restarts with its group, and the cause is reported where it happened;
5. 0.

Between ranks of equal severity the lowest rank wins: rank 0 writes the termination message, so
its code and the message agree whenever rank 0 is among the worst. A rank that recorded nothing
is not counted after the launcher passed a stop signal on and another rank recorded a failure:
torchrun stops the remaining ranks as soon as one exits non-zero, so the silence is that stop's
doing. Where no rank got as far as recording anything (accelerate itself failed), accelerate's own
exit code is the answer. The launcher has no table of codes to keep in step with the contract: the
ranks record the contract's verdict; only 143 (128 + SIGTERM, as a shell reports a process stopped
by SIGTERM) and 0 are named here.

SIGTERM and SIGINT. Kubernetes sends SIGTERM to the container's first process, this launcher, and
the trainer must get it to save a checkpoint within the grace period. The launcher passes each
signal on once, to each trainer process, and only once that process has installed its handler:

- once, because the trainer's handler is where a stop is decided (save at this step, or stop now
  when not training yet); a repeat can only race with the outcome of the first (a repeat that landed
  after the training loop stopped turned `Preempted at step N` into a stepless failure);
- to each trainer process by pid, never to the process group: with several processes accelerate
  runs torchrun, which starts every rank in a session of its own (a group signal never reaches
  them) and which itself turns a SIGTERM into SIGTERM for each rank followed by SIGKILL 30 seconds
  later, too soon for a checkpoint upload;
- not before the handler is installed, because until then the signal is lost or fatal: accelerate
  is started with SIGTERM ignored (so a stray signal to the group cannot kill it and orphan the
  trainer), a single trainer process inherits that (SIG_IGN survives exec), while torchrun's ranks
  start with the default action, which kills them. Each rank marks itself ready right after
  installing its handler (before anything slow is imported), and the launcher holds a signal that
  came earlier until then. A rank that never becomes ready has nothing to save; Kubernetes kills it
  at the end of the grace period, as it would have anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping

from kubeft_trainer import cpus

# Standard library only: the signal handlers must be in place before anything slow is imported.
DEFAULT_WORKDIR = "/var/lib/kubeft"
LAUNCH_DIR_ENV = "KUBEFT_LAUNCH_DIR"
# How often the launcher looks for ranks that became ready while it holds a signal.
POLL_SECONDS = 0.1
EXIT_FAILURE = 1  # what a rank that recorded nothing counts as: an infrastructure failure, retried
EXIT_PREEMPTED = 128 + signal.SIGTERM  # contract.EXIT_PREEMPTED; tests hold the two equal
READY_SUFFIX = ".ready"
EXIT_SUFFIX = ".exit"


@dataclasses.dataclass(frozen=True)
class RankExit:
    """One rank's exit code, and whether the contract retries it (non-retryable codes are the worst)."""

    rank: int
    code: int
    retryable: bool
    counted: bool = True

    @property
    def severity(self) -> int:
        """0 succeeded, 1 stopped for another pod of the group (not counted), 2 preempted, 3 a failure
        worth a retry, 4 a failure no retry can help."""
        if self.code == 0:
            return 0
        if not self.counted:
            return 1
        if self.code == EXIT_PREEMPTED:
            return 2
        return 3 if self.retryable else 4


def worst(exits: Iterable[RankExit]) -> RankExit:
    """The most severe exit; between equals, the lowest rank's (rank 0 writes the termination message)."""
    return max(exits, key=lambda e: (e.severity, -e.rank))


def mark_ready(environ: Mapping[str, str] | None = None) -> None:
    """Called by each rank right after it installs its SIGTERM handler: signals may come now."""
    env = os.environ if environ is None else environ
    _record(env, READY_SUFFIX, {"pid": os.getpid(), "processes": int(env.get("LOCAL_WORLD_SIZE") or 1)})


def record_exit_code(
    code: int, *, retryable: bool, counted: bool = True, environ: Mapping[str, str] | None = None
) -> None:
    """Called by each rank just before it exits, with the contract's verdict on its code."""
    body: dict[str, object] = {"code": code, "retryable": retryable, "counted": counted}
    _record(os.environ if environ is None else environ, EXIT_SUFFIX, body)


def _local_rank(env: Mapping[str, str]) -> int:
    return int(env.get("LOCAL_RANK") or env.get("RANK") or 0)


def _record(env: Mapping[str, str], suffix: str, body: dict[str, object]) -> None:
    directory = env.get(LAUNCH_DIR_ENV)
    if not directory:
        return  # not under this launcher: nobody to tell
    path = pathlib.Path(directory) / f"rank-{_local_rank(env)}{suffix}"
    partial = path.with_name(path.name + ".partial")
    # Written whole, then renamed: the launcher never reads half a file.
    with contextlib.suppress(OSError):
        partial.write_text(json.dumps(body))
        partial.replace(path)


def _read(directory: pathlib.Path, suffix: str) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = {}
    with contextlib.suppress(OSError):
        for path in directory.glob(f"rank-*{suffix}"):
            try:
                found[int(path.name[len("rank-") : -len(suffix)])] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    return found


def outcome(directory: pathlib.Path, *, returncode: int, stopped: bool) -> int:
    """The launcher's exit code once accelerate exited with `returncode` (module docstring: worst rank)."""
    ready = _read(directory, READY_SUFFIX)
    exits = [
        RankExit(
            rank=rank,
            code=int(body["code"]),
            retryable=bool(body["retryable"]),
            counted=bool(body.get("counted", True)),
        )
        for rank, body in _read(directory, EXIT_SUFFIX).items()
    ]
    expected = max((int(body.get("processes", 1)) for body in ready.values()), default=0)
    ranks = set(range(expected)) | set(ready) | {e.rank for e in exits}
    if not ranks:
        return returncode if returncode >= 0 else 128 - returncode
    recorded = {e.rank for e in exits}
    silent = [RankExit(rank=r, code=EXIT_FAILURE, retryable=True) for r in sorted(ranks - recorded)]
    if silent and not (stopped and any(e.code != 0 for e in exits)):
        exits += silent
    return worst(exits).code


def _make_launch_dir(environ: Mapping[str, str]) -> pathlib.Path:
    workdir = pathlib.Path(environ.get("KUBEFT_WORKDIR") or DEFAULT_WORKDIR)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        return pathlib.Path(tempfile.mkdtemp(prefix="launch-", dir=workdir))
    except OSError:
        # The trainer reports an unusable work directory itself; the launcher still needs a place.
        return pathlib.Path(tempfile.mkdtemp(prefix="kubeft-launch-"))


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _say(message: str) -> None:
    print(f"kubeft launch: {message}", file=sys.stderr, flush=True)


def run(command: list[str]) -> int:
    """Run `command` (accelerate launch and the trainer), pass signals on, return the worst rank's code."""
    directory = _make_launch_dir(os.environ)
    received: list[int] = []
    signalled: set[int] = set()  # ranks that got the signal

    def receive(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)

    def pass_on() -> None:
        exited = _read(directory, EXIT_SUFFIX)
        for rank, body in sorted(_read(directory, READY_SUFFIX).items()):
            if rank in signalled or rank in exited:
                continue
            signalled.add(rank)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(body["pid"]), received[0])
                _say(f"passed {signal.Signals(received[0]).name} on to rank {rank} (pid {body['pid']})")

    previous = {s: signal.signal(s, receive) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(
            command,
            start_new_session=True,
            preexec_fn=_ignore_sigterm,
            env={**os.environ, LAUNCH_DIR_ENV: str(directory)},
        )
        _say(f"started accelerate (pid {child.pid}); SIGTERM and SIGINT go to each trainer process once it is ready")
        while True:
            try:
                returncode = child.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if received:
                    pass_on()
        return outcome(directory, returncode=returncode, stopped=bool(received))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(directory, ignore_errors=True)


def thread_args(args: list[str], environ: Mapping[str, str], *, usable: int | None = None) -> list[str]:
    """``--num_cpu_threads_per_process N``: each trainer process's share of the pod's CPUs.

    Without it accelerate sets ``OMP_NUM_THREADS=1`` for the trainer (unless ``--cpu`` is given), and
    a CPU pod trains on one core however many it was given; a GPU pod's data preparation too. The
    share is the pod's usable CPUs (cgroup limit and affinity, :mod:`kubeft_trainer.cpus`) over the
    number of processes. Nothing is added where the caller chose: ``OMP_NUM_THREADS`` set, or the
    flag given.
    """
    if environ.get("OMP_NUM_THREADS") or any(a.split("=")[0] == "--num_cpu_threads_per_process" for a in args):
        return []
    processes = 1
    for i, arg in enumerate(args):
        value = arg.partition("=")[2] if arg.startswith("--num_processes=") else None
        if arg == "--num_processes" and i + 1 < len(args):
            value = args[i + 1]
        if value is not None:
            with contextlib.suppress(ValueError):
                processes = max(1, int(value))
            break
    share = cpus.cpus_per_process({"LOCAL_WORLD_SIZE": str(processes)}, cpus=usable)
    return ["--num_cpu_threads_per_process", str(share)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run([sys.executable, "-m", "accelerate.commands.launch", *thread_args(args, os.environ), *args])


if __name__ == "__main__":
    raise SystemExit(main())
