"""A stand-in for `accelerate launch` and its trainer ranks, for the launcher's tests (standard library only).

`python fake_ranks.py SCENARIO.json` plays torchrun: it starts one rank per entry of the scenario,
each in a session of its own with LOCAL_RANK and LOCAL_WORLD_SIZE set, waits for all of them and
exits 1 if any failed (as accelerate does); a SIGTERM it gets leaves a ``torchrun-signalled``
file in the scenario's ``out`` folder. Each rank (`python fake_ranks.py SCENARIO.json RANK`)
does what its entry says, through the trainer's own calls (:func:`kubeft_trainer.launch.mark_ready`,
:func:`~kubeft_trainer.launch.record_exit_code`):

- ``gate``: a file to wait for before installing the SIGTERM handler (a slow start);
- ``until_signalled``: after marking itself ready, wait for SIGTERM, then stay a while to count any
  repeat, write the count to ``signals-RANK`` in the scenario's ``out`` folder and exit 143;
- ``code`` / ``retryable``: otherwise record and exit with this code; ``record: false`` exits
  without recording, as a rank killed by the OOM killer does.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from kubeft_trainer import launch

# How long a signalled rank stays to see whether the signal comes again: many times the
# launcher's poll interval, the pace at which a repeat would arrive.
LINGER_SECONDS = 20 * launch.POLL_SECONDS
TORCHRUN_SIGNALLED = "torchrun-signalled"


def _wait_for(path: pathlib.Path) -> None:
    while not path.exists():
        time.sleep(0.01)


def rank(scenario: dict[str, object], index: int) -> int:
    entry: dict[str, object] = scenario["ranks"][index]  # type: ignore[index]
    out = pathlib.Path(str(scenario["out"]))
    if "gate" in entry:
        _wait_for(pathlib.Path(str(entry["gate"])))
    received: list[float] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(time.monotonic()))
    launch.mark_ready()
    if entry.get("until_signalled"):
        while not received:
            time.sleep(0.01)
        time.sleep(LINGER_SECONDS)
        (out / f"signals-{index}").write_text(str(len(received)))
        code, retryable = launch.EXIT_PREEMPTED, True
    else:
        code, retryable = int(entry.get("code", 0)), bool(entry.get("retryable", True))  # type: ignore[call-overload]
    if entry.get("record", True):
        launch.record_exit_code(code, retryable=retryable)
    return code


def torchrun(path: str, scenario: dict[str, object]) -> int:
    count = len(scenario["ranks"])  # type: ignore[arg-type]
    # Like torchrun's agent, a handler of its own: the ranks then start with SIGTERM's default
    # action (a handler does not survive exec), which kills a rank signalled too early.
    signalled = pathlib.Path(str(scenario["out"])) / TORCHRUN_SIGNALLED
    signal.signal(signal.SIGTERM, lambda signum, frame: signalled.touch())
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, path, str(i)],
            env={**os.environ, "LOCAL_RANK": str(i), "RANK": str(i), "LOCAL_WORLD_SIZE": str(count)},
            start_new_session=True,
        )
        for i in range(count)
    ]
    return 1 if any(p.wait() != 0 for p in procs) else 0


if __name__ == "__main__":
    doc = json.loads(pathlib.Path(sys.argv[1]).read_text())
    raise SystemExit(rank(doc, int(sys.argv[2])) if len(sys.argv) > 2 else torchrun(sys.argv[1], doc))
