"""The operator's before/after table (benchmarks/operator_goals.py) and where its baseline lives
(benchmarks/operator_baseline.py): run order, medians, ratios, goals met or missed, cache keys."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest

from benchmarks import operator_baseline, operator_goals

MIB = 2**20


def result(
    *,
    drain: float = 20.0,
    drained: bool = True,
    burst_p99: float | None = 10.0,
    cpu: float = 0.020,
    rss_peak: float = 200 * MIB,
    rss_idle: float = 90 * MIB,
    writes: float = 7.5,
    late_p99: float | None = 0.05,
) -> dict[str, Any]:
    """The fields of operator_scale.measure's result that the table reads."""
    return {
        "drained": drained,
        "drain_seconds": drain,
        "apply_to_job": {} if burst_p99 is None else {"p99": burst_p99},
        "after_drain_apply_to_job": {} if late_p99 is None else {"p99": late_p99},
        "cpu_seconds_per_job": cpu,
        "rss_peak_bytes": rss_peak,
        "rss_idle_bytes": rss_idle,
        "operator_writes_per_job": writes,
    }


def row(rows: list[dict[str, Any]], figure: operator_goals.Figure) -> dict[str, Any]:
    return next(r for r in rows if r["figure"] == figure.key)


@pytest.mark.parametrize(
    ("repeats", "baseline", "want_order"),
    [
        (1, True, ["baseline", "current"]),
        (2, True, ["baseline", "current", "current", "baseline"]),
        (3, True, ["baseline", "current", "current", "baseline", "baseline", "current"]),
        (2, False, ["current", "current"]),
    ],
)
def test_runs_alternate_sides_in_pairs(repeats: int, baseline: bool, want_order: list[str]) -> None:
    assert operator_goals.interleave(repeats, baseline=baseline) == want_order


def test_no_runs_is_refused() -> None:
    with pytest.raises(ValueError, match="`repeats`"):
        operator_goals.interleave(0, baseline=True)


@pytest.mark.parametrize(
    ("values", "want_median"),
    [
        ([3.0, 1.0, 2.0], 2.0),
        ([4.0, 1.0, 3.0, 2.0], 2.5),
        ([None, 1.0, 2.0], 2.0),  # a timed-out run is the worst, not skipped
        ([None, None, 1.0], None),
        ([None, 1.0], None),
        ([], None),
    ],
)
def test_median_counts_a_missing_value_as_the_worst(values: list[float | None], want_median: float | None) -> None:
    assert operator_goals.median(values) == want_median


def test_medians_ratio_and_pairs_come_from_each_side_in_run_order() -> None:
    runs = [
        {"side": "baseline", "result": result(cpu=0.030)},
        {"side": "current", "result": result(cpu=0.015)},
        {"side": "current", "result": result(cpu=0.021)},
        {"side": "baseline", "result": result(cpu=0.028)},
    ]
    cpu = row(operator_goals.compare(runs), operator_goals.CPU_PER_JOB)
    assert cpu["before"] == pytest.approx(0.029)
    assert cpu["after"] == pytest.approx(0.018)
    assert cpu["ratio"] == pytest.approx(0.018 / 0.029)
    assert cpu["pair_ratios"] == [pytest.approx(0.5), pytest.approx(0.021 / 0.028)]
    assert cpu["before_runs"] == [0.030, 0.028]
    assert cpu["met"] is False  # 18 ms > 15 ms


def test_goal_is_met_at_or_below_its_bound_and_missed_above() -> None:
    runs = [
        {"side": "current", "result": result(writes=8.0, rss_peak=151 * MIB, late_p99=0.1, burst_p99=15.01)},
    ]
    rows = operator_goals.compare(runs)
    assert row(rows, operator_goals.WRITES_PER_JOB)["met"] is True
    assert row(rows, operator_goals.AFTER_DRAIN_P99)["met"] is True
    assert row(rows, operator_goals.RSS_PEAK)["met"] is False
    assert row(rows, operator_goals.BURST_P99)["met"] is False
    assert row(rows, operator_goals.RSS_IDLE)["met"] is None  # reported, no goal


def test_a_burst_that_did_not_drain_misses_its_goal_and_has_no_ratio() -> None:
    runs = [
        {"side": "baseline", "result": result(drain=5.0)},
        {"side": "current", "result": result(drain=5.0, drained=False, late_p99=None)},
    ]
    rows = operator_goals.compare(runs)
    drain = row(rows, operator_goals.DRAIN)
    assert (drain["after"], drain["ratio"], drain["met"]) == (None, None, False)
    assert row(rows, operator_goals.AFTER_DRAIN_P99)["met"] is False


def test_without_a_baseline_there_is_nothing_to_divide_by() -> None:
    rows = operator_goals.compare([{"side": "current", "result": result()}])
    assert all(r["before"] is None and r["ratio"] is None and r["pair_ratios"] == [] for r in rows)


