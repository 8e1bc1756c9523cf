import pytest

from munirank.bench import _summarise, table_text


def test_ratios_with_and_without_compilation(tmp_path):
    cases = {"nutpie": {"wall_seconds": 50.0, "ess_per_second": 100.0,
                        "ess_per_draw_second": 400.0},
             "pymc": {"wall_seconds": 60.0, "ess_per_second": 80.0, "ess_per_draw_second": 100.0},
             "frequentist": {"wall_seconds": 10.0}}
    summary = _summarise(cases, tmp_path)
    assert summary["ratios"]["ess_per_second_nutpie_over_pymc"] == pytest.approx(1.25)
    assert summary["ratios"]["ess_per_draw_second_nutpie_over_pymc"] == pytest.approx(4.0)
    assert summary["ratios"]["wall_nutpie_over_frequentist"] == pytest.approx(5.0)
    text = table_text({"cases": cases, **summary})
    assert "ESS/draw s" in text and "ess_per_draw_second_nutpie_over_pymc: 4.00" in text


def test_no_draw_ratio_when_a_sampler_failed(tmp_path):
    cases = {"nutpie": {"wall_seconds": 50.0, "ess_per_second": 100.0,
                        "ess_per_draw_second": 400.0}, "pymc": {"error": "boom"}}
    assert _summarise(cases, tmp_path)["ratios"] == {}
