"""The chart's Grafana dashboard and PrometheusRule: rendered behind their switches, and every query names
only series the operator exports (:func:`kubeft_operator.metrics.exported_names`)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kubeft_operator import metrics
from tests.unit.chart import helm

DASHBOARD = helm.CHART / "files" / "grafana-dashboard.json"
BOTH = ("--set", "metrics.dashboard.enabled=true", "--set", "metrics.prometheusRule.enabled=true")

# PromQL words that are not series: functions, aggregations, operators, modifiers.
PROMQL_WORDS = {
    "abs", "absent", "and", "avg", "avg_over_time", "bool", "bottomk", "by", "ceil", "changes", "clamp_min", "count",
    "count_over_time", "delta", "deriv", "floor", "group_left", "group_right", "histogram_quantile", "ignoring",
    "increase", "irate", "label_values", "max", "max_over_time", "min", "min_over_time", "offset", "on", "or",
    "quantile", "rate", "resets", "round", "sum", "sum_over_time", "time", "topk", "unless", "vector", "without",
}  # fmt: skip
_LABEL_VALUES = re.compile(r"label_values\((.*),\s*\w+\)")  # Grafana's variable query: (series, label)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPINGS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_DURATIONS = re.compile(r"\b\d+(ms|s|m|h|d|w|y)\b")
_NAME = re.compile(r"(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*")


def series_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's label_values query) reads."""
    bare = _LABEL_VALUES.sub(r"\1", expr)
    bare = _STRINGS.sub("", bare)
    bare = _MATCHERS.sub("", bare)
    bare = _RANGES.sub("", bare)
    bare = _GROUPINGS.sub(r"\1", bare)
    bare = _DURATIONS.sub("", bare)
    return {word for word in _NAME.findall(bare) if word not in PROMQL_WORDS}


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    targets = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return targets + variables


def _rule_exprs(*options: str) -> list[str]:
    (rule,) = helm.find(helm.render(*BOTH, *options), "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ('rate(kubeft_finetunejob_step{namespace=~"$ns"}[$__rate_interval])', {"kubeft_finetunejob_step"}),
        ("a > 2 * min_over_time(b[30m]) and on (namespace, name) c offset 15m", {"a", "b", "c"}),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))", {"x_bucket"}),
        ('label_values(kubeft_finetunejob_info{namespace=~"$namespace"}, name)', {"kubeft_finetunejob_info"}),
    ],
)
def test_series_names_are_parsed_out_of_promql(expr: str, want: set[str]) -> None:
    assert series_names(expr) == want


def test_a_misspelt_series_is_caught() -> None:
    assert series_names("rate(kubeft_finetunejob_stpe[5m])") - metrics.exported_names() == {"kubeft_finetunejob_stpe"}


def test_defaults_render_neither_dashboard_nor_rules() -> None:
    objects = helm.render()

    assert helm.find(objects, "PrometheusRule") == []
    assert [c for c in helm.find(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")] == []


def test_dashboard_configmap_carries_the_sidecar_label_and_the_json() -> None:
    (config_map,) = [
        c for c in helm.find(helm.render(*BOTH), "ConfigMap") if c["metadata"]["name"] == "ft-kubeft-dashboard"
    ]

    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == helm.NAMESPACE
    assert json.loads(config_map["data"]["kubeft-finetunejobs.json"]) == _dashboard()


def test_dashboard_namespace_labels_and_annotations_are_values() -> None:
    options = (
        "--set", "metrics.dashboard.namespace=monitoring",
        "--set", "metrics.dashboard.labels.dashboards=kubeft",
        "--set", "metrics.dashboard.annotations.grafana_folder=ML",
    )  # fmt: skip
    (config_map,) = [
        c for c in helm.find(helm.render(*BOTH, *options), "ConfigMap") if "-dashboard" in c["metadata"]["name"]
    ]

    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["dashboards"] == "kubeft"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "ML"}


def test_dashboard_is_a_grafana_dashboard_whose_panels_all_query() -> None:
    dashboard = _dashboard()

    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) > 0
    for panel in dashboard["panels"]:
        assert panel["type"] and panel["title"], panel
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"] and target["refId"], panel["title"]


def test_dashboard_shows_every_per_job_series() -> None:
    read = set().union(*(series_names(q) for q in _dashboard_queries(_dashboard())))

    assert {metrics.JOB_INFO, *metrics.JOB_GAUGES} <= read


def test_dashboard_queries_name_only_exported_series() -> None:
    exported = metrics.exported_names()
    unknown = {query: sorted(series_names(query) - exported) for query in _dashboard_queries(_dashboard())}

    assert {query: names for query, names in unknown.items() if names} == {}


def test_rule_expressions_name_only_exported_series() -> None:
    exported = metrics.exported_names()
    unknown = {expr: sorted(series_names(expr) - exported) for expr in _rule_exprs()}

    assert {expr: names for expr, names in unknown.items() if names} == {}


def test_rules_alert_on_a_stalled_job_and_a_diverging_loss() -> None:
    (rule,) = helm.find(helm.render(*BOTH), "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}

    assert set(alerts) == {"KubeftFineTuneJobStalled", "KubeftFineTuneJobLossDiverging"}
    assert 'kubeft_finetunejob_info{phase="Running"}' in alerts["KubeftFineTuneJobStalled"]["expr"]
    assert all(a["labels"] == {"severity": "warning"} for a in alerts.values())


def test_rule_thresholds_are_values() -> None:
    options = (
        "--set", "metrics.prometheusRule.stalledFor=45m",
        "--set", "metrics.prometheusRule.divergingFactor=3",
        "--set", "metrics.prometheusRule.divergingWindow=1h",
        "--set", "metrics.prometheusRule.labels.release=prometheus",
    )  # fmt: skip
    stalled, diverging = _rule_exprs(*options)
    (rule,) = helm.find(helm.render(*BOTH, *options), "PrometheusRule")

    assert "changes(kubeft_finetunejob_step[45m]) == 0" in stalled and "offset 45m" in stalled
    assert "kubeft_finetunejob_loss > 3 * min_over_time(kubeft_finetunejob_loss[1h])" in diverging
    assert rule["metadata"]["labels"]["release"] == "prometheus"


@pytest.mark.parametrize(
    ("option", "want_error"),
    [
        ("metrics.prometheusRule.stalledFor=fifteen", "stalledFor"),
        ("metrics.prometheusRule.divergingFactor=1", "divergingFactor"),
        ("metrics.dashboard.enable=true", "enable"),
    ],
)
def test_schema_refuses_bad_monitoring_values(option: str, want_error: str) -> None:
    done = helm.run(*helm.template_args("--set", option), check=False)

    assert done.returncode != 0
    assert want_error in done.stderr
