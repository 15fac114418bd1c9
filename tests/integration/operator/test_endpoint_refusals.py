"""The endpoint policy through the real operator: a representative subset of the unit table's spellings.

Each FineTuneJob names one endpoint and is created `suspend: true` (no trainer pod is needed): the
operator under test either refuses it, `Failed`/`InvalidSpec` with no Job, or creates its children.
Once with private endpoints refused (the default) and once with them allowed; the metadata address
is refused in every spelling under both settings. The whole table (46 spellings) is the unit test
tests/unit/operator/test_endpoint_policy.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fixtures.cluster import Cluster
from tests.integration.operator.conftest import Operator, Watcher, manifest

pytestmark = pytest.mark.cluster

# (endpoint, refused by default, refused with private endpoints allowed)
SUBSET = [
    ("https://s3.amazonaws.com", False, False),
    ("http://134744072", False, False),  # 8.8.8.8 as one number: public
    ("http://2852039166", True, True),  # 169.254.169.254 as one number
    ("http://0xA9FEA9FE", True, True),
    ("http://0251.0376.0251.0376", True, True),
    ("http://[::ffff:169.254.169.254]", True, True),
    ("http://[::ffff:a9fe:a9fe]", True, True),
    ("http://169.254.169.254.", True, True),
    ("http://0x7f.1", True, False),  # 127.0.0.1, short hex form
    ("http://10.0.3.7:9000", True, False),
    ("http://[::1]:9000", True, False),
]


@pytest.mark.parametrize("allow_private", [False, True], ids=["default", "private-allowed"])
def test_endpoints_are_refused_or_run_as_the_policy_says(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator], watch: Watcher, allow_private: bool
) -> None:
    start_operator(env={"KUBEFT_ALLOW_PRIVATE_ENDPOINTS": str(allow_private).lower()})
    expected = {}
    for i, (endpoint, strict, lenient) in enumerate(SUBSET):
        name = f"ep-{i}"
        cluster.apply(manifest(name, storage={"endpoint": endpoint}, suspend=True), namespace=namespace)
        expected[name] = (endpoint, lenient if allow_private else strict)

    def settled() -> bool:
        return all(watch.phase(name) in ("Failed", "Suspended") for name in expected)

    cluster.wait_for(settled, timeout=90, interval=1, what="every job to be refused or suspended")
    for name, (endpoint, refused) in expected.items():
        if refused:
            failed = watch.condition(name, "Failed")
            assert failed.get("reason") == "InvalidSpec", (endpoint, watch.status(name))
            assert "spec.storage.endpoint" in failed["message"], failed
            assert watch.items("jobs", name) == [], f"{endpoint} is refused but has a Job"
        else:
            assert watch.phase(name) == "Suspended", (endpoint, watch.status(name))
            assert len(watch.items("jobs", name)) == 1
