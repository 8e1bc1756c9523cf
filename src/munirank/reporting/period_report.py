"""The report of a fit with measurement periods: the latest period, and the changes section.

The report's sections show the latest period as they show a one-period fit (its rows of
municipalities.csv, its rank draws); the section "Changes between periods" words periods.json
and changes.csv as statements.txt does (:mod:`munirank.posterior.period_statements`) and
draws the slope chart of each consecutive pair (:mod:`munirank.reporting.period_plots`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from munirank.reporting.html import FitFolder


def latest_period(ff: FitFolder) -> FitFolder:
    """The folder as the report reads it: the latest period's table and rank draws."""
    long = ff.municipalities.assign(period=ff.municipalities["period"].astype(str))
    latest = str(ff.ranks["period"].to_numpy()[-1])
    ranks = ff.ranks.sel(period=latest, drop=True).dropna("municipality", how="all")
    table = long[long["period"] == latest].drop(columns="period").reset_index(drop=True)
    summary_path, changes_path = ff.path / "periods.json", ff.path / "changes.csv"
    periods = (json.loads(summary_path.read_text(encoding="utf-8"))
               if summary_path.is_file() else None)
    changes = (pd.read_csv(changes_path, dtype={"municipality": str, "period_from": str,
                                                "period_to": str})
               if changes_path.is_file() else None)
    return replace(ff, municipalities=table, ranks=ranks.astype(int), period_table=long,
                   periods=periods if changes is not None else None, changes=changes)


def slope_jobs(ff: FitFolder) -> dict[str, Callable[[], Any]]:
    """A slope chart per consecutive pair of periods, keyed ``slope-0``, ``slope-1``, ..."""
    from munirank.reporting.period_plots import plot_rank_changes

    assert ff.periods is not None and ff.period_table is not None and ff.changes is not None
    draw = functools.partial(plot_rank_changes, ff.period_table, ff.changes, ci_prob=ff.ci_prob)
    return {f"slope-{i}": functools.partial(draw, period_from=o["from"], period_to=o["to"])
            for i, o in enumerate(ff.periods["overlap"])}


def period_context(ff: FitFolder) -> dict[str, Any]:
    """What the template's periods section shows."""
    from munirank.posterior.period_statements import change_lines

    assert ff.periods is not None and ff.changes is not None
    return {"periods": ff.periods["periods"], "latest": ff.periods["periods"][-1],
            "ci": f"{ff.ci_prob:.2f}", "lines": change_lines(ff.periods, ff.changes),
            "slopes": [{"key": f"slope-{i}", "period_from": o["from"], "period_to": o["to"]}
                       for i, o in enumerate(ff.periods["overlap"])]}
