"""The trainer status policy is generated from the status model: every operator-owned field is guarded."""

from __future__ import annotations

from kubeft_operator.api import status_policy
from tests.unit.chart import helm


def test_every_status_field_but_progress_metrics_and_dataset_is_the_operators() -> None:
    fields = status_policy.operator_fields()
    assert {"phase", "conditions", "artifact", "completionTime", "children", "kopf"} <= set(fields)
    assert "progress" not in fields and "metrics" not in fields and "dataset" not in fields


def test_chart_renders_the_policy_and_its_binding_by_default_and_can_leave_them_out() -> None:
    (policy,) = helm.find(helm.render(), "ValidatingAdmissionPolicy")
    (binding,) = helm.find(helm.render(), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    (validation,) = policy["spec"]["validations"]
    for field in status_policy.operator_fields():
        assert f"object.?status.?{field} == oldObject.?status.?{field}" in validation["expression"]
    assert helm.find(helm.render("--set", "trainer.statusPolicy=false"), "ValidatingAdmissionPolicy") == []
