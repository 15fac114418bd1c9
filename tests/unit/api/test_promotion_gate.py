"""api.promotion: thresholds against final metrics, the numbers in the verdict, and the spec rules."""

from __future__ import annotations

import math

import pytest

from kubeft_operator.api import promotion
from kubeft_operator.api import spec as spec_models

BASE = {
    "model": {"source": "org/model"},
    "dataset": {"source": "/data/train.jsonl", "fields": {"text": "text"}, "validationFraction": 0.1},
    "task": "CAUSAL_LM",
    "method": {"type": "lora"},
    "training": {"maxSteps": 5},
    "output": {"s3": {"uri": "s3://bucket/prefix"}},
}


def thresholds(*rows: dict[str, object]) -> list[spec_models.PromotionThreshold]:
    return [spec_models.PromotionThreshold.model_validate(r) for r in rows]


@pytest.mark.parametrize(
    ("rows", "metrics", "want_passed"),
    [
        pytest.param([{"metric": "eval_loss", "max": 2.5}], {"eval_loss": 2.4}, True, id="loss-under-max"),
        pytest.param([{"metric": "eval_loss", "max": 2.5}], {"eval_loss": 2.5}, True, id="loss-at-max"),
        pytest.param([{"metric": "eval_loss", "max": 2.5}], {"eval_loss": 2.6}, False, id="loss-over-max"),
        pytest.param([{"metric": "eval_accuracy", "min": 0.8}], {"eval_accuracy": 0.9}, True, id="accuracy-over-min"),
        pytest.param([{"metric": "eval_f1", "min": 0.8}], {"eval_f1": 0.7}, False, id="f1-under-min"),
        pytest.param(
            [{"metric": "eval_perplexity", "min": 1.0, "max": 20.0}], {"eval_perplexity": 12.0}, True, id="both-bounds"
        ),
        pytest.param(
            [{"metric": "eval_loss", "max": 2.5}, {"metric": "eval_perplexity", "max": 10.0}],
            {"eval_loss": 2.4, "eval_perplexity": 11.0},
            False,
            id="every-threshold-must-hold",
        ),
        pytest.param([{"metric": "eval_loss", "max": 2.5}], {"train_loss": 1.0}, False, id="metric-not-reported"),
        pytest.param([{"metric": "eval_loss", "max": 2.5}], {"eval_loss": math.nan}, False, id="nan-never-passes"),
    ],
)
def test_gate_passes_only_when_every_bound_holds(rows, metrics, want_passed):
    assert promotion.evaluate(thresholds(*rows), metrics).passed is want_passed


def test_a_failed_gate_says_metric_value_and_threshold():
    decision = promotion.evaluate(thresholds({"metric": "eval_loss", "max": 2.5}), {"eval_loss": 3.14159})
    report = decision.wire(location="s3://b/.kubeft-runs/x/uid/adapter")
    assert report["promoted"] is False
    assert report["checks"] == [{"metric": "eval_loss", "max": 2.5, "passed": False, "value": 3.14159}]
    assert "eval_loss 3.142 <= 2.5 failed" in report["message"]
    assert "spec.output left untouched" in report["message"]
    assert "s3://b/.kubeft-runs/x/uid/adapter" in report["message"]


def test_a_passed_gate_names_where_the_adapter_was_promoted():
    decision = promotion.evaluate(thresholds({"metric": "eval_accuracy", "min": 0.5}), {"eval_accuracy": 0.75})
    report = decision.wire(target="s3://b/x")
    assert report["promoted"] is True
    assert report["message"] == "promoted to s3://b/x: eval_accuracy 0.75 >= 0.5 passed"


def test_a_missing_metric_is_named_in_the_verdict():
    decision = promotion.evaluate(thresholds({"metric": "eval_f1", "min": 0.5}), {})
    assert "eval_f1 not reported" in decision.message()


@pytest.mark.parametrize(
    ("report", "want"),
    [
        pytest.param(
            {"promotion": {"promoted": True, "message": "promoted to s3://b/x: eval_loss 1 <= 2 passed"}},
            (True, "GatePassed", "promoted to s3://b/x: eval_loss 1 <= 2 passed"),
            id="passed",
        ),
        pytest.param(
            {"promotion": {"promoted": False, "message": "not promoted: eval_loss 3 <= 2 failed"}},
            (False, "GateFailed", "not promoted: eval_loss 3 <= 2 failed"),
            id="failed",
        ),
        pytest.param({"result": "Succeeded"}, (False, "GateNotReported"), id="not-reported"),
        pytest.param(None, (False, "GateNotReported"), id="no-report"),
    ],
)
def test_condition_comes_from_the_trainer_decision(report, want):
    got = promotion.condition(report)
    assert got[: len(want)] == want


@pytest.mark.parametrize(
    ("patch", "want_problem"),
    [
        pytest.param({}, None, id="valid"),
        pytest.param(
            {"output": {"hub": {"repo": "o/r", "tokenSecretRef": {"name": "t"}}}}, "spec.output.s3", id="hub-only"
        ),
        pytest.param(
            {"dataset": {"source": "/d.jsonl", "fields": {"text": "text"}}}, "validation split", id="no-validation"
        ),
        pytest.param({"training": {"maxSteps": 5, "evaluation": {"strategy": "no"}}}, "evaluation", id="no-eval"),
        pytest.param(
            {"promotion": {"thresholds": [{"metric": "eval_f1", "min": 0.5}]}}, "SEQ_CLS", id="f1-for-a-language-model"
        ),
        pytest.param(
            {
                "promotion": {"thresholds": [{"metric": "eval_perplexity", "max": 9}]},
                "training": {"maxSteps": 5, "evaluation": {"metrics": ["accuracy"]}},
            },
            "perplexity",
            id="perplexity-not-requested",
        ),
    ],
)
def test_spec_rules_refuse_a_gate_that_cannot_be_evaluated(patch, want_problem):
    doc = {**BASE, "promotion": {"thresholds": [{"metric": "eval_loss", "max": 2.5}]}, **patch}
    problem = promotion.spec_problem(spec_models.FineTuneJobSpec.model_validate(doc))
    if want_problem is None:
        assert problem is None
    else:
        assert problem is not None and want_problem in problem


def test_a_gate_needs_a_threshold():
    with pytest.raises(ValueError):
        spec_models.FineTuneJobSpec.model_validate({**BASE, "promotion": {"thresholds": []}})


def test_a_threshold_without_a_bound_is_refused_outside_kubernetes():
    doc = {**BASE, "promotion": {"thresholds": [{"metric": "eval_loss"}]}}
    problem = promotion.spec_problem(spec_models.FineTuneJobSpec.model_validate(doc))
    assert problem is not None and "min, max or both" in problem
