"""The report of a fit with measurement periods: the latest period, the changes, the slopes."""

from __future__ import annotations

import pandas as pd

from munirank.cli import run
from munirank.reporting.html import build_context, load_folder
from munirank.reporting.period_plots import plot_rank_changes


def test_report_shows_the_latest_period_and_a_changes_section(period_fit, tmp_path):
    ff = load_folder(period_fit)
    assert ff.periods is not None and len(ff.municipalities) == 20  # 2009: M20 too
    assert "period" not in ff.municipalities and ff.ranks.sizes["municipality"] == 20
    context = build_context(ff, {})
    assert "periods" in context["sections"]
    assert any("If no municipality had truly changed" in s for s in context["periods"]["lines"])
    out = tmp_path / "report.html"
    assert run(["report", str(period_fit), "--out", str(out)]) == 0
    html = out.read_text()
    assert 'id="periods"' in html and "Changes between periods" in html
    assert html.count("data:image/png;base64") >= 5  # the slope chart among the figures
    assert "the sections above show the latest, 2009" in html


def test_slope_chart_draws_one_line_per_municipality_in_both(period_fit):
    table = pd.read_csv(period_fit / "municipalities.csv", dtype={"municipality": str,
                                                                  "period": str})
    changes = pd.read_csv(period_fit / "changes.csv", dtype={"municipality": str,
                                                             "period_from": str,
                                                             "period_to": str})
    fig = plot_rank_changes(table, changes, period_from="2007", period_to="2009", ci_prob=0.9)
    ax = fig.axes[0]
    slopes = [line for line in ax.lines if tuple(line.get_xdata()) == (0, 1)]
    assert len(slopes) == 19 and ax.yaxis_inverted()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2007", "2009"]


def test_pairwise_on_a_period_fit_compares_in_the_latest_period(period_fit, capsys):
    from munirank.posterior.sets import pairwise

    table = pairwise(period_fit, ["M20", "M01"])
    assert table.shape == (2, 2) and 0 <= table.loc["M20", "M01"] <= 1
    assert run(["pairwise", str(period_fit), "--municipalities", "M01,M02"]) == 0
    assert "M01" in capsys.readouterr().out
