"""The launcher passes SIGTERM on once to each trainer process, holding it until that process is ready.

The launcher runs as the container's entry point does, around a stand-in for accelerate that
starts its ranks the way torchrun does, each in a session of its own (tests/unit/trainer/fake_ranks.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from tests.unit.trainer import fake_ranks

LAUNCHER = "from kubeft_trainer import launch; import sys; raise SystemExit(launch.run(sys.argv[1:]))"


def _start(tmp_path: pathlib.Path, ranks: list[dict[str, object]]) -> subprocess.Popen[str]:
    """The launcher around the fake ranks, returned once it says it started them."""
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"out": str(tmp_path), "ranks": ranks}))
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, sys.executable, fake_ranks.__file__, str(scenario)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBEFT_WORKDIR": str(tmp_path / "work")},
    )
    assert proc.stderr is not None
    seen = []
    while not (seen and seen[-1].startswith("kubeft launch: started accelerate")):
        line = proc.stderr.readline()
        assert line, f"the launcher exited without starting its child: {''.join(seen)}"
        seen.append(line)
    return proc


def _signals(tmp_path: pathlib.Path, rank: int) -> int:
    return int((tmp_path / f"signals-{rank}").read_text())


def _group_signalled(tmp_path: pathlib.Path) -> bool:
    return (tmp_path / fake_ranks.TORCHRUN_SIGNALLED).exists()


def test_sigterm_reaches_every_rank_exactly_once(tmp_path: pathlib.Path) -> None:
    proc = _start(tmp_path, [{"until_signalled": True}, {"until_signalled": True}])
    # Both ranks ready: each says so before it could be signalled.
    while len(list((tmp_path / "work").glob("launch-*/rank-*.ready"))) < 2:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 143, err
    assert (_signals(tmp_path, 0), _signals(tmp_path, 1)) == (1, 1), err
    assert not _group_signalled(tmp_path), "torchrun, signalled, would SIGKILL the ranks 30 s later"


def test_a_sigterm_before_a_rank_is_ready_is_held_then_passed_on_once(tmp_path: pathlib.Path) -> None:
    gate = tmp_path / "gate"
    proc = _start(tmp_path, [{"until_signalled": True}, {"until_signalled": True, "gate": str(gate)}])
    proc.send_signal(signal.SIGTERM)
    # Rank 1 installs its handler only now, well after the signal reached the launcher; with the
    # signal's default action (a torchrun rank's) an early signal would have killed it.
    gate.touch()
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 143, err
    assert (_signals(tmp_path, 0), _signals(tmp_path, 1)) == (1, 1), err


def test_a_second_sigterm_to_the_launcher_is_not_passed_on_again(tmp_path: pathlib.Path) -> None:
    gate = tmp_path / "gate"
    proc = _start(tmp_path, [{"until_signalled": True, "gate": str(gate)}])
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    gate.touch()
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 143, err
    assert _signals(tmp_path, 0) == 1, err


def test_without_a_signal_no_rank_is_signalled(tmp_path: pathlib.Path) -> None:
    proc = _start(tmp_path, [{"code": 0}, {"code": 0}])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "passed SIGTERM" not in err


def test_the_launcher_imports_nothing_but_the_standard_library() -> None:
    """Its handlers are in place within milliseconds of the container's start, before anything slow."""
    script = (
        "import sys; before = set(sys.modules); import kubeft_trainer.launch; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    foreign = {name for name in loaded if name.split(".")[0] not in {*sys.stdlib_module_names, "kubeft_trainer"}}
    assert "kubeft_trainer.launch" in loaded
    assert not foreign
