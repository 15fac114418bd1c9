"""The CPUs a trainer process may use: the pod's CPU limit and affinity, not the node's CPU count.

Standard library only: :mod:`kubeft_trainer.launch` reads it before anything slow is imported, to
give each trainer process its share of threads (accelerate would otherwise set OMP_NUM_THREADS=1);
the training arguments (dataloader workers) and the dataset mapping (tokenizer processes) read it
too. The cgroup root is a parameter so tests feed fake cgroup files.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: pathlib.Path = CGROUP_ROOT) -> int | None:
    """CPUs the container's cgroup quota allows (a pod's CPU limit, rounded up), or None without one.

    cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD"), else v1 `cpu.cfs_quota_us` (-1: none)
    over `cpu.cfs_period_us`.
    """
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
    except OSError:
        quota, period = _read_v1_quota(root)
    if not quota or quota in ("max", "-1") or not period:
        return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.ceil(quota_us / period_us))


def _read_v1_quota(root: pathlib.Path) -> tuple[str, str]:
    for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        directory = root / controller
        try:
            quota = (directory / "cpu.cfs_quota_us").read_text().strip()
            period = (directory / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            continue
        return quota, period
    return "", ""


def usable_cpus(*, root: pathlib.Path = CGROUP_ROOT, affinity: int | None = None) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup quota. Not os.cpu_count(), which
    counts the node's CPUs: a pod limited to 4 of 128 would start dozens of workers that fight over 4."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    return max(1, min(affinity, limit) if limit is not None else affinity)


def cpus_per_process(environ: Mapping[str, str] | None = None, *, cpus: int | None = None) -> int:
    """This process's share of the pod's CPUs: `accelerate launch` runs LOCAL_WORLD_SIZE processes in a pod."""
    env = os.environ if environ is None else environ
    processes = max(1, int(env.get("LOCAL_WORLD_SIZE") or 1))
    return max(1, (usable_cpus() if cpus is None else cpus) // processes)
