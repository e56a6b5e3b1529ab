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


class ThreadTuner:
    """Picks the thread count for each chunk of a parallel kernel's work from measured throughput.

    A parallel kernel that synchronizes often (the SGD epoch meets a barrier every batch) slows
    down far more than a single thread when another process takes one of its cores: its threads
    wait for the descheduled one at every barrier. No count known in advance is right on both a
    quiet and a busy machine, so the tuner measures. Each candidate (``threads`` and 1; with more
    than two CPUs also half of them) is tried once, then the fastest by its latest rate is used.
    A candidate that lost is measured again after ``probe_every`` chunks, on a short chunk; each
    time it loses again its wait doubles (up to ``max_wait`` chunks), so a change in load is
    noticed while a bad candidate costs little. The kernel's results must not depend on the
    thread count (the SGD kernel's do not), so switching changes the speed only.
    ``RECSYS_THREADS`` fixes the count.
    """

    def __init__(self, threads: int | None = None, probe_every: int = 4, max_wait: int = 64):
        fixed = settings.THREADS.is_set()
        top = max(threads if threads is not None else cpu_threads(), 1)
        self.candidates = [top] if fixed else sorted({top, max(top // 2, 1), 1}, reverse=True)
        self.probe_every, self.max_wait = max(probe_every, 1), max(max_wait, probe_every, 1)
        self.rates: dict[int, float] = {}  # items per second, latest measurement
        self.due: dict[int, int] = {}  # chunk number at which a losing candidate is measured again
        self.wait: dict[int, int] = {t: self.probe_every for t in self.candidates}
        self.chunks = 0

    def choose(self) -> tuple[int, bool]:
        """(the thread count for the next chunk, whether the chunk is a probe and should be short)."""
        for threads in self.candidates:
            if threads not in self.rates:
                return threads, False
        best = self.best
        due = [t for t in self.candidates if t != best and self.due.get(t, 0) <= self.chunks]
        if due:
            return min(due, key=lambda t: self.due.get(t, 0)), True
        return best, False

    @property
    def best(self) -> int:
        return max(self.candidates, key=lambda t: self.rates.get(t, 0.0))

    def record(self, threads: int, items: int, seconds: float) -> None:
        """The chunk just run: ``items`` of work on ``threads`` threads in ``seconds``."""
        if threads in self.candidates and items > 0 and seconds > 0:
            self.rates[threads] = items / seconds
            best = self.best
            self.wait[best] = self.probe_every
            self.due.pop(best, None)
            for t in self.candidates:
                if t == best:
                    continue
                if t == threads:  # lost (again): measured again later, and later each time it loses
                    self.due[t] = self.chunks + 1 + self.wait[t]
                    self.wait[t] = min(2 * self.wait[t], self.max_wait)
                else:
                    self.due.setdefault(t, self.chunks + 1 + self.wait[t])
        self.chunks += 1
