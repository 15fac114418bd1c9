"""`helm lint --strict` accepts the chart, with its defaults and with the HA/monitoring values file."""

from __future__ import annotations

import pytest

from tests.unit.chart import helm


@pytest.mark.parametrize("options", [(), ("-f", str(helm.VALUES_DIR / "ha-monitoring.yaml"))], ids=["defaults", "ha"])
def test_chart_passes_strict_lint(options: tuple[str, ...]) -> None:
    done = helm.run("lint", "--strict", str(helm.CHART), *options, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
