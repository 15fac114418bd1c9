"""The operator's goals (issue 16) and the before/after table: a baseline operator against this checkout.

Pure: no I/O, no cluster. :mod:`benchmarks.operator_scale` measures both operators at the same N
in the same run and calls :func:`compare`; :mod:`benchmarks.run` renders the result with
:func:`table` into results.md, and draws the goals on scale.png. Each goal is declared once, here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import measures

BASELINE, CURRENT = "baseline", "current"
MIB = 2**20
# Goals at N=1,000 (issue 16); docs/performance.md has the profile behind each miss.
GOAL_DRAIN_SECONDS = 15.0
GOAL_BURST_P99_SECONDS = 15.0  # apply→Job during the burst
GOAL_CPU_PER_JOB_SECONDS = 0.015
GOAL_RSS_PEAK_BYTES = 150 * MIB
GOAL_WRITES_PER_JOB = 8.0
GOAL_AFTER_DRAIN_P99_SECONDS = 0.1  # apply→Job once the burst has drained


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure of a run, how it is shown, and its goal (an upper bound), if it has one."""

    key: str
    label: str
    # Reads the figure from one run's result (operator_scale.measure); None: not measured or timed out.
    read: Callable[[dict[str, Any]], float | None]
    unit: str
    # The figure in its unit is value * scale (seconds to ms, bytes to MiB), shown with `digits`.
    scale: float = 1.0
    digits: int = 2
    goal: float | None = None

    def show(self, value: float | None) -> str:
        if value is None:
            return "timed out" if self.key == "drain_seconds" else "-"
        return f"{value * self.scale:.{self.digits}f}{self.unit}"

    def show_goal(self) -> str:
        return "" if self.goal is None else f"≤ {self.goal * self.scale:g}{self.unit}"


