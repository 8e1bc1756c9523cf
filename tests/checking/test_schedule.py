"""check's second process (issue 29): when it is used, and its errors reach the caller.

That its results equal those of one process is tested with the check itself
(tests/checking/test_alternatives.py).
"""

import pytest

from munirank.checking import schedule
from munirank.checking.alternatives import variants
from munirank.errors import InputError


def test_two_processes_only_where_they_can_pay(monkeypatch):
    monkeypatch.setattr(schedule.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(schedule, "available_bytes", lambda: 8 << 30)
    assert schedule.processes(6, 23_563, 4000) == 2
    assert schedule.processes(1, 23_563, 4000) == 1  # one alternative: nothing to overlap
    assert schedule.processes(6, 23_563, 120) == 1  # a short check: the start costs more
    monkeypatch.setattr(schedule, "available_bytes", lambda: 1 << 30)
    assert schedule.processes(6, 23_563, 4000) == 1  # 1.4 GB needed
    monkeypatch.setattr(schedule, "available_bytes", lambda: 2 << 30)
    assert schedule.processes(6, 23_563, 4000) == 2
    assert schedule.processes(6, 1_000_000, 4000) == 1  # 60 GB needed
    monkeypatch.setattr(schedule.os, "cpu_count", lambda: 1)
    assert schedule.processes(6, 23_563, 4000) == 1


def test_memory_available_is_read():
    assert schedule.available_bytes() > 0


def test_an_error_in_the_second_process_is_raised_in_the_first(tiny_spec, tmp_path):
    todo = variants(tiny_spec, has_municipal=True)[1:2]
    with schedule.second_process(tmp_path / "missing.csv", tiny_spec, todo) as result:
        with pytest.raises(InputError, match="missing.csv"):
            result(0)


def test_no_variants_start_nothing(tiny_spec, tmp_path):
    with schedule.second_process(tmp_path / "missing.csv", tiny_spec, []) as result:
        assert result(0) is None


def test_the_second_process_gets_about_half_the_work_and_never_the_chosen_model():
    every = ["weibull", "exponential", "loglogistic", "lognormal", "piecewise_exponential",
             "weibull", "weibull"]  # check's seven models on a register with municipal data
    second = schedule.second_share(every)
    assert 0 not in second and second == sorted(set(second)) and len(second) < len(every) - 1
    cost = [schedule.RELATIVE_COST[b] for b in every]
    busy = sum(cost[i] for i in second) + schedule.SECOND_EXTRA
    first = sum(cost) - busy + schedule.SECOND_EXTRA + schedule.FIRST_EXTRA
    # no other split would leave the busier process less to do
    assert max(first, busy) <= sum(cost) / 2 + schedule.FIRST_EXTRA / 2 + 0.2
    assert abs(first - busy) < min(cost)
    assert schedule.second_share(every) == second  # the same split every time
    assert schedule.second_share(["weibull", "lognormal"]) == [1]
    # a costly chosen model: both alternatives go to the second process
    assert schedule.second_share(["lognormal", "weibull", "exponential"]) == [1, 2]


def test_an_early_second_process_is_ended_when_one_process_fits_everything(monkeypatch):
    monkeypatch.setattr(schedule.os, "cpu_count", lambda: 2)
    schedule.start_early()
    folder, proc = schedule._early
    with schedule.second_process("unused.csv", None, []) as result:  # nothing for it to do
        assert result(0) is None
    assert schedule._early is None and proc.poll() is not None and not folder.exists()
    schedule.start_early()
    folder, proc = schedule._early
    schedule._stop_early()  # at exit without a job
    assert proc.poll() is not None and not folder.exists()


def test_no_early_process_on_one_core(monkeypatch):
    monkeypatch.setattr(schedule.os, "cpu_count", lambda: 1)
    schedule.start_early()
    assert schedule._early is None
