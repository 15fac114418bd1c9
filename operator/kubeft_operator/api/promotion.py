"""The promotion gate: which metrics `spec.promotion` may name, and whether a run's metrics pass it.

Declared once for the three readers: the CRD's CEL rules (api/spec.py) and the trainer's re-check of
hand-written configs (:func:`spec_problem`) say which metric a task and evaluation setting can
produce; the trainer calls :func:`evaluate` on its final evaluation to decide whether to copy the
adapter to `spec.output`, and reports the :class:`Decision` in its termination message; the
operator turns that report into the ``Promoted`` condition (:func:`condition`). Pure, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

LM_TASKS = ("CAUSAL_LM", "SEQ_2_SEQ_LM")
CLASSIFICATION_TASKS = ("SEQ_CLS", "TOKEN_CLS")


@dataclasses.dataclass(frozen=True)
class GateMetric:
    name: str  # as the trainer reports it (status.metrics)
    requested_as: str | None  # its entry in spec.training.evaluation.metrics; None: always computed
    tasks: tuple[str, ...] | None  # the tasks that produce it; None: every task


METRICS = {
    m.name: m
    for m in (
        GateMetric("eval_loss", None, None),
        GateMetric("eval_perplexity", "perplexity", LM_TASKS),
        GateMetric("eval_accuracy", "accuracy", CLASSIFICATION_TASKS),
        GateMetric("eval_f1", "f1", CLASSIFICATION_TASKS),
    )
}

# Reasons of the Promoted condition.
PASSED = "GatePassed"
FAILED = "GateFailed"
NOT_REPORTED = "GateNotReported"
NOT_AT_OUTPUT = "ArtifactNotAtOutput"


def _requested(metrics_expr: str, name: str) -> str:
    """CEL: the metric is computed; an empty or absent list means the task's defaults (train/metrics.py)."""
    ev = "self.training.evaluation"
    return f"(!has({ev}) || !has({metrics_expr}) || size({metrics_expr}) == 0 || '{name}' in {metrics_expr})"


def cel_rules() -> list[tuple[str, str, str]]:
    """The spec-level CEL rules for `spec.promotion`, with the field each one points at."""
    metrics_expr = "self.training.evaluation.metrics"
    rules = [
        (
            "!has(self.promotion) || has(self.output.s3)",
            "spec.promotion needs spec.output.s3: the adapter is exported to the run's own prefix beside it "
            "and copied to the output only when the gate passes",
            ".promotion",
        ),
        (
            "!has(self.promotion) || has(self.dataset.validationSource) || has(self.dataset.validationFraction)",
            "spec.promotion needs a validation split: set spec.dataset.validationSource or validationFraction",
            ".promotion",
        ),
        (
            "!has(self.promotion) || !has(self.training.evaluation) || self.training.evaluation.strategy != 'no'",
            "spec.promotion needs evaluation: spec.training.evaluation.strategy must not be 'no'",
            ".promotion",
        ),
    ]
    for metric in METRICS.values():
        if metric.tasks is None or metric.requested_as is None:
            continue
        tasks = ", ".join(f"'{t}'" for t in metric.tasks)
        rules.append(
            (
                f"!has(self.promotion) || self.promotion.thresholds.all(t, t.metric != '{metric.name}' || "
                f"(self.task in [{tasks}] && {_requested(metrics_expr, metric.requested_as)}))",
                f"{metric.name} is computed for tasks {', '.join(metric.tasks)} only, and only when "
                f"spec.training.evaluation.metrics is empty or lists {metric.requested_as}",
                ".promotion.thresholds",
            )
        )
    return rules


def spec_problem(spec: Any) -> str | None:
    """The first rule of :func:`cel_rules` that `spec` (a FineTuneJobSpec) breaks, for configs outside Kubernetes."""
    promotion = spec.promotion
    if promotion is None:
        return None
    if spec.output.s3 is None:
        return "`spec.promotion` needs `spec.output.s3`"
    if spec.dataset.validation_source is None and spec.dataset.validation_fraction is None:
        return "`spec.promotion` needs a validation split: `spec.dataset.validationSource` or `validationFraction`"
    evaluation = spec.training.evaluation
    if evaluation.strategy == "no":
        return "`spec.promotion` needs evaluation: `spec.training.evaluation.strategy` must not be 'no'"
    for threshold in promotion.thresholds:
        if threshold.min is None and threshold.max is None:
            return f"`spec.promotion.thresholds`: set min, max or both for {threshold.metric}"
        metric = METRICS[threshold.metric]
        if metric.tasks is not None and spec.task not in metric.tasks:
            return f"`spec.promotion`: {metric.name} is computed for tasks {', '.join(metric.tasks)} only"
        if metric.requested_as and evaluation.metrics and metric.requested_as not in evaluation.metrics:
            return f"`spec.promotion`: {metric.name} needs {metric.requested_as} in `spec.training.evaluation.metrics`"
    return None


@dataclasses.dataclass(frozen=True)
class Check:
    """One threshold against the run's value; `value` is None when the trainer did not report the metric."""

    metric: str
    bound: str  # "min" or "max"
    threshold: float
    value: float | None

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.bound == "min" else self.value <= self.threshold

    def describe(self) -> str:
        op = ">=" if self.bound == "min" else "<="
        if self.value is None:
            return f"{self.metric} not reported (needs {op} {self.threshold:g})"
        verdict = "passed" if self.passed else "failed"
        return f"{self.metric} {self.value:.4g} {op} {self.threshold:g} {verdict}"

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, self.bound: self.threshold, "passed": self.passed}
        if self.value is not None and math.isfinite(self.value):
            out["value"] = self.value
        return out


@dataclasses.dataclass(frozen=True)
class Decision:
    """The gate's verdict: every check passed, or which did not."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def message(self, *, target: str | None = None, location: str | None = None) -> str:
        numbers = "; ".join(c.describe() for c in self.checks)
        if self.passed:
            return f"promoted to {target}: {numbers}" if target else f"gate passed: {numbers}"
        where = f"; the adapter stays at {location}" if location else ""
        return f"not promoted, spec.output left untouched: {numbers}{where}"

    def wire(self, *, target: str | None = None, location: str | None = None) -> dict[str, Any]:
        """The `promotion` entry of the trainer's termination message."""
        return {
            "promoted": self.passed,
            "message": self.message(target=target, location=location),
            "checks": [c.wire() for c in self.checks],
        }


def evaluate(thresholds: Sequence[Any], metrics: Mapping[str, float]) -> Decision:
    """Check each of `thresholds` (spec PromotionThreshold) against the final `metrics`; every bound must hold."""
    checks = []
    for t in thresholds:
        value = metrics.get(t.metric)
        value = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        if t.min is not None:
            checks.append(Check(t.metric, "min", float(t.min), value))
        if t.max is not None:
            checks.append(Check(t.metric, "max", float(t.max), value))
    return Decision(tuple(checks))


def condition(report: Mapping[str, Any] | None) -> tuple[bool, str, str]:
    """(status, reason, message) of the Promoted condition, from the trainer's termination message."""
    raw = (report or {}).get("promotion")
    if not isinstance(raw, dict) or not isinstance(raw.get("promoted"), bool):
        return False, NOT_REPORTED, "the trainer reported no promotion decision; spec.output was not written by it"
    promoted = raw["promoted"]
    message = str(raw.get("message") or ("gate passed" if promoted else "gate failed"))
    return promoted, PASSED if promoted else FAILED, message