def _p99(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(result: dict[str, Any]) -> float | None:
        value = result[key].get("p99")
        return None if value is None else float(value)

    return read


def _drained(result: dict[str, Any]) -> float | None:
    return float(result["drain_seconds"]) if result["drained"] else None


DRAIN = Figure("drain_seconds", "burst drained", _drained, " s", digits=1, goal=GOAL_DRAIN_SECONDS)
BURST_P99 = Figure(
    "burst_apply_to_job_p99", "apply→Job p99 during the burst", _p99("apply_to_job"), " s", goal=GOAL_BURST_P99_SECONDS
)
CPU_PER_JOB = Figure(
    "cpu_seconds_per_job",
    "operator CPU per job",
    lambda r: float(r["cpu_seconds_per_job"]),
    " ms",
    scale=1000,
    digits=1,
    goal=GOAL_CPU_PER_JOB_SECONDS,
)
RSS_PEAK = Figure(
    "rss_peak_bytes",
    "RSS peak",
    lambda r: float(r["rss_peak_bytes"]),
    " MiB",
    scale=1 / MIB,
    digits=0,
    goal=GOAL_RSS_PEAK_BYTES,
)
RSS_IDLE = Figure("rss_idle_bytes", "RSS idle", lambda r: float(r["rss_idle_bytes"]), " MiB", scale=1 / MIB, digits=0)
WRITES_PER_JOB = Figure(
    "operator_writes_per_job",
    "operator API writes per job",
    lambda r: float(r["operator_writes_per_job"]),
    "",
    goal=GOAL_WRITES_PER_JOB,
)
AFTER_DRAIN_P99 = Figure(
    "after_drain_apply_to_job_p99",
    "apply→Job p99 after the burst drained",
    _p99("after_drain_apply_to_job"),
    " s",
    goal=GOAL_AFTER_DRAIN_P99_SECONDS,
)
FIGURES = (DRAIN, BURST_P99, CPU_PER_JOB, RSS_PEAK, RSS_IDLE, WRITES_PER_JOB, AFTER_DRAIN_P99)


def interleave(repeats: int, *, baseline: bool) -> list[str]:
    """The order of the runs: baseline, current, current, baseline, … so that drift in the machine's
    load over the session falls on both sides alike; only current runs without a baseline."""
    if repeats < 1:
        raise ValueError(f"`repeats` must be at least 1, got {repeats}")
    if not baseline:
        return [CURRENT] * repeats
    order: list[str] = []
    for i in range(repeats):
        order += [BASELINE, CURRENT] if i % 2 == 0 else [CURRENT, BASELINE]
    return order


def median(values: Sequence[float | None]) -> float | None:
    """The median, where None (timed out, not measured) counts as worse than any value.

    None when there are no values, or when the median falls on (or, for an even count, next to) a None.
    """
    if not values:
        return None
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    if any(v is None for v in middle):
        return None
    return measures.median(v for v in middle if v is not None)


def ratio(after: float | None, before: float | None) -> float | None:
    """after / before; None when either is missing or before is zero."""
    if after is None or before is None:
        return None
    value = measures.ratio(after, before)
    return None if math.isnan(value) else value


def met(figure: Figure, value: float | None) -> bool | None:
    """Whether `value` meets the figure's goal; None for a figure without a goal. Missing misses it."""
    if figure.goal is None:
        return None
    return value is not None and value <= figure.goal


def compare(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per figure: goal, medians before and after, their ratio, every pair's ratio, met.

    `runs` are ``{"side": "baseline" | "current", "result": ...}`` in the order they ran; the i-th
    baseline run pairs with the i-th current run.
    """
    rows = []
    for figure in FIGURES:
        before = [figure.read(r["result"]) for r in runs if r["side"] == BASELINE]
        after = [figure.read(r["result"]) for r in runs if r["side"] == CURRENT]
        b, a = median(before), median(after)
        rows.append(
            {
                "figure": figure.key,
                "goal": figure.goal,
                "before": b,
                "after": a,
                "ratio": ratio(a, b),
                "pair_ratios": [ratio(x, y) for y, x in zip(before, after, strict=False)],
                "met": met(figure, a),
                "before_runs": before,
                "after_runs": after,
            }
        )
    return rows


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def table(comparison: dict[str, Any]) -> list[str]:
    """Markdown: the goals table (medians, ratio, met) and then every run, in the order they ran."""
    figures = {f.key: f for f in FIGURES}
    rows = comparison["figures"]
    baseline = comparison.get("baseline")
    before_name = f"before ({baseline['ref']})" if baseline else "before (not measured)"
    pairs = max((len(row["pair_ratios"]) for row in rows), default=0)
    per_pair = pairs > 1
    runs = comparison["runs"]
    counts = {side: sum(r["side"] == side for r in runs) for side in (BASELINE, CURRENT)}
    if baseline:
        intro = (
            f"Baseline: the operator of commit {baseline['commit'][:12]} (`--baseline-ref {baseline['ref']}`), from "
            f"that commit's tree and CRD, in a virtualenv of its operator/requirements.txt pins "
            f"({', '.join(baseline['requirements'])}); after: this checkout. Same run, same machine, a fresh "
            f"control plane per run; {counts[BASELINE]} + {counts[CURRENT]} runs in the order "
            f"{', '.join(r['side'] for r in runs)}. Medians; every run below."
        )
    else:
        intro = f"No baseline measured (`--no-baseline`); {counts[CURRENT]} run(s) of this checkout, medians."
    header = f"| at N={comparison['n']} | goal | {before_name} | after (this checkout) | after / before |"
    rule = "|---|---:|---:|---:|---:|"
    if per_pair:
        header += " per pair |"
        rule += "---:|"
    lines = [intro, "", header + " goal met |", rule + "---|"]
    for row in rows:
        figure = figures[row["figure"]]
        cells = [
            figure.label,
            figure.show_goal(),
            # A side with no runs shows "-"; one whose median run timed out shows that.
            figure.show(row["before"]) if row["before_runs"] else "-",
            figure.show(row["after"]) if row["after_runs"] else "-",
            _x(row["ratio"]),
        ]
        if per_pair:
            cells.append(", ".join(_x(r) for r in row["pair_ratios"]))
        cells.append(_verdict(row["met"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| run | side | " + " | ".join(f.label for f in FIGURES) + " |",
        "|---:|---|" + "---:|" * len(FIGURES),
    ]
    for i, run in enumerate(runs, 1):
        side = f"before ({baseline['ref']})" if baseline and run["side"] == BASELINE else "after"
        cells = [str(i), side, *(f.show(f.read(run["result"])) for f in FIGURES)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