def comparison(runs: list[dict[str, Any]], *, baseline: bool = True) -> dict[str, Any]:
    return {
        "n": 1000,
        "baseline": {"ref": "52ff078", "commit": "52ff0787f620ff46", "requirements": ["lightkube==1.0.1"]}
        if baseline
        else None,
        "runs": runs,
        "figures": operator_goals.compare(runs),
    }


def test_table_has_a_row_per_figure_with_goal_before_after_ratio_and_verdict() -> None:
    runs = [
        {"side": "baseline", "result": result(drain=28.9, cpu=0.029)},
        {"side": "current", "result": result(drain=23.3, cpu=0.0185)},
    ]
    lines = operator_goals.table(comparison(runs))
    drain = next(line for line in lines if line.startswith("| burst drained"))
    assert drain == "| burst drained | ≤ 15 s | 28.9 s | 23.3 s | 0.81x | **missed** |"
    cpu = next(line for line in lines if line.startswith("| operator CPU per job"))
    assert cpu == "| operator CPU per job | ≤ 15 ms | 29.0 ms | 18.5 ms | 0.64x | **missed** |"
    idle = next(line for line in lines if line.startswith("| RSS idle"))
    assert idle.endswith("| 1.00x |  |")
    assert "before (52ff078)" in lines[2]
    assert "baseline, current" in lines[0]


def test_table_lists_every_run_in_the_order_it_ran() -> None:
    runs = [
        {"side": "baseline", "result": result(drain=30.0)},
        {"side": "current", "result": result(drain=20.0, drained=False)},
        {"side": "current", "result": result(drain=22.0)},
        {"side": "baseline", "result": result(drain=31.0)},
    ]
    lines = operator_goals.table(comparison(runs))
    every = [line for line in lines if line[:4] in ("| 1 ", "| 2 ", "| 3 ", "| 4 ")]
    assert [line.split(" | ")[1:3] for line in every] == [
        ["before (52ff078)", "30.0 s"],
        ["after", "timed out"],
        ["after", "22.0 s"],
        ["before (52ff078)", "31.0 s"],
    ]


def test_per_pair_ratios_are_shown_once_there_is_more_than_one_pair() -> None:
    one_pair = [{"side": "baseline", "result": result()}, {"side": "current", "result": result()}]
    two_pairs = [*one_pair, *reversed(one_pair)]
    assert "per pair" not in operator_goals.table(comparison(one_pair))[2]
    assert "per pair" in operator_goals.table(comparison(two_pairs))[2]


def test_table_without_baseline_says_so() -> None:
    lines = operator_goals.table(comparison([{"side": "current", "result": result()}], baseline=False))
    assert "--no-baseline" in lines[0]
    assert "before (not measured)" in lines[2]
    drain = next(line for line in lines if line.startswith("| burst drained"))
    assert drain == "| burst drained | ≤ 15 s | - | 20.0 s | - | **missed** |"


# -------------------------------------------------------------------------------- the baseline


def test_baseline_cache_is_keyed_by_commit_and_python_not_by_ref() -> None:
    cache = pathlib.Path("/cache")
    a = operator_baseline.cache_dir(cache, "52ff0787f620ff46fc845e1fef13508a4b8c4151", (3, 11))
    assert a == cache / "bench-baseline-52ff0787f620-py3.11"
    assert operator_baseline.cache_dir(cache, "52ff0787f620ff46fc845e1fef13508a4b8c4151", (3, 12)) != a
    assert operator_baseline.cache_dir(cache, "605661c0000000000000000000000000000000000", (3, 11)) != a


def test_a_cache_built_for_other_pins_is_not_reused() -> None:
    old = operator_baseline.stamp("abc", "3.11", "kopf==1.45.2\nlightkube==1.0.1\n")
    assert operator_baseline.stamp("abc", "3.11", "kopf==1.45.2\nlightkube==1.0.1\n") == old
    assert operator_baseline.stamp("abc", "3.11", "kopf==1.45.2\nlightkube==1.0.2\n") != old


def test_pins_leave_out_comments_and_blank_lines() -> None:
    text = "# Runtime dependencies\n\nkopf==1.45.2\nlightkube==1.0.1  # the old client\n"
    assert operator_baseline.pins(text) == ("kopf==1.45.2", "lightkube==1.0.1")


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "README").write_text("x\n")
    git("add", "README")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first")
    return tmp_path


def test_baseline_ref_resolves_to_its_full_commit(repo: pathlib.Path) -> None:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert operator_baseline.resolve(head[:7], repo=repo) == head


def test_a_ref_missing_from_the_clone_fails_with_what_to_do(repo: pathlib.Path) -> None:
    with pytest.raises(RuntimeError, match=r"not a commit in .*--no-baseline"):
        operator_baseline.resolve("52ff078", repo=repo)
