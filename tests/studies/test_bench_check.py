"""The check case of munirank bench (issue 29): what it records and its ratios to the fit."""

import json

import pytest

from munirank.studies import bench_check
from munirank.studies.bench import TARGETS, _summarise, table_text


def _check_case():
    models = {"weibull": {"seconds": 6.0, "cpu_seconds": 10.0},
              "lognormal": {"seconds": 9.0, "cpu_seconds": 15.0},
              "exponential": {"seconds": 4.0, "cpu_seconds": 12.0}}
    return {"process_seconds": 40.0, "process_cpu_seconds": 70.0, "wall_seconds": 37.0,
            "chosen_model": "weibull", "models": models}


def test_ratios_to_the_fit_of_the_same_run(tmp_path):
    cases = {"nutpie": {"process_seconds": 8.0, "process_cpu_seconds": 14.0,
                        "wall_seconds": 6.0, "cpu_seconds": 10.0, "ess_per_second": 1.0},
             "check": _check_case()}
    ratios = _summarise(cases, tmp_path)["ratios"]
    assert ratios["check_over_fit"] == pytest.approx(5.0)  # whole commands
    assert ratios["check_cpu_over_fit"] == pytest.approx(5.0)
    # each alternative's CPU seconds over the fit's (in process): the target
    assert ratios["alternative_cpu_over_fit_max"] == pytest.approx(1.5)  # lognormal
    assert ratios["alternative_cpu_over_fit[exponential]"] == pytest.approx(1.2)
    # and its seconds over the fit's, recorded beside
    assert ratios["alternative_over_fit_max"] == pytest.approx(1.5)
    assert ratios["alternative_over_fit[exponential]"] == pytest.approx(4 / 6)
    assert not any("[weibull]" in k for k in ratios)  # the chosen model is no alternative
    assert TARGETS["check_over_fit_max"] == 6.0
    assert TARGETS["alternative_cpu_over_fit_max"] == 2.0
    assert "check_over_fit: 5.00" in table_text({"cases": cases, "ratios": ratios,
                                                  "agreement": {}})


def test_no_check_ratio_without_the_fit(tmp_path):
    assert _summarise({"check": _check_case()}, tmp_path)["ratios"] == {}


def test_the_case_reads_each_models_seconds_from_check_json(tiny_dir, tmp_path, monkeypatch):
    """The check itself is stubbed (its check.json is tested with the check); the case passes
    the draws on and reads what check.json records."""
    from munirank import api

    seen = {}

    def fake_check(data, *, spec, out):
        seen.update(data=data, draws=spec.sampling.draws, tune=spec.sampling.tuning_steps)
        out.mkdir()
        models = {"weibull": {"seconds": 2.0, "cpu_seconds": 3.5, "converged": True,
                              "timings": {"draw_seconds": 1.5}},
                  "lognormal": {"seconds": 3.0, "converged": False, "timings": {}}}
        (out / "check.json").write_text(json.dumps(
            {"chosen_model": "weibull", "models": models, "n_episodes": 10,
             "timings": {"read_seconds": 0.1}}))

    from munirank.checking import schedule

    monkeypatch.setattr(api, "check", fake_check, raising=False)
    started = []
    monkeypatch.setattr(schedule, "start_early", lambda: started.append(True))
    got = bench_check.run_case(tiny_dir, tmp_path / "check", draws=30, tune=40)
    assert started == [True]  # the second process started first, as munirank check does
    assert seen == {"data": tiny_dir / "spells.csv", "draws": 30, "tune": 40}
    assert got["models"] == {"weibull": {"seconds": 2.0, "cpu_seconds": 3.5, "draw_seconds": 1.5},
                             "lognormal": {"seconds": 3.0}}
    assert got["converged"] is False and got["chosen_model"] == "weibull"
    assert got["stage_timings"] == {"read_seconds": 0.1} and got["wall_seconds"] > 0


def test_alternating_runs_give_the_median_of_their_pairs(tmp_path):
    """With --repeats the check alternates with the fit: each ratio is taken pair by pair
    (a fit and the check right after it) and the median reported, with its range."""
    fits = [{"process_seconds": s, "process_cpu_seconds": 2 * s, "wall_seconds": s - 2,
             "cpu_seconds": 2 * s - 4, "ess_per_second": 1.0} for s in (10.0, 14.0, 12.0)]
    checks = [{**_check_case(), "process_seconds": s} for s in (62.0, 70.0, 78.0)]
    cases = {"nutpie": {**fits[0], "runs": fits}, "check": {**checks[0], "runs": checks}}
    report = _summarise(cases, tmp_path)
    pairs = [62 / 10, 70 / 14, 78 / 12]
    assert report["ratios"]["check_over_fit"] == pytest.approx(sorted(pairs)[1])
    assert report["ratio_ranges"]["check_over_fit"] == pytest.approx([min(pairs), max(pairs)])
    lognormal = [15 / (2 * s - 4) for s in (10.0, 14.0, 12.0)]
    assert report["ratios"]["alternative_cpu_over_fit_max"] == pytest.approx(
        sorted(lognormal)[1])
    text = table_text({"cases": cases, **report})
    assert "check_over_fit: 6.20 (median of 3 paired runs, range 5.00-6.50)" in text
