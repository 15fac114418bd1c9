"""status.transitions and status.checkpointed: which Events a status change warrants."""

from __future__ import annotations

import pytest

from kubeft_operator import status


def cond(type_: str, value: str, reason: str = "R", message: str = "m") -> dict[str, str]:
    return {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": "t"}


@pytest.mark.parametrize(
    ("old", "new", "want_reasons"),
    [
        ({}, {"phase": "Pending", "conditions": [cond("Created", "True")]}, ["Created"]),
        ({}, {"phase": "Pending", "conditions": [cond("Created", "False")]}, ["CreateFailed"]),
        (
            {},
            {"phase": "Queued", "conditions": [cond("Created", "True"), cond("Queued", "True")]},
            ["Created", "Queued"],
        ),
        (
            {"phase": "Pending", "conditions": [cond("Running", "False")]},
            {"phase": "Running", "conditions": [cond("Running", "True")]},
            ["Started"],
        ),
        ({"phase": "Running"}, {"phase": "Suspended"}, ["Suspended"]),
        ({"phase": "Running"}, {"phase": "Succeeded", "conditions": [cond("Succeeded", "True")]}, ["Succeeded"]),
        ({"phase": "Running"}, {"phase": "Failed", "conditions": [cond("Failed", "True")]}, ["Failed"]),
        (
            {"phase": "Running", "conditions": [cond("Running", "True")]},
            {"phase": "Running", "conditions": [cond("Running", "True", message="other")]},
            [],
        ),
    ],
)
def test_transitions_post_one_event_each(old, new, want_reasons):
    assert [e.reason for e in status.transitions(old, new)] == want_reasons


def test_failed_event_names_the_reason_and_is_a_warning():
    new = {"phase": "Failed", "conditions": [cond("Failed", "True", "DatasetNotFound", "no file at s3://b/k")]}
    (event,) = status.transitions({"phase": "Running"}, new)
    assert (event.type, event.message) == ("Warning", "DatasetNotFound: no file at s3://b/k")


@pytest.mark.parametrize(
    ("previous", "current", "want_event"),
    [(None, 100, False), (100, 100, False), (100, 200, True), (200, None, False)],
)
def test_checkpoint_event_only_when_an_observed_step_advances(previous, current, want_event):
    assert (status.checkpointed(previous, current) is not None) is want_event
