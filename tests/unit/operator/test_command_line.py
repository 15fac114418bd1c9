"""`kubeft-operator` is `kopf run` with kubeft's handlers, cluster-wide unless namespaces are given."""

from __future__ import annotations

import pytest

from kubeft_operator import __main__ as entry


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([], ["run", "--module=kubeft_operator.handlers", "--all-namespaces"]),
        (["--standalone"], ["run", "--module=kubeft_operator.handlers", "--all-namespaces", "--standalone"]),
        (["--namespace=team-a"], ["run", "--module=kubeft_operator.handlers", "--namespace=team-a"]),
        (["-n", "team-a"], ["run", "--module=kubeft_operator.handlers", "-n", "team-a"]),
    ],
)
def test_watches_all_namespaces_unless_given_some(argv, want):
    assert entry.kopf_args(argv) == want
