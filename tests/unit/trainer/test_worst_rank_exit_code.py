"""The launcher exits with the worst rank's code: never retried > other failures > preempted > success.

The order comes from the contract's `retryable` flag, recorded by each rank; nothing an earlier
attempt left in the work directory is read.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

from kubeft_operator.api import contract
from kubeft_trainer import __main__ as entry
from kubeft_trainer import launch
from tests.unit.trainer import fake_ranks


def _exit(rank: int, code: int) -> launch.RankExit:
    return launch.RankExit(rank=rank, code=code, retryable=entry.retryable(code), counted=entry.COUNTED.get(code, True))


@pytest.mark.parametrize(
    ("codes", "want_code", "want_rank"),
    [
        ([0, 0], 0, 0),
        ([0, 143], 143, 1),
        ([143, 1], 1, 1),
        ([143, 137], 137, 1),  # killed by a signal and recorded as such: a failure, retried
        ([1, 64], 64, 1),
        ([143, 65, 0], 65, 1),
        ([65, 64], 65, 0),  # equally bad: rank 0's, the one its termination message explains
        ([1, 1], 1, 0),
        # Stopped for another pod of the group: below this pod's own SIGTERM (the ranks of one pod
        # get it microseconds apart, the first to agree thinks a peer asked) and below any failure.
        ([67, 143], 143, 1),
        ([1, 67], 1, 0),
        ([0, 67], 67, 1),
    ],
)
def test_the_worst_rank_wins(codes: list[int], want_code: int, want_rank: int) -> None:
    worst = launch.worst(_exit(rank, code) for rank, code in enumerate(codes))
    assert (worst.code, worst.rank) == (want_code, want_rank)


@pytest.mark.parametrize("code", [e.code for e in contract.EXIT_CODES])
def test_the_order_follows_the_contracts_retryable_flag(code: int) -> None:
    declared = next(e for e in contract.EXIT_CODES if e.code == code)
    severity = _exit(0, code).severity
    if code == contract.EXIT_OK:
        assert severity == 0
    elif not declared.counted:
        assert severity == 1
    elif code == contract.EXIT_PREEMPTED:
        assert severity == 2
    else:
        # Every code the Job fails at once outranks every code it retries.
        assert severity == (3 if declared.retryable else 4), declared


def test_preempted_is_the_code_the_launcher_ranks_below_failures() -> None:
    assert launch.EXIT_PREEMPTED == contract.EXIT_PREEMPTED


def _outcome(tmp_path: pathlib.Path, *, ready: dict[int, int], exits: dict[int, int], stopped: bool = False) -> int:
    """`launch.outcome` over records written by the ranks' own calls; ready maps rank -> processes."""
    env = {launch.LAUNCH_DIR_ENV: str(tmp_path)}
    for rank, processes in ready.items():
        launch.mark_ready({**env, "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(processes)})
    for rank, code in exits.items():
        launch.record_exit_code(code, retryable=entry.retryable(code), environ={**env, "LOCAL_RANK": str(rank)})
    return launch.outcome(tmp_path, returncode=1, stopped=stopped)


def test_a_rank_that_recorded_nothing_counts_as_a_failure(tmp_path: pathlib.Path) -> None:
    assert _outcome(tmp_path, ready={0: 2, 1: 2}, exits={0: 0}) == 1


def test_a_rank_that_never_got_ready_counts_as_a_failure(tmp_path: pathlib.Path) -> None:
    assert _outcome(tmp_path, ready={0: 2}, exits={0: 143}) == 1


def test_after_a_stop_the_silence_of_a_rank_stopped_by_torchrun_does_not_hide_preempted(
    tmp_path: pathlib.Path,
) -> None:
    assert _outcome(tmp_path, ready={0: 2, 1: 2}, exits={0: 143}, stopped=True) == 143


def test_after_a_stop_a_silent_rank_still_fails_a_run_whose_ranks_all_succeeded(tmp_path: pathlib.Path) -> None:
    assert _outcome(tmp_path, ready={0: 2, 1: 2}, exits={0: 0}, stopped=True) == 1


@pytest.mark.parametrize(("returncode", "want"), [(0, 0), (2, 2), (-9, 137)])
def test_without_any_record_accelerates_own_code_is_the_answer(
    tmp_path: pathlib.Path, returncode: int, want: int
) -> None:
    assert launch.outcome(tmp_path, returncode=returncode, stopped=False) == want


def _launch(tmp_path: pathlib.Path, ranks: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch) -> int:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"out": str(tmp_path), "ranks": ranks}))
    monkeypatch.setenv("KUBEFT_WORKDIR", str(tmp_path / "work"))
    return launch.run([sys.executable, fake_ranks.__file__, str(scenario)])


def test_the_launcher_exits_with_a_non_retryable_code_seen_by_one_rank_only(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _launch(tmp_path, [{"code": 0}, {"code": 64, "retryable": False}], monkeypatch)
    assert code == 64


def test_records_left_in_the_workdir_by_an_earlier_attempt_are_not_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    old = work / "launch-earlier"
    old.mkdir(parents=True)
    (old / f"rank-0{launch.EXIT_SUFFIX}").write_text(json.dumps({"code": 65, "retryable": False}))
    (work / "exit-code").write_text("64")  # where the launcher used to read rank 0's code

    assert _launch(tmp_path, [{"code": 0}], monkeypatch) == 0


def test_the_launchers_records_are_removed_when_it_exits(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _launch(tmp_path, [{"code": 0}], monkeypatch) == 0
    assert list((tmp_path / "work").iterdir()) == []
