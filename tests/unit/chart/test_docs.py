"""The user docs give the CRD upgrade command that works after a Helm 4 install (see the integration test)."""

from __future__ import annotations

import pytest

from tests.unit.chart import helm

CRD_UPGRADE = "kubectl apply --server-side --force-conflicts -f charts/kubeft/crds/"


@pytest.mark.parametrize("doc", ["charts/kubeft/README.md", "docs/helm.md"])
def test_docs_give_the_crd_upgrade_command(doc: str) -> None:
    assert CRD_UPGRADE in (helm.ROOT / doc).read_text()
