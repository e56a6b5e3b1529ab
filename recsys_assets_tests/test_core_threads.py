"""Threads follow the CPUs the process may really use: affinity mask, cgroup quota, RECSYS_THREADS."""

import os

from recsys_assets.core.threads import cgroup_cpu_quota, cpu_threads


def test_a_cgroup_v2_quota_limits_the_threads(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSYS_THREADS", raising=False)
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert cgroup_cpu_quota(tmp_path) == 1.5
    assert cpu_threads(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    assert cpu_threads(tmp_path) == len(os.sched_getaffinity(0))


def test_a_cgroup_v1_quota_and_the_override(tmp_path, monkeypatch):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    monkeypatch.delenv("RECSYS_THREADS", raising=False)
    assert cgroup_cpu_quota(tmp_path) == 0.5 and cpu_threads(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_cpu_quota(tmp_path) is None
    monkeypatch.setenv("RECSYS_THREADS", "3")
    assert cpu_threads(tmp_path) == 3
    assert cgroup_cpu_quota(tmp_path / "missing") is None
