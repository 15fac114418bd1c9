"""The memory profile (KUBEFT_MEMORY_PROFILE): what it says about a process holding FineTuneJob state."""

from __future__ import annotations

import os
import time

from kubeft_operator import config, metrics, reconciler


def test_the_report_gives_the_deep_size_of_each_per_job_cache() -> None:
    rec = reconciler.Reconciler(None, None, config.Settings(), instance="test")  # type: ignore[arg-type]
    rec._written.update({("ns", f"job-{i}"): {"metadata": {"name": f"job-{i}" * 20}} for i in range(500)})

    lines = metrics.memory_report(0)

    cache = next(line for line in lines if line.endswith("Reconciler._written"))
    mib, count = float(cache.split()[0]), int(cache.split()[2])
    assert count == 500
    assert mib > 0.1, "500 views of over 100 bytes each"
    assert any(line.startswith("kopf:") for line in lines)
    assert lines[0].startswith("RSS ")


def test_the_profile_writes_its_report_once_the_rss_passes_the_step(tmp_path: os.PathLike[str]) -> None:
    out = os.path.join(tmp_path, "memory.txt")

    stop = metrics.profile_memory(out, every=0.05, step=0)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(out) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop()
    with open(out) as report:
        assert report.readline().startswith("RSS ")
