"""Threads follow the CPUs the process may really use: affinity mask, cgroup quota, RECSYS_THREADS."""

import os

from recsys_assets.core.threads import ThreadTuner, cgroup_cpu_quota, cpu_threads


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


def _tuner(monkeypatch, threads=2, **kwargs) -> ThreadTuner:
    monkeypatch.delenv("RECSYS_THREADS", raising=False)
    return ThreadTuner(threads, **kwargs)


def test_the_tuner_tries_each_count_then_keeps_the_fastest(monkeypatch):
    tuner = _tuner(monkeypatch, threads=4)
    assert tuner.candidates == [4, 2, 1]
    speed = {4: 10.0, 2: 30.0, 1: 20.0}  # items per second: two threads win on this "machine"
    tried = []
    for _ in range(3):
        threads, probing = tuner.choose()
        assert not probing
        tried.append(threads)
        tuner.record(threads, 100, 100 / speed[threads])
    assert sorted(tried) == [1, 2, 4]
    assert tuner.best == 2
    choices = [tuner.choose() for _ in range(1)]
    assert choices == [(2, False)]


def test_a_losing_count_is_probed_less_and_less_until_the_load_changes(monkeypatch):
    tuner = _tuner(monkeypatch, threads=2, probe_every=2, max_wait=8)
    speed = {2: 1.0, 1: 3.0}  # a busy machine: one thread is faster
    probes = []
    for chunk in range(60):
        threads, probing = tuner.choose()
        if probing:
            assert threads == 2
            probes.append(chunk)
        tuner.record(threads, 10, 10 / speed[threads])
    gaps = [b - a for a, b in zip(probes, probes[1:])]
    assert gaps == sorted(gaps) and gaps[-1] == 9  # waits double (3, 5, 9) and stop at max_wait
    assert tuner.best == 1
    speed = {2: 6.0, 1: 3.0}  # the other process ended
    for _ in range(10):
        threads, _ = tuner.choose()
        tuner.record(threads, 10, 10 / speed[threads])
    assert tuner.best == 2 and tuner.choose() == (2, False)


def test_recsys_threads_fixes_the_count(monkeypatch):
    monkeypatch.setenv("RECSYS_THREADS", "2")
    tuner = ThreadTuner()
    assert tuner.candidates == [2]
    tuner.record(2, 10, 1.0)
    assert tuner.choose() == (2, False)
