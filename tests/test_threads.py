import os

from gridnoise.threads import MAX_THREADS, default_threads


def test_default_threads_are_the_idle_cores_capped(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert default_threads() == MAX_THREADS  # 8 idle cores: the cap
    monkeypatch.setattr(os, "getloadavg", lambda: (6.7, 0.0, 0.0))
    assert default_threads() == 2  # 6 of 8 busy
    monkeypatch.setattr(os, "getloadavg", lambda: (12.0, 0.0, 0.0))
    assert default_threads() == 1  # overloaded: still one


def test_omp_num_threads_is_honoured(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    assert default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a count: the idle cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert default_threads() == 2
