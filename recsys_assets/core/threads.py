"""How many CPU threads this process should use: the CPUs it may really run on.

A process may be limited below the machine's core count in two ways, and both
count: its affinity mask (``taskset``, a cpuset) and its cgroup CPU quota (a
Kubernetes pod's ``cpu`` limit, ``docker --cpus``), which sees every core of its
node but may only use ``quota / period`` of them. Running more threads than
that oversubscribes the cores, and parallel kernels then slow down far more
than a single thread would. ``RECSYS_THREADS`` overrides the count.
"""

import math
import os
from pathlib import Path

from recsys_assets import settings

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_threads(cgroup_root: Path = CGROUP_ROOT) -> int:
    """``RECSYS_THREADS`` when set, else min(affinity mask, cgroup CPU quota rounded up), at least 1."""
    if settings.THREADS.is_set():
        return settings.THREADS.integer()
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        allowed = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        allowed = min(allowed, max(math.ceil(quota), 1))
    return max(allowed, 1)


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup may use (``quota / period``), or None when unlimited or unknown (v2, then v1)."""
    try:
        text = (root / "cpu.max").read_text().split()  # cgroup v2: "max 100000" or "150000 100000"
        if len(text) == 2 and text[0] != "max":
            return int(text[0]) / int(text[1])
        if text:
            return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None
