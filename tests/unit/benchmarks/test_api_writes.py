"""Attributing API server writes to the operator (benchmarks/operator_scale.py)."""

from __future__ import annotations

from benchmarks import operator_scale

METRICS = "\n".join(
    [
        "# HELP apiserver_request_total Counter of apiserver requests",
        'apiserver_request_total{code="201",group="batch",resource="jobs",subresource="",verb="POST"} 7',
        'apiserver_request_total{code="409",group="batch",resource="jobs",subresource="",verb="POST"} 1',
        'apiserver_request_total{code="200",group="batch",resource="jobs",subresource="status",verb="PUT"} 4',
        'apiserver_request_total{code="200",group="",resource="pods",subresource="",verb="LIST"} 50',
        'apiserver_request_duration_seconds_count{group="batch",resource="jobs",subresource="",verb="POST"} 9',
    ]
)


def test_request_totals_sum_over_response_codes() -> None:
    totals = operator_scale.parse_request_totals(METRICS)
    assert totals[("batch", "jobs", "", "POST")] == 8
    assert totals[("", "pods", "", "LIST")] == 50


def test_breakdown_keeps_only_writes_that_grew() -> None:
    before = {("batch", "jobs", "", "POST"): 2.0, ("", "pods", "", "LIST"): 10.0, ("", "pods", "", "POST"): 3.0}
    after = {("batch", "jobs", "", "POST"): 8.0, ("", "pods", "", "LIST"): 50.0, ("", "pods", "", "POST"): 3.0}
    assert operator_scale.write_breakdown(before, after) == {("batch", "jobs", "", "POST"): 6.0}


def test_operator_writes_leave_out_the_controller_manager_and_the_harness() -> None:
    breakdown = {
        ("kubeft.io", "finetunejobs", "", "POST"): 10.0,  # the harness's creates
        ("kubeft.io", "finetunejobs", "status", "PATCH"): 20.0,
        ("batch", "jobs", "", "POST"): 10.0,
        ("batch", "jobs", "status", "PUT"): 10.0,  # job controller
        ("", "serviceaccounts", "token", "POST"): 1.0,  # token requests
        ("", "pods", "", "POST"): 10.0,  # job controller
    }
    assert operator_scale.operator_writes(breakdown, harness_creates=10, operator_events=5) == 35.0
